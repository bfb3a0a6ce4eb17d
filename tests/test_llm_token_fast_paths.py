"""The per-token kernels' two special paths (SPEC §6 rules unchanged):

* few long rows (``B`` below the scan's lane block, 8 rows for ``token_returns`` and 4 for ``token_gae``, with
  ``L >= 512 * block``) run as a blocked scan (long_row_scan.hpp: blocks of 16 float / 8 double tokens composed
  inside a vector). Its blocks depend on ``L`` only, so results are bit-identical for any thread count and on every
  vector clone, but composed maps round differently from the row order: against the float64 reference each result
  is within ``4 * eps * sum(|r| + |v|)`` of its row, the bound the row-order float computation itself meets
  (checked here too); a row with an inf or NaN is computed in the row order. Every other shape stays
  bit-identical to the reference (test_llm_token_kernels.py).
* ``out=`` that is exactly an input of an elementwise kernel (``masked_whiten(x, m, out=x)``,
  ``kl_estimate(lp, ref, out=lp)``) runs in place without a scratch buffer; a partial overlap still goes through
  scratch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rltrain import _core
from rltrain import kernels as K
from rltrain import reference as R
from rltrain.kernels import llm_token

F_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]


def _masks(b: np.ndarray, dtype: np.dtype, rng: np.random.Generator) -> list[np.ndarray]:
    w = np.where(b, rng.random(b.shape), 0.0)
    return [b, b.astype(np.uint8) * 3, b.astype(np.int64), b.astype(dtype), w.astype(dtype)]


def _within(got: np.ndarray, want64: np.ndarray, scale: np.ndarray, dtype: np.dtype) -> None:
    tol = 4 * float(np.finfo(dtype).eps) * scale
    err = np.abs(got.astype(np.float64) - want64)
    assert np.all(err <= tol), f"max error {err.max():.3g}, bound {tol.min():.3g}"


# shapes on both sides of the rule: (B, L, chunked for token_returns, chunked for token_gae)
SHAPES = [(1, 4096, True, True), (1, 4095, False, True), (3, 4099, True, True), (1, 2048, False, True),
          (1, 2047, False, False), (7, 5000, True, False), (8, 4096, False, False), (1, 16384, True, True),
          (2, 9000, True, True)]


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize(("B", "L", "ret_chunked", "gae_chunked"), SHAPES)
def test_chunked_scans_within_bound(B: int, L: int, ret_chunked: bool, gae_chunked: bool, dtype: np.dtype) -> None:
    rng = np.random.default_rng(B * 100_003 + L)
    r = rng.standard_normal((B, L)).astype(dtype)
    v = rng.standard_normal((B, L)).astype(dtype)
    b = rng.random((B, L)) < 0.9
    b[:, L // 3 : L // 3 + 700] = False  # a masked span across chunk boundaries
    r64, v64 = r.astype(np.float64), v.astype(np.float64)
    masks = _masks(b, dtype, rng)
    for m in masks if L < 10_000 else masks[::2]:  # the references loop in Python: fewer masks on long rows
        for masked in ("restart", "carry"):
            got = K.token_returns(r, m, gamma=0.999, masked=masked)
            seq = R.token_returns(r, m, gamma=0.999, masked=masked)
            want = R.token_returns(r64, m, gamma=0.999, masked=masked)
            scale = np.abs(r64).sum(axis=1, keepdims=True)
            _within(seq, want, scale, dtype)  # the bound holds for the row order itself
            _within(got, want, scale, dtype)
            if not ret_chunked:
                np.testing.assert_array_equal(got, seq)
        got_a, got_r = K.token_gae(r, v, m, gamma=0.999, lam=0.95)
        seq_a, seq_r = R.token_gae(r, v, m, gamma=0.999, lam=0.95)
        want_a, want_r = R.token_gae(r64, v64, m, gamma=0.999, lam=0.95)
        scale = (np.abs(r64) + np.abs(v64)).sum(axis=1, keepdims=True)
        for got, seq, want in ((got_a, seq_a, want_a), (got_r, seq_r, want_r)):
            _within(seq, want, scale, dtype)
            _within(got, want, scale, dtype)
            if not gae_chunked:
                np.testing.assert_array_equal(got, seq)


def test_chunked_scans_known_values() -> None:
    """gamma = 1, all tokens set: the return is the reversed cumulative sum, exact on integers."""
    L = 40_000
    r = (np.arange(L) % 7 - 3).astype(np.float64)[None, :]
    m = np.ones((1, L), bool)
    want = np.cumsum(r[:, ::-1], axis=1)[:, ::-1]
    np.testing.assert_array_equal(K.token_returns(r, m), want)
    np.testing.assert_array_equal(K.token_returns(r, m, masked="carry"), want)
    v = np.full((1, L), 0.5)
    adv, ret = K.token_gae(r, v, m)  # lam = gamma = 1: return-to-go minus V
    np.testing.assert_array_equal(adv, want - 0.5)
    np.testing.assert_array_equal(ret, want)


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_chunked_scans_identical_for_any_thread_count(dtype: np.dtype, restore_threads: None) -> None:
    """Rows long enough for several pool tasks of chunks."""
    rng = np.random.default_rng(11)
    B, L = 2, 200_003
    r, v = rng.standard_normal((B, L)).astype(dtype), rng.standard_normal((B, L)).astype(dtype)
    m = rng.random((B, L)) < 0.8
    results = {}
    for k in (1, 2, 4):
        K.set_num_threads(k)
        results[k] = (K.token_returns(r, m, gamma=0.99), K.token_returns(r, m, masked="carry"),
                      *K.token_gae(r, v, m, gamma=0.99, lam=0.9))
    for k in (2, 4):
        for a, b in zip(results[1], results[k]):
            assert a.tobytes() == b.tobytes(), f"{k} threads differ from 1 thread"


# --------------------------------------------------------------------------------------- in-place elementwise


def _no_scratch(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("went through a scratch buffer")

    monkeypatch.setattr(llm_token, "copy_into", fail)


@pytest.mark.parametrize("container", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", F_DTYPES)
def test_elementwise_out_same_buffer_runs_in_place(container: str, dtype: np.dtype,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((37, 3001)).astype(dtype)  # several pool tasks
    ref = -rng.random(x.shape).astype(dtype)
    m = rng.random(x.shape) < 0.7
    want_w = K.masked_whiten(x, m, shift_mean=False)
    want_k = {kind: K.kl_estimate(x, ref, m, kind=kind) for kind in ("k3", "k2")}

    def wrap(a: np.ndarray) -> Any:
        return torch.from_numpy(a) if container == "torch" else a

    _no_scratch(monkeypatch)
    buf = x.copy()
    t = wrap(buf)
    assert K.masked_whiten(t, m, shift_mean=False, out=t) is t
    np.testing.assert_array_equal(buf, want_w)
    for kind, want in want_k.items():
        a, b = x.copy(), ref.copy()
        ta, tb = wrap(a), wrap(b)
        assert K.kl_estimate(ta, tb, m, kind=kind, out=ta) is ta
        np.testing.assert_array_equal(a, want)
        a = x.copy()
        ta = wrap(a)
        assert K.kl_estimate(ta, tb, m, kind=kind, out=tb) is tb  # out = ref_logp
        np.testing.assert_array_equal(b, want)
    view = x.copy()
    alias = view[...]  # another view object of the same memory and layout
    K.masked_whiten(view, m, shift_mean=False, out=alias)
    np.testing.assert_array_equal(view, want_w)


def test_partial_overlap_still_goes_through_scratch() -> None:
    rng = np.random.default_rng(13)
    base = rng.standard_normal(2 * 4001)
    x = base[:4000].copy()
    m = rng.random(4000) < 0.6
    want = K.masked_whiten(x, m)
    buf = base.copy()
    src, dst = buf[:4000], buf[1:4001]  # out shifted by one element against x
    src[...] = x
    K.masked_whiten(src, m, out=dst)
    np.testing.assert_array_equal(dst, want)
    lp, refp = -rng.random(4000), -rng.random(4000)
    want_k = K.kl_estimate(lp, refp)
    buf2 = np.concatenate([lp, [0.0]])
    K.kl_estimate(buf2[:4000], refp, out=buf2[1:])
    np.testing.assert_array_equal(buf2[1:], want_k)
    # the mask, even the same buffer as out, is read through scratch
    mf = m.astype(np.float64)
    want_m = K.kl_estimate(lp, refp, mf)
    K.kl_estimate(lp, refp, mf, out=mf)
    np.testing.assert_array_equal(mf, want_m)


@pytest.fixture
def restore_isa() -> Any:
    yield
    _core._testing.set_isa_cap(2)


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_long_row_scan_same_bits_on_every_clone(dtype: np.dtype, restore_isa: None) -> None:
    """The blocked scan of few long rows (long_row_scan.hpp) runs the same vector operations in the baseline, AVX2
    and AVX-512 clones: the same bits on each (the clones this CPU cannot run are not compared)."""
    rng = np.random.default_rng(21)
    B, L = 3, 9001  # L mod 16 and L mod 8 != 0: the row-order head runs too
    r, v = rng.standard_normal((B, L)).astype(dtype), rng.standard_normal((B, L)).astype(dtype)
    b = rng.random((B, L)) < 0.85
    b[1, 4000:4800] = False
    w = np.where(b, rng.random((B, L)), 0.0)
    masks = [b, b.astype(np.uint8) * 5, b.astype(np.int64), w.astype(np.float32), w.astype(np.float64)]
    results = []
    for cap in range(_core._testing.cpu_isa() + 1):
        _core._testing.set_isa_cap(cap)
        out = []
        for m in masks:
            out += [K.token_returns(r, m, gamma=0.99), K.token_returns(r, m, gamma=0.99, masked="carry"),
                    *K.token_gae(r, v, m, gamma=0.99, lam=0.95)]
        results.append(out)
    for cap, res in enumerate(results[1:], 1):
        for i, (a, c) in enumerate(zip(results[0], res)):
            assert a.tobytes() == c.tobytes(), f"clone {cap} differs from the baseline (result {i})"


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's inf * 0
def test_long_row_scan_non_finite_where_the_row_order_has_them(dtype: np.dtype) -> None:
    """An inf or NaN reaches the same positions as in the row order (and only those)."""
    rng = np.random.default_rng(22)
    L = 4100
    r, v = rng.standard_normal((1, L)).astype(dtype), rng.standard_normal((1, L)).astype(dtype)
    m = rng.random((1, L)) < 0.9
    m[0, 2000:2100] = False
    r[0, 3000], r[0, 1500], v[0, 600] = np.inf, np.nan, -np.inf
    for masked in ("restart", "carry"):
        got, want = K.token_returns(r, m, gamma=0.99, masked=masked), R.token_returns(r, m, gamma=0.99, masked=masked)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    for got, want in zip(K.token_gae(r, v, m, gamma=0.99, lam=0.95), R.token_gae(r, v, m, gamma=0.99, lam=0.95)):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_long_row_gae_float_mask_of_zeros_and_ones_equals_bool_mask(dtype: np.dtype) -> None:
    """A float mask holding only 0.0 and 1.0 takes the same select path as a bool mask (the same bits); one
    fractional value (or a -0.0) anywhere sends the row through the arithmetic scan, still within the bound."""
    rng = np.random.default_rng(23)
    L = 6000
    r, v = rng.standard_normal((1, L)).astype(dtype), rng.standard_normal((1, L)).astype(dtype)
    b = rng.random((1, L)) < 0.8
    want = K.token_gae(r, v, b, gamma=0.99, lam=0.95)
    for got, w in zip(K.token_gae(r, v, b.astype(dtype), gamma=0.99, lam=0.95), want):
        assert got.tobytes() == w.tobytes()
    r64, v64 = r.astype(np.float64), v.astype(np.float64)
    scale = (np.abs(r64) + np.abs(v64)).sum(axis=1, keepdims=True)
    for odd in (0.5, -0.0):
        m = b.astype(dtype)
        m[0, 77] = odd
        got_a, got_r = K.token_gae(r, v, m, gamma=0.99, lam=0.95)
        want_a, want_r = R.token_gae(r64, v64, m, gamma=0.99, lam=0.95)
        _within(got_a, want_a, scale, dtype)
        _within(got_r, want_r, scale, dtype)


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize("hidden", [None, np.nan, np.inf, 1e100, 1e200])
def test_masked_whiten_zero_weight_blocks_as_the_reference(dtype: np.dtype, hidden: float | None) -> None:
    """Blocks whose weights are all 0 add nothing to the variance unless a value there is not finite, or so large
    that its squared deviation overflows (then verl's sum((x - mean)^2 * mask) is NaN, and so is every output)."""
    rng = np.random.default_rng(24)
    L = 32_768
    x = rng.standard_normal((1, L)).astype(dtype)
    for m in ((np.arange(L) < L * 3 // 4)[None, :], (np.arange(L) < L * 3 // 4).astype(dtype)[None, :]):
        xx = x.copy()
        if hidden is not None:
            with np.errstate(over="ignore"):
                xx[0, L - 100] = dtype.type(hidden)  # 1e200 is inf in float32
        got, want = K.masked_whiten(xx, m), R.masked_whiten(xx, m)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        tol = 8 * float(np.finfo(dtype).eps) * float(np.abs(want[ok]).max(initial=1.0))
        np.testing.assert_allclose(got[ok], want[ok], rtol=0, atol=tol)
