"""rltrain._core.sync.sync_*: the shared-word handshake under the fork backend (publish, spin, prepare to sleep)."""

from __future__ import annotations

import mmap
import multiprocessing
import os
import select
import socket

import numpy as np
import pytest

from rltrain import _core


def test_publish_reports_a_sleeping_reader() -> None:
    words = np.zeros(16, dtype=np.int64)
    assert _core.sync.sync_publish(words, 0, 7, 2) is False
    assert words[0] == 7
    words[2] = 1
    assert _core.sync.sync_publish(words, 0, 8, 2) is True
    assert words[0] == 8


def test_wait_and_prepare_sleep() -> None:
    words = np.zeros(16, dtype=np.int64)
    words[[8, 9]] = [5, 4]
    assert _core.sync.sync_wait(words, [8], 5, 0.0) is True
    assert _core.sync.sync_wait(words, [8, 9], 5, 0.0) is False
    assert _core.sync.sync_wait(words, [8, 9], 5, 0.001) is False  # gives up after its spin budget
    assert _core.sync.sync_wait(words, [], 5, 0.0) is True
    assert _core.sync.sync_prepare_sleep(words, 15, [8, 9], 5) is False
    assert words[15] == 1  # raised: a publisher now owes a wake-up byte
    words[9] = 6
    assert _core.sync.sync_prepare_sleep(words, 15, [8, 9], 5) is True
    assert words[15] == 0  # lowered again: nothing to sleep for


def test_bad_arguments_raise() -> None:
    words = np.zeros(8, dtype=np.int64)
    with pytest.raises(TypeError, match="words"):
        _core.sync.sync_publish(np.zeros(8, dtype=np.int32), 0, 1, 1)
    with pytest.raises(TypeError, match="words"):
        _core.sync.sync_wait([0, 0], [0], 1, 0.0)
    with pytest.raises(TypeError, match="words"):
        _core.sync.sync_wait(np.zeros((2, 4), dtype=np.int64), [0], 1, 0.0)
    with pytest.raises(ValueError, match="words"):
        _core.sync.sync_wait(np.zeros(16, dtype=np.int64)[::2], [0], 1, 0.0)
    with pytest.raises(ValueError, match="index"):
        _core.sync.sync_publish(words, 8, 1, 0)
    with pytest.raises(ValueError, match="sleeping"):
        _core.sync.sync_publish(words, 0, 1, -1)
    with pytest.raises(ValueError, match="indices"):
        _core.sync.sync_wait(words, [0, 9], 1, 0.0)
    with pytest.raises(ValueError, match="indices"):
        _core.sync.sync_prepare_sleep(words, 0, [-1], 1)
    with pytest.raises(ValueError, match="spin_s"):
        _core.sync.sync_wait(words, [0], 1, -1.0)
    with pytest.raises(ValueError, match="spin_s"):
        _core.sync.sync_wait(words, [0], 1, float("nan"))
    readonly = np.zeros(8, dtype=np.int64)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        _core.sync.sync_publish(readonly, 0, 1, 1)
    assert _core.sync.sync_wait(readonly, [0], 0, 0.0) is True  # reading through a read-only view is fine


def _ping_pong(words: np.ndarray, me: int, other: int, sock: socket.socket, rounds: int, spin_s: float) -> None:
    """Each round: wait for the other side's counter to reach k (sleeping on the socket when spinning fails),
    then publish our own k and wake the other side if it sleeps.  A lost wake-up shows as a 5 s poll timeout."""
    mine, theirs = 8 * me, 8 * other
    my_sleep = 8 * me + 1
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    for k in range(1, rounds + 1):
        if me == 0 and _core.sync.sync_publish(words, mine, k, 8 * other + 1):  # side 0 opens every round
            os.write(sock.fileno(), b"w")
        while not (_core.sync.sync_wait(words, [theirs], k, spin_s)
                   or _core.sync.sync_prepare_sleep(words, my_sleep, [theirs], k)):
            if not poller.poll(5000):
                raise TimeoutError(f"side {me} lost a wake-up in round {k}")
            os.read(sock.fileno(), 1)
            words[my_sleep] = 0
        if me == 1 and _core.sync.sync_publish(words, mine, k, 8 * other + 1):
            os.write(sock.fileno(), b"w")


def _child(buf: mmap.mmap, sock: socket.socket, rounds: int, spin_s: float) -> None:
    _ping_pong(np.ndarray(24, dtype=np.int64, buffer=buf), 1, 0, sock, rounds, spin_s)


@pytest.mark.parametrize("spin_s", [0.0, 2e-5])
def test_two_processes_never_lose_a_wake_up(spin_s: float) -> None:
    buf = mmap.mmap(-1, 24 * 8)
    words = np.ndarray(24, dtype=np.int64, buffer=buf)
    a, b = socket.socketpair()
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_child, args=(buf, b, 3000, spin_s))
    child.start()
    try:
        _ping_pong(words, 0, 1, a, 3000, spin_s)
        child.join(10)
        assert child.exitcode == 0
        assert words[0] == words[8] == 3000
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        a.close()
        b.close()
        del words
        buf.close()
