"""What the caller and its fork workers agree on: message tags, the shared word array, the shared-memory layout.

Steps travel through shared memory: the caller writes the actions and a sequence number into the worker's command
word; the worker steps its slice, writes the results and publishes the same number in its done word (with how it
ended: ok, an info payload, an error). Control commands (start-up, reset, call/get_attr/set_attr, quit) and the
rare payloads (non-empty infos, errors) travel on a socket pair as one tag byte and a length-framed pickle.
A side about to sleep raises its "sleeping" word; the publisher then writes one wake-up byte (:data:`HINT`).
"""

from __future__ import annotations

import math
import mmap
import os
import pickle
import signal
import socket
import struct
import tempfile
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

# Commands, main -> worker.  One byte each; RESET and CALL are followed by a framed pickle.
RESET = b"r"
CALL = b"c"
MEMORY = b"m"  # carries the shared-memory file descriptor (SCM_RIGHTS)
QUIT = b"q"
# Replies, worker -> main.  DATA and ERROR are followed by a framed pickle.
OK = b"k"
DATA = b"d"
ERROR = b"e"
# Either way: "I published something in the shared words while you were (about to be) asleep; look again."
# Only ever a wake-up, and only ever between messages; readers skip it wherever it turns up, a stale one included.
HINT = b"w"

LENGTH = struct.Struct("<Q")
"""The length prefix of a framed pickle."""

# The shared word array (int64): per worker w a 128-byte pair of cache lines, then the caller's sleeping word.
#   [16w]     step sequence number, written by the caller      [16w+1] 1 when only `active` envs step
#   [16w+2]   the worker sleeps on its socket
#   [16w+8]   sequence number of the last step it finished     [16w+9] how: REPLY_OK / REPLY_DATA / REPLY_ERROR
WORDS_PER_WORKER = 16
REPLY_OK, REPLY_DATA, REPLY_ERROR = 0, 1, 2
_ALIGN = 64  # keep every array on its own cache line so workers writing neighbouring slices rarely collide


def cmd_word(w: int) -> int:
    """Worker ``w``'s command word; ``+1`` the "only active envs" flag, ``+2`` its sleeping word."""
    return WORDS_PER_WORKER * w


def done_word(w: int) -> int:
    """Worker ``w``'s done word; ``+1`` how the step ended (``REPLY_*``)."""
    return WORDS_PER_WORKER * w + 8


def caller_sleep_word(num_workers: int) -> int:
    """The caller's sleeping word."""
    return WORDS_PER_WORKER * num_workers


PARENT_SOCKETS: set[socket.socket] = set()
"""Main-side sockets of every live ForkVectorEnv in this process.  A freshly forked worker closes its copies,
otherwise a worker of one pool would keep another pool's (or a sibling's) socket open and hide its EOF."""

RESET_SIGNALS = frozenset(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2") if hasattr(signal, name)
) if hasattr(signal, "pthread_sigmask") else frozenset()
"""Signals whose handlers a worker does not inherit: blocked in the parent across each fork, reset to the
default action in the child, then unblocked there."""


def array_spec(space: gym.Space[Any], what: str) -> tuple[tuple[int, ...], np.dtype[Any]]:
    """Shape and dtype of one element of a space that maps onto a fixed-size numpy array."""
    if isinstance(space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
        assert space.dtype is not None and space.shape is not None
        return tuple(space.shape), np.dtype(space.dtype)
    raise TypeError(
        f"ForkVectorEnv supports Box, Discrete, MultiDiscrete and MultiBinary {what} spaces, got {space!r}; "
        "flatten it first (e.g. gymnasium.wrappers.FlattenObservation) or use gymnasium's AsyncVectorEnv"
    )


@dataclass(frozen=True)
class Layout:
    """Byte offsets of the arrays in the shared block; main and workers compute it from the same spaces."""

    fields: tuple[tuple[str, tuple[int, ...], np.dtype[Any], int], ...]
    nbytes: int

    @classmethod
    def build(cls, num_envs: int, num_workers: int, obs_space: gym.Space[Any], act_space: gym.Space[Any]) -> Layout:
        obs_shape, obs_dtype = array_spec(obs_space, "observation")
        act_shape, act_dtype = array_spec(act_space, "action")
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
        num_words = caller_sleep_word(num_workers) + 8
        fields: list[tuple[str, tuple[int, ...], np.dtype[Any], int]] = [
            ("words", (num_words,), np.dtype(np.int64), 0)
        ]
        offset = num_words * 8
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


def send_message(sock: socket.socket, tag: bytes, obj: Any) -> None:
    """One framed pickle: ``tag``, its length, its bytes."""
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(tag + LENGTH.pack(len(data)) + data)


def shared_block(nbytes: int) -> tuple[int, mmap.mmap]:
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
