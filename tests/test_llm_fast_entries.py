"""The C++ entries of plain LLM kernel calls (``_core.kernels.<name>_fast``, ``cpp/bindings/fast_args.hpp``).

Every wrapper in ``rltrain.kernels.llm_group`` / ``llm_token`` first hands its arguments as given to the entry,
which takes a plain call whole (exact NumPy arrays or exact CPU torch tensors, aligned and C-contiguous, of the
kernel's dtypes; Python scalars and option names; ``out=`` None or a writable buffer sharing no memory with the
inputs) and answers ``NotImplemented`` to anything else, which then takes the converting path. Checked here:

- a plain call gives the same bits, type and ``out=`` identity as the converting path (the entry switched off);
- the calls that are not plain get ``NotImplemented`` from the entry itself, and the right result (or the usual
  error) from the wrapper;
- an error the kernel raises on the data (non-finite rewards) comes out with the converting path's message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import _core
from rltrain import kernels as K
from rltrain.kernels import llm_group

FK = _core.kernels
F_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
NAMES = ["group_advantages", "rloo_advantages", "token_returns", "token_gae", "masked_whiten", "kl_estimate"]


def _bits(a: Any, b: Any) -> bool:
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    b = b.numpy() if isinstance(b, torch.Tensor) else b
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _converting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.setattr(FK, f"{name}_fast", lambda *args: NotImplemented)


_Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def _calls(dtype: np.dtype, rng: np.random.Generator) -> list[_Call]:
    """(kernel, arrays, options) of plain calls: every kernel, several option sets and mask dtypes."""
    B, L = 64, 40
    r = (rng.standard_normal(B) * 2 + 1).astype(dtype)
    r2 = rng.standard_normal((B, 3)).astype(dtype)
    ids = rng.permutation(np.arange(B) % 5).astype(np.int64)
    x, v = rng.standard_normal((3, L)).astype(dtype), rng.standard_normal((3, L)).astype(dtype)
    b = rng.random((3, L)) < 0.8
    masks = [b, b.astype(np.uint8), b.astype(np.int64), b.astype(dtype)]
    calls: list[_Call] = []
    for preset in llm_group.PRESETS:
        calls.append((K.group_advantages, (r,), {"group_size": 16, "preset": preset}))
        calls.append((K.group_advantages, (r, ids), {"preset": preset}))
    calls += [
        (K.group_advantages, (r,), {"group_size": 8, "preset": "trl", "scale": "batch", "ddof": 0, "eps": 1e-3,
                                    "eps_on": "var"}),
        (K.group_advantages, (r,), {"preset": "verl", "scale": "none"}),
        (K.group_advantages, (r2,), {"group_size": 4, "combine": "normalize_then_sum"}),
        (K.group_advantages, (r2, ids), {"combine": "sum"}),
        (K.rloo_advantages, (r,), {"group_size": 16}),
        (K.rloo_advantages, (r, ids), {}),
        (K.rloo_advantages, (r,), {}),
    ]
    for m in masks:
        calls += [
            (K.token_returns, (x, m), {"gamma": 0.9, "masked": "carry"}),
            (K.token_returns, (x, m), {}),
            (K.token_gae, (x, v, m), {"gamma": 0.99, "lam": 0.95}),
            (K.masked_whiten, (x, m), {"shift_mean": False, "eps": 1e-6, "times_mask": True}),
            (K.kl_estimate, (x, v, m), {"kind": "low_var_kl", "clamp": True}),
        ]
    calls += [(K.kl_estimate, (x, v), {"kind": k}) for k in ("k1", "kl", "k2", "mse", "k3", "abs")]
    calls.append((K.masked_whiten, (x.ravel(), b.ravel()), {}))
    return calls


def _out_like(fn: Callable[..., Any], res: Any) -> Any:
    if fn is K.token_gae:
        return (np.full_like(res[0], np.nan), np.full_like(res[1], np.nan))
    return np.full_like(res, np.nan)


def _as(kind: str, a: Any) -> Any:
    if isinstance(a, tuple):
        return tuple(_as(kind, e) for e in a)
    return torch.from_numpy(a.copy()) if kind == "torch" and isinstance(a, np.ndarray) else a


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", F_DTYPES)
def test_plain_calls_equal_the_converting_path(kind: str, dtype: np.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _calls(dtype, np.random.default_rng(3))
    got = []
    for fn, arrays, kw in calls:
        args = _as(kind, arrays)
        res = fn(*args, **kw)
        out = _as(kind, _out_like(fn, res))
        res_out = fn(*args, **kw, out=out)
        if fn is K.token_gae:
            assert res_out[0] is out[0] and res_out[1] is out[1]
        else:
            assert res_out is out
        got.append((res, out))
    _converting(monkeypatch)
    for (fn, arrays, kw), (res, out) in zip(calls, got):
        args = _as(kind, arrays)
        want = fn(*args, **kw)
        pairs = zip(res, want) if fn is K.token_gae else [(res, want)]
        pairs_out = zip(out, want) if fn is K.token_gae else [(out, want)]
        for a, w in [*pairs, *pairs_out]:
            assert type(a) is type(w), (fn.__name__, kw)
            assert _bits(a, w), (fn.__name__, kw)


def _tensors(dtype: Any = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    r = torch.randn(32, generator=g, dtype=dtype)
    x = torch.randn(2, 16, generator=g, dtype=dtype)
    return r, x, (x > 0).to(dtype)


def test_not_plain_calls_get_notimplemented() -> None:
    r, x, m = _tensors()
    rn, xn, mn = r.numpy(), x.numpy(), m.numpy()
    presets = llm_group._PRESET_CODES

    def grp(rew: Any, ids: Any = None, gs: Any = 16, preset: Any = "trl", scale: Any = None, ddof: Any = None,
            eps: Any = None, eps_on: Any = None, w: Any = None, combine: Any = "sum", out: Any = None) -> Any:
        return FK.group_advantages_fast(rew, ids, gs, preset, scale, ddof, eps, eps_on, w, combine, out, presets)

    neg = torch.randn(32, dtype=torch.complex64).conj().imag  # a float view with the negative bit
    assert neg.is_neg()
    one = torch.zeros(2, 16)
    one[1, 3] = 1.0
    read_only = rn.copy()
    read_only.flags.writeable = False
    cases = {
        "non-contiguous": grp(torch.randn(64)[::2]),
        "negative bit": grp(neg),
        "float16": grp(r.half()),
        "int rewards": grp(r.long()),
        "subclass": grp(torch.nn.Parameter(r.clone(), requires_grad=False)),
        "mixed numpy and torch": grp(r, out=np.empty(32, np.float32)),
        "mixed ids": grp(r, torch.zeros(32, dtype=torch.int64).numpy(), None),
        "int32 ids": grp(r, torch.zeros(32, dtype=torch.int32), None),
        "ids and group_size": grp(r, torch.zeros(32, dtype=torch.int64), 16),
        "group_size not dividing": grp(r, gs=5),
        "bool group_size": grp(r, gs=True),
        "unknown preset": grp(r, preset="grpo"),
        "bad scale": grp(r, scale="groups"),
        "bool ddof": grp(r, ddof=True),
        "negative ddof": grp(r, ddof=-1),
        "numpy eps": grp(r, eps=np.float64(1e-4)),
        "nan eps": grp(r, eps=float("nan")),
        "weights": grp(r.reshape(16, 2), w=[1.0, 2.0]),
        "out in place": grp(r, out=r),
        "out grad": grp(r, out=torch.zeros(32, requires_grad=True)),
        "out dtype": grp(r, out=torch.zeros(32, dtype=torch.float64)),
        "out shape": grp(r, out=torch.zeros(33)),
        "read-only out": grp(rn, out=read_only),
        "empty": grp(torch.zeros(0), gs=None),
        "3-D rewards": grp(torch.zeros(4, 4, 2), gs=None),
        "rloo 2-D": FK.rloo_advantages_fast(x, None, None, None),
        "returns gamma int": FK.token_returns_fast(x, m, 1, "carry", None),
        "returns gamma > 1": FK.token_returns_fast(x, m, 1.5, "carry", None),
        "returns masked": FK.token_returns_fast(x, m, 1.0, "skip", None),
        "returns mask shape": FK.token_returns_fast(x, m[:, :8], 1.0, "carry", None),
        "returns 1-D": FK.token_returns_fast(r, r, 1.0, "carry", None),
        "gae out list": FK.token_gae_fast(x, x, m, 1.0, 1.0, [None, None]),
        "gae outs overlap": FK.token_gae_fast(x, x, m, 1.0, 1.0, (x.clone(),) * 2),
        "gae values dtype": FK.token_gae_fast(x, x.double(), m, 1.0, 1.0, None),
        "whiten int flag": FK.masked_whiten_fast(x, m, 1, 1e-8, False, None),
        "whiten one entry": FK.masked_whiten_fast(x, one, True, 1e-8, False, None),
        "whiten out is mask": FK.masked_whiten_fast(x, m, True, 1e-8, False, m),
        "kl kind": FK.kl_estimate_fast(xn, xn, None, "k4", False, None),
        "kl numpy bool clamp": FK.kl_estimate_fast(xn, xn, mn, "k3", np.bool_(True), None),
        "kl float16 mask": FK.kl_estimate_fast(x, x, m.half(), "k3", False, None),
    }
    assert [k for k, v in cases.items() if v is not NotImplemented] == []
    with pytest.raises(TypeError, match="expected 12 positional arguments"):
        FK.group_advantages_fast(r)


def test_not_plain_calls_still_right_through_the_wrappers() -> None:
    r, x, m = _tensors(torch.float64)
    rn = r.numpy().copy()
    want = K.group_advantages(rn, group_size=16, preset="trl")
    strided = torch.zeros(64, dtype=torch.float64)
    strided[::2] = r
    assert _bits(K.group_advantages(strided[::2], group_size=16, preset="trl"), want)
    assert _bits(K.group_advantages(r.clone().requires_grad_(True), group_size=16, preset="trl").detach(), want)
    inplace = r.clone()
    assert K.group_advantages(inplace, group_size=16, preset="trl", out=inplace) is inplace
    assert _bits(inplace, want)
    mixed = K.group_advantages(r, group_size=16, preset="trl", out=np.empty(32))
    assert _bits(mixed, want)
    with pytest.raises(ValueError, match="^mask: expected at least 2 masked entries"):
        K.masked_whiten(x, torch.zeros(2, 16, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_kernel_errors_keep_their_message(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    r = np.arange(32, dtype=np.float32)
    r[5] = np.nan
    rr = _as(kind, r)
    with pytest.raises(ValueError) as fast:
        K.group_advantages(rr, group_size=16)
    with pytest.raises(ValueError) as fast_rloo:
        K.rloo_advantages(rr, group_size=16)
    _converting(monkeypatch)
    with pytest.raises(ValueError) as slow:
        K.group_advantages(rr, group_size=16)
    with pytest.raises(ValueError) as slow_rloo:
        K.rloo_advantages(rr, group_size=16)
    assert str(fast.value) == str(slow.value) and "at index 5" in str(fast.value)
    assert str(fast_rloo.value) == str(slow_rloo.value)


def test_new_outputs_follow_the_inputs() -> None:
    """Without ``out=``: a tensor for tensors, an array for arrays, of the input's dtype; group kernels give [B] for
    [B, R] rewards."""
    for dt in (torch.float32, torch.float64):
        r2 = torch.randn(16, 3, dtype=dt)
        got = K.group_advantages(r2, group_size=4)
        assert type(got) is torch.Tensor and got.dtype == dt and tuple(got.shape) == (16,)
        got_n = K.group_advantages(r2.numpy(), group_size=4)
        assert type(got_n) is np.ndarray and got_n.shape == (16,) and _bits(got, got_n)
        a, b = K.token_gae(torch.randn(2, 8, dtype=dt), torch.randn(2, 8, dtype=dt), torch.ones(2, 8, dtype=torch.bool))
        assert type(a) is torch.Tensor and type(b) is torch.Tensor and a.dtype == dt and a.data_ptr() != b.data_ptr()
