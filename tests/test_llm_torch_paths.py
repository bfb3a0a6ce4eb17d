"""The torch paths of the language-model kernels (``rltrain.kernels._torch_paths``, run for CUDA tensors) against
straightforward loops over groups and tokens written here from SPEC §6, on CPU tensors: float64 to ~1e-10,
float32 to ~1e-5; and a count of the torch calls each makes, which must not grow with the number of tokens or
samples (no Python loop over them)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.overrides import TorchFunctionMode  # noqa: E402

from rltrain.kernels import _torch_paths as tp  # noqa: E402

F64 = {"rtol": 1e-10, "atol": 1e-10}
KERNELS = ("group_advantages", "rloo_advantages", "token_returns", "masked_whiten", "token_gae", "kl_estimate")


def _close(got: Any, want: np.ndarray, dtype: Any) -> None:
    g = got.detach().cpu().numpy().astype(np.float64)
    assert got.dtype == dtype
    if dtype == torch.float64:
        np.testing.assert_allclose(g, want, **F64)
    else:
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-6 * scale)


# ------------------------------------------------------------------------------------------- references


def _ids_of(n: int, ids: np.ndarray | None, size: int | None) -> np.ndarray:
    if ids is not None:
        return ids
    if size is not None:
        return np.arange(n) // size
    return np.zeros(n, dtype=np.int64)


def _var(x: np.ndarray, ddof: int) -> float:
    n = len(x)
    if n <= ddof:
        return 0.0
    m = sum(x) / n
    return float(sum((v - m) ** 2 for v in x) / (n - ddof))


def _div(d: np.ndarray, var: float, eps: float, eps_on: str) -> np.ndarray:
    return d / np.sqrt(var + eps) if eps_on == "var" else d / (np.sqrt(var) + eps)


def ref_normalize(
    col: np.ndarray, ids: np.ndarray, *, scale: str, ddof: int, eps: float, eps_on: str, singleton: str
) -> np.ndarray:
    out = np.empty(len(col))
    var_b = _var(col, ddof)
    for gid in np.unique(ids):
        idx = np.flatnonzero(ids == gid)
        x = col[idx]
        mean, var = x.mean(), _var(x, ddof)
        if len(x) == 1 and singleton == "identity":
            mean, var = 0.0, 1.0
        d = x - mean
        out[idx] = d if scale == "none" else _div(d, var_b if scale == "batch" else var, eps, eps_on)
    return out


def ref_group_advantages(
    r: np.ndarray, ids: np.ndarray | None, size: int | None, w: np.ndarray | None, combine: str, **opts: Any
) -> np.ndarray:
    gids = _ids_of(len(r), ids, size)
    if r.ndim == 1:
        return ref_normalize(r, gids, **opts)
    w = np.ones(r.shape[1]) if w is None else w
    if combine == "sum":
        return ref_normalize(r @ w, gids, **opts)
    a = sum(w[j] * ref_normalize(r[:, j], gids, **opts) for j in range(r.shape[1]))
    return _div(a - a.mean(), _var(a, opts["ddof"]), opts["eps"], opts["eps_on"])


def ref_rloo(r: np.ndarray, ids: np.ndarray | None, size: int | None) -> np.ndarray:
    gids = _ids_of(len(r), ids, size)
    out = np.zeros(len(r))
    for i in range(len(r)):
        others = [r[j] for j in range(len(r)) if gids[j] == gids[i] and j != i]
        if others:
            out[i] = r[i] - sum(others) / len(others)
    return out


def ref_token_returns(r: np.ndarray, m: np.ndarray, gamma: float, masked: str) -> np.ndarray:
    ret = np.zeros_like(r)
    run = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        if masked == "restart":
            ret[:, t] = r[:, t] + gamma * run
            run = ret[:, t] * m[:, t]
        else:
            new = r[:, t] + gamma * run
            ret[:, t] = new * m[:, t]
            run = new * m[:, t] + run * (1 - m[:, t])
    return ret


def ref_token_gae(
    r: np.ndarray, v: np.ndarray, m: np.ndarray, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    adv = np.zeros_like(r)
    nextvalues = np.zeros(r.shape[0])
    lastgaelam = np.zeros(r.shape[0])
    for t in range(r.shape[1] - 1, -1, -1):
        delta = r[:, t] + gamma * nextvalues - v[:, t]
        lg = delta + gamma * lam * lastgaelam
        nextvalues = v[:, t] * m[:, t] + (1 - m[:, t]) * nextvalues
        lastgaelam = lg * m[:, t] + (1 - m[:, t]) * lastgaelam
        adv[:, t] = lastgaelam
    return adv, adv + v


def ref_masked_whiten(x: np.ndarray, m: np.ndarray, shift_mean: bool, eps: float) -> np.ndarray:
    xs, ms = x.ravel(), m.ravel()
    n = float(sum(ms))
    mean = sum(a * b for a, b in zip(xs, ms)) / n
    var = sum((a - mean) ** 2 * b for a, b in zip(xs, ms)) / (n - 1)
    out = (x - mean) / np.sqrt(var + eps)
    return out if shift_mean else out + mean


def ref_kl(lp: np.ndarray, ref: np.ndarray, m: np.ndarray | None, kind: str, clamp: bool) -> np.ndarray:
    d = lp - ref
    if kind == "k1":
        k = d
    elif kind == "k2":
        k = d * d / 2
    elif kind == "abs":
        k = np.abs(d)
    else:
        neg = np.clip(-d, -20, 20) if clamp else -d
        k = np.exp(neg) - neg - 1
        k = np.clip(k, -10, 10) if clamp else k
    return k if m is None else np.where(m != 0, k, 0.0)


# ------------------------------------------------------------------------------------------------ inputs


def _ragged_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Shuffled ids of groups of uneven sizes (1 to 9, several of one), not contiguous, not from 0."""
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 1, 2, 3, 5, 9])))
    sizes[-1] -= sum(sizes) - n
    ids = np.repeat(rng.permutation(len(sizes)) * 7 - 5, sizes)
    return rng.permutation(ids)


