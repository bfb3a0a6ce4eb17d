"""The per-token LLM kernels (``token_returns``, ``token_gae``, ``masked_whiten``, ``kl_estimate``) == their NumPy
references, and ``aggregate_loss`` == its definition, gradients included (SPEC §6).

The reverse scans run the reference's operations in the same order (``-ffp-contract=off``, lanes included), so
they are compared bit for bit, float32 too. ``masked_whiten`` sums in blocks (a different order) and is compared
within a few ulps; ``kl_estimate`` k3 uses its own vectorised exp (<= 1 ulp from libm), compared within a bound
that scales with ``exp(kl) + |kl| + 1``. Values are drawn on a coarse grid (integers / 8) so that the sums of
the whitening are exact and the comparisons well conditioned. At the end, a few sanity checks against verl 0.9.1
itself (skipped when verl is not importable).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rltrain import _core
from rltrain import kernels as K
from rltrain import reference as R

F_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
MASK_KINDS = ["bool", "uint8", "float_same", "float_other", "int64"]
OUT_KINDS = [None, "numpy", "numpy_strided", "torch"]
KL_NAMES = ["k1", "kl", "k2", "mse", "k3", "low_var_kl", "abs"]

unit = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]), st.floats(0.0, 1.0))


# ------------------------------------------------------------------------------------------------ helpers


@st.composite
def grid(draw: Any, shape: tuple[int, ...], lo: int = -400, hi: int = 400) -> np.ndarray:
    """float64 integers / 8 in [lo/8, hi/8] (an array also for shape ())."""
    return np.asarray(draw(hnp.arrays(np.int64, shape, elements=st.integers(lo, hi))), np.float64) / 8.0


@st.composite
def mask_pattern(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean mask: random holes, a response prefix per row with fully masked rows, all set, or none."""
    kind = draw(st.sampled_from(["random", "prefix", "all", "none"]))
    if kind == "random":
        return draw(hnp.arrays(np.bool_, shape))
    if kind == "prefix" and len(shape) == 2:
        lengths = draw(hnp.arrays(np.int64, shape[:1], elements=st.integers(0, shape[1])))
        return np.arange(shape[1])[None, :] < lengths[:, None]
    return np.full(shape, kind == "all", bool)


def encode_mask(b: np.ndarray, kind: str, dtype: np.dtype, weights: np.ndarray | None = None) -> np.ndarray:
    """The same mask as bool, uint8 (non-zero values other than 1), int64, or float (0/1, or ``weights`` where
    set) of the data's dtype or of the other float dtype."""
    b = np.asarray(b)
    if kind == "bool":
        return b.copy()
    if kind == "uint8":
        return b.astype(np.uint8) * np.uint8(3)
    if kind == "int64":
        return b.astype(np.int64) * 5
    fdt = dtype if kind == "float_same" else (np.float64 if dtype == np.float32 else np.float32)
    m = b.astype(fdt)
    if weights is not None:
        m = np.where(b, weights, 0.0).astype(fdt)
    return m


def convert(x: np.ndarray | None, container: str, layout: str) -> Any:
    if x is None:
        return None
    x = np.asarray(x)  # 0-d arithmetic gives NumPy scalars
    if layout == "f" and x.ndim:
        x = np.asfortranarray(x)
    elif layout == "strided" and x.ndim:
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        x = big[..., ::2]
    return torch.from_numpy(x) if container == "torch" else x


def make_out(shape: tuple[int, ...], dtype: np.dtype, kind: str | None) -> Any:
    """An ``out=`` buffer prefilled with NaN, so that unwritten entries show."""
    if kind is None:
        return None
    base = np.full(shape, np.nan, dtype)
    if kind == "numpy":
        return base
    if kind == "numpy_strided":
        return convert(base, "numpy", "strided") if base.ndim else base
    return torch.from_numpy(base)


def result(x: Any, dtype: np.dtype, container: str, out: Any = None) -> np.ndarray:
    """Checks the returned object's type, identity (``out=``) and dtype; returns it as a NumPy array."""
    if out is not None:
        assert x is out, "the kernel must return the out= object itself"
    elif container == "torch":
        assert isinstance(x, torch.Tensor), f"torch in -> torch out, got {type(x)}"
    else:
        assert isinstance(x, np.ndarray), f"numpy in -> numpy out, got {type(x)}"
    a = x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    assert a.dtype == dtype
    return a


def bits_equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    if not bits_equal(got, want):
        bad = np.argwhere(got.view(np.uint8).reshape(-1) != want.view(np.uint8).reshape(-1))[:1]
        raise AssertionError(f"not bit-identical (first differing byte {bad.tolist()}): got {got}, want {want}")


def assert_whitened(got: np.ndarray, want: np.ndarray, x: np.ndarray, mask: np.ndarray, shift_mean: bool,
                    eps_: float) -> None:
    """Within 4 units of the terms' magnitudes, ``|(x - mean) * inv| (+ |mean|)``: the variance is summed in
    another order, and ``(x - mean) * inv + mean`` may cancel."""
    assert got.shape == want.shape and got.dtype == want.dtype
    m = mask.astype(np.float64) if mask.dtype.kind == "f" else (mask != 0).astype(np.float64)
    xs = x.astype(np.float64)
    n = m.sum()
    mean = (xs * m).sum() / n
    inv = 1.0 / np.sqrt(((xs - mean) ** 2 * m).sum() / (n - 1) + eps_)
    scale = np.abs(want.astype(np.float64)) + np.abs((xs - mean) * inv) + (0.0 if shift_mean else abs(mean))
    tol = 4 * float(np.finfo(want.dtype).eps) * scale
    np.testing.assert_array_less(np.abs(got.astype(np.float64) - want), tol + 1e-300)


def assert_k3(got: np.ndarray, want: np.ndarray, kl: np.ndarray) -> None:
    """k3 = exp(kl) - kl - 1 within 4 eps of exp(kl) + |kl| + 1 (the exps are <= 1 ulp apart; the difference
    cancels near kl = 0); inf and NaN where the reference has them."""
    assert got.shape == want.shape and got.dtype == want.dtype
    g, w = got.astype(np.float64), want.astype(np.float64)
    finite = np.isfinite(w)
    assert np.array_equal(g[~finite], w[~finite], equal_nan=True)
    with np.errstate(over="ignore"):
        scale = np.exp(kl.astype(np.float64)) + np.abs(kl) + 1.0
    tol = 4 * float(np.finfo(want.dtype).eps) * scale
    np.testing.assert_array_less(np.abs(g - w)[finite], tol[finite] + 1e-300)


