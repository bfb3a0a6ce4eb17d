"""``ForkVectorEnv``: gymnasium's ``VectorEnv`` API over a :class:`~rltrain.vec.fork.pool.WorkerPool` of forked
workers: checks the arguments and actions, hands out steps and commands, and turns the shared buffers and the
workers' replies into gymnasium's return values (SyncVectorEnv SAME_STEP semantics).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrain import _checks, _core
from rltrain.vec._infos import add_episode_statistics, add_final_obs, merge_info
from rltrain.vec.fork import protocol as p
from rltrain.vec.fork.actions import ActionChecker
from rltrain.vec.fork.pool import WorkerError, WorkerHandle, WorkerPool

__all__ = ["ForkVectorEnv", "WorkerError"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _locked(
    method: Callable[Concatenate[ForkVectorEnv, _P], _R],
) -> Callable[Concatenate[ForkVectorEnv, _P], _R]:
    """Runs the method under the env's API lock: close() from another thread waits for a call in progress
    (bounded by step_timeout) instead of unmapping the shared memory under it."""

    @functools.wraps(method)
    def locked(self: ForkVectorEnv, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._api_lock:
            return method(self, *args, **kwargs)

    return locked


class ForkVectorEnv(VectorEnv):
    """Runs gymnasium envs in worker processes started with ``fork``; data moves through shared memory.

    Args:
        env_fns: one factory per env.  Each factory is called inside its worker, after the fork, so it
            may close over unpicklable state.  To vectorise an existing ``gym.Env`` instance pass
            ``lambda: copy.deepcopy(env)`` (one fresh copy per env); building the copies is the caller's job.
        num_workers: worker processes, each owning a contiguous slice of envs.
            Default ``min(num_envs, RLTRAIN_NUM_THREADS or the usable CPUs)`` (affinity mask, cgroup quota).
        seed: env ``i`` is reset with ``seed + i`` on the first ``reset()`` that passes no seed itself.
        identical_seeds: seed every env with the same seed instead (GRPO's identical group); applies to
            integer seeds given to ``reset`` as well.
        step_timeout: seconds any worker may take to answer a step, reset or call before the pool is shut
            down and :class:`WorkerError` raised (a hung env); ``None`` waits forever.  A worker that raises or
            dies is reported at once, whatever this value.
        startup_timeout: the same for building the envs in the workers (slow imports, asset loading).
        episode_statistics: add ``info["episode"]`` like gymnasium's ``RecordEpisodeStatistics``.
        spin: the caller spins (yielding) for up to 2 ms for the replies, and after each step a worker spins
            (yielding) for up to 0.5 ms waiting for the next one instead of
            sleeping at once (cross-core wake-ups are slow, notably in VMs).  Ignored on a single core.

    Semantics are those of ``gymnasium.vector.SyncVectorEnv(env_fns, autoreset_mode=SAME_STEP)``: same
    observations, rewards, flags and infos for the same seeds and actions (``final_obs`` entries are arrays
    of the observation space's dtype).  Info dicts returned by the envs are passed through with gymnasium's
    ``_key`` masks; envs that return non-empty infos on every step cost one pickle per step and worker.
    Only Box, Discrete, MultiDiscrete and MultiBinary spaces are supported.  Not thread-safe, except that
    ``close()`` may come from another thread.

    ``send(actions, env_ids=None)`` / ``recv()`` split a step EnvPool-style (step only some envs, or do other
    work while the workers step).  A worker that raises in reset/step, dies or hangs shuts the whole pool
    down and raises :class:`WorkerError` (with the worker's traceback); create a new pool to continue.
    Errors inside ``call``/``get_attr``/``set_attr`` raise :class:`WorkerError` but keep the pool usable.
    """

    # actions -> shared memory -> sequence number in each worker's command word -> workers step their slices ->
    # results in shared memory, sequence number in the done words (infos and errors on the sockets) -> caller.

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env[Any, Any]]],
        *,
        num_workers: int | None = None,
        seed: int | None = None,
        identical_seeds: bool = False,
        step_timeout: float | None = 10.0,
        startup_timeout: float | None = 120.0,
        episode_statistics: bool = True,
        spin: bool = True,
    ) -> None:
        super().__init__()
        self._api_lock = threading.RLock()
        self._closed = False
        self._pool: WorkerPool | None = None
        env_fns = list(env_fns)
        if not env_fns:
            raise ValueError("env_fns: expected at least one env factory, got none")
        self.num_envs = len(env_fns)
        if num_workers is None:  # the rule the kernel pool and the native batcher use (affinity, cgroup quota)
            num_workers = min(self.num_envs, _core.default_num_threads())
        self.num_workers = _checks.integer(num_workers, "num_workers", lo=1, hi=self.num_envs)
        self.step_timeout = _checks.optional_real(step_timeout, "step_timeout", lo=0.0, lo_open=True)
        self.startup_timeout = _checks.optional_real(startup_timeout, "startup_timeout", lo=0.0, lo_open=True)
        self.identical_seeds = identical_seeds
        self.episode_statistics = episode_statistics
        self._initial_seed = seed
        self._needs_reset = True
        self._pending: tuple[list[WorkerHandle], np.ndarray | None] | None = None
        self._all_active = True
        spin = spin and _core.available_cpus() > 1
        self._pool = WorkerPool(env_fns, self.num_workers, spin=spin, step_timeout=self.step_timeout,
                                startup_timeout=self.startup_timeout)
        hello = self._pool.hello
        self.single_observation_space = hello["observation_space"]
        self.single_action_space = hello["action_space"]
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**hello["metadata"], "autoreset_mode": AutoresetMode.SAME_STEP}
        self.render_mode = hello["render_mode"]
        self._v = self._pool.views
        try:
            self._check_actions = ActionChecker(self.single_action_space, self.num_envs)
        except BaseException:
            self._pool.shut()
            raise

    @property
    def closed(self) -> bool:
        """True once closed, or once a failure or an interruption has shut the workers down."""
        return self._closed or self._pool is None or self._pool.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._closed = value

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every worker to close its envs and exit; terminate those that do not within a second."""
        self._pending = None
        if self._pool is not None:
            self._pool.close()

    def close(self, **kwargs: Any) -> None:
        """Shut the workers down. From another thread while a call waits on the workers, this waits for that call
        to end first (at most ``step_timeout`` for a step); the waiting call returns or raises as it would have,
        and every later call raises ``RuntimeError``."""
        lock = getattr(self, "_api_lock", None)  # absent when __init__ failed early
        with lock if lock is not None else contextlib.nullcontext():
            if not self._closed:
                self.close_extras(**kwargs)
                self._closed = True

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser (e.g. at interpreter exit)
            if not getattr(self, "_closed", True):
                self.close()

    def __enter__(self) -> ForkVectorEnv:  # not typing.Self: that needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self) -> WorkerPool:
        if self.closed or self._pool is None:
            raise RuntimeError("ForkVectorEnv is closed")
        if self._pending is not None:
            raise RuntimeError("a step is in flight: call recv() before anything else")
        return self._pool

    # ------------------------------------------------------------------ gymnasium API

    @_locked
    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (or those in ``options["reset_mask"]``); seeds as in SyncVectorEnv."""
        pool = self._check_usable()
        n = self.num_envs
        if seed is None and self._needs_reset and self._initial_seed is not None:
            seed = self._initial_seed
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed)] * n if self.identical_seeds else [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed: expected a list of length num_envs={n}, got length {len(seeds)}")
        mask = None
        if options is not None and "reset_mask" in options:
            options = dict(options)
            mask = options.pop("reset_mask")
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
                raise ValueError(f"options['reset_mask']: expected a bool numpy array of shape ({n},), got {mask!r}")
            if not mask.any():
                raise ValueError("options['reset_mask']: expected at least one env selected, got none")
        requests = [
            (seeds[h.lo:h.hi], options, None if mask is None else mask[h.lo:h.hi].tolist()) for h in pool.workers
        ]
        replies = pool.request(p.RESET, requests, "reset", fatal=True)
        self._needs_reset = False
        infos: dict[str, Any] = {}
        for index in sorted(replies):
            for g, info in replies[index]:
                merge_info(infos, info, g, n)
        return self._v["obs"].copy(), infos

    @_locked
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env with same-step autoreset; returns copies, never views of the shared buffers."""
        self.send(actions)  # send and recv under one hold of the lock: no close() between them
        return self.recv()

    @_locked
    def send(self, actions: Any, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Start stepping (all envs, or only `env_ids`) and return at once; :meth:`recv` collects the result."""
        pool = self._check_usable()
        if self._needs_reset:
            raise RuntimeError("call reset() before step()/send()")
        ids = None
        if env_ids is not None:
            ids = np.asarray(env_ids)
            if ids.ndim != 1 or ids.dtype.kind not in "iu" or len(ids) == 0:
                raise ValueError(f"env_ids: expected a non-empty 1-d sequence of ints, got {env_ids!r}")
            if ids.min() < 0 or ids.max() >= self.num_envs or len(np.unique(ids)) != len(ids):
                raise ValueError(f"env_ids: expected distinct env indices in [0, {self.num_envs}), got {env_ids!r}")
            ids = ids.astype(np.int64)
        array = self._check_actions(actions, ids)
        v = self._v
        if ids is None:
            np.copyto(v["actions"], array, casting="unsafe")
            if not self._all_active:
                v["active"][:] = True
                self._all_active = True
            workers, some = pool.workers, False
        else:
            v["actions"][ids] = array
            v["active"][:] = False
            v["active"][ids] = True
            self._all_active = False
            workers = [h for h in pool.workers if v["active"][h.lo:h.hi].any()]
            some = True
        pool.publish_step(workers, some)
        self._pending = (workers, ids)

    @_locked
    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; with `env_ids`, results are in that order and
        ``info["env_id"]`` holds the ids."""
        if self.closed or self._pool is None:
            raise RuntimeError("ForkVectorEnv is closed")
        if self._pending is None:
            raise RuntimeError("recv() without a preceding send()")
        workers, ids = self._pending
        with self._pool.closed_if_interrupted():  # some replies read, others not
            replies = self._pool.step_replies(workers)
            self._pending = None
        v = self._v
        sel: slice | np.ndarray = slice(None) if ids is None else ids
        obs, rewards = v["obs"][sel].copy(), v["rewards"][sel].copy()
        terminated, truncated = v["terminated"][sel].copy(), v["truncated"][sel].copy()
        dones = terminated | truncated
        infos: dict[str, Any] = {}
        extras = {g: (step_info, reset_info) for reply in replies.values() for g, step_info, reset_info in reply}
        if extras or dones.any():
            infos = self._step_infos(dones, extras, ids)
        if ids is not None:
            infos["env_id"] = ids
        return obs, rewards, terminated, truncated, infos

    def _step_infos(self, dones: np.ndarray, extras: dict[int, tuple[dict[str, Any], dict[str, Any] | None]],
                    ids: np.ndarray | None) -> dict[str, Any]:
        """The step's infos as SyncVectorEnv(SAME_STEP) + RecordEpisodeStatistics build them, for the envs
        stepped (all, or ``ids`` in that order)."""
        v = self._v
        sel: slice | np.ndarray = slice(None) if ids is None else ids
        size = len(dones)
        infos: dict[str, Any] = {}
        if dones.any():
            add_final_obs(infos, dones, v["final_obs"][sel])
        position = {int(g): pos for pos, g in enumerate(ids)} if ids is not None else None
        for g in sorted(extras, key=lambda g: g if position is None else position[g]):
            pos = g if position is None else position[g]
            step_info, reset_info = extras[g]
            if dones[pos]:
                if step_info:
                    merge_info(infos["final_info"], step_info, pos, size)
                if reset_info:
                    merge_info(infos, reset_info, pos, size)
            elif step_info:
                merge_info(infos, step_info, pos, size)
        if self.episode_statistics and dones.any():
            add_episode_statistics(infos, dones, v["ep_return"][sel], v["ep_length"][sel], v["ep_time"][sel])
        return infos

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call a method (or read an attribute) of every env; results must be picklable."""
        return self._call("call", name, args, kwargs, None)

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """Read an attribute of every env (methods are returned, not called)."""
        return self._call("get", name, (), {}, None)

    def set_attr(self, name: str, values: list[Any] | tuple[Any, ...] | Any) -> None:
        """Set an attribute of every env: one value each from a list/tuple, else the same value for all."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"values: expected {self.num_envs} values for set_attr, got {len(values)}")
        self._call("set", name, (), {}, list(values))

    def get_state(self) -> list[bytes]:
        """Every env pickled in its worker (with its running episode statistics), for checkpoints; a
        ``WorkerError`` when an env cannot be pickled (pybox2d's, for one)."""
        return list(self._call("snapshot", "", (), {}, None))

    def set_state(self, state: Sequence[bytes]) -> None:
        """Replaces every env by the one :meth:`get_state` pickled. Unpickling runs the pickled code: only for
        states this process or the caller's own checkpoint produced."""
        if len(state) != self.num_envs:
            raise ValueError(f"state: expected {self.num_envs} env states, got {len(state)}")
        self._call("restore", "", (), {}, [bytes(b) for b in state])

    def render(self) -> tuple[Any, ...]:
        """Frames from every env (as returned by its ``render()``)."""
        return self.call("render")

    @_locked
    def _call(self, kind: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              values: list[Any] | None) -> tuple[Any, ...]:
        pool = self._check_usable()
        requests = [
            (kind, name, args, kwargs, None if values is None else values[h.lo:h.hi]) for h in pool.workers
        ]
        replies = pool.request(p.CALL, requests, kind, fatal=False)
        return tuple(r for index in sorted(replies) for r in replies[index])
