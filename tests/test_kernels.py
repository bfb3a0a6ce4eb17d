"""Compiled kernels == their NumPy references (``rltrain.reference`` is the spec), plus known values.

Property tests draw rewards/values on a coarse grid (integers / 8 in [-50, 50]) so that sums are exact and
near-zero-variance groups cannot make a comparison ill-conditioned. GAE and discounted returns run the same
operations in the same order as the reference (``-ffp-contract=off``), so they are compared exactly; the group
kernels accumulate in a different order and are compared with a tight tolerance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rltrain import kernels as K
from rltrain import reference as R

F_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
FLAG_DTYPES = ["bool", "uint8", "float32", "float64"]
LAYOUTS = ["c", "f", "strided", "reversed"]
OUT_KINDS = [None, "numpy", "numpy_strided", "torch", "torch_strided"]
GROUP_KERNELS = ["episodic", "per_step_timestep", "per_step_pooled", "hybrid"]

unit = st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0]), st.floats(0.0, 1.0))


# ------------------------------------------------------------------------------------------------ helpers


@st.composite
def grid(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """float64 array of integers / 8 in [-50, 50]: wide spread, a few distinct values, or constant."""
    kind = draw(st.sampled_from(["wide", "few", "constant"]))
    if kind == "wide":
        ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(-400, 400)))
    elif kind == "few":
        ints = draw(hnp.arrays(np.int64, shape, elements=st.sampled_from([-8, 0, 8, 16])))
    else:
        ints = np.full(shape, draw(st.integers(-400, 400)), np.int64)
    return ints.astype(np.float64) / 8.0


@st.composite
def flag_pattern(draw: Any, shape: tuple[int, int]) -> np.ndarray:
    """Boolean [T, N] flags: random, none, all, or only at the last step."""
    kind = draw(st.sampled_from(["random", "none", "all", "last"]))
    if kind == "random":
        return draw(hnp.arrays(np.bool_, shape))
    f = np.zeros(shape, bool)
    if kind == "all":
        f[...] = True
    elif kind == "last" and shape[0] > 0:
        f[-1] = True
    return f


def as_flags(b: np.ndarray, kind: str) -> np.ndarray:
    """Encodes boolean flags as bool, uint8 (non-zero values other than 1 too) or float."""
    if kind == "bool":
        return b.copy()
    if kind == "uint8":
        return (b.astype(np.uint8) * np.uint8(3)).astype(np.uint8)
    return b.astype(kind)


def with_layout(x: np.ndarray, layout: str) -> np.ndarray:
    """The same values as a C-contiguous, Fortran-ordered, strided or negatively strided view."""
    if layout == "c" or x.ndim == 0:
        return np.ascontiguousarray(x)
    if layout == "f":
        return np.asfortranarray(x)
    if layout == "strided":
        big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        big[..., ::2] = x
        return big[..., ::2]
    if layout == "reversed":
        return np.flip(np.flip(x).copy())
    raise AssertionError(layout)


def convert(x: np.ndarray | None, container: str, layout: str) -> Any:
    if x is None:
        return None
    if container == "torch":
        return torch.from_numpy(with_layout(x, "strided" if layout == "reversed" else layout))
    return with_layout(x, layout)


def make_out(shape: tuple[int, ...], dtype: np.dtype, kind: str | None) -> Any:
    """An ``out=`` buffer prefilled with NaN, so that unwritten entries show."""
    if kind is None:
        return None
    base = np.full(shape, np.nan, dtype)
    if kind == "numpy":
        return base
    if kind == "numpy_strided":
        return with_layout(base, "strided") if base.ndim else base
    if kind == "torch":
        return torch.from_numpy(base)
    if kind == "torch_strided":
        return torch.from_numpy(with_layout(base, "strided") if base.ndim else base)
    raise AssertionError(kind)


def result(x: Any, dtype: np.dtype, container: str, out: Any = None) -> np.ndarray:
    """Checks the returned object's type, identity (``out=``) and dtype; returns it as a NumPy array."""
    if out is not None:
        assert x is out, "the kernel must return the out= object itself"
    elif container == "torch":
        assert isinstance(x, torch.Tensor), f"torch in -> torch out, got {type(x)}"
    else:
        assert isinstance(x, np.ndarray), f"numpy in -> numpy out, got {type(x)}"
    if isinstance(x, torch.Tensor):
        assert x.dtype == (torch.float32 if dtype == np.float32 else torch.float64)
        assert x.device.type == "cpu"
        return x.numpy()
    assert x.dtype == dtype
    return x


def assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_array_equal(got, want, strict=True)


def assert_close(got: np.ndarray, want: np.ndarray, dtype: np.dtype, noise: np.ndarray | None = None) -> None:
    """``got == want`` up to rtol/atol (1e-5 for float32, 1e-10 for float64, atol relative to max|want|),
    plus an elementwise ``noise`` allowance where the spec itself amplifies rounding (inf: not compared)."""
    assert got.shape == want.shape and got.dtype == want.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-10
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    if noise is None:
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    with np.errstate(invalid="ignore"):
        ok = (np.abs(g - w) <= tol * scale + tol * np.abs(w) + noise) | np.isinf(noise)
    ok |= np.isnan(g) & np.isnan(w)
    if not np.all(ok):
        bad = np.argwhere(~ok)[:5].tolist()
        raise AssertionError(
            f"mismatch at {bad}: got {g[~ok][:5]}, want {w[~ok][:5]}, allowed noise {noise[~ok][:5]}"
        )


