"""``NativeVectorEnv``: a gymnasium ``VectorEnv`` over the C++ thread-pool batcher (``rltrain._core.<Env>Vec``)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrain.vec import native_env_spec

__all__ = ["NativeVectorEnv"]

_SEED_LIMIT = 2**64


def _check_seed(seed: Any, span: int) -> int | None:
    if seed is None:
        return None
    try:
        s = operator.index(seed)
    except TypeError:
        raise ValueError(f"seed: expected None or a non-negative integer, got {seed!r}") from None
    if isinstance(seed, bool) or s < 0 or s + span - 1 >= _SEED_LIMIT:
        raise ValueError(f"seed: expected an integer in [0, 2**64 - {span}], got {seed!r}")
    return s


class NativeVectorEnv(VectorEnv):
    """``num_envs`` native C++ copies of a gymnasium env, stepped on a fixed thread pool.

    From the same seed and actions, each env gives gymnasium's own observations, rewards and flags
    (``gymnasium.make(env_id)``, TimeLimit included). Autoreset is same-step (``AutoresetMode.SAME_STEP``): where an
    episode ends, ``step`` returns the next episode's first observation, and ``infos`` carries gymnasium's
    ``final_obs``/``_final_obs`` (object array, None where no episode ended) and ``final_info``/``_final_info``, and,
    like gymnasium's ``RecordEpisodeStatistics``, ``episode = {"r", "l", "t"}`` with masks ``_episode`` and
    ``episode["_r"/"_l"/"_t"]``. Do not wrap it in ``RecordEpisodeStatistics`` as well (pass
    ``record_episode_statistics=False`` if you need to).

    Continuous actions are float32 (the action space's dtype); float64 input is rounded to float32 first, so bitwise
    parity with gymnasium holds for float32 actions. Discrete actions take any integer dtype.

    Results never depend on ``num_threads`` or scheduling. With ``copy=True`` (default, like gymnasium's vector envs)
    every returned array is the caller's own; ``copy=False`` returns read-only views of the C++ buffers that the next
    ``step``/``reset`` overwrites (no copy at all). ``recv`` always returns fresh arrays.
    """

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        seed: int | None = None,
        identical_seeds: bool = False,
        num_threads: int | None = None,
        copy: bool = True,
        record_episode_statistics: bool = True,
        **env_kwargs: Any,
    ) -> None:
        self._core = None
        spec = native_env_spec(env_id)
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected a positive integer, got {num_envs!r}")
        if num_threads is not None and (isinstance(num_threads, bool) or operator.index(num_threads) < 1):
            raise ValueError(f"num_threads: expected None or a positive integer, got {num_threads!r}")
        seed = _check_seed(seed, 1 if identical_seeds else int(num_envs))
        self._core = spec.vec_class(int(num_envs), num_threads, seed, bool(identical_seeds), **env_kwargs)
        core = self._core

        self.env_id = env_id
        self.num_envs = int(num_envs)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
        self.render_mode = None
        self.spec = self._make_spec(env_id, env_kwargs, core.max_episode_steps)
        self.single_observation_space = gym.spaces.Box(core.obs_low, core.obs_high, dtype=np.float32)
        if core.discrete:
            self.single_action_space = gym.spaces.Discrete(core.num_actions)
        else:
            self.single_action_space = gym.spaces.Box(core.act_low, core.act_high, dtype=np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._copy = bool(copy)
        self._record_stats = bool(record_episode_statistics)
        self._bufs = core.buffers()

    @staticmethod
    def _make_spec(
        env_id: str, env_kwargs: dict[str, Any], max_steps: int
    ) -> gym.envs.registration.EnvSpec | None:
        if env_id not in gym.registry:
            return None
        kwargs = {k: v for k, v in env_kwargs.items() if k != "max_episode_steps"}
        spec = gym.spec(env_id)
        return dataclasses.replace(spec, kwargs={**spec.kwargs, **kwargs}, max_episode_steps=max_steps)

    @property
    def num_threads(self) -> int:
        """Threads stepping the envs (the calling thread counts as one)."""
        return self._core.num_threads

    def get_state(self) -> bytes:
        """The whole batch's state (every env's physics, counters and RNG; running episode statistics) as bytes:
        :meth:`set_state` on a batcher of the same id, size and config continues bitwise from here."""
        return self._core.get_state()

    def set_state(self, state: bytes) -> None:
        """Restores :meth:`get_state`'s bytes (ValueError when they belong to another env, size or build)."""
        self._core.set_state(bytes(state))

    @property
    def core(self) -> Any:
        """The underlying ``rltrain._core`` batcher (zero-copy ``buffers()``, ``num_in_flight``...)."""
        return self._core

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts a new episode in every env. ``seed``: env i gets ``seed + i`` (``seed`` with identical_seeds), or a
        list of per-env seeds (None entries keep their stream); without a seed each env continues its RNG stream."""
        if options:
            raise ValueError("reset: options are not supported by native envs")
        if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
            if len(seed) != self.num_envs:
                raise ValueError(f"seed: expected {self.num_envs} per-env seeds, got {len(seed)}")
            for i, s in enumerate(seed):
                if s is not None:
                    self._core.seed_env(i, _check_seed(s, 1))
            obs = self._core.reset()
        else:
            obs = self._core.reset(_check_seed(seed, 1 if self._core.identical_seeds else self.num_envs))
        return (obs.copy() if self._copy else obs), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps every env; ``actions`` has shape ``(num_envs,)`` (discrete) or ``(num_envs, act_dim)``."""
        obs, rewards, terminated, truncated = self._core.step(np.asarray(actions))
        b = self._bufs
        infos = self._infos(
            b["has_final"], b["final_obs"], b["episode_return"], b["episode_length"], b["episode_time"]
        )
        if self._copy:
            return obs.copy(), rewards.copy(), terminated.copy(), truncated.copy(), infos
        return obs, rewards, terminated, truncated, infos

    def send(self, actions: Any, env_ids: Any = None) -> None:
        """Queues one step for each env in ``env_ids`` (all when None), ``actions[k]`` for ``env_ids[k]``; returns at
        once. An env still in flight cannot be sent again before it is received."""
        self._core.send(np.asarray(actions), None if env_ids is None else np.asarray(env_ids))

    def recv(
        self, batch_size: int | None = None, timeout: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Waits for the first ``batch_size`` sent envs to finish (default: all in flight) and returns their
        (obs, rewards, terminated, truncated, infos) in finishing order, with ``infos["env_id"]`` naming the env of
        each row. ``TimeoutError`` after ``timeout`` seconds (the envs stay in flight); ``RuntimeError`` when nothing
        is in flight."""
        d = self._core.recv(batch_size, timeout)
        infos = self._infos(
            d["has_final"], d["final_obs"], d["episode_return"], d["episode_length"], d["episode_time"]
        )
        infos["env_id"] = d["env_id"]
        return d["obs"], d["rewards"], d["terminated"], d["truncated"], infos

    def _infos(
        self,
        has_final: np.ndarray,
        final_obs: np.ndarray,
        ep_return: np.ndarray,
        ep_length: np.ndarray,
        ep_time: np.ndarray,
    ) -> dict[str, Any]:
        infos: dict[str, Any] = {}
        if not has_final.any():
            return infos
        n = len(has_final)
        done = has_final.copy()
        fo = np.full(n, None, dtype=object)
        for i in np.flatnonzero(done):
            fo[i] = final_obs[i].copy()
        infos["final_obs"], infos["_final_obs"] = fo, done
        infos["final_info"], infos["_final_info"] = {}, done.copy()
        if self._record_stats:
            infos["episode"] = {
                "r": ep_return.copy(),
                "l": ep_length.copy(),
                "t": np.round(ep_time, 6),
                "_r": done.copy(),
                "_l": done.copy(),
                "_t": done.copy(),
            }
            infos["_episode"] = done.copy()
        return infos

    def close_extras(self, **kwargs: Any) -> None:
        """Stops the C++ threads."""
        if self._core is not None:
            self._core.close()

    def __enter__(self) -> NativeVectorEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_core", None) is not None and not getattr(self, "closed", True):
            self.close()

    def __repr__(self) -> str:
        return f"NativeVectorEnv({self.env_id}, num_envs={self.num_envs}, num_threads={self.num_threads})"