# ------------------------------------------------------------------------------------- token_returns, gae


@given(data=st.data())
def test_token_returns_match_reference(data: st.DataObject) -> None:
    B = data.draw(st.integers(0, 19), label="B")
    L = data.draw(st.integers(0, 23), label="L")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    r = data.draw(grid((B, L)), label="rewards").astype(dtype)
    bmask = data.draw(mask_pattern((B, L)), label="mask")
    weights = data.draw(grid((B, L), 0, 16), label="weights") if data.draw(st.booleans(), label="weighted") else None
    mask_kind = data.draw(st.sampled_from(MASK_KINDS), label="mask_kind")
    mask = encode_mask(bmask, mask_kind, dtype, weights if mask_kind.startswith("float") else None)
    gamma = data.draw(unit, label="gamma")
    masked = data.draw(st.sampled_from(["restart", "carry"]), label="masked")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(["c", "f", "strided"]), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")

    want = R.token_returns(r, mask, gamma=gamma, masked=masked)
    out = make_out((B, L), dtype, out_kind)
    got = K.token_returns(convert(r, container, layout), convert(mask, container, layout), gamma=gamma,
                          masked=masked, out=out)
    assert_bits(result(got, dtype, container, out), want)


@given(data=st.data())
def test_token_gae_matches_reference(data: st.DataObject) -> None:
    B = data.draw(st.integers(0, 19), label="B")
    L = data.draw(st.integers(0, 23), label="L")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    vdtype = data.draw(st.sampled_from([dtype, np.dtype(np.float64)]), label="values_dtype")  # promotion
    r = data.draw(grid((B, L)), label="rewards").astype(dtype)
    v = data.draw(grid((B, L)), label="values").astype(vdtype)
    bmask = data.draw(mask_pattern((B, L)), label="mask")
    mask_kind = data.draw(st.sampled_from(MASK_KINDS), label="mask_kind")
    weights = data.draw(grid((B, L), 0, 16), label="weights") if mask_kind.startswith("float") else None
    rdtype = np.result_type(dtype, vdtype)
    mask = encode_mask(bmask, mask_kind, rdtype, weights)
    gamma, lam = data.draw(unit, label="gamma"), data.draw(unit, label="lam")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(["c", "f", "strided"]), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")

    want_adv, want_ret = R.token_gae(r, v, mask, gamma=gamma, lam=lam)
    out = None if out_kind is None else (make_out((B, L), rdtype, out_kind), make_out((B, L), rdtype, out_kind))
    got = K.token_gae(convert(r, container, layout), convert(v, container, layout), convert(mask, container, layout),
                      gamma=gamma, lam=lam, out=out)
    assert isinstance(got, tuple) and len(got) == 2
    assert_bits(result(got[0], rdtype, container, None if out is None else out[0]), want_adv)
    assert_bits(result(got[1], rdtype, container, None if out is None else out[1]), want_ret)


def test_token_scans_known_values() -> None:
    r = np.array([[1.0, 2.0, 3.0, 4.0]])
    m = np.array([[1, 0, 1, 1]], bool)
    # restart: from the back 4; 3 + 4 = 7; 2 + 7 = 9, masked -> run 0; 1 + 0 = 1
    np.testing.assert_array_equal(K.token_returns(r, m), [[1.0, 9.0, 7.0, 4.0]])
    # carry: 4; 7; masked: 0, the run 7 passes; 1 + 7 = 8
    np.testing.assert_array_equal(K.token_returns(r, m, masked="carry"), [[8.0, 0.0, 7.0, 4.0]])
    np.testing.assert_array_equal(K.token_returns(r, m, gamma=0.5, masked="carry"), [[3.5, 0.0, 5.0, 4.0]])
    # GAE with lam = 1, gamma = 1: advantage = return-to-go over response tokens minus V
    v = np.array([[0.5, 9.0, 0.25, 1.0]])
    adv, ret = K.token_gae(r, v, m, gamma=1.0, lam=1.0)
    np.testing.assert_array_equal(adv, [[7.5, 6.75, 6.75, 3.0]])
    np.testing.assert_array_equal(ret, adv + v)
    # lam = 0: the TD error, next value taken from the next response token (skipping the masked one)
    adv0, _ = K.token_gae(r, v, m, gamma=1.0, lam=0.0)
    np.testing.assert_array_equal(adv0[0, [0, 2, 3]], [1 + 0.25 - 0.5, 3 + 1 - 0.25, 4 - 1.0])


def test_scan_lanes_and_tails_match_reference(restore_threads: None) -> None:
    """Shapes around the lane blocks (8 / 4 rows, 4 / 2 columns) and over several pool tasks, power-of-two rows
    included, with every mask type."""
    rng = np.random.default_rng(3)
    K.set_num_threads(2)
    for B, L in [(37, 4099), (16, 4096), (9, 3), (8, 8192), (8, 1), (5, 2047)]:
        for dtype in F_DTYPES:
            r = (rng.integers(-400, 400, (B, L)) / 8).astype(dtype)
            v = (rng.integers(-400, 400, (B, L)) / 8).astype(dtype)
            b = rng.random((B, L)) < 0.8
            b[0] = False
            for kind in ("bool", "int64", "float_same", "float_other"):
                m = encode_mask(b, kind, dtype, rng.random((B, L)) if kind.startswith("float") else None)
                for masked in ("restart", "carry"):
                    assert_bits(K.token_returns(r, m, gamma=0.97, masked=masked),
                                R.token_returns(r, m, gamma=0.97, masked=masked))
                for got, want in zip(K.token_gae(r, v, m, gamma=0.99, lam=0.95),
                                     R.token_gae(r, v, m, gamma=0.99, lam=0.95)):
                    assert_bits(got, want)


# ----------------------------------------------------------------------------------------- masked_whiten


