"""``ForkVectorEnv``, the caller's side of the fork backend: starts the workers, hands them steps and commands,
waits for their replies and turns the shared buffers into gymnasium's return values.

One cohesive class (start-up and shutdown, the wait on the workers, the gymnasium API); the worker loop, the wire
protocol and the action checks live beside it in :mod:`.worker`, :mod:`.protocol` and :mod:`.actions`.

Waiting: waking a sleeping process on another vCPU costs tens of microseconds here, against ~30 us for a
LunarLander step, so the caller first spins for up to 2 ms for the replies (on the done words in C++ with the GIL
released, or polling the sockets; sched_yield between checks hands the core at once to a worker sharing it), then
sleeps on the sockets and process sentinels in :meth:`ForkVectorEnv._wait`, the one loop that waits on workers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import pickle
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Concatenate, NoReturn, ParamSpec, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrain import _checks, _core
from rltrain.vec._infos import add_episode_statistics, add_final_obs, merge_info
from rltrain.vec.fork import protocol as p
from rltrain.vec.fork.actions import ActionChecker
from rltrain.vec.fork.worker import worker_main

__all__ = ["ForkVectorEnv", "WorkerError"]

_MAIN_SPIN_S = 2e-3  # how long the caller spins (yielding) for the workers' replies before sleeping

_P = ParamSpec("_P")
_R = TypeVar("_R")


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


@dataclass(eq=False)
class _Handle:
    """The caller's end of one worker: its process, socket, and the bytes and reply read from it so far."""

    index: int
    lo: int
    hi: int
    process: Any  # multiprocessing.context.ForkProcess
    sock: socket.socket
    fd: int
    inbox: bytearray = field(default_factory=bytearray)
    """Bytes read from the socket, starting at a message boundary (wake-up bytes dropped)."""
    reply: tuple[bytes, Any] | None = None
    """The complete reply parsed from the inbox, until taken."""

    def describe(self) -> str:
        return f"worker {self.index} (envs {self.lo}..{self.hi - 1}, pid {self.process.pid})"


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
        self._workers: list[_Handle] = []
        self._memory: Any = None  # mmap.mmap of the shared block
        self._v: dict[str, np.ndarray] = {}
        self._words: np.ndarray | None = None
        env_fns = list(env_fns)
        if not env_fns:
            raise ValueError("env_fns: expected at least one env factory, got none")
        self.num_envs = len(env_fns)
        if num_workers is None:  # the rule the kernel pool and the native batcher use (affinity, cgroup quota)
            num_workers = min(self.num_envs, _core.default_num_threads())  # type: ignore[attr-defined]
        self.num_workers = _checks.integer(num_workers, "num_workers", lo=1, hi=self.num_envs)
        self.step_timeout = _checks.optional_real(step_timeout, "step_timeout", lo=0.0, lo_open=True)
        self.startup_timeout = _checks.optional_real(startup_timeout, "startup_timeout", lo=0.0, lo_open=True)
        self.identical_seeds = identical_seeds
        self.episode_statistics = episode_statistics
        # On one core a spinning process would only delay the others.
        self._spin = spin and _core.available_cpus() > 1  # type: ignore[attr-defined]
        self._initial_seed = seed
        self._needs_reset = True
        self._pending: tuple[list[_Handle], np.ndarray | None] | None = None
        self._seq = 0  # sequence number of the last step published to the workers
        self._all_active = True
        try:
            self._start(env_fns)
        except BaseException:
            self._teardown(graceful=False)
            self.closed = True
            raise

    # ------------------------------------------------------------------ start-up and shutdown

    def _start(self, env_fns: list[Callable[[], gym.Env[Any, Any]]]) -> None:
        ctx = multiprocessing.get_context("fork")
        n, w = self.num_envs, self.num_workers
        for k in range(w):
            lo, hi = k * n // w, (k + 1) * n // w
            parent, child = socket.socketpair()
            p.PARENT_SOCKETS.add(parent)
            process = ctx.Process(
                target=worker_main,
                args=(k, lo, hi, n, w, self._spin, env_fns, child),
                name=f"ForkVectorEnv-{k}",
                daemon=True,
            )
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, p.RESET_SIGNALS) if p.RESET_SIGNALS else None
            try:
                process.start()
            except BaseException:
                p.PARENT_SOCKETS.discard(parent)
                parent.close()
                raise
            finally:
                child.close()
                if blocked is not None:
                    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            self._workers.append(_Handle(k, lo, hi, process, parent, parent.fileno()))

        hellos = self._collect(self._workers, "start-up", limit="startup_timeout")
        hello = hellos[0]
        for index, other in hellos.items():
            for key in ("observation_space", "action_space"):
                if other[key] != hello[key]:
                    raise ValueError(f"worker {index}: {key} {other[key]} differs from worker 0's {hello[key]}")
        self.single_observation_space = hello["observation_space"]
        self.single_action_space = hello["action_space"]
        layout = p.Layout.build(n, w, self.single_observation_space, self.single_action_space)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self.metadata = dict(hello["metadata"])
        self.metadata["autoreset_mode"] = AutoresetMode.SAME_STEP
        self.render_mode = hello["render_mode"]

        fd, self._memory = p.shared_block(layout.nbytes)
        try:
            for handle in self._workers:
                socket.send_fds(handle.sock, [p.MEMORY], [fd])
        finally:
            os.close(fd)
        self._v = layout.views(self._memory)
        self._v["active"][:] = True
        self._words = self._v["words"]
        self._caller_sleep = p.caller_sleep_word(w)
        self._all_done = [p.done_word(h.index) for h in self._workers]
        self._collect(self._workers, "start-up", limit="startup_timeout")
        self._check_actions = ActionChecker(self.single_action_space, n)

    def close_extras(self, **kwargs: Any) -> None:
        """Ask every worker to close its envs and exit; terminate those that do not within a second."""
        self._teardown(graceful=True)

    def _teardown(self, graceful: bool) -> None:
        workers, self._workers = self._workers, []
        self._pending = None
        if graceful:
            for handle in workers:
                with contextlib.suppress(OSError):
                    os.write(handle.fd, p.QUIT)
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
            p.PARENT_SOCKETS.discard(handle.sock)
            handle.sock.close()
        self._v = {}
        self._words = None  # views do not keep the mapping alive: nothing may touch them once it is closed
        if self._memory is not None:
            # A caller still holding a view (only possible through private attributes) keeps the mapping
            # until that view is garbage collected.
            with contextlib.suppress(BufferError):
                self._memory.close()
            self._memory = None

    def _shut(self) -> None:
        """Tears the pool down at once (a failure, an interruption); every later call raises RuntimeError."""
        if not self.closed:
            self._teardown(graceful=False)
            self.closed = True

    def close(self, **kwargs: Any) -> None:
        """Shut the workers down. From another thread while a call waits on the workers, this waits for that call
        to end first (at most ``step_timeout`` for a step); the waiting call returns or raises as it would have,
        and every later call raises ``RuntimeError``."""
        lock = getattr(self, "_api_lock", None)  # absent when __init__ failed early
        with lock if lock is not None else contextlib.nullcontext():
            super().close(**kwargs)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # never raise from a finaliser (e.g. at interpreter exit)
            if not getattr(self, "closed", True):
                self.close()

    def __enter__(self) -> ForkVectorEnv:  # not typing.Self: that needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ waiting on workers

    def _fail(self, handle: _Handle, message: str, env_index: int | None = None,
              worker_traceback: str | None = None) -> NoReturn:
        error = WorkerError(message, worker=handle.index, env_index=env_index, worker_traceback=worker_traceback)
        self._shut()
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

    def _wait(self, workers: list[_Handle], phase: str, through: Callable[[_Handle], bool], *,
              limit: str = "step_timeout", seq: int | None = None) -> None:
        """The one loop that waits on workers: returns once ``through(handle)`` holds for each of ``workers``.

        ``through`` reads the shared words and the handle's inbox; whatever a worker's socket holds is moved to
        the inbox (:meth:`_drain`) before ``through`` is asked again. A worker that dies (sentinel or end of file,
        its last words read first) or is not through after ``limit`` seconds (the attribute of that name) shuts
        the pool down with WorkerError. With ``seq`` (a step), the spin watches the done words, and the caller's
        sleeping word goes up before each sleep so that a worker publishing after that sends a wake-up byte."""
        if seq is not None and self._spin:
            watch = self._all_done if len(workers) == len(self._workers) else [p.done_word(h.index) for h in workers]
            _core.sync_wait(self._words, watch, seq, _MAIN_SPIN_S)
        pending = [h for h in workers if not through(h)]
        if not pending:
            return
        spin_until = time.perf_counter() + _MAIN_SPIN_S if self._spin and seq is None else 0.0
        limit_s = getattr(self, limit)
        deadline = None if limit_s is None else time.monotonic() + limit_s
        poller = select.poll()
        owner: dict[int, _Handle] = {}
        for handle in pending:  # all of them before the sleeping word first goes up
            for fd in (handle.fd, handle.process.sentinel):
                owner[fd] = handle
                poller.register(fd, select.POLLIN)
        try:
            while True:
                for handle in [h for h in pending if through(h)]:
                    pending.remove(handle)
                    poller.unregister(handle.fd)
                    poller.unregister(handle.process.sentinel)
                if not pending:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    self._fail(pending[0], f"{pending[0].describe()} did not answer within {limit}={limit_s} s "
                                           f"during {phase} (hung env?); the pool has been shut down")
                if spin_until:
                    events = poller.poll(0)
                    if time.perf_counter() >= spin_until:
                        spin_until = 0.0
                    if not events:
                        os.sched_yield()
                        continue
                else:
                    if seq is not None and self._published_after_all(pending, seq):
                        continue
                    timeout = None if deadline is None else max(0, math.ceil((deadline - time.monotonic()) * 1000))
                    events = poller.poll(timeout)
                for fd, _ in events:
                    handle = owner[fd]
                    if handle not in pending:
                        continue
                    gone = self._drain(handle) or fd == handle.process.sentinel
                    if gone and not through(handle):  # a reply that arrived whole still counts
                        self._died(handle, phase)
        finally:
            if seq is not None and self._words is not None:  # None: a failure above has unmapped them already
                self._words[self._caller_sleep] = 0

    def _published_after_all(self, pending: list[_Handle], seq: int) -> bool:
        """Raises the caller's sleeping word unless every worker in ``pending`` has published step ``seq`` (only
        payloads left to read: no wake-up byte is owed); True when they all have by the time the word is up."""
        words = self._words
        assert words is not None
        unpublished = [p.done_word(h.index) for h in pending if words[p.done_word(h.index)] < seq]
        return bool(unpublished) and _core.sync_prepare_sleep(words, self._caller_sleep, unpublished, seq)

    def _drain(self, handle: _Handle) -> bool:
        """Moves what ``handle``'s socket holds now into its inbox, dropping wake-up bytes between messages;
        True at end of file (the worker is gone)."""
        eof = False
        while True:
            try:
                chunk = handle.sock.recv(1 << 16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                eof = True
                break
            if not chunk:
                eof = True
                break
            handle.inbox += chunk
        box = handle.inbox
        start = len(box) - len(box.lstrip(p.HINT))
        if start:
            del box[:start]
        return eof

    def _replied(self, handle: _Handle, phase: str, fatal: bool = True) -> bool:
        """Whether ``handle``'s reply is complete (parsed into ``handle.reply``); an error reply raises at once
        (the pool shut down) when ``fatal`` or when it comes from building the envs."""
        if handle.reply is not None:
            return True
        box = handle.inbox
        if not box:
            return False
        tag = bytes(box[:1])
        if tag == p.OK:
            del box[:1]
            handle.reply = (tag, None)
            return True
        if tag not in (p.DATA, p.ERROR):
            self._fail(handle, f"{handle.describe()} sent an unknown reply {tag!r} during {phase}")
        head = 1 + p.LENGTH.size
        if len(box) < head or len(box) < head + p.LENGTH.unpack_from(box, 1)[0]:
            return False
        end = head + p.LENGTH.unpack_from(box, 1)[0]
        handle.reply = (tag, pickle.loads(box[head:end]))
        del box[:end]
        if tag == p.ERROR and (fatal or handle.reply[1]["phase"] == "env creation"):
            self._raise_worker_exception(handle, self._take(handle)[1], teardown=True)
        return True

    @staticmethod
    def _take(handle: _Handle) -> tuple[bytes, Any]:
        reply, handle.reply = handle.reply, None
        assert reply is not None
        return reply

    def _collect(self, workers: list[_Handle], phase: str, fatal: bool = True,
                 limit: str = "step_timeout") -> dict[int, Any]:
        """One reply from each of ``workers`` by worker index; a death, an error (if ``fatal``) or the timeout
        raises (the pool shut down); non-fatal errors raise once every reply is in, keeping the pool."""
        self._wait(workers, phase, lambda h: self._replied(h, phase, fatal), limit=limit)
        replies: dict[int, Any] = {}
        errors: list[tuple[_Handle, Any]] = []
        for handle in workers:
            tag, obj = self._take(handle)
            if tag == p.ERROR:
                errors.append((handle, obj))
            replies[handle.index] = obj
        if errors:
            self._raise_worker_exception(*errors[0], teardown=False)
        return replies

    def _step_replies(self, workers: list[_Handle], seq: int) -> dict[int, Any]:
        """Waits until every worker in ``workers`` has published step ``seq``; their info payloads by index."""
        assert self._words is not None
        words = self._words

        def through(handle: _Handle) -> bool:
            at = p.done_word(handle.index)
            return bool(words[at] >= seq) and (words[at + 1] == p.REPLY_OK or self._replied(handle, "step"))

        self._wait(workers, "step", through, seq=seq)
        replies: dict[int, Any] = {}
        for handle in workers:
            if words[p.done_word(handle.index) + 1] == p.REPLY_DATA:
                tag, replies[handle.index] = self._take(handle)
                if tag != p.DATA:
                    self._fail(handle, f"{handle.describe()} sent {tag!r} instead of its step's infos")
        return replies

    def _raise_worker_exception(self, handle: _Handle, error: dict[str, Any], teardown: bool) -> NoReturn:
        tb = error["traceback"].rstrip()
        last = tb.splitlines()[-1] if tb else "exception"
        where = f" of env {error['env']}" if error["env"] is not None else ""
        message = f"{handle.describe()} raised in {error['phase']}{where}: {last}\n\nWorker traceback:\n{tb}"
        if teardown:
            self._fail(handle, message + "\n\nThe pool has been shut down.", error["env"], tb)
        raise WorkerError(message, worker=handle.index, env_index=error["env"], worker_traceback=tb)

    def _request(self, tag: bytes, per_worker: list[Any], phase: str, fatal: bool) -> dict[int, Any]:
        """Sends one request per worker and collects the replies."""
        with self._closed_if_interrupted():  # some workers asked and others not: no way back to consistency
            for handle, request in zip(self._workers, per_worker):
                try:
                    p.send_message(handle.sock, tag, request)
                except OSError:
                    self._died(handle, phase)
            return self._collect(self._workers, phase, fatal)

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
            self._shut()
            raise

    def _check_usable(self) -> None:
        if self.closed:
            raise RuntimeError("ForkVectorEnv is closed")
        if self._pending is not None:
            raise RuntimeError("a step is in flight: call recv() before anything else")

    # ------------------------------------------------------------------ gymnasium API

    @_locked
    def reset(
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
            (seeds[h.lo:h.hi], options, None if mask is None else mask[h.lo:h.hi].tolist()) for h in self._workers
        ]
        replies = self._request(p.RESET, requests, "reset", fatal=True)
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
        self._check_usable()
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
            words, publish = self._words, _core.sync_publish
            assert words is not None
            for handle in workers:
                at = p.cmd_word(handle.index)
                words[at + 1] = some
                if publish(words, at, self._seq, at + 2):  # the worker went to sleep on its socket: wake it
                    try:
                        os.write(handle.fd, p.HINT)
                    except OSError:
                        self._died(handle, "step")
            self._pending = (workers, ids)

    @_locked
    def recv(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Wait for the step started by :meth:`send`; with `env_ids`, results are in that order and
        ``info["env_id"]`` holds the ids."""
        if self.closed:
            raise RuntimeError("ForkVectorEnv is closed")
        if self._pending is None:
            raise RuntimeError("recv() without a preceding send()")
        workers, ids = self._pending
        with self._closed_if_interrupted():  # some replies read, others not
            replies = self._step_replies(workers, self._seq)
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
        self._check_usable()
        requests = [
            (kind, name, args, kwargs, None if values is None else values[h.lo:h.hi]) for h in self._workers
        ]
        replies = self._request(p.CALL, requests, kind, fatal=False)
        return tuple(r for index in sorted(replies) for r in replies[index])
