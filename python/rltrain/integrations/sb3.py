"""Stable-Baselines3 on rltrain: a ``RolloutBuffer`` whose GAE runs on rltrain's compiled kernel, and a ``VecEnv``
over :func:`rltrain.make_vec` (native C++ environments on a thread pool, or any gymnasium env in fork workers).

Install Stable-Baselines3 to use it: ``pip install stable-baselines3`` (or ``pip install 'rltrain[sb3]'``)::

    from stable_baselines3 import PPO
    from rltrain.integrations.sb3 import RolloutBuffer, make_vec_env

    env = make_vec_env("LunarLander-v3", n_envs=16, seed=0)          # native C++ LunarLander
    model = PPO("MlpPolicy", env, rollout_buffer_class=RolloutBuffer, seed=0)
    model.learn(1_000_000)

Both give SB3's own numbers: the buffer's advantages and returns equal SB3's bit for bit (same float32 operations
in the same order), and the ``VecEnv`` returns what SB3's ``DummyVecEnv`` over ``Monitor``-wrapped gymnasium envs
(SB3's ``make_vec_env``) returns for the same seeds and actions: observations, rewards, dones, and the infos
``terminal_observation``, ``TimeLimit.truncated`` (so SB3 bootstraps time-outs) and ``episode`` (so
``ep_info_buffer``, ``VecMonitor`` and ``evaluate_policy`` read episode returns).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import torch as th
    from stable_baselines3.common.buffers import RolloutBuffer as _SB3RolloutBuffer
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn
except ModuleNotFoundError as exc:  # only a missing Stable-Baselines3 gets the install hint
    if exc.name is None or exc.name.split(".")[0] != "stable_baselines3":
        raise
    raise ImportError(
        "rltrain.integrations.sb3 needs Stable-Baselines3: pip install stable-baselines3 "
        "(or pip install 'rltrain[sb3]')"
    ) from exc

import gymnasium as gym
from gymnasium.vector import AutoresetMode
from gymnasium.vector import VectorEnv as GymVectorEnv

from rltrain import _checks
from rltrain.kernels import gae
from rltrain.vec import make_vec
from rltrain.vec.native import NativeVectorEnv

__all__ = ["RltrainVecEnv", "RolloutBuffer", "make_vec_env"]


# ------------------------------------------------------------------------------------------------ rollout buffer


class RolloutBuffer(_SB3RolloutBuffer):
    """Stable-Baselines3's ``RolloutBuffer`` with GAE computed by :func:`rltrain.kernels.gae` (C++, GIL released).

    Same constructor and same numbers as SB3's buffer: use it as ``PPO(..., rollout_buffer_class=RolloutBuffer)``
    or ``A2C(..., rollout_buffer_class=RolloutBuffer)``. Only :meth:`compute_returns_and_advantage` differs.
    """

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """GAE(lambda) advantages and TD(lambda) returns into ``self.advantages`` and ``self.returns``.

        SB3 stores ``episode_starts`` (step t is the first of an episode), not dones: the kernel's
        ``dones[t]`` (the episode ended at step t) is ``episode_starts[t + 1]``, and for the last step the
        ``dones`` argument (whether the step after the buffer starts a new episode). A done step bootstraps
        nothing, as in SB3: time-outs are already folded into the rewards by ``collect_rollouts``
        (``reward += gamma * V(terminal_observation)``). The kernel does SB3's float32 operations in SB3's order
        (``gamma`` and ``gamma * lambda`` rounded to float32), so the results are bitwise SB3's.

        Args:
            last_values: value estimates of the observations after the last step, shape ``(n_envs,)`` or
                ``(n_envs, 1)``.
            dones: whether the last step ended each env's episode, shape ``(n_envs,)``.
        """
        last = last_values.detach().cpu().numpy().reshape(-1).astype(self.values.dtype, copy=False)
        flags = np.empty(self.episode_starts.shape, dtype=np.float32)
        flags[:-1] = self.episode_starts[1:]
        flags[-1] = np.asarray(dones).reshape(-1)
        gae(
            self.rewards,
            self.values,
            flags,
            np.ascontiguousarray(last),
            gamma=float(self.gamma),
            lam=float(self.gae_lambda),
            out=(self.advantages, self.returns),
        )


# ------------------------------------------------------------------------------------------------ vector env

# Attributes a native env answers for `get_attr` (it has no per-env Python object): what SB3 and its wrappers read.
_NATIVE_ATTRS = ("render_mode", "spec", "observation_space", "action_space")


def _item(value: Any) -> Any:
    """A NumPy scalar as the Python value an env would have put in its info dict."""
    return value.item() if isinstance(value, np.generic) else value


def _unbatch(infos: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """gymnasium's batched infos (``key`` with mask ``_key``, nested for dict values) as one dict per env."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get(f"_{key}")
        rows = _unbatch(value, n) if isinstance(value, dict) else None
        for i in range(n):
            if mask is None or mask[i]:
                out[i][key] = rows[i] if rows is not None else _item(value[i])
    return out


