"""Index arrays checked with the GIL held and read after it is released: another Python thread refilling the
caller's ``lengths`` (group kernels) or discrete ``actions`` (``ppo_loss_grad``) with out-of-range values while
the kernel runs must give a ValueError or a correct result, never an out-of-bounds read or write. The bindings
copy these small arrays before checking them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from rltrain import kernels, reference

pytestmark = pytest.mark.timeout(120)


def _race(buffer: np.ndarray, valid: np.ndarray, bad: np.ndarray, call: Callable[[], object],
          check: Callable[[object], bool], rounds: int = 300) -> tuple[int, int]:
    """Runs ``call`` ``rounds`` times while another thread flips ``buffer`` between ``valid`` and ``bad``."""
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            buffer[...] = bad
            buffer[...] = valid
            time.sleep(0)  # hands the GIL back while the buffer is valid, so most calls get past the check

    flipper = threading.Thread(target=flip)
    flipper.start()
    ok = refused = 0
    try:
        for _ in range(rounds):
            try:
                result = call()
            except ValueError as exc:
                assert "lengths" in str(exc) or "actions" in str(exc), exc
                refused += 1
            else:
                assert check(result)
                ok += 1
    finally:
        stop.set()
        flipper.join()
    return ok, refused


@pytest.mark.parametrize("kernel", ["episodic_advantages", "per_step_advantages", "hybrid_advantages"])
def test_group_kernel_lengths_refilled_meanwhile(kernel: str) -> None:
    rng = np.random.default_rng(0)
    G, T = 16, 512
    rewards = rng.standard_normal((G, T))
    valid = rng.integers(0, T + 1, size=G).astype(np.int64)
    bad = np.full(G, 1 << 40, dtype=np.int64)  # far outside any buffer
    lengths = valid.copy()
    fn = getattr(kernels, kernel)
    want = getattr(reference, kernel)(rewards, valid)
    ok, refused = _race(lengths, valid, bad, lambda: fn(rewards, lengths),
                        lambda r: np.allclose(r, want, rtol=1e-9, atol=1e-12))
    assert ok + refused == 300


def test_ppo_loss_grad_actions_refilled_meanwhile() -> None:
    rng = np.random.default_rng(1)
    B, A = 4096, 4
    head = rng.normal(size=(B, A))
    valid = rng.integers(0, A, B).astype(np.int64)
    bad = np.full(B, 1 << 40, dtype=np.int64)
    actions = valid.copy()
    vecs = [rng.normal(size=B) for _ in range(5)]
    dh, dv = np.empty_like(head), np.empty(B)
    ref_dh, ref_dv = np.empty_like(head), np.empty(B)
    reference.ppo_loss_grad(head, valid, *vecs, clip=0.2, clip_vf=None, ent_coef=0.01, vf_coef=0.5,
                            dhead=ref_dh, dvalues=ref_dv)

    def call() -> object:
        kernels.ppo_loss_grad(head, actions, *vecs, clip=0.2, clip_vf=None, ent_coef=0.01, vf_coef=0.5,
                              dhead=dh, dvalues=dv)
        return dh

    ok, refused = _race(actions, valid, bad, call, lambda _: np.allclose(dh, ref_dh, rtol=1e-9, atol=1e-12),
                        rounds=300)
    assert ok + refused == 300