def bits_equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------------------------------- GAE


@given(data=st.data())
def test_gae_matches_reference(data: st.DataObject) -> None:
    T = data.draw(st.integers(0, 10), label="T")
    N = data.draw(st.integers(0, 6), label="N")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    r = data.draw(grid((T, N)), label="rewards").astype(dtype)
    v = data.draw(grid((T, N)), label="values").astype(dtype)
    lv = data.draw(grid((N,)), label="last_values").astype(dtype)
    dones = data.draw(flag_pattern((T, N)), label="dones")
    term = fin = None
    if data.draw(st.booleans(), label="with_terminated"):
        term = data.draw(flag_pattern((T, N)), label="terminated")
        if data.draw(st.booleans(), label="terminated_subset_of_dones"):
            term &= dones
        fin = data.draw(grid((T, N)), label="final_values").astype(dtype)
    gamma, lam = data.draw(unit, label="gamma"), data.draw(unit, label="lam")
    flag_kind = data.draw(st.sampled_from(FLAG_DTYPES), label="flag_dtype")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")

    want_adv, want_ret = R.gae(r, v, dones, lv, gamma=gamma, lam=lam, terminated=term, final_values=fin)
    out = None if out_kind is None else (make_out((T, N), dtype, out_kind), make_out((T, N), dtype, out_kind))
    got = K.gae(
        convert(r, container, layout),
        convert(v, container, layout),
        convert(as_flags(dones, flag_kind), container, layout),
        convert(lv, container, layout),
        gamma=gamma,
        lam=lam,
        terminated=None if term is None else convert(as_flags(term, flag_kind), container, layout),
        final_values=convert(fin, container, layout),
        out=out,
    )
    assert isinstance(got, tuple) and len(got) == 2
    adv = result(got[0], dtype, container, None if out is None else out[0])
    ret = result(got[1], dtype, container, None if out is None else out[1])
    # Same operations in the same order as the reference: equal, not just close (float32 included).
    assert_exact(adv, want_adv)
    assert_exact(ret, want_ret)


@given(data=st.data())
def test_discounted_returns_matches_reference(data: st.DataObject) -> None:
    T = data.draw(st.integers(0, 10), label="T")
    N = data.draw(st.integers(0, 6), label="N")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    r = data.draw(grid((T, N)), label="rewards").astype(dtype)
    dones = data.draw(flag_pattern((T, N)), label="dones")
    lv = data.draw(st.none() | grid((N,)), label="last_values")
    lv = None if lv is None else lv.astype(dtype)
    gamma = data.draw(unit, label="gamma")
    flag_kind = data.draw(st.sampled_from(FLAG_DTYPES), label="flag_dtype")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")

    want = R.discounted_returns(r, dones, gamma=gamma, last_values=lv)
    out = make_out((T, N), dtype, out_kind)
    got = K.discounted_returns(
        convert(r, container, layout),
        convert(as_flags(dones, flag_kind), container, layout),
        gamma=gamma,
        last_values=convert(lv, container, layout),
        out=out,
    )
    assert_exact(result(got, dtype, container, out), want)


@pytest.mark.parametrize("with_terminated", [False, True])
def test_gae_mixed_float_dtypes_promote_to_float64(with_terminated: bool) -> None:
    rng = np.random.default_rng(1)
    T, N = 5, 3
    r = rng.integers(-8, 8, (T, N)).astype(np.float32)
    v = rng.normal(size=(T, N))
    lv = rng.normal(size=N).astype(np.float32)
    d = rng.random((T, N)) < 0.3
    term = d & (rng.random((T, N)) < 0.5) if with_terminated else None
    fin = rng.normal(size=(T, N)) if with_terminated else None
    adv, ret = K.gae(r, v, d, lv, terminated=term, final_values=fin)
    assert adv.dtype == ret.dtype == np.float64
    want_adv, want_ret = R.gae(r, v, d, lv, terminated=term, final_values=fin)
    assert_exact(adv, want_adv)
    assert_exact(ret, want_ret)
    got = K.discounted_returns(r, d, gamma=0.9, last_values=lv.astype(np.float64))
    assert got.dtype == np.float64
    assert_exact(got, R.discounted_returns(r, d, gamma=0.9, last_values=lv.astype(np.float64)))


def test_inputs_are_not_modified() -> None:
    rng = np.random.default_rng(2)
    r, v, lv = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=4)
    d = rng.random((6, 4)) < 0.3
    copies = [a.copy() for a in (r, v, lv, d)]
    K.gae(r, v, d, lv)
    K.discounted_returns(r, d, last_values=lv)
    for a, c in zip((r, v, lv, d), copies):
        assert bits_equal(a, c)


# ----------------------------------------------------------------------------------------- GAE known values


def _random_rollout(seed: int, T: int = 12, N: int = 5, dtype: Any = np.float64) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    r = (rng.integers(-400, 400, (T, N)) / 8).astype(dtype)
    v = (rng.integers(-400, 400, (T, N)) / 8).astype(dtype)
    lv = (rng.integers(-400, 400, N) / 8).astype(dtype)
    d = rng.random((T, N)) < 0.25
    d[-1, 0] = True  # done at the last step
    d[:, 1] = True  # always done
    d[:, 2] = False  # never done
    return r, v, d, lv