@given(data=st.data())
def test_masked_whiten_matches_reference(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(0, 9), min_size=1, max_size=3), label="shape"))
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    x = data.draw(grid(shape), label="x").astype(dtype)
    bmask = data.draw(hnp.arrays(np.bool_, shape), label="mask")
    mask_kind = data.draw(st.sampled_from(MASK_KINDS), label="mask_kind")
    weights = data.draw(grid(shape, 1, 16), label="weights") if mask_kind.startswith("float") else None
    mask = encode_mask(bmask, mask_kind, dtype, weights)
    shift_mean = data.draw(st.booleans(), label="shift_mean")
    eps = data.draw(st.sampled_from([1e-8, 0.0, 0.5]), label="eps")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")
    out = make_out(shape, dtype, out_kind)
    args = (convert(x, container, "c"), convert(mask, container, "c"))
    n = float(mask.astype(np.float64).sum()) if mask.dtype.kind == "f" else int(np.count_nonzero(mask))
    if not n >= 2:
        with pytest.raises(ValueError, match=r"^mask: expected at least 2"):
            R.masked_whiten(x, mask)
        with pytest.raises(ValueError, match=r"^mask: expected at least 2"):
            K.masked_whiten(*args, shift_mean=shift_mean, eps=eps, out=out)
        return
    want = R.masked_whiten(x, mask, shift_mean=shift_mean, eps=eps)
    got = result(K.masked_whiten(*args, shift_mean=shift_mean, eps=eps, out=out), dtype, container, out)
    # times_mask: the same whitening times the mask in the data's dtype, in one pass (bitwise the product)
    out_tm = make_out(shape, dtype, out_kind)
    got_tm = result(K.masked_whiten(*args, shift_mean=shift_mean, eps=eps, times_mask=True, out=out_tm), dtype,
                    container, out_tm)
    want_tm = R.masked_whiten(x, mask, shift_mean=shift_mean, eps=eps, times_mask=True)
    mask_t = R._mask_as(mask, dtype)
    with np.errstate(invalid="ignore"):
        assert_bits(got_tm, (got * mask_t).astype(dtype))
        np.testing.assert_array_equal(want_tm, (want * mask_t).astype(dtype))
    if not np.all(np.isfinite(want)):  # x constant over the mask with eps = 0: 0 * inf and +-inf
        np.testing.assert_array_equal(got, want)
        return
    assert_whitened(got, want, x, mask, shift_mean, eps)
    assert np.all(got_tm[mask_t == 0] == 0)  # finite whitened values times a 0 weight


def test_masked_whiten_known_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 100.0])
    m = np.array([1, 1, 1, 0])
    # mean 2, unbiased var 1: (x - 2) / sqrt(1 + eps); the masked entry is whitened with the same statistics
    np.testing.assert_allclose(K.masked_whiten(x, m), (x - 2.0) / np.sqrt(1.0 + 1e-8), rtol=1e-15)
    np.testing.assert_allclose(K.masked_whiten(x, m, shift_mean=False), (x - 2.0) / np.sqrt(1.0 + 1e-8) + 2.0)
    f = K.masked_whiten(x.astype(np.float32).reshape(2, 2), m.reshape(2, 2))
    assert f.dtype == np.float32 and f.shape == (2, 2)
    # weights: n = 2, mean = (0.5 * 1 + 1.5 * 3) / 2 = 2.5, var = (0.5 * 2.25 + 1.5 * 0.25) / 2 * 2 = 1.5
    w = np.array([0.5, 0.0, 1.5, 0.0])
    np.testing.assert_allclose(K.masked_whiten(x, w, eps=0.0), (x - 2.5) / np.sqrt(1.5), rtol=1e-15)
    # times_mask: verl's REINFORCE++ ``masked_whiten(returns, mask) * mask``; float weights scale the result
    np.testing.assert_allclose(K.masked_whiten(x, m, times_mask=True), [-1.0, 0.0, 1.0, 0.0] / np.sqrt(1.0 + 1e-8),
                               rtol=1e-15)
    np.testing.assert_allclose(K.masked_whiten(x, w, eps=0.0, times_mask=True),
                               [-1.5 * 0.5 / np.sqrt(1.5), 0.0, 0.5 * 1.5 / np.sqrt(1.5), 0.0], rtol=1e-15)


def test_masked_whiten_blocks_match_reference(restore_threads: None) -> None:
    """Several statistics blocks and pool tasks, blocks with no mask at all, and a large offset (a naive
    sum-of-squares formula would lose the variance)."""
    rng = np.random.default_rng(4)
    K.set_num_threads(3)
    for dtype in F_DTYPES:
        x = (1e4 + rng.standard_normal((97, 3001))).astype(dtype)
        m = rng.random(x.shape) < 0.5
        m[10:40] = False
        for mask in (m, m.astype(dtype) * rng.random(x.shape).astype(dtype)):
            # the mean (about 1e4) is summed in another order: its last bits differ, not the result's first 9
            np.testing.assert_allclose(K.masked_whiten(x, mask), R.masked_whiten(x, mask), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------------- kl_estimate


@given(data=st.data())
def test_kl_estimate_matches_reference(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(0, 9), min_size=0, max_size=3), label="shape"))
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    lp = data.draw(grid(shape, -480, 0), label="logp").astype(dtype)  # log-probabilities in [-60, 0]
    ref = data.draw(grid(shape, -480, 0), label="ref_logp").astype(dtype)
    kind = data.draw(st.sampled_from(KL_NAMES), label="kind")
    clamp = data.draw(st.booleans(), label="clamp")
    mask = None
    if data.draw(st.booleans(), label="with_mask"):
        kind_m = data.draw(st.sampled_from(MASK_KINDS), label="mask_kind")
        mask = encode_mask(data.draw(hnp.arrays(np.bool_, shape), label="mask"), kind_m, dtype)
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(["c", "f", "strided"]), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")
    out = make_out(shape, dtype, out_kind)

    lp, ref = np.asarray(lp), np.asarray(ref)
    want = R.kl_estimate(lp, ref, mask, kind=kind, clamp=clamp)
    got = K.kl_estimate(convert(lp, container, layout), convert(ref, container, layout),
                        convert(mask, container, layout), kind=kind, clamp=clamp, out=out)
    got = result(got, dtype, container, out)
    if R.KL_KINDS[kind] == "k3":
        kl = ref.astype(np.float64) - lp
        assert_k3(got, want, np.clip(kl, -20, 20) if clamp else kl)
    else:
        assert_bits(got, want)
    if mask is not None:
        assert np.all(got[np.asarray(mask) == 0] == 0)