def _mask(rng: np.random.Generator, b: int, n: int, kind: str) -> np.ndarray:
    """A response mask with holes, one fully masked row and one full row; "frac" also has entries of 0.5 (the
    recurrences are written for any float weight, not only 0/1)."""
    m = rng.random((b, n)) < 0.8
    m[:, : n // 4] = False  # a prompt-like prefix
    m[0] = False
    m[-1] = True
    if kind == "frac":
        return np.where(m & (rng.random((b, n)) < 0.2), 0.5, m).astype(np.float64)
    return m.astype({"bool": np.bool_, "uint8": np.uint8, "float": np.float32}[kind])


DTYPES = [torch.float64, torch.float32]


def _t(x: np.ndarray, dtype: Any) -> Any:
    return torch.from_numpy(np.ascontiguousarray(x)).to(dtype)


def _ref_in(x: np.ndarray, dtype: Any) -> np.ndarray:
    """The input as the kernel sees it (rounded to float32 when that is the dtype), in float64."""
    return _t(x, dtype).double().numpy()


# ---------------------------------------------------------------------------------------- group kernels

LAYOUTS = ["ids", "size", "one"]


def _layout(rng: np.random.Generator, n: int, layout: str) -> tuple[np.ndarray | None, int | None]:
    if layout == "ids":
        return _ragged_ids(rng, n), None
    if layout == "size":
        return None, 4
    return None, None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
@pytest.mark.parametrize("singleton", ["center", "identity"])
def test_group_advantages_scalar(dtype: Any, layout: str, scale: str, singleton: str) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{layout} {scale} {singleton}".encode()))
    n = 64
    r = rng.normal(size=n)
    r[:8] = 0.5  # ties: an all-equal group in the fixed layout
    ids, size = _layout(rng, n, layout)
    for ddof, eps, eps_on in [(1, 1e-4, "std"), (0, 1e-6, "var"), (1, 0.5, "var")]:
        opts: dict[str, Any] = {"scale": scale, "ddof": ddof, "eps": eps, "eps_on": eps_on, "singleton": singleton}
        got = tp.group_advantages(
            _t(r, dtype),
            None if ids is None else torch.from_numpy(ids),
            group_size=size,
            reward_weights=None,
            combine="sum",
            **opts,
        )
        _close(got, ref_group_advantages(_ref_in(r, dtype), ids, size, None, "sum", **opts), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("combine", ["sum", "normalize_then_sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_group_advantages_columns(dtype: Any, layout: str, combine: str, weighted: bool) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{layout} {combine} {weighted}".encode()))
    n = 48
    r = rng.normal(size=(n, 3))
    r[:, 2] = rng.integers(0, 2, size=n)  # a 0/1 correctness column
    w = np.array([0.5, 2.0, 1.0]) if weighted else None
    ids, size = _layout(rng, n, layout)
    for scale, singleton, ddof in [("group", "identity", 1), ("batch", "center", 1), ("none", "center", 0)]:
        opts: dict[str, Any] = {"scale": scale, "ddof": ddof, "eps": 1e-4, "eps_on": "std", "singleton": singleton}
        got = tp.group_advantages(
            _t(r, dtype),
            None if ids is None else torch.from_numpy(ids),
            group_size=size,
            reward_weights=None if w is None else torch.from_numpy(w),
            combine=combine,
            **opts,
        )
        _close(got, ref_group_advantages(_ref_in(r, dtype), ids, size, w, combine, **opts), dtype)


def test_group_advantages_trl_formula() -> None:
    """Fixed groups, scale "group", ddof 1, eps 1e-4: TRL's own torch expression."""
    r = torch.randn(16 * 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    g = r.view(-1, 16)
    want = ((g - g.mean(1, keepdim=True)) / (g.std(1, keepdim=True) + 1e-4)).reshape(-1)
    opts: dict[str, Any] = {"scale": "group", "ddof": 1, "eps": 1e-4, "eps_on": "std", "singleton": "center"}
    got = tp.group_advantages(r, None, group_size=16, reward_weights=None, combine="sum", **opts)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_rloo_advantages(dtype: Any, layout: str) -> None:
    rng = np.random.default_rng(len(layout))
    n = 60
    r = rng.normal(size=n)
    ids, size = _layout(rng, n, layout)
    got = tp.rloo_advantages(_t(r, dtype), None if ids is None else torch.from_numpy(ids), group_size=size)
    _close(got, ref_rloo(_ref_in(r, dtype), ids, size), dtype)


def test_rloo_group_of_one_is_zero() -> None:
    r = torch.tensor([3.0, -1.0, 2.0, 7.0], dtype=torch.float64)
    got = tp.rloo_advantages(r, torch.tensor([4, 9, 4, 1]), group_size=None)
    torch.testing.assert_close(got, torch.tensor([1.0, 0.0, -1.0, 0.0], dtype=torch.float64))


# ---------------------------------------------------------------------------------------- token kernels

SHAPES = [(5, 1), (4, 7), (3, 64), (2, 4096)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", ["restart", "carry"])
def test_token_returns(dtype: Any, shape: tuple[int, int], masked: str) -> None:
    rng = np.random.default_rng(shape[1])
    r = rng.normal(size=shape)
    for mkind, gamma in [("bool", 1.0), ("uint8", 0.99), ("float", 0.0), ("bool", 0.5), ("frac", 0.9)]:
        m = _mask(rng, *shape, mkind)
        got = tp.token_returns(_t(r, dtype), torch.from_numpy(m), gamma=gamma, masked=masked)
        _close(got, ref_token_returns(_ref_in(r, dtype), m.astype(np.float64), gamma, masked), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_token_gae(dtype: Any, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[1] + 1)
    r, v = rng.normal(size=shape), rng.normal(size=shape)
    for mkind, gamma, lam in [
        ("bool", 1.0, 1.0),
        ("uint8", 0.99, 0.95),
        ("float", 0.9, 0.0),
        ("bool", 0.0, 0.7),
        ("frac", 0.9, 0.8),
    ]:
        m = _mask(rng, *shape, mkind)
        adv, ret = tp.token_gae(_t(r, dtype), _t(v, dtype), torch.from_numpy(m), gamma=gamma, lam=lam)
        want_adv, want_ret = ref_token_gae(_ref_in(r, dtype), _ref_in(v, dtype), m.astype(np.float64), gamma, lam)
        _close(adv, want_adv, dtype)
        _close(ret, want_ret, dtype)


@pytest.mark.parametrize("masked", ["restart", "carry"])
def test_long_sequence_float32(masked: str) -> None:
    """One 32,768-token sequence, gamma 1, no holes after the prompt: returns grow to ~|sum r|, and the float32
    scan stays within 1e-5 of the float64 loop."""
    rng = np.random.default_rng(7)
    n = 32768
    r = rng.normal(0.3, 1.0, size=(1, n))
    m = np.ones((1, n), dtype=np.bool_)
    m[0, :100] = False
    got = tp.token_returns(_t(r, torch.float32), torch.from_numpy(m), gamma=1.0, masked=masked)
    want = ref_token_returns(_ref_in(r, torch.float32), m.astype(np.float64), 1.0, masked)
    assert np.abs(want).max() > 1000
    _close(got, want, torch.float32)
    v = rng.normal(size=(1, n))
    adv, _ = tp.token_gae(_t(r, torch.float32), _t(v, torch.float32), torch.from_numpy(m), gamma=1.0, lam=1.0)
    want_adv, _ = ref_token_gae(_ref_in(r, torch.float32), _ref_in(v, torch.float32), m.astype(np.float64), 1.0, 1.0)
    _close(adv, want_adv, torch.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten(dtype: Any, shift_mean: bool) -> None:
    rng = np.random.default_rng(int(shift_mean))
    shape = (4, 33)
    x = rng.normal(3.0, 2.0, size=shape)
    for mkind, eps in [("bool", 1e-8), ("uint8", 0.0), ("float", 0.3)]:
        m = _mask(rng, *shape, mkind)
        got = tp.masked_whiten(_t(x, dtype), torch.from_numpy(m), shift_mean=shift_mean, eps=eps)
        _close(got, ref_masked_whiten(_ref_in(x, dtype), m.astype(np.float64), shift_mean, eps), dtype)
        got_tm = tp.masked_whiten(_t(x, dtype), torch.from_numpy(m), shift_mean=shift_mean, eps=eps, times_mask=True)
        assert torch.equal(got_tm, got * torch.from_numpy(m).to(got.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["k1", "k2", "k3", "abs"])
@pytest.mark.parametrize("clamp", [False, True])
def test_kl_estimate(dtype: Any, kind: str, clamp: bool) -> None:
    rng = np.random.default_rng(len(kind) + 2 * clamp)
    shape = (3, 50)
    lp = rng.normal(-2.0, 1.0, size=shape)
    ref = lp + rng.normal(0.0, 0.3, size=shape)
    ref[1, :10] = lp[1, :10] + rng.uniform(-30, 30, size=10)  # beyond both clamps
    ref[2, :5] = lp[2, :5] + 1e-5  # tiny d: exp(-d) + d - 1 cancels in float32 unless written with expm1
    want_in = (_ref_in(lp, dtype), _ref_in(ref, dtype))
    for mkind in ["bool", "uint8", "float", None]:
        m = None if mkind is None else _mask(rng, *shape, mkind)
        got = tp.kl_estimate(
            _t(lp, dtype), _t(ref, dtype), None if m is None else torch.from_numpy(m), kind=kind, clamp=clamp
        )
        want = ref_kl(*want_in, m, kind, clamp)
        if dtype == torch.float32 and kind == "k3" and not clamp:
            # exp(30) in float32 carries its own relative rounding: compare relatively there.
            np.testing.assert_allclose(got.double().numpy(), want, rtol=1e-5, atol=1e-6)
            assert got.dtype == dtype
        else:
            _close(got, want, dtype)


def test_k3_small_differences_float32() -> None:
    """k3 ~ d^2 / 2 for tiny d: written as expm1(-d) + d it keeps its relative accuracy in float32, where
    exp(-d) + d - 1 would lose it to cancellation (an error of ~6e-8 on a value of ~5e-11)."""
    lp = torch.full((1, 8), -2.0)
    ref = lp + torch.tensor([1e-5, -1e-5, 3e-5, -3e-4, 1e-3, 2e-5, -2e-5, 5e-4])
    got = tp.kl_estimate(lp, ref, None, kind="k3", clamp=False).double().numpy()
    d = (lp - ref).double().numpy()
    np.testing.assert_allclose(got, np.expm1(-d) + d, rtol=0.05)


def test_masked_positions_are_exact_zero_even_for_inf() -> None:
    """torch.where, not a product: an infinite estimate at a masked position still gives 0 there."""
    lp = torch.tensor([[0.0, -1e30]], dtype=torch.float64)
    ref = torch.tensor([[0.0, 1e30]], dtype=torch.float64)
    got = tp.kl_estimate(lp, ref, torch.tensor([[True, False]]), kind="k3", clamp=False)
    assert got.tolist() == [[0.0, 0.0]]


# ---------------------------------------------------------------------------------------- no Python loop


class _CountCalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.calls += 1
        return func(*args, **(kwargs or {}))


def _count(fn: Callable[[], Any]) -> int:
    with _CountCalls() as mode:
        fn()
    return mode.calls


def _token_calls(n: int) -> dict[str, int]:
    x = torch.randn(2, n, dtype=torch.float64)
    m = torch.ones(2, n, dtype=torch.bool)
    return {
        "token_returns": _count(lambda: tp.token_returns(x, m, gamma=0.9, masked="carry")),
        "token_gae": _count(lambda: tp.token_gae(x, x, m, gamma=0.9, lam=0.9)),
        "masked_whiten": _count(lambda: tp.masked_whiten(x, m, shift_mean=True, eps=1e-8)),
        "kl_estimate": _count(lambda: tp.kl_estimate(x, x, m, kind="k3", clamp=True)),
    }


def _group_calls(n: int) -> dict[str, int]:
    r = torch.randn(n, 2, dtype=torch.float64)
    ids = torch.arange(n) % 5
    opts: dict[str, Any] = {"scale": "group", "ddof": 1, "eps": 1e-4, "eps_on": "std", "singleton": "identity"}
    return {
        "group_advantages": _count(
            lambda: tp.group_advantages(r, ids, group_size=None, reward_weights=None, combine="sum", **opts)
        ),
        "group_advantages/size": _count(
            lambda: tp.group_advantages(
                r, None, group_size=5, reward_weights=None, combine="normalize_then_sum", **opts
            )
        ),
        "rloo_advantages": _count(lambda: tp.rloo_advantages(r[:, 0], ids, group_size=None)),
    }


def test_torch_calls_grow_at_most_with_log_length() -> None:
    """4096 tokens need at most 6 more Hillis-Steele steps than 64 (a loop over tokens would need 4032 more); the
    per-token and per-sample kernels make the same number of torch calls whatever the size."""
    short, long = _token_calls(64), _token_calls(4096)
    for name in ("token_returns", "token_gae"):
        per_step = (short[name] - _token_calls(32)[name]) or 1
        assert long[name] - short[name] <= 6 * per_step, (name, short[name], long[name])
    for name in ("masked_whiten", "kl_estimate"):
        assert long[name] == short[name], name
    assert _group_calls(40) == _group_calls(4000)


def test_cuda_path_names_every_kernel() -> None:
    assert set(tp.CUDA_PATH) == set(KERNELS)
    assert set(tp.CUDA_PATH.values()) <= {"torch", "host"}
