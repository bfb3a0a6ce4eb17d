"""Fork-based vector environment: gymnasium envs step in forked worker processes that share numpy buffers."""

# Data flow of one step:
#   actions -> shared memory -> a sequence number per worker in a shared word array -> each worker steps its
#   contiguous slice of envs (same-step autoreset, episode statistics) -> results in shared memory -> the
#   worker publishes the same sequence number back.
# Nothing is pickled on the hot path; a worker pickles only when an env returns a non-empty info dict,
# and for the rare control messages (start-up, reset, call/get_attr/set_attr, errors), which travel on the
# socket pair as before.
# Waiting: waking a sleeping process on another vCPU costs tens of microseconds here, against ~30 us for a
# LunarLander step, so both sides spin on the words (in C++, GIL released, sched_yield between checks) before
# sleeping: the main process for up to 2 ms for the replies, a worker that has replied for up to 0.5 ms for the
# next command.  sched_yield hands the core at once to a runnable process sharing it, so a spinning process
# does not hold up a worker.  A side that gives up spinning raises its "sleeping" word and blocks on its
# socket; the publisher sees the word (seq_cst store-then-load on both sides, rltrain._core.sync_*) and sends
# one wake-up byte (_HINT).  Death and hangs are still seen on the sockets and process sentinels.

from __future__ import annotations

import contextlib
import math
import mmap
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrain import _core

__all__ = ["ForkVectorEnv", "WorkerError"]

# Commands, main -> worker.  One byte each; RESET and CALL are followed by a framed pickle.
# (Steps are not commands on the socket: they go through the shared words, see below.)
_RESET = b"r"
_CALL = b"c"
_MEMORY = b"m"  # carries the shared-memory file descriptor (SCM_RIGHTS)
_QUIT = b"q"
# Replies, worker -> main.  DATA and ERROR are followed by a framed pickle.
_OK = b"k"
_DATA = b"d"
_ERROR = b"e"
# Either way: "I published something in the shared words while you were (about to be) asleep; look again."
# Only ever a wake-up; readers skip it wherever it turns up, a stale one included.
_HINT = b"w"

# The shared word array (int64): per worker w a 128-byte pair of cache lines, then the caller's sleeping word.
#   [16w]     step sequence number, written by the caller      [16w+1] 1 when only `active` envs step
#   [16w+2]   the worker sleeps on its socket
#   [16w+8]   sequence number of the last step it finished     [16w+9] how: _REPLY_OK / _REPLY_DATA / _REPLY_ERROR
_WORDS_PER_WORKER = 16
_REPLY_OK, _REPLY_DATA, _REPLY_ERROR = 0, 1, 2


def _cmd_word(w: int) -> int:
    return _WORDS_PER_WORKER * w


def _done_word(w: int) -> int:
    return _WORDS_PER_WORKER * w + 8


def _caller_sleep_word(num_workers: int) -> int:
    return _WORDS_PER_WORKER * num_workers

_LENGTH = struct.Struct("<Q")
_ALIGN = 64  # keep every array on its own cache line so workers writing neighbouring slices rarely collide
_WORKER_SPIN_S = 5e-4  # how long a worker spins for the next step command before blocking
_MAIN_SPIN_S = 2e-3  # how long the caller spins (yielding) for the workers' replies before blocking

# Main-side sockets of every live ForkVectorEnv in this process.  A freshly forked worker closes its copies,
# otherwise a worker of one pool would keep another pool's (or a sibling's) socket open and hide its EOF.
_PARENT_SOCKETS: set[socket.socket] = set()


class WorkerError(RuntimeError):
    """A worker raised, died or stopped answering.

    ``worker`` is the worker index, ``env_index`` the env it was working on (when known) and
    ``worker_traceback`` the formatted traceback from inside the worker (``None`` when it died or hung).
    """

    def __init__(
        self, message: str, *, worker: int, env_index: int | None = None, worker_traceback: str | None = None
    ) -> None:
        super().__init__(message)
        self.worker = worker
        self.env_index = env_index
        self.worker_traceback = worker_traceback


def _array_spec(space: gym.Space[Any], what: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of one element of a space that maps onto a fixed-size numpy array."""
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        assert space.dtype is not None
        return tuple(space.shape), np.dtype(space.dtype)
    raise TypeError(
        f"ForkVectorEnv supports Box, Discrete, MultiDiscrete and MultiBinary {what} spaces, got {space!r}; "
        "flatten it first (e.g. gymnasium.wrappers.FlattenObservation) or use gymnasium's AsyncVectorEnv"
    )


@dataclass(frozen=True)
class _Layout:
    """Byte offsets of the arrays in the shared block; main and workers compute it from the same spaces."""

    fields: tuple[tuple[str, tuple[int, ...], np.dtype[Any], int], ...]
    nbytes: int

    @classmethod
    def build(cls, num_envs: int, num_workers: int, obs_space: gym.Space[Any], act_space: gym.Space[Any]) -> _Layout:
        obs_shape, obs_dtype = _array_spec(obs_space, "observation")
        act_shape, act_dtype = _array_spec(act_space, "action")
        per_env = [
            ("obs", obs_shape, obs_dtype),
            ("final_obs", obs_shape, obs_dtype),
            ("actions", act_shape, act_dtype),
            ("rewards", (), np.dtype(np.float64)),
            ("terminated", (), np.dtype(np.bool_)),
            ("truncated", (), np.dtype(np.bool_)),
            ("active", (), np.dtype(np.bool_)),
            ("ep_return", (), np.dtype(np.float64)),
            ("ep_length", (), np.dtype(np.int64)),
            ("ep_time", (), np.dtype(np.float64)),
        ]
        fields = [("words", (_caller_sleep_word(num_workers) + 8,), np.dtype(np.int64), 0)]
        offset = (_caller_sleep_word(num_workers) + 8) * 8
        for name, shape, dtype in per_env:
            full = (num_envs, *shape)
            fields.append((name, full, dtype, offset))
            size = math.prod(full) * dtype.itemsize
            offset += -(-max(size, 1) // _ALIGN) * _ALIGN
        return cls(tuple(fields), offset)

    def views(self, buffer: mmap.mmap) -> dict[str, np.ndarray]:
        return {
            name: np.ndarray(shape, dtype=dtype, buffer=buffer, offset=offset)
            for name, shape, dtype, offset in self.fields
        }


def _send_message(sock: socket.socket, tag: bytes, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(tag + _LENGTH.pack(len(data)) + data)


def _read_exact_blocking(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _shared_block(nbytes: int) -> tuple[int, mmap.mmap]:
    """An unnamed shared-memory file and its mapping: nothing appears in /dev/shm, nothing can leak there,
    and the kernel frees it once the last mapping and descriptor are gone (even after SIGKILL)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("rltrain-fork-vec", os.MFD_CLOEXEC)
    else:
        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    try:
        os.ftruncate(fd, nbytes)
        return fd, mmap.mmap(fd, nbytes)
    except BaseException:
        os.close(fd)
        raise


_RESET_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
) if hasattr(signal, "pthread_sigmask") else frozenset()
"""Signals whose handlers a worker does not inherit: blocked in the parent across each fork, reset to the
default action in the child, then unblocked there."""