@pytest.mark.parametrize("gamma", [0.0, 0.9, 0.99, 1.0])
def test_gae_lambda_zero_is_td_error(gamma: float) -> None:
    r, v, d, lv = _random_rollout(3)
    next_v = np.concatenate([v[1:], lv[None]], axis=0)
    td = r + gamma * (next_v * (1.0 - d)) - v
    adv, ret = K.gae(r, v, d, lv, gamma=gamma, lam=0.0)
    np.testing.assert_allclose(adv, td, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, td + v, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.99, 1.0])
def test_gae_lambda_one_is_monte_carlo_return_minus_value(gamma: float) -> None:
    r, v, d, lv = _random_rollout(4)
    T = r.shape[0]
    mc = np.zeros_like(r)
    nxt = lv.copy()  # bootstrapped with last_values at T, cut at dones
    for t in range(T - 1, -1, -1):
        nxt = r[t] + gamma * (1.0 - d[t]) * nxt
        mc[t] = nxt
    adv, ret = K.gae(r, v, d, lv, gamma=gamma, lam=1.0)
    np.testing.assert_allclose(adv, mc - v, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ret, mc, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        K.discounted_returns(r, d, gamma=gamma, last_values=lv), mc, rtol=1e-12, atol=1e-12
    )


def _sb3_gae_transcription(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Stable-Baselines3's RolloutBuffer.compute_returns_and_advantage, line by line."""
    buffer_size = rewards.shape[0]
    advantages = np.zeros_like(rewards)
    last_gae_lam = 0
    for step in reversed(range(buffer_size)):
        if step == buffer_size - 1:
            next_non_terminal = 1.0 - dones.astype(np.float32)
            next_values = last_values
        else:
            next_non_terminal = 1.0 - episode_starts[step + 1]
            next_values = values[step + 1]
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        last_gae_lam = delta + gamma * gae_lambda * next_non_terminal * last_gae_lam
        advantages[step] = last_gae_lam
    return advantages, advantages + values


def _episode_starts(d: np.ndarray) -> np.ndarray:
    """SB3's convention: episode_starts[t] = dones[t - 1] (episode_starts[0] is unused: any value)."""
    starts = np.ones_like(d, dtype=np.float32)
    starts[1:] = d[:-1]
    return starts


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.9, 1.0), (1.0, 0.0), (0.5, 0.5)])
def test_gae_equals_sb3_loop_transcription(seed: int, gamma: float, lam: float) -> None:
    r, v, d, lv = _random_rollout(seed)
    want_adv, want_ret = _sb3_gae_transcription(
        r, v, _episode_starts(d).astype(np.float64), lv, d[-1], gamma, lam
    )
    adv, ret = K.gae(r, v, d, lv, gamma=gamma, lam=lam)
    np.testing.assert_allclose(adv, want_adv, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ret, want_ret, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_gae_equals_sb3_rollout_buffer(seed: int) -> None:
    buffers = pytest.importorskip(
        "stable_baselines3.common.buffers", reason="stable_baselines3 is not installed"
    )
    from gymnasium import spaces

    T, N, gamma, lam = 16, 4, 0.99, 0.95
    r, v, d, lv = _random_rollout(seed, T=T, N=N, dtype=np.float32)
    buf = buffers.RolloutBuffer(
        T,
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        spaces.Discrete(2),
        device="cpu",
        gae_lambda=lam,
        gamma=gamma,
        n_envs=N,
    )
    buf.rewards[:] = r
    buf.values[:] = v
    buf.episode_starts[:] = _episode_starts(d)
    buf.compute_returns_and_advantage(last_values=torch.from_numpy(lv.copy()), dones=d[-1].copy())
    adv, ret = K.gae(r, v, d, lv, gamma=gamma, lam=lam)
    assert adv.dtype == np.float32
    np.testing.assert_allclose(adv, buf.advantages, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(ret, buf.returns, rtol=1e-6, atol=1e-5)


def test_gae_truncation_bootstraps_from_final_values() -> None:
    # env 0: truncated at t=1 (done, not terminated); env 1: terminated at t=1; env 2: no episode end.
    gamma, lam = 0.5, 0.5
    r = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [4.0, 4.0, 4.0]])
    v = np.array([[1.0, 1.0, 1.0], [3.0, 3.0, 3.0], [5.0, 5.0, 5.0]])
    lv = np.array([8.0, 8.0, 8.0])
    dones = np.array([[0, 0, 0], [1, 1, 0], [0, 0, 0]], bool)
    term = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], bool)
    fin = np.full((3, 3), np.nan)  # only read where dones & ~terminated
    fin[1, 0] = 16.0
    adv, ret = K.gae(r, v, dones, lv, gamma=gamma, lam=lam, terminated=term, final_values=fin)
    # t=2: delta = 4 + 0.5*8 - 5 = 3 for all envs.
    # t=1: env0 delta = 2 + 0.5*16 - 3 = 7, cut; env1 delta = 2 - 3 = -1, cut; env2 delta = 2 + 2.5 - 3 = 1.5,
    #      A = 1.5 + 0.25*3 = 2.25.
    # t=0: delta = 1 + 0.5*3 - 1 = 1.5; A = 1.5 + 0.25*A[1] -> 3.25, 1.25, 2.0625.
    want = np.array([[3.25, 1.25, 2.0625], [7.0, -1.0, 2.25], [3.0, 3.0, 3.0]])
    np.testing.assert_array_equal(adv, want)
    np.testing.assert_array_equal(ret, want + v)
    # Without terminated, the truncated step bootstraps nothing (SB3 semantics).
    adv_sb3, _ = K.gae(r, v, dones, lv, gamma=gamma, lam=lam)
    assert adv_sb3[1, 0] == -1.0