def test_kl_estimate_known_values_and_edges() -> None:
    lp = np.array([-1.0, -2.0, -30.0, 0.0])
    ref = np.array([-2.0, -1.0, 0.0, -40.0])
    d = lp - ref
    np.testing.assert_array_equal(K.kl_estimate(lp, ref, kind="k1"), d)
    np.testing.assert_array_equal(K.kl_estimate(lp, ref, kind="kl"), d)
    np.testing.assert_array_equal(K.kl_estimate(lp, ref, kind="k2"), d * d / 2)
    np.testing.assert_array_equal(K.kl_estimate(lp, ref, kind="abs"), np.abs(d))
    np.testing.assert_allclose(K.kl_estimate(lp, ref), np.exp(-d) + d - 1, rtol=1e-15)
    clamped = K.kl_estimate(lp, ref, kind="low_var_kl", clamp=True)
    assert clamped[2] == 10.0  # kl = 30 -> 20: exp(20) - 21 -> 10
    assert clamped[3] == 10.0  # kl = -40 -> -20: exp(-20) + 19 -> 10
    np.testing.assert_allclose(clamped[:2], (np.exp(-d) + d - 1)[:2], rtol=1e-15)
    # a select, not a product: -inf log-probabilities at masked-out positions give exact zeros, not NaN
    lp2 = np.array([-np.inf, -1.0, np.nan], np.float32)
    ref2 = np.array([-1.0, -np.inf, -1.0], np.float32)
    m = np.array([0, 1, 0], np.uint8)
    for kind in ("k1", "k2", "k3", "abs"):
        got = K.kl_estimate(lp2, ref2, m, kind=kind)
        assert got[0] == 0 and got[2] == 0 and not np.signbit(got[0])
    assert K.kl_estimate(lp2, ref2, m, kind="k3")[1] == np.inf  # d = inf: exp(-inf) + inf - 1
    # overflow: exp(kl) beyond float32 range is inf, and kl = -inf gives inf as well
    big = K.kl_estimate(np.zeros(3, np.float32), np.array([89.0, 200.0, -np.inf], np.float32))
    assert np.all(big == np.inf)
    # 0-d and empty inputs
    assert K.kl_estimate(np.float64(-1.0) * np.ones(()), np.zeros(())).shape == ()
    assert K.kl_estimate(np.zeros((0, 3)), np.zeros((0, 3))).shape == (0, 3)


# ------------------------------------------------------------------------------------ threads, aliasing


def _large(dtype: Any) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    B, L = 70, 2051  # several pool tasks, lane blocks plus scalar rows, column tails
    r, v = (rng.standard_normal((B, L)).astype(dtype) for _ in range(2))
    m = rng.random((B, L)) < 0.9
    m[3] = False
    return {"r": r, "v": v, "m": m, "lp": -rng.random((B, L)).astype(dtype) * 5,
            "ref": -rng.random((B, L)).astype(dtype) * 5}


LARGE_CALLS = {
    "token_returns": lambda a: K.token_returns(a["r"], a["m"], gamma=0.99),
    "token_returns_carry": lambda a: K.token_returns(a["r"], a["m"].astype(a["r"].dtype), masked="carry"),
    "token_gae": lambda a: K.token_gae(a["r"], a["v"], a["m"], gamma=0.99, lam=0.95),
    "token_gae_int64_mask": lambda a: K.token_gae(a["r"], a["v"], a["m"].astype(np.int64), lam=0.9),
    "masked_whiten_int64_mask": lambda a: K.masked_whiten(a["v"], a["m"].astype(np.int64)),
    "masked_whiten": lambda a: K.masked_whiten(a["r"], a["m"]),
    "masked_whiten_float_mask": lambda a: K.masked_whiten(a["r"], a["m"] * np.abs(a["v"])),
    "masked_whiten_times_mask": lambda a: K.masked_whiten(a["r"], a["m"], times_mask=True),
    "masked_whiten_times_int64_mask": lambda a: K.masked_whiten(a["r"], a["m"].astype(np.int64), times_mask=True),
    "masked_whiten_times_float_mask": lambda a: K.masked_whiten(a["r"], a["m"] * np.abs(a["v"]), times_mask=True),
    "kl_k3": lambda a: K.kl_estimate(a["lp"], a["ref"], a["m"]),
    "kl_k3_clamp": lambda a: K.kl_estimate(a["lp"], a["ref"], clamp=True),
}


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize("name", sorted(LARGE_CALLS))
def test_results_identical_for_any_thread_count(name: str, dtype: np.dtype, restore_threads: None) -> None:
    args = _large(dtype)
    results = {}
    for k in (1, 2, 4):
        K.set_num_threads(k)
        res = LARGE_CALLS[name](args)
        results[k] = res if isinstance(res, tuple) else (res,)
    for k in (2, 4):
        for a, b in zip(results[1], results[k]):
            assert bits_equal(a, b), f"{name}: {k} threads differ from 1 thread"


CLONE_CALLS = {
    **{k: v for k, v in LARGE_CALLS.items() if k.startswith(("masked_whiten", "kl"))},
    **{f"kl_{kind}_{mk}": (lambda a, kind=kind, mk=mk: K.kl_estimate(
        a["wide"], a["ref"], None if mk == "none" else a["m"].astype(mk), kind=kind))
       for kind in ("k1", "k2", "k3", "abs") for mk in ("none", "bool", "int64", "float32")},
    "kl_k3_clamp_wide": lambda a: K.kl_estimate(a["wide"], a["ref"], a["m"], clamp=True),
    "masked_whiten_keep_mean": lambda a: K.masked_whiten(a["r"], a["m"], shift_mean=False),
}


@pytest.fixture
def restore_isa() -> Any:
    yield
    _core._testing.set_isa_cap(2)


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize("name", sorted(CLONE_CALLS))
def test_vector_clones_give_the_same_bits(name: str, dtype: np.dtype, restore_isa: None) -> None:
    """The elementwise loops run as the x86-64 baseline, an AVX2 or an AVX-512 clone (simd_isa.hpp), whichever
    the CPU has: every clone must give the same bits (the clones this CPU cannot run are not compared)."""
    args = _large(dtype)
    wide = np.concatenate([args["lp"].ravel()[:-8] * 40.0,  # k3's exp over [-200, 200]: overflow and underflow
                           np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 88.5, -103.5, 709.0])]).astype(dtype)
    args["wide"] = wide.reshape(args["lp"].shape)
    results = []
    for cap in range(_core._testing.cpu_isa() + 1):
        _core._testing.set_isa_cap(cap)
        results.append(CLONE_CALLS[name](args))
    for cap, res in enumerate(results[1:], 1):
        assert bits_equal_up_to_nan_sign(results[0], res), f"{name}: clone {cap} differs from the baseline"