class _Worker:
    """The loop a forked worker runs: owns envs [lo, hi) and answers commands from the main process."""

    def __init__(self, index: int, lo: int, hi: int, num_envs: int, num_workers: int, spin: bool,
                 env_fns: Sequence[Callable[[], gym.Env]], sock: socket.socket | None) -> None:
        self.index, self.lo, self.hi, self.num_envs, self.num_workers = index, lo, hi, num_envs, num_workers
        self.spin = spin
        self.env_fns = env_fns
        self.sock = sock  # None for the slice the main process steps itself (inline=True)
        self.fd = -1 if sock is None else sock.fileno()
        self.envs: list[gym.Env] = []
        self.current: int | None = None
        n = hi - lo
        self.ret = [0.0] * n
        self.length = [0] * n
        self.start = [time.perf_counter()] * n

    def run(self) -> None:
        # Ctrl-C goes to the whole process group; the main process handles it and closes the pool.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        # The parent's own handlers (say SIGTERM -> trainer.save(path)) must not run here on a stale copy of its
        # state: back to the default action, at the C level too (signal.signal installs SIG_DFL with sigaction).
        # They were blocked across the fork (_RESET_SIGNALS), so none can arrive before this line.
        for sig in _RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        if _RESET_SIGNALS:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _RESET_SIGNALS)
        for other in list(_PARENT_SOCKETS):
            other.close()
        try:
            if not self._start():
                return
            self._loop()
        finally:
            self.close_envs()
            assert self.sock is not None
            self.sock.close()

    def _report(self, phase: str) -> None:
        assert self.sock is not None
        _send_message(
            self.sock, _ERROR, {"phase": phase, "env": self.current, "traceback": traceback.format_exc()}
        )

    def make_envs(self) -> dict[str, Any]:
        """Build this slice's envs; returns the spaces and metadata the main process checks and adopts."""
        for g in range(self.lo, self.hi):
            self.current = g
            self.envs.append(self.env_fns[g]())
        first = self.envs[0]
        for g, env in zip(range(self.lo, self.hi), self.envs):
            self.current = g
            if env.observation_space != first.observation_space:
                raise ValueError(
                    f"env {g} observation space {env.observation_space} differs from env {self.lo}'s "
                    f"{first.observation_space}"
                )
            if env.action_space != first.action_space:
                raise ValueError(
                    f"env {g} action space {env.action_space} differs from env {self.lo}'s {first.action_space}"
                )
        self.current = self.lo
        return {
            "observation_space": first.observation_space,
            "action_space": first.action_space,
            "metadata": dict(first.metadata),
            "render_mode": first.render_mode,
        }

    def attach(self, views: dict[str, np.ndarray]) -> None:
        self.v = views
        # Box actions are handed over as copies so an env that keeps or edits its action cannot see the
        # shared buffer change under it; Discrete actions index to numpy scalars, which are copies already.
        self.copy_action = len(views["actions"].shape) > 1

    def close_envs(self) -> None:
        for env in self.envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001, S110 - best effort while shutting down
                pass
        self.envs = []

    def _start(self) -> bool:
        assert self.sock is not None
        try:
            _send_message(self.sock, _DATA, self.make_envs())
        except BaseException:  # noqa: BLE001 - anything, even SystemExit, is reported to the main process
            self._report("env creation")
            return False
        msg, fds, _, _ = socket.recv_fds(self.sock, 1, 1)
        if msg != _MEMORY or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return False
        first = self.envs[0]
        layout = _Layout.build(self.num_envs, self.num_workers, first.observation_space, first.action_space)
        try:
            self.memory = mmap.mmap(fds[0], layout.nbytes)
        finally:
            os.close(fds[0])
        self.attach(layout.views(self.memory))
        os.write(self.fd, _OK)
        return True

    def _loop(self) -> None:
        fd = self.fd
        words = self.v["words"]
        cmd_at = _cmd_word(self.index)
        some_at, sleep_at = cmd_at + 1, cmd_at + 2
        done_at, reply_at = _done_word(self.index), _done_word(self.index) + 1
        caller_sleep = _caller_sleep_word(self.num_workers)
        watch = [cmd_at]
        wait, prepare_sleep, publish = _core.sync_wait, _core.sync_prepare_sleep, _core.sync_publish
        seen = int(words[cmd_at])
        spin = False
        while True:
            # A step arrives through the words; control commands (and wake-up hints) through the socket.
            if (spin and wait(words, watch, seen + 1, _WORKER_SPIN_S)) or prepare_sleep(words, sleep_at, watch, seen + 1):
                seen = int(words[cmd_at])
                some = bool(words[some_at])
                try:
                    extras = self._step(some)
                    payload = self._pickle_extras(extras) if extras else b""
                except BaseException:  # noqa: BLE001 - reported to the main process, which shuts the pool down
                    words[reply_at] = _REPLY_ERROR
                    if publish(words, done_at, seen, caller_sleep):
                        os.write(fd, _HINT)
                    self._report("step()")
                    spin = False
                    continue
                words[reply_at] = _REPLY_DATA if extras else _REPLY_OK
                if publish(words, done_at, seen, caller_sleep):
                    os.write(fd, _HINT)
                if extras:
                    self.sock.sendall(_DATA + _LENGTH.pack(len(payload)) + payload)
                spin = self.spin
                continue
            cmd = os.read(fd, 1)
            words[sleep_at] = 0
            spin = False
            if cmd == _HINT:
                continue
            if not cmd or cmd == _QUIT:
                return
            try:
                self.current = None
                request = pickle.loads(_read_exact_blocking(fd, _LENGTH.unpack(_read_exact_blocking(fd, 8))[0]))
                if cmd == _RESET:
                    _send_message(self.sock, _DATA, self._reset(*request))
                elif cmd == _CALL:
                    _send_message(self.sock, _DATA, self._call(*request))
                else:
                    raise RuntimeError(f"unknown command {cmd!r}")
            except BaseException:  # noqa: BLE001 - reported to the main process, which shuts the pool down
                self._report({_RESET: "reset()"}.get(cmd, "call()"))

    def _pickle_extras(self, extras: list[tuple[int, dict[str, Any], dict[str, Any] | None]]) -> bytes:
        """The step's info payload, pickled before anything is published; a value that cannot be pickled is
        reported with its env index and key (the main process raises it as a WorkerError)."""
        try:
            return pickle.dumps(extras, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            for g, *dicts in extras:
                for d in dicts:
                    for key, value in (d or {}).items():
                        try:
                            pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                        except Exception as inner:
                            self.current = g
                            raise TypeError(
                                f"env {g}: info[{key!r}] ({type(value).__name__}) cannot be pickled, and the fork "
                                f"backend sends infos to the main process by pickle: {inner}"
                            ) from inner
            raise TypeError(f"the step's infos cannot be pickled: {exc}") from exc

    def _step(self, some: bool) -> list[tuple[int, dict[str, Any], dict[str, Any] | None]]:
        # The hot loop: locals instead of attribute look-ups, no allocation beyond what env.step makes.
        v = self.v
        obs_buf, final_obs, actions = v["obs"], v["final_obs"], v["actions"]
        rewards, terminated, truncated, active = v["rewards"], v["terminated"], v["truncated"], v["active"]
        ret, length, start = self.ret, self.length, self.start
        copy_action = self.copy_action
        extras: list[tuple[int, dict[str, Any], dict[str, Any] | None]] = []
        for j, env in enumerate(self.envs):
            g = self.lo + j
            if some and not active[g]:
                continue
            self.current = g
            action = actions[g].copy() if copy_action else actions[g]
            obs, reward, term, trunc, info = env.step(action)
            # float() first: RecordEpisodeStatistics sums rewards in float64, and float32 + float must not
            # stay float32 under NumPy 2 promotion rules.
            reward = float(reward)
            rewards[g] = reward
            terminated[g] = term
            truncated[g] = trunc
            ret[j] += reward
            length[j] += 1
            if term or trunc:
                final_obs[g] = obs
                now = time.perf_counter()
                v["ep_return"][g] = ret[j]
                v["ep_length"][g] = length[j]
                v["ep_time"][g] = round(now - start[j], 6)
                ret[j], length[j], start[j] = 0.0, 0, now
                obs, reset_info = env.reset()
                if info or reset_info:
                    extras.append((g, info, reset_info))
            elif info:
                extras.append((g, info, None))
            obs_buf[g] = obs
        return extras

    def _reset(self, seeds: list[int | None], options: dict[str, Any] | None,
               mask: list[bool] | None) -> list[tuple[int, dict[str, Any]]]:
        infos = []
        obs_buf = self.v["obs"]
        for j, env in enumerate(self.envs):
            g = self.lo + j
            if mask is not None and not mask[j]:
                continue
            self.current = g
            obs, info = env.reset(seed=seeds[j], options=options)
            obs_buf[g] = obs
            self.ret[j], self.length[j], self.start[j] = 0.0, 0, time.perf_counter()
            if info:
                infos.append((g, info))
        return infos

    def _call(self, kind: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              values: list[Any] | None) -> list[Any]:
        results = []
        for j, env in enumerate(self.envs):
            self.current = self.lo + j
            if kind == "snapshot":  # the env object itself, pickled, with its episode statistics
                if isinstance(env.unwrapped, gym.utils.EzPickle):
                    # Box2D, MuJoCo...: such an env pickles its constructor arguments, not its state.
                    raise TypeError(f"env {self.lo + j}: {type(env.unwrapped).__name__} pickles only its "
                                    "constructor arguments (gymnasium.utils.EzPickle), not its state")
                results.append(pickle.dumps((env, self.ret[j], self.length[j]), protocol=pickle.HIGHEST_PROTOCOL))
            elif kind == "restore":
                assert values is not None
                self.envs[j], self.ret[j], self.length[j] = pickle.loads(values[j])
                self.start[j] = time.perf_counter()
                env.close()
                results.append(None)
            elif kind == "set":
                assert values is not None
                env.set_wrapper_attr(name, values[j])
                results.append(None)
            else:
                attr = env.get_wrapper_attr(name)
                results.append(attr(*args, **kwargs) if callable(attr) and kind == "call" else attr)
        return results


def _worker_entry(index: int, lo: int, hi: int, num_envs: int, num_workers: int, spin: bool,
                  env_fns: Sequence[Callable[[], gym.Env]], sock: socket.socket) -> None:
    _Worker(index, lo, hi, num_envs, num_workers, spin, env_fns, sock).run()


def _merge_info(infos: dict[str, Any], info: dict[str, Any], pos: int, size: int) -> dict[str, Any]:
    """Put one env's info dict at position `pos` of batched infos, with gymnasium's `_key` masks.

    Same result as ``gymnasium.vector.VectorEnv._add_info`` (so infos compare equal to SyncVectorEnv's), but
    sized by `size` so that a subset of envs (``recv`` after ``send(..., env_ids=...)``) batches too.
    """
    for key, value in info.items():
        if key == "final_obs":
            array = infos[key] if key in infos else np.full(size, None, dtype=object)
            array[pos] = value
        elif isinstance(value, dict):
            array = _merge_info(infos.get(key, {}), value, pos, size)
        else:
            if key in infos:
                array = infos[key]
            elif type(value) in (int, float, bool) or issubclass(type(value), np.number):
                array = np.zeros(size, dtype=type(value))
            elif isinstance(value, np.ndarray):
                array = np.zeros((size, *value.shape), dtype=value.dtype)
            else:
                array = np.full(size, None, dtype=object)
            array[pos] = value
        mask = infos.get(f"_{key}")
        if mask is None:
            mask = np.zeros(size, dtype=np.bool_)
        mask[pos] = True
        infos[key], infos[f"_{key}"] = array, mask
    return infos


@dataclass
class _Handle:
    index: int
    lo: int
    hi: int
    process: Any  # multiprocessing.context.ForkProcess
    sock: socket.socket
    fd: int

    def describe(self) -> str:
        return f"worker {self.index} (envs {self.lo}..{self.hi - 1}, pid {self.process.pid})"


class ForkVectorEnv(VectorEnv):
    """Runs gymnasium envs in worker processes started with ``fork``; data moves through shared memory.

    actions -> shared arrays -> 1 byte per worker -> worker steps its env slice -> shared arrays -> 1 byte back.

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
        inline: the calling process steps the first slice itself instead of sleeping while the workers run
            (``num_workers - 1`` processes are forked).  Faster on few cores; exceptions from that slice still
            arrive as :class:`WorkerError`, but a crash or hang there is the caller's own and is not isolated.

    Semantics are those of ``gymnasium.vector.SyncVectorEnv(env_fns, autoreset_mode=SAME_STEP)``: same
    observations, rewards, flags and infos for the same seeds and actions (``final_obs`` entries are arrays
    of the observation space's dtype).  Info dicts returned by the envs are passed through with gymnasium's
    ``_key`` masks; envs that return non-empty infos on every step cost one pickle per step and worker.
    Only Box, Discrete, MultiDiscrete and MultiBinary spaces are supported.  Not thread-safe.

    ``send(actions, env_ids=None)`` / ``recv()`` split a step EnvPool-style (step only some envs, or do other
    work while the workers step).  A worker that raises in reset/step, dies or hangs shuts the whole pool
    down and raises :class:`WorkerError` (with the worker's traceback); create a new pool to continue.
    Errors inside ``call``/``get_attr``/``set_attr`` raise :class:`WorkerError` but keep the pool usable.
    """

    def __init__(
        self,
        env_fns: Sequence[Callable[[], gym.Env]],
        *,
        num_workers: int | None = None,
        seed: int | None = None,
        identical_seeds: bool = False,
        step_timeout: float | None = 10.0,
        startup_timeout: float | None = 120.0,
        episode_statistics: bool = True,
        spin: bool = True,
        inline: bool = False,
    ) -> None:
        super().__init__()
        # Held by every call that touches the workers or the shared memory: close() from another thread waits for
        # a step in progress (bounded by step_timeout) instead of unmapping memory under it.
        self._api_lock = threading.RLock()
        self._workers: list[_Handle] = []
        self._memory: mmap.mmap | None = None
        self._v: dict[str, np.ndarray] = {}
        self._words: np.ndarray | None = None
        env_fns = list(env_fns)
        if not env_fns:
            raise ValueError("env_fns must contain at least one env factory")
        self.num_envs = len(env_fns)
        if num_workers is None:  # the rule the kernel pool and the native batcher use (affinity, cgroup quota)
            num_workers = min(self.num_envs, _core.default_num_threads())
        if not 1 <= num_workers <= self.num_envs:
            raise ValueError(f"num_workers must be in [1, num_envs={self.num_envs}], got {num_workers}")
        for name, value in (("step_timeout", step_timeout), ("startup_timeout", startup_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value}")
        self.num_workers = num_workers
        self.step_timeout = step_timeout
        self.startup_timeout = startup_timeout
        self.identical_seeds = identical_seeds
        self.episode_statistics = episode_statistics
        # On one core a spinning worker would only delay the main process and its siblings.
        self._spin = spin and _core.available_cpus() > 1
        self.inline = inline
        self._local: _Worker | None = None
        self._initial_seed = seed
        self._needs_reset = True
        self._pending: tuple[list[_Handle], np.ndarray | None] | None = None
        self._seq = 0  # sequence number of the last step published to the workers
        self._all_active = True
        self._poller = select.poll()
        self._owner: dict[int, tuple[_Handle, bool]] = {}
        try:
            self._start(env_fns)
        except BaseException:
            self._teardown(graceful=False)
            self.closed = True
            raise

    # ------------------------------------------------------------------ start-up and shutdown

    def _start(self, env_fns: list[Callable[[], gym.Env]]) -> None:
        ctx = multiprocessing.get_context("fork")
        n, w = self.num_envs, self.num_workers
        for k in range(1 if self.inline else 0, w):
            lo, hi = k * n // w, (k + 1) * n // w
            parent, child = socket.socketpair()
            _PARENT_SOCKETS.add(parent)
            process = ctx.Process(
                target=_worker_entry,
                args=(k, lo, hi, n, w, self._spin, env_fns, child),
                name=f"ForkVectorEnv-{k}",
                daemon=True,
            )
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _RESET_SIGNALS) if _RESET_SIGNALS else None
            try:
                process.start()
            except BaseException:
                _PARENT_SOCKETS.discard(parent)
                parent.close()
                raise
            finally:
                child.close()
                if blocked is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            handle = _Handle(k, lo, hi, process, parent, parent.fileno())
            self._workers.append(handle)
            self._owner[handle.fd] = (handle, False)
            self._owner[process.sentinel] = (handle, True)
            self._poller.register(handle.fd, select.POLLIN)
            self._poller.register(process.sentinel, select.POLLIN)

        hellos: dict[int, Any] = {}
        if self.inline:
            # Built after the forks so that no worker inherits these envs.
            self._local = _Worker(0, 0, n // w, n, w, False, env_fns, None)
            hellos[0] = self._local.make_envs()
        hellos.update(self._collect(self._workers, "start-up", timeout="startup_timeout"))
        hello = hellos[0]
        for index, other in hellos.items():
            for key in ("observation_space", "action_space"):
                if other[key] != hello[key]:
                    raise ValueError(f"slice {index} (worker {index}): {key} {other[key]} differs from slice 0's "
                                     f"{hello[key]}")
        self.single_observation_space = hello["observation_space"]
        self.single_action_space = hello["action_space"]
        layout = _Layout.build(n, w, self.single_observation_space, self.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self.metadata = dict(hello["metadata"])
        self.metadata["autoreset_mode"] = AutoresetMode.SAME_STEP
        self.render_mode = hello["render_mode"]

        fd, self._memory = _shared_block(layout.nbytes)
        try:
            for handle in self._workers:
                socket.send_fds(handle.sock, [_MEMORY], [fd])
        finally:
            os.close(fd)
        self._v = layout.views(self._memory)
        self._v["active"][:] = True
        self._words = self._v["words"]
        self._caller_sleep = _caller_sleep_word(w)
        self._all_done = [_done_word(h.index) for h in self._workers]
        if self._local is not None:
            self._local.attach(self._v)
        self._collect(self._workers, "start-up", timeout="startup_timeout")
        self._prepare_action_checks()

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every worker to close its envs and exit; terminate those that do not within a second."""
        self._teardown(graceful=True)

    def _teardown(self, graceful: bool) -> None:
        workers, self._workers = self._workers, []
        self._pending = None
        if graceful:
            for handle in workers:
                try:
                    os.write(handle.fd, _QUIT)
                except OSError:
                    pass
            deadline = time.monotonic() + 1.0
            for handle in workers:
                handle.process.join(max(0.0, deadline - time.monotonic()))
        for handle in workers:
            if handle.process.is_alive():
                handle.process.terminate()
        for handle in workers:
            handle.process.join(1.0)
            if handle.process.is_alive():
                handle.process.kill()
                handle.process.join()
        for handle in workers:
            handle.process.close()
            _PARENT_SOCKETS.discard(handle.sock)
            handle.sock.close()
        self._owner = {}
        self._poller = None  # type: ignore[assignment]
        if self._local is not None:
            self._local.close_envs()
            self._local = None  # drops its views of the shared block before the block is unmapped
        self._v = {}
        self._words = None  # views do not keep the mapping alive: nothing may touch them once it is closed
        if self._memory is not None:
            try:
                self._memory.close()
            except BufferError:
                # A caller still holds a view (only possible through private attributes); the mapping is
                # released when that view is garbage collected.
                pass
            self._memory = None

    def __del__(self) -> None:
        try:
            if not getattr(self, "closed", True):
                self.close()
        except Exception:  # noqa: BLE001, S110 - never raise from a finaliser (e.g. at interpreter exit)
            pass

    def __enter__(self) -> ForkVectorEnv:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ talking to workers

    def _fail(self, handle: _Handle, message: str, env_index: int | None = None,
              worker_traceback: str | None = None) -> NoReturn:
        error = WorkerError(message, worker=handle.index, env_index=env_index, worker_traceback=worker_traceback)
        self._teardown(graceful=False)
        self.closed = True
        raise error

    def _died(self, handle: _Handle, phase: str) -> NoReturn:
        handle.process.join(1.0)
        code = handle.process.exitcode
        if code is None:
            how = "closed its connection"
        elif code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        self._fail(handle, f"{handle.describe()} {how} during {phase}; the pool has been shut down")

    def _read_payload(self, handle: _Handle, deadline: float | None, phase: str, tag: bytes | None = None) -> Any:
        """Read one framed pickle from `handle`; with `tag`, first its tag byte (wake-up hints skipped)."""
        poller = select.poll()
        poller.register(handle.fd, select.POLLIN)

        def exact(n: int) -> bytes:
            chunks = []
            while n:
                timeout = None if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
                if not poller.poll(timeout):
                    self._fail(handle, f"{handle.describe()} stopped mid-reply during {phase}")
                chunk = os.read(handle.fd, n)
                if not chunk:
                    self._died(handle, phase)
                chunks.append(chunk)
                n -= len(chunk)
            return b"".join(chunks)

        if tag is not None:
            got = exact(1)
            while got == _HINT:
                got = exact(1)
            if got != tag:
                self._fail(handle, f"{handle.describe()} sent {got!r} instead of {tag!r} during {phase}")
        return pickle.loads(exact(_LENGTH.unpack(exact(8))[0]))

    def _wait_step(self, workers: list[_Handle], seq: int) -> dict[int, Any]:
        """Wait until every worker in `workers` has published step `seq`; their extras (info dicts) by index."""
        words = self._words
        watch = self._all_done if len(workers) == len(self._workers) else [_done_word(h.index) for h in workers]
        if not _core.sync_wait(words, watch, seq, _MAIN_SPIN_S if self._spin else 0.0):
            self._closing_if_interrupted(self._sleep_for_step, workers, watch, seq)
        replies: dict[int, Any] = {}
        for handle in workers:
            how = words[_done_word(handle.index) + 1]
            if how == _REPLY_OK:
                continue
            deadline = None if self.step_timeout is None else time.monotonic() + self.step_timeout
            if how == _REPLY_DATA:
                replies[handle.index] = self._read_payload(handle, deadline, "step", _DATA)
            else:
                self._raise_worker_exception(handle, self._read_payload(handle, deadline, "step", _ERROR), True)
        return replies

    def _sleep_for_step(self, workers: list[_Handle], watch: list[int], seq: int) -> None:
        """The blocking half of :meth:`_wait_step`: sleep on the sockets (wake-up hints) and process sentinels."""
        words = self._words
        deadline = None if self.step_timeout is None else time.monotonic() + self.step_timeout
        # Listen to every worker not done *before* the sleeping word goes up: one that finishes after that sends
        # a wake-up byte, so its socket must be in the poll set.  Done only ever grows, so a socket leaves the set
        # once its worker is done (a reply payload waiting there must not wake this loop again and again).
        poller = select.poll()
        owner: dict[int, tuple[_Handle, bool]] = {}
        for handle in workers:
            owner[handle.process.sentinel] = (handle, True)
            poller.register(handle.process.sentinel, select.POLLIN)
        listening = [h for h in workers if words[_done_word(h.index)] < seq]
        for handle in listening:
            owner[handle.fd] = (handle, False)
            poller.register(handle.fd, select.POLLIN)
        try:
            while not _core.sync_prepare_sleep(words, self._caller_sleep, watch, seq):
                if deadline is None:
                    events = poller.poll()
                else:
                    events = poller.poll(max(0, math.ceil((deadline - time.monotonic()) * 1000)))
                if not events:
                    hung = next((h for h in workers if words[_done_word(h.index)] < seq), None)
                    if hung is None:  # everyone finished just as the time ran out
                        continue
                    self._fail(
                        hung,
                        f"{hung.describe()} did not answer within step_timeout={self.step_timeout} s during step "
                        "(hung env?); the pool has been shut down",
                    )
                for fd, _ in events:
                    handle, is_sentinel = owner[fd]
                    if is_sentinel:
                        self._died(handle, "step")
                    try:
                        head = handle.sock.recv(1, socket.MSG_PEEK)
                    except OSError:
                        head = b""
                    if not head:
                        self._died(handle, "step")
                    if head == _HINT:
                        os.read(fd, 1)
                    # Anything else is the payload of a reply published already; it is read after the wait.
                still = []
                for handle in listening:
                    if words[_done_word(handle.index)] < seq:
                        still.append(handle)
                    else:
                        poller.unregister(handle.fd)
                        del owner[handle.fd]
                listening = still
        finally:
            if not self.closed:  # a failure above has unmapped the words already
                words[self._caller_sleep] = 0

    def _collect(self, workers: list[_Handle], phase: str, fatal: bool = True,
                 timeout: str = "step_timeout") -> dict[int, Any]:
        """Wait for one reply from each of `workers`; a death, an error (if `fatal`) or the timeout (the
        attribute named `timeout`) raises."""
        return self._closing_if_interrupted(self._collect_replies, workers, phase, fatal, timeout)

    def _closing_if_interrupted(self, wait: Callable[..., Any], *args: Any) -> Any:
        """Run a wait for the workers.  Interrupted part-way (Ctrl-C), some replies are read and others still
        queued, so the next command could not tell them apart: shut down rather than hand out mismatched
        results later."""
        with self._closed_if_interrupted():
            return wait(*args)

    def _collect_replies(self, workers: list[_Handle], phase: str, fatal: bool, timeout: str) -> dict[int, Any]:
        waiting = {h.index for h in workers}
        replies: dict[int, Any] = {}
        errors: list[tuple[_Handle, dict[str, Any]]] = []
        limit = getattr(self, timeout)
        deadline = None if limit is None else time.monotonic() + limit
        poll = self._poller.poll
        # The caller spins for the replies (poll(0) + sched_yield, so a worker sharing its core runs at once)
        # instead of sleeping: a sleeping caller pays a cross-core wake-up per reply, tens of microseconds here.
        spin_until = time.perf_counter() + _MAIN_SPIN_S if self._spin else 0.0
        while waiting:
            events = poll(0) if spin_until else None
            while spin_until and not events and time.perf_counter() < spin_until:
                os.sched_yield()
                events = poll(0)
            if events:
                pass
            elif deadline is None:
                events = poll()
            else:
                events = poll(max(0, math.ceil((deadline - time.monotonic()) * 1000)))
            if not events:
                hung = next(h for h in self._workers if h.index in waiting)
                self._fail(
                    hung,
                    f"{hung.describe()} did not answer within {timeout}={limit} s during {phase} "
                    "(hung env?); the pool has been shut down",
                )
            for fd, _ in events:
                handle, is_sentinel = self._owner[fd]
                if is_sentinel:
                    self._died(handle, phase)
                try:
                    tag = os.read(fd, 1)
                except OSError:
                    tag = b""
                if not tag:
                    self._died(handle, phase)
                if tag == _HINT:  # a stale wake-up from an earlier step; the reply is still to come
                    continue
                if handle.index not in waiting:
                    self._fail(handle, f"{handle.describe()} sent an unexpected message {tag!r} during {phase}")
                waiting.discard(handle.index)
                if tag == _OK:
                    replies[handle.index] = None
                elif tag == _DATA:
                    replies[handle.index] = self._read_payload(handle, deadline, phase)
                elif tag == _ERROR:
                    error = self._read_payload(handle, deadline, phase)
                    if fatal or error["phase"] == "env creation":
                        self._raise_worker_exception(handle, error, teardown=True)
                    errors.append((handle, error))
                else:
                    self._fail(handle, f"{handle.describe()} sent an unknown reply {tag!r} during {phase}")
        if errors:
            self._raise_worker_exception(*errors[0], teardown=False)
        return replies

    def _raise_worker_exception(self, handle: _Handle, error: dict[str, Any], teardown: bool) -> None:
        tb = error["traceback"].rstrip()
        last = tb.splitlines()[-1] if tb else "exception"
        where = f" of env {error['env']}" if error["env"] is not None else ""
        message = f"{handle.describe()} raised in {error['phase']}{where}: {last}\n\nWorker traceback:\n{tb}"
        if teardown:
            self._fail(handle, message + "\n\nThe pool has been shut down.", error["env"], tb)
        raise WorkerError(message, worker=handle.index, env_index=error["env"], worker_traceback=tb)

    def _request(self, tag: bytes, per_worker: list[Any], phase: str, fatal: bool,
                 before_collect: Callable[[], Any] | None = None) -> dict[int, Any]:
        """Send one request per worker and collect the replies; `before_collect` (the inline slice's share of
        the work) runs while the workers are busy and its result is filed under slice 0."""
        with self._closed_if_interrupted():  # some workers asked and others not: no way back to consistency
            for handle, request in zip(self._workers, per_worker):
                try:
                    _send_message(handle.sock, tag, request)
                except OSError:
                    self._died(handle, phase)
            local = None if before_collect is None else before_collect()
            replies = self._collect(self._workers, phase, fatal)
        if before_collect is not None:
            replies[0] = local
        return replies

    @contextlib.contextmanager
    def _closed_if_interrupted(self) -> Iterator[None]:
        """A block that must run whole once started (commands half sent, a step half collected): interrupted
        (Ctrl-C) or failing part-way, the pool is shut down, so no later call can see mismatched replies or step
        a slice twice. WorkerError has closed the pool already when it had to."""
        try:
            yield
        except WorkerError:
            raise
        except BaseException:
            if not self.closed:
                self._teardown(graceful=False)
                self.closed = True
            raise

    def _run_local(self, phase: str, fatal: bool, fn: Callable[..., Any], *args: Any) -> Any:
        """Run the inline slice's share of a command; its exceptions become WorkerError like a worker's."""
        assert self._local is not None
        try:
            return fn(*args)
        except Exception as exc:
            tb = traceback.format_exc().rstrip()
            env = self._local.current
            where = f" of env {env}" if env is not None else ""
            error = WorkerError(
                f"the inline slice (envs {self._local.lo}..{self._local.hi - 1}, main process) raised in {phase}"
                f"{where}: {tb.splitlines()[-1]}\n\nTraceback:\n{tb}",
                worker=0, env_index=env, worker_traceback=tb,
            )
            if fatal:
                self._teardown(graceful=False)
                self.closed = True
            raise error from exc
        except BaseException:
            # Interrupted while the workers are busy: their replies would be out of sync (see _collect).
            self._teardown(graceful=False)
            self.closed = True
            raise

    def _check_usable(self) -> None:
        if self.closed:
            raise RuntimeError("ForkVectorEnv is closed")
        if self._pending is not None:
            raise RuntimeError("a step is in flight: call recv() before anything else")

    # ------------------------------------------------------------------ actions

    def _prepare_action_checks(self) -> None:
        space = self.single_action_space
        shape, dtype = _array_spec(space, "action")
        self._act_shape = shape
        self._act_dtype = dtype
        self._act_low: np.ndarray | None = None
        self._act_high: np.ndarray | None = None
        if isinstance(space, spaces.Discrete):
            self._act_kinds = "iu"
            self._act_low = np.array([space.start], dtype=np.int64)
            self._act_high = np.array([space.start + space.n - 1], dtype=np.int64)
        elif isinstance(space, spaces.MultiDiscrete):
            self._act_kinds = "iu"
            self._act_low = np.asarray(space.start, dtype=np.int64).reshape(-1)
            self._act_high = (np.asarray(space.start) + space.nvec - 1).astype(np.int64).reshape(-1)
        elif isinstance(space, spaces.MultiBinary):
            self._act_kinds = "biu"
            self._act_low = np.zeros(math.prod(shape), dtype=np.int64)
            self._act_high = np.ones(math.prod(shape), dtype=np.int64)
        elif isinstance(space, spaces.Box) and dtype.kind in "iub":
            self._act_kinds = "iub" if dtype.kind == "b" else "iu"
            self._act_low = space.low.reshape(-1)
            self._act_high = space.high.reshape(-1)
        else:
            # Float Box: any real dtype casts (float64 policies driving float32 envs is the usual case).
            self._act_kinds = "fiu"

    def _validate_actions(self, actions: Any, ids: np.ndarray | None) -> np.ndarray:
        count = self.num_envs if ids is None else len(ids)

        def env_of(pos: int) -> int:
            return pos if ids is None else int(ids[pos])

        if isinstance(actions, (list, tuple)) and len(actions) == count:
            for pos, action in enumerate(actions):
                if np.shape(action) != self._act_shape:
                    raise ValueError(
                        f"action for env {env_of(pos)} has shape {np.shape(action)}, expected {self._act_shape} "
                        f"(single_action_space={self.single_action_space})"
                    )
        try:
            array = np.asarray(actions)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"actions cannot be converted to an array: {exc}") from exc
        expected = (count, *self._act_shape)
        if array.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} ({count} envs x action shape {self._act_shape}), "
                f"got {array.shape}"
            )
        if array.dtype.kind not in self._act_kinds:
            raise ValueError(
                f"actions of dtype {array.dtype} cannot be safely cast to the action space dtype "
                f"{self._act_dtype} (for all envs 0..{self.num_envs - 1})"
            )
        # Cheap whole-batch checks first; the per-env search runs only to name the offending env.
        flat = array.reshape(count, -1)
        if self._act_low is None:
            if not np.isfinite(array).all():
                bad = ~np.isfinite(flat).all(axis=1)
                pos = int(np.flatnonzero(bad)[0])
                raise ValueError(f"action for env {env_of(pos)} is not finite: {array[pos]!r}; nothing was stepped")
        elif (flat < self._act_low).any() or (flat > self._act_high).any():
            bad = ((flat < self._act_low) | (flat > self._act_high)).any(axis=1)
            pos = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"action for env {env_of(pos)} is outside {self.single_action_space}: {array[pos]!r}; "
                "nothing was stepped"
            )
        return array

    # ------------------------------------------------------------------ thread safety

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (or those in ``options["reset_mask"]``); seeds as in SyncVectorEnv."""
        with self._api_lock:
            return self._reset_unlocked(seed=seed, options=options)

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every env with same-step autoreset; returns copies, never views of the shared buffers."""
        with self._api_lock:  # send and recv as one call: no close() between them
            self._send_unlocked(actions, None)
            return self._recv_unlocked()

    def send(self, actions: Any, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Start stepping (all envs, or only `env_ids`) and return at once; :meth:`recv` collects the result."""
        with self._api_lock:
            self._send_unlocked(actions, env_ids)

    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; with `env_ids`, results are in that order and
        ``info["env_id"]`` holds the ids."""
        with self._api_lock:
            return self._recv_unlocked()

    def _call(self, kind: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              values: list[Any] | None) -> tuple[Any, ...]:
        with self._api_lock:
            return self._call_unlocked(kind, name, args, kwargs, values)

    def close(self, **kwargs: Any) -> None:
        """Shut the workers down. From another thread while a call waits on the workers, this waits for that call
        to end first (at most ``step_timeout`` for a step); the waiting call returns or raises as it would have,
        and every later call raises ``RuntimeError``."""
        lock = getattr(self, "_api_lock", None)  # absent when __init__ failed early
        if lock is None:
            super().close(**kwargs)
            return
        with lock:
            super().close(**kwargs)

    # ------------------------------------------------------------------ gymnasium API

    def _reset_unlocked(
        self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env (or those in ``options["reset_mask"]``); seeds as in SyncVectorEnv."""
        self._check_usable()
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
                raise ValueError(f"a list of seeds must have length num_envs={n}, got {len(seeds)}")
        mask = None
        if options is not None and "reset_mask" in options:
            options = dict(options)
            mask = options.pop("reset_mask")
            if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_ or mask.shape != (n,):
                raise ValueError(f"options['reset_mask'] must be a bool numpy array of shape ({n},), got {mask!r}")
            if not mask.any():
                raise ValueError("options['reset_mask'] must select at least one env")
        requests = [
            (seeds[h.lo:h.hi], options, None if mask is None else mask[h.lo:h.hi].tolist()) for h in self._workers
        ]
        local = self._local
        replies = self._request(_RESET, requests, "reset", fatal=True, before_collect=None if local is None else (
            lambda: self._run_local("reset()", True, local._reset, seeds[local.lo:local.hi], options,
                                    None if mask is None else mask[local.lo:local.hi].tolist())))
        self._needs_reset = False
        infos: dict[str, Any] = {}
        for index in sorted(replies):
            for g, info in replies[index]:
                _merge_info(infos, info, g, n)
        return self._v["obs"].copy(), infos


    def _send_unlocked(self, actions: Any, env_ids: Sequence[int] | np.ndarray | None = None) -> None:
        """Start stepping (all envs, or only `env_ids`) and return at once; :meth:`recv` collects the result."""
        self._check_usable()
        if self._needs_reset:
            raise RuntimeError("call reset() before step()/send()")
        ids = None
        if env_ids is not None:
            ids = np.asarray(env_ids)
            if ids.ndim != 1 or ids.dtype.kind not in "iu" or len(ids) == 0:
                raise ValueError(f"env_ids must be a non-empty 1-d sequence of ints, got {env_ids!r}")
            if ids.min() < 0 or ids.max() >= self.num_envs or len(np.unique(ids)) != len(ids):
                raise ValueError(f"env_ids must be distinct env indices in [0, {self.num_envs}), got {env_ids!r}")
            ids = ids.astype(np.int64)
        array = self._validate_actions(actions, ids)
        v = self._v
        if ids is None:
            np.copyto(v["actions"], array, casting="unsafe")
            if not self._all_active:
                v["active"][:] = True
                self._all_active = True
            workers, some = self._workers, 0
        else:
            v["actions"][ids] = array
            v["active"][:] = False
            v["active"][ids] = True
            self._all_active = False
            workers = [h for h in self._workers if v["active"][h.lo:h.hi].any()]
            some = 1
        with self._closed_if_interrupted():  # published to some workers and not to others
            self._seq += 1
            seq = self._seq
            words, publish = self._words, _core.sync_publish
            for handle in workers:
                at = _cmd_word(handle.index)
                words[at + 1] = some
                if publish(words, at, seq, at + 2):  # the worker went to sleep on its socket: wake it
                    try:
                        os.write(handle.fd, _HINT)
                    except OSError:
                        self._died(handle, "step")
            self._pending = (workers, ids)

    def _recv_unlocked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; with `env_ids`, results are in that order and
        ``info["env_id"]`` holds the ids."""
        if self.closed:
            raise RuntimeError("ForkVectorEnv is closed")
        if self._pending is None:
            raise RuntimeError("recv() without a preceding send()")
        workers, ids = self._pending
        local = None
        with self._closed_if_interrupted():  # the inline slice stepped and the workers not yet collected
            if self._local is not None:
                local = self._run_local("step()", True, self._local._step, ids is not None)
            replies = self._wait_step(workers, self._seq) if workers else {}
            self._pending = None
        v = self._v
        if ids is None:
            obs, rewards = v["obs"].copy(), v["rewards"].copy()
            terminated, truncated = v["terminated"].copy(), v["truncated"].copy()
            size = self.num_envs
        else:
            obs, rewards = v["obs"][ids], v["rewards"][ids]
            terminated, truncated = v["terminated"][ids], v["truncated"][ids]
            size = len(ids)
        dones = terminated | truncated
        infos: dict[str, Any] = {}
        extras: dict[int, tuple[dict[str, Any], dict[str, Any] | None]] = {}
        if local:
            replies[self._local.index if self._local else 0] = local
        for reply in replies.values():
            if reply:
                for g, step_info, reset_info in reply:
                    extras[g] = (step_info, reset_info)
        if extras or dones.any():
            self._step_infos(infos, dones, extras, ids, size)
        if ids is not None:
            infos["env_id"] = ids
        return obs, rewards, terminated, truncated, infos

    def _step_infos(self, infos: dict[str, Any], dones: np.ndarray,
                    extras: dict[int, tuple[dict[str, Any], dict[str, Any] | None]],
                    ids: np.ndarray | None, size: int) -> None:
        v = self._v
        position = {int(g): p for p, g in enumerate(ids)} if ids is not None else None
        positions = set(np.flatnonzero(dones).tolist())
        positions.update(g if position is None else position[g] for g in extras)
        # Ascending env order, one env at a time, exactly as SyncVectorEnv(SAME_STEP) builds its infos.
        for pos in sorted(positions):
            g = pos if ids is None else int(ids[pos])
            step_info, reset_info = extras.get(g, ({}, None))
            if dones[pos]:
                _merge_info(infos, {"final_obs": v["final_obs"][g].copy(), "final_info": step_info}, pos, size)
                if reset_info:
                    _merge_info(infos, reset_info, pos, size)
            elif step_info:
                _merge_info(infos, step_info, pos, size)
        if self.episode_statistics and dones.any():
            if "episode" in infos or "_episode" in infos:
                raise ValueError(
                    "an env already returns info['episode'] (RecordEpisodeStatistics inside the env?); "
                    "pass episode_statistics=False or remove that wrapper"
                )
            sel = slice(None) if ids is None else ids
            infos["episode"] = {
                "r": np.where(dones, v["ep_return"][sel], 0.0),
                "l": np.where(dones, v["ep_length"][sel], 0),
                "t": np.where(dones, v["ep_time"][sel], 0.0),
                "_r": dones.copy(),
                "_l": dones.copy(),
                "_t": dones.copy(),
            }
            infos["_episode"] = dones.copy()

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
            raise ValueError(f"set_attr needs {self.num_envs} values, got {len(values)}")
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

    def _call_unlocked(self, kind: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
              values: list[Any] | None) -> tuple[Any, ...]:
        self._check_usable()
        requests = [
            (kind, name, args, kwargs, None if values is None else values[h.lo:h.hi]) for h in self._workers
        ]
        replies = self._request(_CALL, requests, kind, fatal=False)
        if self._local is not None:
            local = self._local
            replies[0] = self._run_local("call()", False, local._call, kind, name, args, kwargs,
                                         None if values is None else values[local.lo:local.hi])
        return tuple(r for index in sorted(replies) for r in replies[index])
