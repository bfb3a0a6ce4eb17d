"""The loop a forked worker process runs: it owns a contiguous slice of envs and steps them when told to.

Waiting: waking a sleeping process on another vCPU costs tens of microseconds, against ~30 us for a LunarLander
step, so after each step a worker spins on its command word for up to 0.5 ms (in C++, GIL released, sched_yield
between checks, so a process sharing the core runs at once) before it raises its sleeping word and blocks on its
socket, where the caller then sends a wake-up byte.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import signal
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from rltrain import _core
from rltrain.vec.fork import protocol as p

__all__ = ["worker_main"]

_WORKER_SPIN_S = 5e-4  # how long a worker spins for the next step command before blocking

Extras = list[tuple[int, dict[str, Any], "dict[str, Any] | None"]]
"""A step's non-empty infos: (env index, step info, reset info of an episode that ended, else None)."""


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class _Worker:
    """Owns envs [lo, hi) and answers the caller's commands until told to quit or the caller goes away."""

    # step: command word -> actions from shared memory -> env.step / reset -> results into shared memory -> done
    # word (+ infos pickled on the socket); control: socket -> reset/call -> framed pickle back on the socket.

    def __init__(self, index: int, lo: int, hi: int, num_envs: int, num_workers: int, spin: bool,
                 env_fns: Sequence[Callable[[], gym.Env[Any, Any]]], sock: socket.socket) -> None:
        self.index, self.lo, self.hi, self.num_envs, self.num_workers = index, lo, hi, num_envs, num_workers
        self.spin = spin
        self.env_fns = env_fns
        self.sock = sock
        self.fd = sock.fileno()
        self.envs: list[gym.Env[Any, Any]] = []
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
        # They were blocked across the fork (protocol.RESET_SIGNALS), so none can arrive before this line.
        for sig in p.RESET_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        if p.RESET_SIGNALS:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, p.RESET_SIGNALS)
        for other in list(p.PARENT_SOCKETS):
            other.close()
        try:
            if not self._start():
                return
            self._loop()
        finally:
            self._close_envs()
            self.sock.close()

    def _report(self, phase: str) -> None:
        p.send_message(
            self.sock, p.ERROR, {"phase": phase, "env": self.current, "traceback": traceback.format_exc()}
        )

    def _make_envs(self) -> dict[str, Any]:
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

    def _close_envs(self) -> None:
        for env in self.envs:
            with contextlib.suppress(Exception):  # best effort while shutting down
                env.close()
        self.envs = []

    def _start(self) -> bool:
        try:
            p.send_message(self.sock, p.DATA, self._make_envs())
        except BaseException:  # anything, even SystemExit, is reported to the main process
            self._report("env creation")
            return False
        msg, fds, _, _ = socket.recv_fds(self.sock, 1, 1)
        if msg != p.MEMORY or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            return False
        first = self.envs[0]
        layout = p.Layout.build(self.num_envs, self.num_workers, first.observation_space, first.action_space)
        try:
            self.memory = mmap.mmap(fds[0], layout.nbytes)
        finally:
            os.close(fds[0])
        self.v = layout.views(self.memory)
        # Box actions are handed over as copies so an env that keeps or edits its action cannot see the
        # shared buffer change under it; Discrete actions index to numpy scalars, which are copies already.
        self.copy_action = len(self.v["actions"].shape) > 1
        os.write(self.fd, p.OK)
        return True

    def _loop(self) -> None:
        fd = self.fd
        words = self.v["words"]
        cmd_at = p.cmd_word(self.index)
        some_at, sleep_at = cmd_at + 1, cmd_at + 2
        done_at, reply_at = p.done_word(self.index), p.done_word(self.index) + 1
        caller_sleep = p.caller_sleep_word(self.num_workers)
        watch = [cmd_at]
        wait, prepare_sleep, publish = _core.sync.sync_wait, _core.sync.sync_prepare_sleep, _core.sync.sync_publish
        seen = int(words[cmd_at])
        spin = False
        while True:
            # A step arrives through the words; control commands (and wake-up hints) through the socket.
            if (spin and wait(words, watch, seen + 1, _WORKER_SPIN_S)) or prepare_sleep(
                words, sleep_at, watch, seen + 1
            ):
                seen = int(words[cmd_at])
                some = bool(words[some_at])
                try:
                    extras = self._step(some)
                    payload = self._pickle_extras(extras) if extras else b""
                except BaseException:  # reported to the main process, which shuts the pool down
                    words[reply_at] = p.REPLY_ERROR
                    if publish(words, done_at, seen, caller_sleep):
                        os.write(fd, p.HINT)
                    self._report("step()")
                    spin = False
                    continue
                words[reply_at] = p.REPLY_DATA if extras else p.REPLY_OK
                if publish(words, done_at, seen, caller_sleep):
                    os.write(fd, p.HINT)
                if extras:
                    self.sock.sendall(p.DATA + p.LENGTH.pack(len(payload)) + payload)
                spin = self.spin
                continue
            cmd = os.read(fd, 1)
            words[sleep_at] = 0
            spin = False
            if cmd == p.HINT:
                continue
            if not cmd or cmd == p.QUIT:
                return
            try:
                self.current = None
                request = pickle.loads(_read_exact(fd, p.LENGTH.unpack(_read_exact(fd, 8))[0]))
                if cmd == p.RESET:
                    p.send_message(self.sock, p.DATA, self._reset(*request))
                elif cmd == p.CALL:
                    p.send_message(self.sock, p.DATA, self._call(*request))
                else:
                    raise RuntimeError(f"unknown command {cmd!r}")
            except BaseException:  # reported to the main process, which shuts the pool down
                self._report({p.RESET: "reset()"}.get(cmd, "call()"))

    def _pickle_extras(self, extras: Extras) -> bytes:
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

    def _step(self, some: bool) -> Extras:
        # The hot loop: locals instead of attribute look-ups, no allocation beyond what env.step makes.
        v = self.v
        obs_buf, final_obs, actions = v["obs"], v["final_obs"], v["actions"]
        rewards, terminated, truncated, active = v["rewards"], v["terminated"], v["truncated"], v["active"]
        ret, length, start = self.ret, self.length, self.start
        copy_action = self.copy_action
        extras: Extras = []
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
        results: list[Any] = []
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


def worker_main(index: int, lo: int, hi: int, num_envs: int, num_workers: int, spin: bool,
                env_fns: Sequence[Callable[[], gym.Env[Any, Any]]], sock: socket.socket) -> None:
    """The target of worker process ``index``: serve envs [lo, hi) on ``sock`` until told to quit."""
    _Worker(index, lo, hi, num_envs, num_workers, spin, env_fns, sock).run()