@given(data=st.data())
def test_gae_terminated_equal_dones_ignores_final_values(data: st.DataObject) -> None:
    T, N = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 5))
    r, v = data.draw(grid((T, N))), data.draw(grid((T, N)))
    lv = data.draw(grid((N,)))
    d = data.draw(flag_pattern((T, N)))
    fin = np.full((T, N), np.nan)
    gamma, lam = data.draw(unit), data.draw(unit)
    want = K.gae(r, v, d, lv, gamma=gamma, lam=lam)
    got = K.gae(r, v, d, lv, gamma=gamma, lam=lam, terminated=d, final_values=fin)
    assert_exact(got[0], want[0])
    assert_exact(got[1], want[1])


def test_discounted_returns_known_values() -> None:
    r = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    d = np.array([[0, 0], [1, 0], [0, 0]], bool)
    got = K.discounted_returns(r, d, gamma=0.5, last_values=np.array([8.0, 8.0]))
    np.testing.assert_array_equal(got, [[2.0, 3.75], [2.0, 5.5], [7.0, 7.0]])
    np.testing.assert_array_equal(K.discounted_returns(r, d, gamma=0.0), r)
    np.testing.assert_array_equal(
        K.discounted_returns(r, np.zeros_like(d), gamma=1.0), [[6, 6], [5, 5], [3, 3]]
    )


# --------------------------------------------------------------------------------------------- group kernels


@given(data=st.data())
def test_group_normalize_matches_reference(data: st.DataObject) -> None:
    n_groups = data.draw(st.integers(0, 6), label="n_groups")
    gs = data.draw(st.integers(1, 8), label="group_size")
    n = n_groups * gs
    group_size = data.draw(st.sampled_from([None, gs]), label="group_size_arg")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    s = data.draw(grid((n,)), label="scores").astype(dtype)
    scale = data.draw(st.sampled_from(["group", "batch", "none"]), label="scale")
    eps = data.draw(st.sampled_from([1e-8, 1e-4, 0.5, 0.0]), label="eps")
    ddof = data.draw(st.sampled_from([0, 1, 2]), label="ddof")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")
    with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 on a zero-variance group: 0/0 = nan
        want = R.group_normalize(s, group_size=group_size, scale=scale, eps=eps, ddof=ddof)
    out = make_out((n,), dtype, out_kind)
    got = K.group_normalize(
        convert(s, container, layout), group_size=group_size, scale=scale, eps=eps, ddof=ddof, out=out
    )
    assert_close(result(got, dtype, container, out), want, dtype)


def _group_call(kernel: str, rewards: Any, lengths: Any, p: dict[str, Any], mod: Any, out: Any = None) -> Any:
    if kernel == "episodic":
        return mod.episodic_advantages(rewards, lengths, eps=p["eps"], ddof=p["ddof"], out=out)
    if kernel.startswith("per_step"):
        norm = kernel.split("_")[-1]
        return mod.per_step_advantages(
            rewards, lengths, gamma=p["gamma"], normalize=norm, eps=p["eps"], ddof=p["ddof"], out=out
        )
    return mod.hybrid_advantages(
        rewards,
        lengths,
        gamma=p["gamma"],
        alpha=p["alpha"],
        beta=p["beta"],
        clip=p["clip"],
        eps=p["eps"],
        ddof=p["ddof"],
        out=out,
    )


def _valid(lengths: np.ndarray, T: int) -> np.ndarray:
    return np.arange(T) < lengths[..., None]


@st.composite
def group_params(draw: Any, kernel: str) -> dict[str, Any]:
    p: dict[str, Any] = {
        "eps": draw(st.sampled_from([1e-8, 1e-3, 0.0]), label="eps"),
        "ddof": draw(st.sampled_from([0, 1, 2]), label="ddof"),
        "gamma": draw(unit, label="gamma"),
        "alpha": draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]), label="alpha"),
        "beta": draw(st.sampled_from([0.5, 1.0, 2.0, 0.0]), label="beta"),
        "clip": draw(st.sampled_from([None, 0.0, 0.5, 2.0, 10.0]), label="clip"),
    }
    if p["beta"] < 1.0:
        # Where S is mathematically 0 but computed as a rounding residue (+-1e-16: the reference and the
        # kernel sum in different orders), its sign is arbitrary and |S|^beta is not small for beta < 1
        # (beta = 0: |S|^0 = 1). gamma = 0 makes S = (r - mean) / denom, whose sign is exact.
        p["gamma"] = 0.0
    return p


