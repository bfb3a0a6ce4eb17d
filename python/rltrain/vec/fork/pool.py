"""The caller's end of the fork workers: forking them, the shared block, and every wait on their replies.

:class:`WorkerPool` owns the processes, sockets and shared memory of one ``ForkVectorEnv``; :meth:`WorkerPool._wait`
is the one loop that waits on workers (steps, control replies, start-up), with the death and timeout handling.

Waiting: waking a sleeping process on another vCPU costs tens of microseconds here, against ~30 us for a
LunarLander step, so the caller first spins for up to 2 ms for the replies (on the done words in C++ with the GIL
released, or polling the sockets; sched_yield between checks hands the core at once to a worker sharing it), then
sleeps on the sockets and process sentinels.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import pickle
import select
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np

from rltrain import _core
from rltrain.vec.fork import protocol as p
from rltrain.vec.fork.worker import worker_main

__all__ = ["WorkerError", "WorkerHandle", "WorkerPool"]

_MAIN_SPIN_S = 2e-3  # how long the caller spins (yielding) for the workers' replies before sleeping


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
class WorkerHandle:
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


class WorkerPool:
    """``num_workers`` forked processes, worker k serving envs ``[k n / w, (k + 1) n / w)``, and the shared block.

    A worker that raises in reset/step, dies or hangs shuts the pool down (:attr:`closed`) and raises
    :class:`WorkerError`; so does an interruption (Ctrl-C) part-way through a command or a step.
    """

    # steps: actions and sequence numbers in shared memory -> workers -> done words (+ infos on the sockets);
    # commands: framed pickles on the sockets -> workers -> one reply each; every reply is waited for in _wait.

    def __init__(self, env_fns: list[Callable[[], gym.Env[Any, Any]]], num_workers: int, *, spin: bool,
                 step_timeout: float | None, startup_timeout: float | None) -> None:
        self.num_envs, self.num_workers = len(env_fns), num_workers
        self.spin = spin
        self.step_timeout, self.startup_timeout = step_timeout, startup_timeout
        self.workers: list[WorkerHandle] = []
        self.closed = False
        self.hello: dict[str, Any] = {}
        """Worker 0's spaces, metadata and render mode."""
        self._memory: Any = None  # mmap.mmap of the shared block
        self.views: dict[str, np.ndarray] = {}
        """The arrays in the shared block (protocol.Layout)."""
        self._words: np.ndarray | None = None
        self.seq = 0
        """Sequence number of the last step published to the workers."""
        try:
            self._start(env_fns)
        except BaseException:
            self.shut()
            raise

    def _start(self, env_fns: list[Callable[[], gym.Env[Any, Any]]]) -> None:
        ctx = multiprocessing.get_context("fork")
        n, w = self.num_envs, self.num_workers
        for k in range(w):
            lo, hi = k * n // w, (k + 1) * n // w
            parent, child = socket.socketpair()
            p.PARENT_SOCKETS.add(parent)
            process = ctx.Process(
                target=worker_main,
                args=(k, lo, hi, n, w, self.spin, env_fns, child),
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
            self.workers.append(WorkerHandle(k, lo, hi, process, parent, parent.fileno()))

        hellos = self._collect(self.workers, "start-up", limit="startup_timeout")
        hello = hellos[0]
        for index, other in hellos.items():
            for key in ("observation_space", "action_space"):
                if other[key] != hello[key]:
                    raise ValueError(f"worker {index}: {key} {other[key]} differs from worker 0's {hello[key]}")
        self.hello = hello
        layout = p.Layout.build(n, w, hello["observation_space"], hello["action_space"])

        fd, self._memory = p.shared_block(layout.nbytes)
        try:
            for handle in self.workers:
                socket.send_fds(handle.sock, [p.MEMORY], [fd])
        finally:
            os.close(fd)
        self.views = layout.views(self._memory)
        self.views["active"][:] = True
        self._words = self.views["words"]
        self._caller_sleep = p.caller_sleep_word(w)
        self._all_done = [p.done_word(h.index) for h in self.workers]
        self._collect(self.workers, "start-up", limit="startup_timeout")

    def close(self) -> None:
        """Asks every worker to close its envs and exit; terminates those that do not within a second."""
        if not self.closed:
            self._teardown(graceful=True)
            self.closed = True

    def _teardown(self, graceful: bool) -> None:
        workers, self.workers = self.workers, []
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
        self.views = {}
        self._words = None  # views do not keep the mapping alive: nothing may touch them once it is closed
        if self._memory is not None:
            # A caller still holding a view (only possible through private attributes) keeps the mapping
            # until that view is garbage collected.
            with contextlib.suppress(BufferError):
                self._memory.close()
            self._memory = None

    def shut(self) -> None:
        """Tears the pool down at once (a failure, an interruption)."""
        if not self.closed:
            self._teardown(graceful=False)
            self.closed = True


    # ------------------------------------------------------------------ waiting on workers

    def _fail(self, handle: WorkerHandle, message: str, env_index: int | None = None,
              worker_traceback: str | None = None) -> NoReturn:
        error = WorkerError(message, worker=handle.index, env_index=env_index, worker_traceback=worker_traceback)
        self.shut()
        raise error

    def _died(self, handle: WorkerHandle, phase: str) -> NoReturn:
        handle.process.join(1.0)
        code = handle.process.exitcode
        if code is None:
            how = "closed its connection"
        elif code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"exited with code {code}"
        self._fail(handle, f"{handle.describe()} {how} during {phase}; the pool has been shut down")

    def _wait(self, workers: list[WorkerHandle], phase: str, through: Callable[[WorkerHandle], bool], *,
              limit: str = "step_timeout", seq: int | None = None) -> None:
        """The one loop that waits on workers: returns once ``through(handle)`` holds for each of ``workers``.

        ``through`` reads the shared words and the handle's inbox; whatever a worker's socket holds is moved to
        the inbox (:meth:`_drain`) before ``through`` is asked again. A worker that dies (sentinel or end of file,
        its last words read first) or is not through after ``limit`` seconds (the attribute of that name) shuts
        the pool down with WorkerError. With ``seq`` (a step), the spin watches the done words, and the caller's
        sleeping word goes up before each sleep so that a worker publishing after that sends a wake-up byte."""
        if seq is not None and self.spin:
            assert self._words is not None  # a step is only waited for on an open pool
            watch = self._all_done if len(workers) == len(self.workers) else [p.done_word(h.index) for h in workers]
            _core.sync.sync_wait(self._words, watch, seq, _MAIN_SPIN_S)
        pending = [h for h in workers if not through(h)]
        if not pending:
            return
        spin_until = time.perf_counter() + _MAIN_SPIN_S if self.spin and seq is None else 0.0
        limit_s = getattr(self, limit)
        deadline = None if limit_s is None else time.monotonic() + limit_s
        poller = select.poll()
        owner: dict[int, WorkerHandle] = {}
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
                    if seq is not None and self._nothing_to_sleep_for(pending, seq, through):
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

    def _nothing_to_sleep_for(self, pending: list[WorkerHandle], seq: int,
                              through: Callable[[WorkerHandle], bool]) -> bool:
        """Before sleeping on step ``seq``: raises the caller's sleeping word, so that a worker publishing from now
        on sends a wake-up byte. True when there is nothing to sleep for after all: every worker not yet published
        when the word went up has published since, or (none left to publish) one of ``pending`` is through."""
        words = self._words
        assert words is not None
        unpublished = [p.done_word(h.index) for h in pending if words[p.done_word(h.index)] < seq]
        if unpublished:
            return _core.sync.sync_prepare_sleep(words, self._caller_sleep, unpublished, seq)
        # All published since `pending` was settled: no wake-up byte is owed, and only a payload still on its way
        # (which wakes the poll itself) is worth sleeping for.
        return any(through(h) for h in pending)

    def _drain(self, handle: WorkerHandle) -> bool:
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

    def _replied(self, handle: WorkerHandle, phase: str, fatal: bool = True) -> bool:
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
    def _take(handle: WorkerHandle) -> tuple[bytes, Any]:
        reply, handle.reply = handle.reply, None
        assert reply is not None
        return reply

    def _collect(self, workers: list[WorkerHandle], phase: str, fatal: bool = True,
                 limit: str = "step_timeout") -> dict[int, Any]:
        """One reply from each of ``workers`` by worker index; a death, an error (if ``fatal``) or the timeout
        raises (the pool shut down); non-fatal errors raise once every reply is in, keeping the pool."""
        self._wait(workers, phase, lambda h: self._replied(h, phase, fatal), limit=limit)
        replies: dict[int, Any] = {}
        errors: list[tuple[WorkerHandle, Any]] = []
        for handle in workers:
            tag, obj = self._take(handle)
            if tag == p.ERROR:
                errors.append((handle, obj))
            replies[handle.index] = obj
        if errors:
            self._raise_worker_exception(*errors[0], teardown=False)
        return replies

    def publish_step(self, workers: list[WorkerHandle], some: bool) -> None:
        """Starts the next step in ``workers`` (only their ``active`` envs when ``some``)."""
        with self.closed_if_interrupted():  # published to some workers and not to others
            self.seq += 1
            words, publish = self._words, _core.sync.sync_publish
            assert words is not None
            for handle in workers:
                at = p.cmd_word(handle.index)
                words[at + 1] = some
                if publish(words, at, self.seq, at + 2):  # the worker went to sleep on its socket: wake it
                    try:
                        os.write(handle.fd, p.HINT)
                    except OSError:
                        self._died(handle, "step")

    def step_replies(self, workers: list[WorkerHandle]) -> dict[int, Any]:
        """Waits until every worker in ``workers`` has published the last step; their info payloads by index."""
        seq = self.seq
        assert self._words is not None
        words = self._words

        def through(handle: WorkerHandle) -> bool:
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

    def _raise_worker_exception(self, handle: WorkerHandle, error: dict[str, Any], teardown: bool) -> NoReturn:
        tb = error["traceback"].rstrip()
        last = tb.splitlines()[-1] if tb else "exception"
        where = f" of env {error['env']}" if error["env"] is not None else ""
        message = f"{handle.describe()} raised in {error['phase']}{where}: {last}\n\nWorker traceback:\n{tb}"
        if teardown:
            self._fail(handle, message + "\n\nThe pool has been shut down.", error["env"], tb)
        raise WorkerError(message, worker=handle.index, env_index=error["env"], worker_traceback=tb)

    def request(self, tag: bytes, per_worker: list[Any], phase: str, fatal: bool) -> dict[int, Any]:
        """Sends one request per worker and collects the replies, by worker index."""
        with self.closed_if_interrupted():  # some workers asked and others not: no way back to consistency
            for handle, request in zip(self.workers, per_worker):
                try:
                    p.send_message(handle.sock, tag, request)
                except OSError:
                    self._died(handle, phase)
            return self._collect(self.workers, phase, fatal)

    @contextlib.contextmanager
    def closed_if_interrupted(self) -> Iterator[None]:
        """A block that must run whole once started (commands half sent, a step half collected): interrupted
        (Ctrl-C) or failing part-way, the pool is shut down, so no later call can see mismatched replies or step
        a slice twice. WorkerError has closed the pool already when it had to."""
        try:
            yield
        except WorkerError:
            raise
        except BaseException:
            self.shut()
            raise