def bits_equal_up_to_nan_sign(a: Any, b: Any) -> bool:
    """The same bits, except that a NaN equals any NaN. Compilers do not keep a NaN's sign: GCC may rewrite
    ``e - (-d)`` as ``e + d`` or ``(-d) * c`` as ``d * (-c)``, which is exact for every number but makes a NaN input
    come out as +NaN in one build or clone and -NaN in another (seen: k3 of a NaN in the ThreadSanitizer build's
    AVX2/AVX-512 clones vs its baseline). NumPy and torch do not fix it either."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return bool(np.array_equal(nan_a, nan_b)) and a[~nan_a].tobytes() == b[~nan_b].tobytes()


def test_nan_sign_comparison_is_only_lenient_on_nan() -> None:
    x = np.array([1.0, np.nan, 0.0], np.float32)
    y = x.copy()
    y[1] = -y[1]
    assert bits_equal_up_to_nan_sign(x, y) and not bits_equal(x, y)
    assert not bits_equal_up_to_nan_sign(x, np.array([1.0, np.nan, -0.0], np.float32))  # -0.0 is not 0.0
    assert not bits_equal_up_to_nan_sign(x, np.array([1.0, 2.0, 0.0], np.float32))
    assert not bits_equal_up_to_nan_sign(x, x.astype(np.float64))


def test_concurrent_calls_from_python_threads(restore_threads: None) -> None:
    """Python threads calling the kernels at once (the GIL is released) all get the right result."""
    import threading

    K.set_num_threads(2)
    args = _large(np.float32)
    want = {name: LARGE_CALLS[name](args) for name in ("token_gae", "masked_whiten", "kl_k3")}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for _ in range(5):
                got = LARGE_CALLS[name](args)
                for a, b in zip(got if isinstance(got, tuple) else (got,), want[name] if isinstance(
                        want[name], tuple) else (want[name],)):
                    assert bits_equal(a, b)
        except BaseException as exc:  # re-raised on the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in want]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_out_aliasing_an_input() -> None:
    rng = np.random.default_rng(8)
    r = rng.standard_normal((9, 13))
    v = rng.standard_normal((9, 13))
    m = rng.random((9, 13)) < 0.7
    want = R.token_returns(r, m, gamma=0.9)
    buf = r.copy()
    assert K.token_returns(buf, m, gamma=0.9, out=buf) is buf
    np.testing.assert_array_equal(buf, want)
    a, b = R.token_gae(r, v, m, gamma=0.9, lam=0.8)
    rr, vv = r.copy(), v.copy()
    got = K.token_gae(rr, vv, m, gamma=0.9, lam=0.8, out=(vv, rr))  # swapped: each output overwrites an input
    assert got[0] is vv and got[1] is rr
    np.testing.assert_array_equal(vv, a)
    np.testing.assert_array_equal(rr, b)
    t = torch.from_numpy(r.copy())
    assert K.masked_whiten(t, m, out=t) is t
    np.testing.assert_allclose(t.numpy(), R.masked_whiten(r, m), rtol=1e-14, atol=1e-14)
    lp = r.copy()
    K.kl_estimate(lp, v, m, out=lp)
    np.testing.assert_allclose(lp, R.kl_estimate(r, v, m), rtol=1e-14, atol=1e-14)
    with pytest.raises(ValueError, match="share memory"):
        K.token_gae(r, v, m, out=(buf, buf))
    t0 = torch.tensor(-1.0, dtype=torch.float64)  # 0-d, in place through scratch
    assert K.kl_estimate(t0, torch.zeros((), dtype=torch.float64), out=t0) is t0
    assert abs(t0.item() - (np.e - 2)) < 1e-15


def test_torch_promotion_and_verl_style_masks() -> None:
    """float32 rewards with float64 values give float64; an int64 attention-style mask and a bool tensor mask
    give the same as bool; torch tensors that require grad are read (not differentiated)."""
    rng = np.random.default_rng(9)
    r = torch.tensor(rng.standard_normal((4, 6)), dtype=torch.float32, requires_grad=True)
    v = torch.tensor(rng.standard_normal((4, 6)), dtype=torch.float64)
    m = torch.tensor(rng.random((4, 6)) < 0.6)
    adv, ret = K.token_gae(r, v, m.long(), gamma=0.9, lam=0.9)
    assert isinstance(adv, torch.Tensor) and adv.dtype == torch.float64 and not adv.requires_grad
    adv_b, _ = K.token_gae(r, v, m, gamma=0.9, lam=0.9)
    assert torch.equal(adv, adv_b)
    want, _ = R.token_gae(r.detach().numpy(), v.numpy(), m.numpy(), gamma=0.9, lam=0.9)
    np.testing.assert_array_equal(adv.numpy(), want)
    kl = K.kl_estimate(r, v.float(), m)
    assert kl.dtype == torch.float32


# ---------------------------------------------------------------------------------------------- bad input


def _scan_args() -> dict[str, Any]:
    return {"r": np.zeros((2, 3)), "v": np.zeros((2, 3)), "m": np.ones((2, 3), bool)}


BAD_CALLS: list[tuple[str, type[Exception], str, Any]] = [
    ("token_returns 1-D", ValueError, "token_rewards", lambda a: K.token_returns(a["r"][0], a["m"][0])),
    ("token_returns int", TypeError, "token_rewards", lambda a: K.token_returns(np.zeros((2, 3), int), a["m"])),
    ("token_returns mask shape", ValueError, "mask", lambda a: K.token_returns(a["r"], a["m"][:, :2])),
    ("token_returns mask f16", TypeError, "mask", lambda a: K.token_returns(a["r"], a["m"].astype(np.float16))),
    ("token_returns mask None", TypeError, "mask", lambda a: K.token_returns(a["r"], None)),
    ("token_returns gamma", ValueError, "gamma", lambda a: K.token_returns(a["r"], a["m"], gamma=1.5)),
    ("token_returns gamma nan", ValueError, "gamma", lambda a: K.token_returns(a["r"], a["m"], gamma=float("nan"))),
    ("token_returns gamma bool", TypeError, "gamma", lambda a: K.token_returns(a["r"], a["m"], gamma=True)),
    ("token_returns masked", ValueError, "masked", lambda a: K.token_returns(a["r"], a["m"], masked="skip")),
    ("token_returns out dtype", TypeError, "out",
     lambda a: K.token_returns(a["r"], a["m"], out=np.zeros((2, 3), "f4"))),
    ("token_returns out shape", ValueError, "out", lambda a: K.token_returns(a["r"], a["m"], out=np.zeros((3, 2)))),
    ("token_gae values shape", ValueError, "values", lambda a: K.token_gae(a["r"], a["v"].T, a["m"])),
    ("token_gae values int", TypeError, "values", lambda a: K.token_gae(a["r"], a["v"].astype(int), a["m"])),
    ("token_gae lam", ValueError, "lam", lambda a: K.token_gae(a["r"], a["v"], a["m"], lam=-0.1)),
    ("token_gae out tuple", TypeError, "out", lambda a: K.token_gae(a["r"], a["v"], a["m"], out=a["v"])),
    ("token_gae out[1]", ValueError, r"out\[1\]",
     lambda a: K.token_gae(a["r"], a["v"], a["m"], out=(np.zeros((2, 3)), np.zeros((2, 2))))),
    ("masked_whiten mask shape", ValueError, "mask", lambda a: K.masked_whiten(a["r"], a["m"].ravel())),
    ("masked_whiten x int", TypeError, "x", lambda a: K.masked_whiten(np.zeros((2, 3), int), a["m"])),
    ("masked_whiten eps", ValueError, "eps", lambda a: K.masked_whiten(a["r"], a["m"], eps=-1.0)),
    ("masked_whiten shift_mean", TypeError, "shift_mean", lambda a: K.masked_whiten(a["r"], a["m"], shift_mean=1)),
    ("masked_whiten times_mask", TypeError, "times_mask", lambda a: K.masked_whiten(a["r"], a["m"], times_mask=1)),
    ("masked_whiten times_mask str", TypeError, "times_mask",
     lambda a: K.masked_whiten(a["r"], a["m"], times_mask="yes")),
    ("masked_whiten one token", ValueError, "mask", lambda a: K.masked_whiten(a["r"], np.arange(6).reshape(2, 3) == 0)),
    ("masked_whiten empty", ValueError, "mask", lambda a: K.masked_whiten(np.zeros(0), np.zeros(0, bool))),
    ("masked_whiten nan weights", ValueError, "mask", lambda a: K.masked_whiten(a["r"], np.full((2, 3), np.nan))),
    ("kl ref shape", ValueError, "ref_logp", lambda a: K.kl_estimate(a["r"], a["v"][:1], a["m"])),
    ("kl kind", ValueError, "kind", lambda a: K.kl_estimate(a["r"], a["v"], kind="k4")),
    ("kl kind type", ValueError, "kind", lambda a: K.kl_estimate(a["r"], a["v"], kind=3)),
    ("kl clamp", TypeError, "clamp", lambda a: K.kl_estimate(a["r"], a["v"], clamp="yes")),
    ("kl mask shape", ValueError, "mask", lambda a: K.kl_estimate(a["r"], a["v"], a["m"][0])),
    ("kl logp complex", TypeError, "logp", lambda a: K.kl_estimate(a["r"].astype(complex), a["v"])),
]


@pytest.mark.parametrize("case", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input(case: tuple[str, type[Exception], str, Any]) -> None:
    _, exc, name, call = case
    with pytest.raises(exc, match=rf"^{name}(:| \()"):
        call(_scan_args())


def test_read_only_out_and_choices_listed() -> None:
    a = _scan_args()
    ro = np.zeros((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="^out: output array is read-only"):
        K.token_returns(a["r"], a["m"], out=ro)
    with pytest.raises(ValueError, match="'restart', 'carry'"):
        K.token_returns(a["r"], a["m"], masked="x")
    with pytest.raises(ValueError, match="'low_var_kl'"):
        K.kl_estimate(a["r"], a["v"], kind="x")


RAW_BAD: list[tuple[str, type[Exception], str, Any]] = [
    ("returns non-contiguous", ValueError, "token_rewards",
     lambda k: k.token_returns(np.zeros((3, 4))[:, ::2], np.ones((3, 2), bool), 1.0, 0, None)),
    ("returns mask int32", TypeError, "mask",
     lambda k: k.token_returns(np.zeros((3, 2)), np.ones((3, 2), np.int32), 1.0, 0, None)),
    ("returns list", TypeError, "token_rewards",
     lambda k: k.token_returns([[0.0]], np.ones((1, 1), bool), 1.0, 0, None)),
    ("gae values f32", TypeError, "values",
     lambda k: k.token_gae(np.zeros((2, 2)), np.zeros((2, 2), "f4"), np.ones((2, 2), bool), 1.0, 1.0, None, None)),
    ("gae gamma", ValueError, "gamma",
     lambda k: k.token_gae(np.zeros((2, 2)), np.zeros((2, 2)), np.ones((2, 2), bool), 2.0, 1.0, None, None)),
    ("whiten out read-only", ValueError, "out",
     lambda k: k.masked_whiten(np.zeros(3), np.ones(3, bool), True, 0.0, _readonly(3))),
    ("whiten eps nan", ValueError, "eps", lambda k: k.masked_whiten(np.zeros(3), np.ones(3, bool), True, np.nan, None)),
    ("kl kind", ValueError, "kind", lambda k: k.kl_estimate(np.zeros(3), np.zeros(3), None, 4, False, None)),
    ("kl ref f32", TypeError, "ref_logp",
     lambda k: k.kl_estimate(np.zeros(3), np.zeros(3, "f4"), None, 0, False, None)),
    ("kl mask shape", ValueError, "mask",
     lambda k: k.kl_estimate(np.zeros(3), np.zeros(3), np.ones(2, bool), 0, False, None)),
]


def _readonly(n: int) -> np.ndarray:
    a = np.zeros(n)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("case", RAW_BAD, ids=[c[0] for c in RAW_BAD])
def test_raw_bindings_check_their_arguments(case: tuple[str, type[Exception], str, Any]) -> None:
    _, exc, name, call = case
    with pytest.raises(exc, match=rf"^{name}(:| \()"):
        call(_core.kernels)


# ----------------------------------------------------------------------------------------- aggregate_loss


def _agg_reference(loss: torch.Tensor, mask: torch.Tensor, mode: str, c: float | None) -> torch.Tensor:
    """The definition, written out with Python loops over sequences."""
    m = mask.to(loss.dtype)
    rows = [(loss[i] * m[i]).sum() for i in range(loss.shape[0])]
    counts = [m[i].sum() for i in range(loss.shape[0])]
    nonempty = [i for i in range(loss.shape[0]) if bool((mask[i] != 0).any())]
    zero = loss.sum() * 0
    if mode == "token-sum":
        return sum(rows, zero)
    if mode == "token-mean":
        return sum(rows, zero) / m.sum() if m.sum() != 0 else zero
    if mode == "seq-mean-token-sum-norm":
        return sum(rows, zero) / (loss.shape[-1] if c is None else c)
    if not nonempty:
        return zero
    if mode == "seq-mean-token-sum":
        return sum((rows[i] for i in nonempty), zero) / len(nonempty)
    return sum((rows[i] / counts[i] for i in nonempty), zero) / len(nonempty)


@pytest.mark.parametrize("mode", ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean",
                                  "seq-mean-token-sum-norm"])
@pytest.mark.parametrize("mask_kind", ["bool", "int64", "float"])
def test_aggregate_loss_matches_definition_with_gradient(mode: str, mask_kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    loss = torch.randn(5, 7, dtype=torch.float64, generator=g)
    b = torch.rand(5, 7, generator=g) < 0.6
    b[2] = False  # an empty sequence
    mask = {"bool": b, "int64": b.long(), "float": b * torch.rand(5, 7, generator=g, dtype=torch.float64)}[mask_kind]
    for c in (None, 9.0):
        x = loss.clone().requires_grad_(True)
        y = loss.clone().requires_grad_(True)
        got = K.aggregate_loss(x, mask, mode=mode, norm_constant=c)
        want = _agg_reference(y, mask, mode, c)
        assert got.shape == () and got.dtype == torch.float64
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
        got.backward()
        want.backward()
        assert y.grad is not None and x.grad is not None
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("mode", ["token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean",
                                  "seq-mean-token-sum-norm"])
def test_aggregate_loss_nothing_masked_in_and_nan_outside(mode: str) -> None:
    loss = torch.tensor([[1.0, float("nan")], [float("inf"), 2.0]], requires_grad=True)
    out = K.aggregate_loss(loss, torch.zeros(2, 2, dtype=torch.bool), mode=mode)
    assert out.item() == 0.0
    out.backward()
    assert loss.grad is not None and torch.equal(loss.grad, torch.zeros(2, 2))
    x = loss.detach().clone().requires_grad_(True)
    keep = torch.tensor([[1, 0], [0, 1]])
    val = K.aggregate_loss(x, keep, mode=mode)
    assert torch.isfinite(val)
    val.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad[0, 1] == 0 and x.grad[1, 0] == 0


def test_aggregate_loss_relations_and_bad_input() -> None:
    g = torch.Generator().manual_seed(1)
    loss = torch.randn(4, 6, generator=g)
    mask = torch.rand(4, 6, generator=g) < 0.5
    mask[0] = True
    # TRL's dr_grpo: sum(loss * mask) / (B * max_completion_length)
    dr = K.aggregate_loss(loss, mask, mode="seq-mean-token-sum-norm", norm_constant=6) / loss.shape[0]
    torch.testing.assert_close(dr, (loss * mask).sum() / (loss.shape[0] * 6))
    with pytest.raises(ValueError, match="^mode: expected one of 'token-mean'"):
        K.aggregate_loss(loss, mask, mode="mean")
    with pytest.raises(ValueError, match="^mask: expected shape"):
        K.aggregate_loss(loss, mask[:, :3])
    with pytest.raises(TypeError, match="^loss"):
        K.aggregate_loss(loss.numpy(), mask)
    with pytest.raises(TypeError, match="^loss"):
        K.aggregate_loss(loss.long(), mask)
    with pytest.raises(ValueError, match="^norm_constant"):
        K.aggregate_loss(loss, mask, mode="seq-mean-token-sum-norm", norm_constant=0.0)
    with pytest.raises(TypeError, match="^norm_constant"):
        K.aggregate_loss(loss, mask, norm_constant="6")
    # a NumPy mask is accepted
    assert K.aggregate_loss(loss, mask.numpy()).item() == K.aggregate_loss(loss, mask).item()


# --------------------------------------------------------------------------------- CUDA dispatch (device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_copy_through_host_or_take_the_torch_path(monkeypatch: pytest.MonkeyPatch) -> None:
    from rltrain.kernels import _torch_paths

    r = torch.randn(3, 5, device="cuda")
    m = torch.rand(3, 5, device="cuda") < 0.5
    monkeypatch.setattr(_torch_paths, "CUDA_PATH", {})
    got = K.token_returns(r, m, gamma=0.9)
    assert got.device == r.device
    np.testing.assert_array_equal(got.cpu().numpy(), R.token_returns(r.cpu().numpy(), m.cpu().numpy(), gamma=0.9))
    calls: list[str] = []

    def fake(token_rewards: Any, mask: Any, *, gamma: float, masked: str) -> Any:
        calls.append(masked)
        return torch.zeros_like(token_rewards)

    with monkeypatch.context() as mp:
        mp.setattr(_torch_paths, "CUDA_PATH", {"token_returns": "torch"})
        mp.setattr(_torch_paths, "token_returns", fake, raising=False)
        out = torch.full_like(r, 5.0)
        assert K.token_returns(r, m, masked="carry", out=out) is out and calls == ["carry"] and bool((out == 0).all())
    check_device_dispatch("cuda", monkeypatch)


def check_device_dispatch(device: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every LLM kernel on ``device`` tensors, by the torch path and by the host path, == the CPU kernels on NumPy
    (float64 within 1e-10, float32 within 1e-5); results and out= stay on the device; a bad shape, a non-finite
    reward, too few masked tokens and a host array beside device tensors raise as documented.
    (tests/test_llm_cuda_dispatch.py runs this on CPU tensors taken for device ones.)"""
    from rltrain.kernels import _torch_paths

    rng = np.random.default_rng(0)
    for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-5)):
        r, v = rng.normal(size=(4, 33)).astype(dtype), rng.normal(size=(4, 33)).astype(dtype)
        m = rng.random((4, 33)) < 0.8
        mi = m.astype(np.int64) * 3
        rw = rng.normal(size=(12, 2)).astype(dtype)
        ids = np.array([0, 1, 0, 2, 1, 1, 0, 2, 5, 2, 0, 1])
        calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
            (K.token_returns, (r, m), {"gamma": 0.9}),
            (K.token_returns, (r, mi), {"gamma": 0.9, "masked": "carry"}),
            (K.token_gae, (r, v, m), {"gamma": 0.99, "lam": 0.95}),
            (K.masked_whiten, (r, mi), {"shift_mean": False}),
            (K.kl_estimate, (r, v, m), {"kind": "low_var_kl", "clamp": True}),
            (K.kl_estimate, (r, v, None), {"kind": "mse"}),
            (K.group_advantages, (rw[:, 0], ids), {"preset": "verl"}),
            (K.group_advantages, (rw, None), {"group_size": 4, "preset": "trl", "reward_weights": [1.0, 0.5]}),
            (K.group_advantages, (rw, ids), {"combine": "normalize_then_sum", "scale": "batch"}),
            (K.rloo_advantages, (rw[:, 1], None), {"group_size": 3}),
        ]
        for mode in ("torch", "host"):
            monkeypatch.setattr(_torch_paths, "CUDA_PATH", dict.fromkeys(_torch_paths.CUDA_PATH, mode))
            for fn, args, kw in calls:
                want = fn(*args, **kw)
                dev = tuple(None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in args)
                got = fn(*dev, **kw)
                outs = [got] if isinstance(got, torch.Tensor) else list(got)
                wants = [want] if isinstance(want, np.ndarray) else list(want)
                if isinstance(got, torch.Tensor):
                    out = torch.full_like(got, 7.0)
                    assert fn(*dev, out=out, **kw) is out
                    outs.append(out)
                    wants.append(want)
                for g, w in zip(outs, wants, strict=True):
                    assert g.device == dev[0].device
                    np.testing.assert_allclose(g.cpu().numpy(), w, rtol=tol, atol=tol * max(1.0, np.abs(w).max()))
            d = torch.from_numpy(r).to(device)
            with pytest.raises(ValueError, match=r"^mask: expected shape \[B, L\] = \(4, 33\), got \(4, 32\)"):
                K.token_returns(d, torch.ones(4, 32, dtype=torch.bool, device=device))
            with pytest.raises(ValueError, match="^rewards: expected finite values, got nan at index 1"):
                K.rloo_advantages(torch.tensor([0.0, float("nan"), 1.0], device=device))
            with pytest.raises(ValueError, match="^mask: expected at least 2 masked entries"):
                K.masked_whiten(d, torch.zeros(4, 33, dtype=torch.bool, device=device))
            if device != "cpu":
                with pytest.raises(ValueError, match="^mask: expected a torch tensor on"):
                    K.token_returns(d, m)