def hybrid_noise(rewards: np.ndarray, lengths: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """How much rounding the hybrid's final normalisation may amplify, per element.

    ``H = (h - mean(h)) / (std(h) + eps)``: rounding in h (|error| ~ n ulp max|h|, summation order differs
    between the kernel and the reference) is divided by ``std(h) + eps``. For a (nearly) constant h that is
    rounding noise / (tiny + eps): e.g. 1e-8 for eps = 1e-8, anything for eps = 0 (then not compared)."""
    x = rewards.astype(np.float64).reshape((-1,) + rewards.shape[-2:])
    lens = lengths.astype(np.int64).reshape(x.shape[:2])
    T = x.shape[2]
    noise = np.zeros_like(x)
    with np.errstate(all="ignore"):
        E = R.episodic_advantages(x, lens, eps=p["eps"], ddof=p["ddof"])
        S = R.per_step_advantages(x, lens, gamma=p["gamma"], eps=p["eps"], ddof=p["ddof"])
        mag = np.abs(E) ** p["alpha"] * np.abs(S) ** p["beta"]
        if p["clip"] is not None:
            mag = np.minimum(mag, p["clip"])
        h = np.where((E > 0) & (S > 0), mag, -mag)
        for b in range(x.shape[0]):
            vals = h[b][_valid(lens[b], T)]
            if vals.size == 0:
                continue
            n = vals.size
            std = np.sqrt(np.sum((vals - vals.mean()) ** 2) / (n - p["ddof"])) if n > p["ddof"] else 0.0
            denom = std + p["eps"]
            noise[b] = (
                np.inf if denom == 0 else 64 * n * np.finfo(np.float64).eps * np.max(np.abs(vals)) / denom
            )
    return np.nan_to_num(noise, nan=np.inf).reshape(rewards.shape)


@st.composite
def group_inputs(draw: Any) -> tuple[np.ndarray, np.ndarray]:
    """rewards [G, T] or [B, G, T] (G, T >= 1) with garbage in the padding, and lengths in [0, T]."""
    three_d = draw(st.booleans(), label="3-D")
    G = draw(st.integers(1, 6), label="G")
    T = draw(st.integers(1, 8), label="T")
    lead = (draw(st.integers(0, 3), label="B"),) if three_d else ()
    rewards = draw(grid(lead + (G, T)), label="rewards")
    lengths = draw(
        hnp.arrays(np.int64, lead + (G,), elements=st.one_of(st.just(0), st.just(T), st.integers(0, T))),
        label="lengths",
    )
    pad = draw(st.sampled_from([0.0, np.nan, 1e30, -3.0]), label="padding")
    rewards[~_valid(lengths, T)] = pad  # ignored on input
    return rewards, lengths


@pytest.mark.parametrize("kernel", GROUP_KERNELS)
@given(data=st.data())
def test_group_kernel_matches_reference(kernel: str, data: st.DataObject) -> None:
    rewards, lengths = data.draw(group_inputs())
    p = data.draw(group_params(kernel))
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    rewards = rewards.astype(dtype)
    lengths = lengths.astype(
        data.draw(st.sampled_from([np.int64, np.int32, np.uint16]), label="lengths_dtype")
    )
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    layout = data.draw(st.sampled_from(LAYOUTS), label="layout")
    out_kind = data.draw(st.sampled_from(OUT_KINDS), label="out")
    if container == "torch" and lengths.dtype == np.uint16:
        lengths = lengths.astype(np.int32)

    with np.errstate(divide="ignore", invalid="ignore"):  # eps = 0 on a zero-variance group: 0/0 = nan
        want = _group_call(kernel, rewards, lengths, p, R)
    out = make_out(rewards.shape, dtype, out_kind)
    got = _group_call(
        kernel, convert(rewards, container, layout), convert(lengths, container, layout), p, K, out
    )
    got = result(got, dtype, container, out)
    assert_close(got, want, dtype, hybrid_noise(rewards, lengths, p) if kernel == "hybrid" else None)
    T = rewards.shape[-1]
    assert np.all(got[~_valid(lengths, T)] == 0), "entries at t >= lengths[i] must be exactly 0"


GROUP_CASES = {
    "all_lengths_zero": (np.full((4, 5), 3.0), np.zeros(4, np.int64)),
    "all_lengths_T": (np.arange(20.0).reshape(4, 5) % 3, np.full(4, 5, np.int64)),
    "single_member_group": (np.array([[1.0, 2.0, 3.0]]), np.array([2])),
    "zero_variance_group": (np.full((3, 4), 2.5), np.array([4, 4, 4])),
    "zero_variance_ragged": (np.full((3, 4), 2.5), np.array([1, 4, 2])),
    "T_is_1": (np.array([[1.0], [0.0], [1.0]]), np.array([1, 1, 0])),
    "one_alive_at_tail": (np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 0.0]]), np.array([3, 1])),
    "batched": (np.arange(24.0).reshape(2, 3, 4) % 5, np.array([[4, 2, 0], [1, 4, 3]])),
}


@pytest.mark.parametrize("case", sorted(GROUP_CASES))
@pytest.mark.parametrize("kernel", GROUP_KERNELS)
@pytest.mark.parametrize("ddof", [0, 1])
@pytest.mark.parametrize("dtype", F_DTYPES)
def test_group_kernel_edge_cases(case: str, kernel: str, ddof: int, dtype: np.dtype) -> None:
    rewards, lengths = GROUP_CASES[case]
    rewards = rewards.astype(dtype)
    p = {"eps": 1e-8, "ddof": ddof, "gamma": 0.9, "alpha": 1.0, "beta": 1.0, "clip": 10.0}
    want = _group_call(kernel, rewards, lengths, p, R)
    got = _group_call(kernel, rewards, lengths, p, K)
    assert_close(got, want, dtype)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("kernel", GROUP_KERNELS)
