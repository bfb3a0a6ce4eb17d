"""``NativeVectorEnv``: a gymnasium ``VectorEnv`` over the C++ thread-pool batcher (``rltrain._core.<Env>Vec``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrain import _checks
from rltrain.vec._infos import add_episode_statistics, add_final_obs
from rltrain.vec.registry import native_env_spec

__all__ = ["NativeVectorEnv", "native_spaces"]


def _spaces(core: Any) -> tuple[gym.spaces.Box, gym.spaces.Box | gym.spaces.Discrete]:
    """One env's observation and action spaces, read from a batcher."""
    obs = gym.spaces.Box(core.obs_low, core.obs_high, dtype=np.float32)
    if core.discrete:
        return obs, gym.spaces.Discrete(core.num_actions)
    return obs, gym.spaces.Box(core.act_low, core.act_high, dtype=np.float32)


def native_spaces(env_id: str, **env_kwargs: Any) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """The single-env (observation, action) spaces of a native id with ``env_kwargs``, read from a one-env batcher
    on the calling thread (microseconds; no Python env is built)."""
    core = native_env_spec(env_id).vec_class(1, 1, None, False, **env_kwargs)
    try:
        return _spaces(core)
    finally:
        core.close()


class NativeVectorEnv(VectorEnv):
    """``num_envs`` native C++ copies of a gymnasium env, stepped on a fixed thread pool.

    From the same seed and actions, each env gives gymnasium's own observations, rewards and flags
    (``gymnasium.make(env_id)``, TimeLimit included). Autoreset is same-step (``AutoresetMode.SAME_STEP``): where an
    episode ends, ``step`` returns the next episode's first observation, and ``infos`` carries gymnasium's
    ``final_obs``/``_final_obs`` (object array, None where no episode ended) and ``final_info``/``_final_info``, and,
    like gymnasium's ``RecordEpisodeStatistics``, ``episode = {"r", "l", "t"}`` with masks ``_episode`` and
    ``episode["_r"/"_l"/"_t"]``. Do not wrap it in ``RecordEpisodeStatistics`` as well (pass
    ``episode_statistics=False`` if you need to).

    Continuous actions are float32 (the action space's dtype); float64 input is rounded to float32 first, so bitwise
    parity with gymnasium holds for float32 actions. Discrete actions take any integer dtype.

    Results never depend on ``num_threads`` or scheduling. With ``copy=True`` (default, like gymnasium's vector envs)
    every returned array is the caller's own; ``copy=False`` returns read-only views of the C++ buffers that the next
    ``step``/``reset`` overwrites (no copy at all). ``recv`` always returns fresh arrays.
    """

    # actions -> C++ batcher (thread pool, GIL released) -> its result buffers -> copies (or views) + infos.

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        *,
        seed: int | None = None,
        identical_seeds: bool = False,
        num_threads: int | None = None,
        copy: bool = True,
        episode_statistics: bool = True,
        **env_kwargs: Any,
    ) -> None:
        self._core: Any = None  # the C++ batcher; None until built (close() and __del__ check)
        spec = native_env_spec(env_id)
        num_envs = _checks.integer(num_envs, "num_envs", lo=1)
        num_threads = _checks.optional_integer(num_threads, "num_threads", lo=1)  # the upper bound is _core's
        seed = _checks.optional_seed(seed, "seed", count=1 if identical_seeds else num_envs)
        self._core = spec.vec_class(num_envs, num_threads, seed, bool(identical_seeds), **env_kwargs)
        core = self._core

        self.env_id = env_id
        self.num_envs = num_envs
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
        self.render_mode = None
        self.spec = self._make_spec(env_id, env_kwargs, core.max_episode_steps)
        self.single_observation_space, self.single_action_space = _spaces(core)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._copy = bool(copy)
        self._action_mask = spec.action_mask
        self.episode_statistics = bool(episode_statistics)
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
        return int(self._core.num_threads)

    def get_state(self) -> bytes:
        """The whole batch's state (every env's physics, counters and RNG; running episode statistics) as bytes:
        :meth:`set_state` on a batcher of the same id, size and config continues bitwise from here."""
        return bytes(self._core.get_state())

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
                    self._core.seed_env(i, _checks.optional_seed(s, "seed"))
            obs = self._core.reset()
        else:
            count = 1 if self._core.identical_seeds else self.num_envs
            obs = self._core.reset(_checks.optional_seed(seed, "seed", count=count))
        infos: dict[str, Any] = {}
        self._add_mask(infos, obs)
        return (obs.copy() if self._copy else obs), infos

    def _add_mask(self, infos: dict[str, Any], obs: np.ndarray) -> None:
        """``info["action_mask"]`` (legal actions of the returned observations) for envs that report one."""
        if self._action_mask is not None:
            infos["action_mask"] = self._action_mask(obs)
            infos["_action_mask"] = np.ones(len(obs), np.bool_)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Steps every env; ``actions`` has shape ``(num_envs,)`` (discrete) or ``(num_envs, act_dim)``."""
        obs, rewards, terminated, truncated = self._core.step(np.asarray(actions))
        b = self._bufs
        infos = self._infos(
            b["has_final"], b["final_obs"], b["episode_return"], b["episode_length"], b["episode_time"]
        )
        self._add_mask(infos, obs)
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
        self._add_mask(infos, d["obs"])
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
        if has_final.any():
            add_final_obs(infos, has_final, final_obs)
            if self.episode_statistics:
                add_episode_statistics(infos, has_final, ep_return, ep_length, ep_time)
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