def _wrapper_chain(spec: gym.envs.registration.EnvSpec | None, monitor: bool) -> list[type]:
    """The wrapper classes around an env built like SB3's ``make_vec_env`` builds one: ``gymnasium.make(spec)``
    (TimeLimit, OrderEnforcing, PassiveEnvChecker, the spec's additional wrappers) inside ``Monitor`` (when
    ``monitor``: the vector env gives episode statistics)."""
    chain: list[type] = [Monitor] if monitor else []
    if spec is None:
        return chain
    if spec.max_episode_steps is not None:
        chain.append(gym.wrappers.TimeLimit)
    if spec.order_enforce:
        chain.append(gym.wrappers.OrderEnforcing)
    if not spec.disable_env_checker:
        chain.append(gym.wrappers.PassiveEnvChecker)
    for wrapper in spec.additional_wrappers:
        try:
            cls = gym.envs.registration.load_env_creator(wrapper.entry_point)
        except (ImportError, AttributeError, ValueError):
            continue
        if isinstance(cls, type):
            chain.append(cls)
    return chain


class RltrainVecEnv(VecEnv):
    """A Stable-Baselines3 ``VecEnv`` over a gymnasium ``VectorEnv`` with same-step autoreset, such as
    :func:`rltrain.make_vec`'s native and fork vector envs (build one with :func:`make_vec_env`).

    It returns what SB3's ``DummyVecEnv`` over ``Monitor``-wrapped envs returns: float32 rewards, bool dones, the
    next episode's first observation where an episode ended, and per-env info dicts holding the env's own step
    infos, ``"TimeLimit.truncated"`` (truncated and not terminated), ``"terminal_observation"`` where done, and
    ``"episode" = {"r", "l", "t"}`` where an episode ended (``Monitor``'s format: return rounded to 6 digits,
    length, seconds since this env was built), read from the vector env's ``info["episode"]``. An env's reset
    infos go to ``reset_infos``.

    ``seed`` and ``set_options`` apply at the next ``reset`` (SB3's rule). Native envs have no per-env Python
    object: ``get_attr`` answers ``render_mode``, ``spec``, ``observation_space`` and ``action_space``, and
    ``set_attr``/``env_method`` raise; other vector envs (fork workers) forward them to every env, and
    ``set_attr``/``env_method`` there apply to all envs at once (``indices`` must select them all).

    Args:
        venv: the vector env; it must use ``AutoresetMode.SAME_STEP`` and give ``info["final_obs"]``.
    """

    # SB3 actions -> venv.step (C++ batcher or fork workers) -> batched infos -> one SB3 info dict per env.

    def __init__(self, venv: GymVectorEnv) -> None:
        if not isinstance(venv, GymVectorEnv):
            raise TypeError(f"venv: expected a gymnasium VectorEnv (rltrain.make_vec), got {type(venv).__name__}")
        mode = venv.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(f"venv: expected autoreset_mode {AutoresetMode.SAME_STEP}, got {mode}")
        self.venv: Any = venv  # ForkVectorEnv/SyncVectorEnv have get_attr/call, VectorEnv itself does not
        self._native = isinstance(venv, NativeVectorEnv)
        self._monitor = bool(getattr(venv, "episode_statistics", False))  # it gives Monitor's episode infos
        self._t_start = time.time()
        self._actions: np.ndarray | None = None
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)

    # ---------------------------------------------------------------- stepping

    def reset(self) -> VecEnvObs:
        """Resets every env with the seeds of :meth:`seed` and the options of :meth:`set_options` (both used once)."""
        seeds = None if all(s is None for s in self._seeds) else list(self._seeds)
        options = self._options
        if all(o == options[0] for o in options):
            obs, infos = self.venv.reset(seed=seeds, options=dict(options[0]) or None)
            self.reset_infos = _unbatch(infos, self.num_envs)
        else:
            obs, self.reset_infos = self._reset_groups(seeds, options)
        self._reset_seeds()
        self._reset_options()
        result: np.ndarray = obs
        return result

    def _reset_groups(self, seeds: list[int | None] | None,
                      options: list[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Per-env options: one masked reset (gymnasium's ``options["reset_mask"]``) per distinct options."""
        if self._native:
            raise ValueError("set_options: native envs take no reset options")
        n = self.num_envs
        obs: np.ndarray | None = None
        rows: list[dict[str, Any]] = [{} for _ in range(n)]
        pending = np.ones(n, dtype=bool)
        while pending.any():
            first = int(np.flatnonzero(pending)[0])
            mask = pending & np.array([o == options[first] for o in options])
            obs, infos = self.venv.reset(seed=seeds, options={**options[first], "reset_mask": mask})
            for j, row in enumerate(_unbatch(infos, n)):
                if mask[j]:
                    rows[j] = row
            pending &= ~mask
        assert obs is not None
        return obs, rows

    def step_async(self, actions: np.ndarray) -> None:
        """Stores the actions for :meth:`step_wait` (the step itself runs there, on the batcher's threads)."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Steps every env: ``(obs, rewards, dones, infos)`` as SB3's ``DummyVecEnv`` returns them."""
        if self._actions is None:
            raise RuntimeError("step_wait() without a preceding step_async()")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, infos = self.venv.step(actions)
        dones = np.logical_or(terminated, truncated)
        timeouts = np.logical_and(truncated, np.logical_not(terminated)).tolist()
        n = self.num_envs
        if not infos:
            out = [{"TimeLimit.truncated": t} for t in timeouts]
            return obs, np.asarray(rewards, dtype=np.float32), dones, out
        rows = _unbatch({k: v for k, v in infos.items() if k not in ("final_obs", "final_info", "episode")}, n)
        final_rows = _unbatch(infos.get("final_info") or {}, n)
        final_obs = infos.get("final_obs")
        episode = infos.get("episode")
        now = time.time()
        out = []
        for i in range(n):
            if dones[i]:
                info = final_rows[i]
                self.reset_infos[i] = rows[i]
                info["TimeLimit.truncated"] = timeouts[i]
                if final_obs is not None:
                    info["terminal_observation"] = final_obs[i]
                if episode is not None:
                    info["episode"] = {"r": round(float(episode["r"][i]), 6), "l": int(episode["l"][i]),
                                       "t": round(now - self._t_start, 6)}
            else:
                info = rows[i]
                info["TimeLimit.truncated"] = timeouts[i]
            out.append(info)
        return obs, np.asarray(rewards, dtype=np.float32), dones, out

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Env i is seeded ``seed + i`` at the next :meth:`reset` (None: a random base seed), as SB3's VecEnvs."""
        return super().seed(_checks.optional_seed(seed, "seed", count=self.num_envs))

    def close(self) -> None:
        """Closes the vector env (stops the C++ threads or the worker processes)."""
        self.venv.close()

    # ---------------------------------------------------------------- attributes and methods of the envs

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        return [_checks.integer(i, "indices", lo=0, hi=self.num_envs - 1) for i in self._get_indices(indices)]

    def _require_all(self, indices: VecEnvIndices, what: str) -> None:
        if sorted(self._indices(indices)) != list(range(self.num_envs)):
            raise ValueError(f"indices: {what} reaches every env of the fork backend at once; expected None "
                             f"(all {self.num_envs} envs), got {indices!r}")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute ``attr_name`` of the envs in ``indices`` (all when None); ``AttributeError`` when absent."""
        idx = self._indices(indices)
        if self._native:
            if attr_name not in _NATIVE_ATTRS:
                raise AttributeError(f"{attr_name!r}: native envs run in C++ and have no Python attributes besides "
                                     f"{', '.join(_NATIVE_ATTRS)}; make_vec_env(..., backend='fork') gives Python envs")
            value = {
                "render_mode": None,
                "spec": self.venv.spec,
                "observation_space": self.venv.single_observation_space,
                "action_space": self.venv.single_action_space,
            }[attr_name]
            return [value for _ in idx]
        values = self._forward(self.venv.get_attr, attr_name)
        return [values[i] for i in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Sets ``attr_name`` to ``value`` in every env (fork backend; native envs have no Python attributes)."""
        if self._native:
            raise AttributeError(f"set_attr({attr_name!r}): native envs run in C++ and have no Python attributes to "
                                 "set; make_vec_env(..., backend='fork') gives Python envs")
        self._require_all(indices, "set_attr")
        self._forward(self.venv.set_attr, attr_name, [value] * self.num_envs)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Calls ``method_name(*method_args, **method_kwargs)`` in every env and returns the results (fork
        backend; native envs have no Python methods)."""
        if self._native:
            raise AttributeError(f"env_method({method_name!r}): native envs run in C++ and have no Python methods; "
                                 "make_vec_env(..., backend='fork') gives Python envs")
        self._require_all(indices, "env_method")
        return list(self._forward(self.venv.call, method_name, *method_args, **method_kwargs))

    @staticmethod
    def _forward(method: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        """A call into the workers; a missing attribute raises ``AttributeError`` (what ``has_attr`` expects)."""
        try:
            return method(name, *args, **kwargs)
        except RuntimeError as exc:
            trace = getattr(exc, "worker_traceback", None) or ""
            if "AttributeError" in trace:
                raise AttributeError(f"{name!r}: {exc}") from exc
            raise

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper[Any, Any, Any, Any]],
                       indices: VecEnvIndices = None) -> list[bool]:
        """Whether each env behaves as if wrapped in ``wrapper_class``: ``Monitor`` (this VecEnv gives its
        ``episode`` infos; SB3's ``evaluate_policy`` then reads them) and the wrappers ``gymnasium.make`` puts
        around the env's spec."""
        idx = self._indices(indices)
        if self._native:
            specs = [self.venv.spec] * self.num_envs
        else:
            specs = list(self._forward(self.venv.get_attr, "spec"))
        return [any(issubclass(w, wrapper_class) for w in _wrapper_chain(specs[i], self._monitor)) for i in idx]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One frame per env when the envs render ``"rgb_array"`` (fork backend with ``render_mode="rgb_array"``)."""
        if self.render_mode != "rgb_array":
            warnings.warn(f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to "
                          "obtain images.", stacklevel=2)
            return [None] * self.num_envs
        return list(self._forward(self.venv.call, "render"))

    def __repr__(self) -> str:
        return f"RltrainVecEnv({self.venv!r})"


def make_vec_env(
    env_id: Any,
    n_envs: int = 1,
    seed: int | None = None,
    *,
    backend: str = "auto",
    **env_kwargs: Any,
) -> RltrainVecEnv:
    """A Stable-Baselines3 ``VecEnv`` of ``n_envs`` copies of ``env_id`` on :func:`rltrain.make_vec`.

    The counterpart of SB3's ``make_vec_env``: env i is seeded ``seed + i`` at the first ``reset``, and the
    infos are those of ``Monitor``-wrapped envs (see :class:`RltrainVecEnv`).

    Args:
        env_id: a gymnasium id (native ids run on the C++ batcher: ``rltrain.native_envs()``), a ``gym.Env``
            instance or (fork backend) a factory, as :func:`rltrain.make_vec` takes them.
        n_envs: number of environments.
        seed: base seed (None: random seeds); also seeds the action space, as SB3's ``make_vec_env`` does.
        backend: ``"native"``, ``"fork"`` or ``"auto"`` (native when the id has a native implementation).
        **env_kwargs: passed to :func:`rltrain.make_vec` (``num_threads``) and on to the env
            (``gymnasium.make`` kwargs such as ``max_episode_steps``).
    """
    n_envs = _checks.integer(n_envs, "n_envs", lo=1)
    seed = _checks.optional_seed(seed, "seed", count=n_envs)
    _checks.choice(backend, "backend", ("auto", "native", "fork"))
    env = RltrainVecEnv(make_vec(env_id, n_envs, backend=backend, seed=seed, **env_kwargs))
    if seed is not None:
        env.seed(seed)
        env.action_space.seed(seed)
    return env