@pytest.mark.parametrize(
    "shape", [(0, 5), (3, 0), (0, 0), (2, 0, 5), (2, 3, 0), (0, 3, 5), (0, 0, 0)], ids=str
)
def test_group_kernel_empty_inputs(kernel: str, shape: tuple[int, ...]) -> None:
    """Empty groups (G = 0), empty episodes (T = 0) and empty batches (B = 0) give an empty result."""
    rewards = np.zeros(shape, np.float32)
    lengths = np.zeros(shape[:-1], np.int64)
    p = {"eps": 1e-8, "ddof": 0, "gamma": 0.9, "alpha": 1.0, "beta": 1.0, "clip": 10.0}
    got = _group_call(kernel, rewards, lengths, p, K)
    assert got.shape == shape and got.dtype == np.float32
    out = np.empty(shape, np.float32)
    assert _group_call(kernel, rewards, lengths, p, K, out=out) is out
    got_t = _group_call(kernel, torch.from_numpy(rewards), torch.from_numpy(lengths), p, K)
    assert isinstance(got_t, torch.Tensor) and tuple(got_t.shape) == shape


@pytest.mark.parametrize("kernel", GROUP_KERNELS)
@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (2, 0, 5), (2, 3, 0), (0, 3, 5)], ids=str)
def test_reference_group_kernels_empty_inputs(kernel: str, shape: tuple[int, ...]) -> None:
    """The reference (the spec) handles the same empty inputs as the kernels."""
    rewards = np.zeros(shape, np.float32)
    lengths = np.zeros(shape[:-1], np.int64)
    p = {"eps": 1e-8, "ddof": 0, "gamma": 0.9, "alpha": 1.0, "beta": 1.0, "clip": 10.0}
    want = _group_call(kernel, rewards, lengths, p, R)
    assert want.shape == shape and want.dtype == np.float32


@pytest.mark.parametrize("group_size", [None, 3])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_group_normalize_empty(group_size: int | None, scale: str) -> None:
    got = K.group_normalize(np.zeros(0, np.float32), group_size=group_size, scale=scale)
    assert got.shape == (0,) and got.dtype == np.float32


# ------------------------------------------------------------------------------------ group known values


@pytest.mark.parametrize("G", [2, 4, 8])
def test_group_normalize_equals_trl_formula(G: int) -> None:
    """TRL's GRPOTrainer: (r - mean_grouped) / (std_grouped + eps) with torch's unbiased std (ddof=1)."""
    rng = np.random.default_rng(G)
    rewards = torch.from_numpy(rng.integers(0, 5, 6 * G).astype(np.float32))
    mean = rewards.view(-1, G).mean(dim=1).repeat_interleave(G)
    std = rewards.view(-1, G).std(dim=1).repeat_interleave(G)
    want = (rewards - mean) / (std + 1e-4)
    got = K.group_normalize(rewards, group_size=G, eps=1e-4, ddof=1)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # Dr. GRPO: no division.
    torch.testing.assert_close(K.group_normalize(rewards, group_size=G, scale="none"), rewards - mean)


def test_episodic_advantages_known_values() -> None:
    rewards = np.array([[1.0, 1.0, 9.0], [0.0, 2.0, 9.0], [5.0, 9.0, 9.0]])
    lengths = np.array([2, 2, 1])  # totals 2, 2, 5: mean 3, population std sqrt(2)
    got = K.episodic_advantages(rewards, lengths, eps=0.0)
    a, b = -1.0 / np.sqrt(2.0), 2.0 / np.sqrt(2.0)
    np.testing.assert_allclose(got, [[a, a, 0.0], [a, a, 0.0], [b, 0.0, 0.0]], rtol=1e-14)
    got1 = K.episodic_advantages(rewards, lengths, eps=0.0, ddof=1)  # sample std sqrt(3)
    np.testing.assert_allclose(got1, got * np.sqrt(2.0) / np.sqrt(3.0), rtol=1e-14)


def test_per_step_advantages_known_values() -> None:
    rewards = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 0.0]])
    lengths = np.array([2, 1, 1])
    # t=0: alive {0,1,2}, values 1, 0, 2 -> mean 1, std sqrt(2/3): n = 0, -sqrt(1.5), sqrt(1.5)
    # t=1: alive {0} -> std 0: n = 0 / (0 + eps) = 0.
    got = K.per_step_advantages(rewards, lengths, gamma=0.5)
    s = np.sqrt(1.5)
    np.testing.assert_allclose(got, [[0.0, 0.0], [-s, 0.0], [s, 0.0]], rtol=1e-7, atol=1e-15)
    # pooled: values 1, 0, 0, 2 -> mean 0.75, std sqrt(0.6875)
    got = K.per_step_advantages(rewards, lengths, gamma=0.5, normalize="pooled", eps=0.0)
    z = (np.array([1.0, 0.0, 0.0, 2.0]) - 0.75) / np.sqrt(0.6875)
    np.testing.assert_allclose(got, [[z[0] + 0.5 * z[1], z[1]], [z[2], 0.0], [z[3], 0.0]], rtol=1e-14)


