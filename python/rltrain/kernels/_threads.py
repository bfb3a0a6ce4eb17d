"""The size of the kernel thread pool (one fixed pool in C++, shared by every kernel)."""

from __future__ import annotations

from rltrain import _core
from rltrain._checks import integer


def set_num_threads(num_threads: int) -> None:
    """Sets the size of the kernel thread pool (default: ``RLTRAIN_NUM_THREADS``, else the CPUs this process may
    use: its affinity mask and cgroup CPU quota). The new pool is started before the old one is dropped: if its
    threads cannot be created, ``RuntimeError`` and the old pool stays in use.

    Results are identical for any thread count."""
    _core.kernels.set_num_threads(integer(num_threads, "num_threads", lo=1, hi=int(_core.MAX_THREADS)))


def get_num_threads() -> int:
    """The number of threads (caller included) the kernels use."""
    return int(_core.kernels.get_num_threads())