# ------------------------------------------------------------------------------------ verl 0.9.1 sanity


@pytest.fixture(scope="module")
def verl() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
        verl_f = pytest.importorskip("verl.utils.torch_functional")
    return core_algos, verl_f


def _verl_batch() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(2)
    B, L = 6, 12
    r = torch.randn(B, L, generator=g)
    v = torch.randn(B, L, generator=g)
    lengths = torch.tensor([12, 7, 1, 0, 9, 3])
    m = (torch.arange(L)[None, :] < lengths[:, None]).long()  # attention-style int64 response mask
    m[0, 4:6] = 0  # an observation span inside the response (multi-turn)
    return r, v, m


def test_matches_verl_gae_and_reinforce_pp(verl: Any) -> None:
    core_algos, verl_f = verl
    r, v, m = _verl_batch()
    v_adv, v_ret = core_algos.compute_gae_advantage_return(r, v, m, 0.99, 0.95)
    adv, ret = K.token_gae(r, v, m, gamma=0.99, lam=0.95)
    torch.testing.assert_close(ret, v_ret, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(K.masked_whiten(adv, m), v_adv, rtol=1e-4, atol=1e-4)
    cfg = core_algos.AlgoConfig(gamma=0.97)
    rpp_adv, rpp_ret = core_algos.compute_reinforce_plus_plus_outcome_advantage(r, m, config=cfg)
    ours = K.token_returns(r, m, gamma=0.97, masked="carry")
    torch.testing.assert_close(ours, rpp_ret, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(K.masked_whiten(ours, m) * m, rpp_adv, rtol=1e-4, atol=1e-4)
    for shift in (True, False):
        torch.testing.assert_close(K.masked_whiten(r, m, shift_mean=shift), verl_f.masked_whiten(r, m, shift),
                                   rtol=1e-4, atol=1e-4)


def test_matches_verl_kl_and_agg_loss(verl: Any) -> None:
    core_algos, _ = verl
    g = torch.Generator().manual_seed(3)
    lp = -torch.rand(5, 9, generator=g) * 30
    ref = -torch.rand(5, 9, generator=g) * 30
    for name in ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3"):
        want = core_algos.kl_penalty_forward(lp, ref, name)
        torch.testing.assert_close(K.kl_estimate(lp, ref, kind=name, clamp=True), want, rtol=1e-6, atol=1e-6)
    r, _, m = _verl_batch()
    nonempty = int((m.sum(-1) > 0).sum())
    for mode in ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean"):
        torch.testing.assert_close(K.aggregate_loss(r, m, mode=mode), core_algos.agg_loss(r, m, mode),
                                   rtol=1e-5, atol=1e-6)
    ours = K.aggregate_loss(r, m, mode="seq-mean-token-sum-norm", norm_constant=5)
    verl_norm = core_algos.agg_loss(r, m, "seq-mean-token-sum-norm", loss_scale_factor=5)
    torch.testing.assert_close(ours / nonempty, verl_norm, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_k3_clamped_exp_gives_the_unclamped_bits(dtype: np.dtype) -> None:
    """With clamp=True the kernel evaluates exp by a shorter scaling valid on the clamp's range [-20, 20]; inside
    that range (and for NaN) its results must be the bits of the general exp, clipped to [-10, 10]."""
    rng = np.random.default_rng(11)
    kl = np.concatenate([rng.uniform(-20, 20, 200_000), np.linspace(-20, 20, 40_001), [np.nan, 0.0, -0.0]])
    ref = kl.astype(dtype)
    lp = np.zeros_like(ref)
    got = K.kl_estimate(lp, ref, kind="k3", clamp=True)
    want = np.clip(K.kl_estimate(lp, ref, kind="k3"), dtype.type(-10), dtype.type(10))
    nan = np.isnan(ref)
    assert np.isnan(got[nan]).all()  # np.clip may flip a NaN's sign bit: NaN positions are compared, not bits
    assert_bits(got[~nan], want[~nan])