def test_hybrid_sign_magnitude_and_normalization() -> None:
    rewards = np.array([[1.0, 3.0], [0.0, -1.0], [2.0, 0.0]])
    lengths = np.array([2, 2, 1])
    E = K.episodic_advantages(rewards, lengths, eps=0.0)
    S = K.per_step_advantages(rewards, lengths, gamma=0.9, eps=0.0)
    mask = _valid(lengths, 2)
    for clip in (None, 0.7):
        mag = np.abs(E) * np.abs(S) ** 2
        if clip is not None:
            mag = np.minimum(mag, clip)
        h = np.where((E > 0) & (S > 0), mag, -mag)[mask]
        want = np.zeros_like(rewards)
        want[mask] = (h - h.mean()) / h.std()
        got = K.hybrid_advantages(rewards, lengths, gamma=0.9, beta=2.0, clip=clip, eps=0.0)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_hybrid_clip_none_means_no_clip(dtype: np.dtype) -> None:
    """Magnitudes |E|^2 |S|^2 far above 10: clip=None keeps them, clip=10 does not."""
    rewards = np.zeros((6, 8), dtype)
    rewards[0] = 50.0  # one outlier episode: large |E| and large |S|
    rewards[1, :4] = -10.0
    lengths = np.array([8, 8, 6, 4, 8, 2])
    kw = {"gamma": 1.0, "alpha": 2.0, "beta": 2.0, "eps": 1e-8}
    E = R.episodic_advantages(rewards.astype(np.float64), lengths)
    S = R.per_step_advantages(rewards.astype(np.float64), lengths, gamma=1.0)
    assert np.max(E**2 * S**2) > 100.0
    unclipped = K.hybrid_advantages(rewards, lengths, clip=None, **kw)
    clipped = K.hybrid_advantages(rewards, lengths, clip=10.0, **kw)
    assert_close(unclipped, R.hybrid_advantages(rewards, lengths, clip=None, **kw), dtype)
    assert_close(clipped, R.hybrid_advantages(rewards, lengths, clip=10.0, **kw), dtype)
    assert not np.allclose(unclipped, clipped)


# ------------------------------------------------------------------------------------------------- threads


def _large_rollout(dtype: Any) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(5)
    T, N = 300, 256
    r, v, fin = (rng.normal(size=(T, N)).astype(dtype) for _ in range(3))
    lv = rng.normal(size=N).astype(dtype)
    d = rng.random((T, N)) < 0.05
    term = d & (rng.random((T, N)) < 0.5)
    return r, v, d, lv, term, fin


