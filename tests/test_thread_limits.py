"""Thread counts: resizing the kernel pool while kernels run on other threads, bounds on every count, a default
that follows the CPUs the process may use (affinity mask, cgroup quota) for the kernel pool, the native batcher
and the fork backend alike, and thread creation failing part-way (a RuntimeError, the old pool kept)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import rltrain
from rltrain import _core, kernels, reference

pytestmark = pytest.mark.timeout(180)


def _run(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "RLTRAIN_NUM_THREADS"} | env
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=environ, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_resize_while_a_kernel_runs_on_another_thread(restore_threads: None) -> None:
    # The GIL is released inside the kernel, so set_num_threads runs while a pool is in use. Before the pool was
    # reference-counted this freed a pool under the running kernel (a hang or a crash).
    rng = np.random.default_rng(0)
    rewards = rng.standard_normal((64, 16, 256))
    lengths = rng.integers(0, 257, size=(64, 16))
    want = reference.per_step_advantages(rewards, lengths, gamma=0.99)
    stop = threading.Event()
    results: list[bool] = []
    errors: list[BaseException] = []

    def compute() -> None:
        try:
            while not stop.is_set():
                results.append(bool(np.allclose(kernels.per_step_advantages(rewards, lengths, gamma=0.99), want)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=compute)
    worker.start()
    try:
        for i in range(1000):
            kernels.set_num_threads(1 + i % 4)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive() and not errors, errors
    assert results and all(results)


@pytest.mark.parametrize("bad", [0, -1, _core.MAX_THREADS + 1, 10**12])
def test_kernel_thread_count_bounds(bad: int, restore_threads: None) -> None:
    with pytest.raises(ValueError, match=rf"num_threads: expected an integer in \[1, {_core.MAX_THREADS}\]"):
        kernels.set_num_threads(bad)
    with pytest.raises(TypeError, match="num_threads"):
        kernels.set_num_threads(True)


def test_native_batcher_thread_count_bound() -> None:
    with pytest.raises(ValueError, match=rf"num_threads: expected an integer in \[1, {_core.MAX_THREADS}\]"):
        rltrain.make_vec("CartPole-v1", 4, num_threads=_core.MAX_THREADS + 1)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_defaults_follow_the_affinity_mask() -> None:
    # As under `taskset -c 0`: one CPU. Every pool defaults to it; RLTRAIN_NUM_THREADS still wins.
    code = """
        import os
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
        import rltrain
        from rltrain import _core, kernels
        from rltrain.vec.fork import ForkVectorEnv
        import gymnasium as gym
        assert _core.available_cpus() == 1 and _core.default_num_threads() == 1
        assert kernels.get_num_threads() == 1
        with rltrain.make_vec("CartPole-v1", 8) as env:
            assert env._core.num_threads == 1, env._core.num_threads
        with ForkVectorEnv([lambda: gym.make("CartPole-v1")] * 4) as env:
            assert env.num_workers == 1, env.num_workers
        print("ok")
    """
    assert _run(code) == "ok"
    assert _run("from rltrain import _core, kernels; print(_core.default_num_threads(), kernels.get_num_threads())",
                RLTRAIN_NUM_THREADS="3") == "3 3"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="limits the address space with RLIMIT_AS (Linux)")
def test_thread_creation_failing_part_way_keeps_the_old_pool() -> None:
    # Each thread reserves a stack (8 MiB by default); with the address space capped a little above what the
    # process already uses, a pool of 200 threads cannot be completed. The threads already started are joined,
    # the call raises RuntimeError and the previous pool keeps computing.
    code = """
        import resource, numpy as np
        from rltrain import kernels, reference
        kernels.set_num_threads(2)
        r = np.random.default_rng(0).standard_normal((8, 4096))
        want = reference.gae(r, r, np.zeros(r.shape, bool), r[0], gamma=0.9, lam=0.9)[0]
        vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize:")) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (vm + 64 * 2**20, resource.RLIM_INFINITY))
        try:
            kernels.set_num_threads(200)
        except RuntimeError as e:
            assert "could not start the threads" in str(e) and "previous pool is kept" in str(e), e
        else:
            raise AssertionError("200 threads started within 64 MiB of address space")
        assert kernels.get_num_threads() == 2
        got = kernels.gae(r, r, np.zeros(r.shape, bool), r[0], gamma=0.9, lam=0.9)[0]
        assert np.allclose(got, want)
        print("ok")
    """
    assert _run(code) == "ok"