def _large_groups(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(6)
    B, G, T = 2, 64, 1024
    rewards = (rng.integers(-400, 400, (B, G, T)) / 8).astype(dtype)
    lengths = rng.integers(0, T + 1, (B, G))
    lengths[0, :4] = T
    lengths[1, :2] = 0
    return rewards, lengths


def _large_gae(dt: Any) -> Any:
    r, v, d, lv, _, _ = _large_rollout(dt)
    return K.gae(r, v, d, lv, gamma=0.99, lam=0.95)


def _large_gae_terminated(dt: Any) -> Any:
    r, v, d, lv, term, fin = _large_rollout(dt)
    return K.gae(r, v, d, lv, terminated=term, final_values=fin)


def _large_discounted_returns(dt: Any) -> Any:
    r, _, d, lv, _, _ = _large_rollout(dt)
    return K.discounted_returns(r, d, last_values=lv)


LARGE_CALLS = {
    "gae": _large_gae,
    "gae_terminated": _large_gae_terminated,
    "discounted_returns": _large_discounted_returns,
    "group_normalize": lambda dt: K.group_normalize(_large_groups(dt)[0].reshape(-1), group_size=64, ddof=1),
    "episodic": lambda dt: K.episodic_advantages(*_large_groups(dt), ddof=1),
    "per_step_timestep": lambda dt: K.per_step_advantages(*_large_groups(dt)),
    "per_step_pooled": lambda dt: K.per_step_advantages(*_large_groups(dt), normalize="pooled"),
    "hybrid": lambda dt: K.hybrid_advantages(*_large_groups(dt), beta=0.5, clip=3.0),
}


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize("name", sorted(LARGE_CALLS))
def test_results_identical_for_any_thread_count(name: str, dtype: np.dtype, restore_threads: None) -> None:
    """Inputs large enough to be split over the pool (column ranges, row ranges, timestep chunks)."""
    results = {}
    for k in (1, 2, 3):
        K.set_num_threads(k)
        assert K.get_num_threads() == k
        res = LARGE_CALLS[name](dtype)
        results[k] = res if isinstance(res, tuple) else (res,)
    for k in (2, 3):
        for a, b in zip(results[1], results[k]):
            assert bits_equal(a, b), f"{name}: {k} threads differ from 1 thread"


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_large_inputs_match_reference(dtype: np.dtype, restore_threads: None) -> None:
    """The multi-chunk paths (several column ranges / row ranges / timestep chunks) against the reference."""
    K.set_num_threads(2)
    r, v, d, lv, term, fin = _large_rollout(dtype)
    for got, want in zip(
        K.gae(r, v, d, lv, terminated=term, final_values=fin),
        R.gae(r, v, d, lv, terminated=term, final_values=fin),
    ):
        assert_exact(got, want)
    assert_exact(K.discounted_returns(r, d, last_values=lv), R.discounted_returns(r, d, last_values=lv))
    rewards, lengths = _large_groups(dtype)
    p = {"eps": 1e-8, "ddof": 1, "gamma": 0.99, "alpha": 1.0, "beta": 0.5, "clip": 3.0}
    for kernel in GROUP_KERNELS:
        assert_close(
            _group_call(kernel, rewards, lengths, p, K), _group_call(kernel, rewards, lengths, p, R), dtype
        )


def test_num_threads_from_environment() -> None:
    code = "from rltrain import kernels; print(kernels.get_num_threads())"
    env = {**os.environ, "RLTRAIN_NUM_THREADS": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_set_num_threads_rejects_bad_values(restore_threads: None) -> None:
    with pytest.raises(ValueError, match="num_threads"):
        K.set_num_threads(0)
    with pytest.raises(TypeError, match="num_threads"):
        K.set_num_threads(2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="num_threads"):
        K.set_num_threads(True)


def test_concurrent_calls_from_python_threads(restore_threads: None) -> None:
    """Two Python threads calling kernels at once (the GIL is released) both get the right result."""
    import threading

    K.set_num_threads(2)
    rewards, lengths = _large_groups(np.float64)
    want = K.per_step_advantages(rewards, lengths)
    got: list[Any] = [None, None]

    def work(i: int) -> None:
        got[i] = K.per_step_advantages(rewards, lengths)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(bits_equal(g, want) for g in got)


def _unaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` whose data pointer is not aligned to its item size."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    u[...] = a
    assert u.flags.c_contiguous and (a.itemsize == 1 or not u.flags.aligned)
    return u


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_unaligned_buffers(dtype: np.dtype, restore_threads: None) -> None:
    """Misaligned (but C-contiguous) inputs and outputs are read and written correctly, threads included."""
    K.set_num_threads(2)
    r, v, d, lv, term, fin = _large_rollout(dtype)
    want = R.gae(r, v, d, lv, terminated=term, final_values=fin)
    out = (_unaligned(np.zeros_like(r)), _unaligned(np.zeros_like(r)))
    got = K.gae(
        _unaligned(r),
        _unaligned(v),
        _unaligned(d),
        _unaligned(lv),
        terminated=_unaligned(term),
        final_values=_unaligned(fin),
        out=out,
    )
    assert got[0] is out[0] and got[1] is out[1]
    assert_exact(got[0], want[0])
    assert_exact(got[1], want[1])
    o = _unaligned(np.zeros_like(r))
    assert K.discounted_returns(_unaligned(r), d, last_values=_unaligned(lv), out=o) is o
    assert_exact(o, R.discounted_returns(r, d, last_values=lv))
    rewards, lengths = _large_groups(dtype)
    p = {"eps": 1e-8, "ddof": 0, "gamma": 0.9, "alpha": 1.0, "beta": 1.0, "clip": 10.0}
    for kernel in GROUP_KERNELS:
        o = _unaligned(np.zeros_like(rewards))
        assert _group_call(kernel, _unaligned(rewards), _unaligned(lengths), p, K, o) is o
        assert_close(o, _group_call(kernel, rewards, lengths, p, R), dtype)
    s = rewards.reshape(-1)
    o = _unaligned(np.zeros_like(s))
    assert K.group_normalize(_unaligned(s), group_size=64, out=o) is o
    assert_close(o, R.group_normalize(s, group_size=64), dtype)


def test_torch_autograd_tensors() -> None:
    """Inputs that require grad are read through detach(); an out= tensor that requires grad is filled in."""
    r, v, d, lv = (torch.from_numpy(a) for a in _random_rollout(9))
    r.requires_grad_(True)
    want = R.gae(r.detach().numpy(), v.numpy(), d.numpy(), lv.numpy())
    adv, _ret = K.gae(r, v, d, lv)
    assert isinstance(adv, torch.Tensor) and not adv.requires_grad
    assert_exact(adv.numpy(), want[0])
    out = (
        torch.zeros(r.shape, dtype=torch.float64, requires_grad=True),
        torch.zeros(r.shape, dtype=torch.float64),
    )
    got = K.gae(r, v, d, lv, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    assert_exact(out[0].detach().numpy(), want[0])
    assert_exact(out[1].numpy(), want[1])


@pytest.mark.parametrize("ddof", [3, 2**31, 2**40])
def test_ddof_larger_than_the_group_means_zero_std(ddof: int) -> None:
    """Spec: where fewer than ddof + 1 values exist, std is taken as 0 (any non-negative int ddof)."""
    rewards = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 9.0], [4.0, 0.0, 0.0]])
    lengths = np.array([3, 2, 1])
    p = {"eps": 0.5, "ddof": ddof, "gamma": 0.9, "alpha": 1.0, "beta": 1.0, "clip": 10.0}
    for kernel in GROUP_KERNELS:
        assert_close(
            _group_call(kernel, rewards, lengths, p, K),
            _group_call(kernel, rewards, lengths, p, R),
            np.dtype(np.float64),
        )
    s = rewards.reshape(-1)
    for scale in ("group", "batch"):
        got = K.group_normalize(s, group_size=3, scale=scale, eps=0.5, ddof=ddof)
        assert_close(
            got, R.group_normalize(s, group_size=3, scale=scale, eps=0.5, ddof=ddof), np.dtype(np.float64)
        )


@pytest.mark.parametrize("name", sorted(R.__all__))
def test_reference_has_the_kernels_signature(name: str) -> None:
    """SPEC §1: every kernel's NumPy reference has the same signature (parameter names, kinds and defaults; the two
    are written out side by side on purpose: the reference is the specification, the kernel its implementation)."""
    import inspect

    def params(fn: Any) -> list[tuple[str, Any, Any]]:
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    assert name in K.__all__
    kernel, spec = getattr(K, name), getattr(R, name)
    if inspect.isclass(kernel):
        public = [m for m in dir(spec) if not m.startswith("_") and callable(getattr(spec, m))]
        for method in public:
            assert params(getattr(kernel, method)) == params(getattr(spec, method)), method
        kernel, spec = kernel.__init__, spec.__init__
    assert params(kernel) == params(spec)
