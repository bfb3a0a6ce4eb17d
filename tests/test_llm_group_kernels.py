"""LLM group kernels (``group_advantages``, ``rloo_advantages``) == their NumPy references, plus known values,
the equivalence of every way of naming the same groups, thread-count determinism and bad input.

Rewards are drawn on a grid (integers / 8) and weights from {1, 0.5, 2, -1, 0.25}, so sums are exact and the only
differences from the reference are the C++ kernel's reciprocal multiplications (within an ulp); the comparisons use
a tight tolerance relative to the largest advantage.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import threading
import time
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

INCLUDE = pathlib.Path(__file__).resolve().parents[1] / "cpp" / "include"
F_DTYPES = [np.dtype(np.float32), np.dtype(np.float64)]
PRESETS = ["rltrain", "trl", "verl", "dr_grpo"]
ID_KINDS = ["none", "size", "sorted", "runs", "scattered", "sparse"]


# ------------------------------------------------------------------------------------------------ helpers


@st.composite
def grid(draw: Any, shape: tuple[int, ...]) -> np.ndarray:
    """float64 integers / 8 in [-50, 50]: wide spread, a few distinct values, or constant."""
    kind = draw(st.sampled_from(["wide", "few", "constant"]))
    if kind == "wide":
        ints = draw(hnp.arrays(np.int64, shape, elements=st.integers(-400, 400)))
    elif kind == "few":
        ints = draw(hnp.arrays(np.int64, shape, elements=st.sampled_from([-8, 0, 8, 16])))
    else:
        ints = np.full(shape, draw(st.integers(-400, 400)), np.int64)
    return ints.astype(np.float64) / 8.0


@st.composite
def groups(draw: Any, B: int) -> tuple[str, Any, int | None]:
    """(kind, group_ids, group_size) naming groups of B elements in each of the ways the kernels detect."""
    kind = draw(st.sampled_from(ID_KINDS))
    if kind == "none":
        return kind, None, None
    if kind == "size":
        sizes = [d for d in range(1, B + 1) if B % d == 0] or [1]
        return kind, None, draw(st.sampled_from(sizes))
    n_ids = draw(st.integers(1, max(B, 1)))
    ids = np.sort(draw(hnp.arrays(np.int64, B, elements=st.integers(0, n_ids - 1))))
    if kind == "runs":  # contiguous runs, run ids in a shuffled order
        perm = draw(st.permutations(range(n_ids)))
        ids = np.asarray(perm, np.int64)[ids] if B else ids
    elif kind in ("scattered", "sparse"):
        ids = np.asarray(draw(st.permutations(ids.tolist())), np.int64)
        if kind == "sparse":  # far outside a counting array's range, negative too
            ids = ids * (2**50) - 2**61
    return kind, ids, None


def assert_close(got: np.ndarray, want: np.ndarray, dtype: np.dtype) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-10
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale)


def bits_equal(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def as_container(x: np.ndarray | None, container: str, strided: bool) -> Any:
    if x is None:
        return None
    if strided:  # a non-contiguous view with the same values
        big = np.zeros((x.shape[0] * 2, *x.shape[1:]), x.dtype)
        big[::2] = x
        x = big[::2]
    return torch.from_numpy(x) if container == "torch" else x


def make_out(B: int, dtype: np.dtype, kind: str | None) -> Any:
    if kind is None:
        return None
    base = np.full(B, np.nan, dtype)
    if kind == "numpy_strided":
        base = np.full(2 * B, np.nan, dtype)[::2]
    return torch.from_numpy(base) if kind == "torch" else base


def result(x: Any, dtype: np.dtype, container: str, out: Any) -> np.ndarray:
    if out is not None:
        assert x is out
    elif container == "torch":
        assert isinstance(x, torch.Tensor)
    else:
        assert isinstance(x, np.ndarray)
    a = x.numpy() if isinstance(x, torch.Tensor) else x
    assert a.dtype == dtype
    return a


# ---------------------------------------------------------------------------------- kernels == reference


@given(data=st.data())
def test_group_advantages_matches_reference(data: st.DataObject) -> None:
    B = data.draw(st.integers(0, 40), label="B")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    cols = data.draw(st.sampled_from([None, 1, 3]), label="reward columns")
    shape = (B,) if cols is None else (B, cols)
    r = data.draw(grid(shape), label="rewards").astype(dtype)
    _, ids, gs = data.draw(groups(B), label="groups")
    combine = data.draw(st.sampled_from(["sum", "normalize_then_sum"]), label="combine")
    kw: dict[str, Any] = {
        "preset": data.draw(st.sampled_from(PRESETS), label="preset"),
        "scale": data.draw(st.sampled_from([None, "group", "batch", "none"]), label="scale"),
        "ddof": data.draw(st.sampled_from([None, 0, 1, 2]), label="ddof"),
        # eps = 0 only where no ill-conditioned division can follow (0/0 stays nan on both sides)
        "eps": data.draw(st.sampled_from([None, 1e-4, 0.5] + ([0.0] if combine == "sum" else [])), label="eps"),
        "eps_on": data.draw(st.sampled_from([None, "std", "var"]), label="eps_on"),
        "combine": combine,
    }
    weights_kind = data.draw(st.sampled_from(["none", "f64", "f32", "list"]), label="weights") if cols else "none"
    if weights_kind != "none":
        w = np.asarray(data.draw(st.lists(st.sampled_from([1.0, 0.5, 2.0, -1.0, 0.25]), min_size=cols,
                                          max_size=cols), label="w"))
        kw["reward_weights"] = w.tolist() if weights_kind == "list" else w.astype(weights_kind.replace("f", "float"))
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    strided = data.draw(st.booleans(), label="strided")
    want_dtype = np.dtype(np.float64) if weights_kind == "f64" else dtype
    out_kind = data.draw(st.sampled_from([None, "numpy", "numpy_strided", "torch"]), label="out")
    out = make_out(B, want_dtype, out_kind)
    with np.errstate(divide="ignore", invalid="ignore"):
        want = R.group_advantages(r, ids, group_size=gs, **kw)
    got = K.group_advantages(as_container(r, container, strided), as_container(ids, container, False),
                             group_size=gs, out=out, **kw)
    assert_close(result(got, want_dtype, container, out), want, want_dtype)


@given(data=st.data())
def test_rloo_advantages_matches_reference(data: st.DataObject) -> None:
    B = data.draw(st.integers(0, 40), label="B")
    dtype = data.draw(st.sampled_from(F_DTYPES), label="dtype")
    r = data.draw(grid((B,)), label="rewards").astype(dtype)
    _, ids, gs = data.draw(groups(B), label="groups")
    container = data.draw(st.sampled_from(["numpy", "torch"]), label="container")
    out_kind = data.draw(st.sampled_from([None, "numpy", "numpy_strided", "torch"]), label="out")
    out = make_out(B, dtype, out_kind)
    want = R.rloo_advantages(r, ids, group_size=gs)
    got = K.rloo_advantages(as_container(r, container, data.draw(st.booleans(), label="strided")),
                            as_container(ids, container, False), group_size=gs, out=out)
    assert_close(result(got, dtype, container, out), want, dtype)


# ------------------------------------------------------------------------------------------- known values


def test_presets_on_a_pair_and_a_singleton() -> None:
    r = np.array([1.0, 3.0, 5.0])
    ids = np.array([7, 7, -2])  # a pair (mean 2, deviations -1, +1) and a group of one
    s2 = np.sqrt(2.0)
    want = {
        "rltrain": [-1 / (1 + 1e-8), 1 / (1 + 1e-8), 0.0],
        "trl": [-1 / (s2 + 1e-4), 1 / (s2 + 1e-4), 0.0],
        "verl": [-1 / (s2 + 1e-6), 1 / (s2 + 1e-6), 5 / (1 + 1e-6)],
        "dr_grpo": [-1.0, 1.0, 0.0],
    }
    for preset, w in want.items():
        np.testing.assert_allclose(K.group_advantages(r, ids, preset=preset), w, rtol=1e-15, err_msg=preset)
    np.testing.assert_allclose(K.group_advantages(r, ids, preset="verl", scale="none"), [-1, 1, 5], rtol=1e-15)
    np.testing.assert_allclose(K.group_advantages(r, ids, preset="trl", eps_on="var"),
                               [-1 / np.sqrt(2 + 1e-4), 1 / np.sqrt(2 + 1e-4), 0.0], rtol=1e-15)
    std_b = np.std(r, ddof=1)  # batch scale: the group mean stays, the batch std divides
    np.testing.assert_allclose(K.group_advantages(r, ids, preset="verl", scale="batch"),
                               [-1 / (std_b + 1e-6), 1 / (std_b + 1e-6), 5 / (std_b + 1e-6)], rtol=1e-15)


def test_presets_match_the_reference() -> None:
    from rltrain.kernels import llm_group

    assert llm_group.PRESETS == R.LLM_PRESETS


def test_rloo_known_values() -> None:
    r = np.array([1.0, 2.0, 6.0, 4.0, 9.0])
    got = K.rloo_advantages(r, np.array([0, 0, 0, 1, 5]))
    np.testing.assert_allclose(got, [1 - 4, 2 - 3.5, 6 - 1.5, 0.0, 0.0], rtol=1e-15)


def test_reward_columns_sum_and_gdpo() -> None:
    r = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    w = np.array([2.0, 1.0])
    s = r @ w  # [2, 1, 3, 0]
    np.testing.assert_allclose(K.group_advantages(r, group_size=2, reward_weights=w),
                               K.group_advantages(s, group_size=2), rtol=1e-15)
    # normalize_then_sum: each column +-1 within its groups (or 0), weighted sum, then a batch normalisation
    cols = [K.group_advantages(np.ascontiguousarray(r[:, k]), group_size=2) for k in range(2)]
    a = 2 * cols[0] + cols[1]
    want = (a - a.mean()) / (a.std() + 1e-8)
    got = K.group_advantages(r, group_size=2, reward_weights=w, combine="normalize_then_sum")
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_rltrain_preset_is_group_normalize() -> None:
    rng = np.random.default_rng(0)
    s = rng.normal(size=96)
    for scale in ("group", "batch", "none"):
        for ddof in (0, 1):
            np.testing.assert_allclose(
                K.group_advantages(s, group_size=8, scale=scale, ddof=ddof, eps=1e-6),
                K.group_normalize(s, group_size=8, scale=scale, ddof=ddof, eps=1e-6), rtol=1e-13, atol=1e-15)


def test_output_dtype_follows_the_float_inputs() -> None:
    r32 = np.ones((4, 2), np.float32)
    assert K.group_advantages(r32, group_size=2).dtype == np.float32
    assert K.group_advantages(r32, group_size=2, reward_weights=np.ones(2)).dtype == np.float64
    assert K.group_advantages(r32, group_size=2, reward_weights=np.ones(2, np.float32)).dtype == np.float32
    assert K.group_advantages(r32, group_size=2, reward_weights=[1.0, 0.5]).dtype == np.float32  # a list: weak
    t = K.group_advantages(torch.ones(4, dtype=torch.float64), torch.tensor([0, 0, 1, 1]))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64


@pytest.mark.parametrize("kernel", ["group", "rloo"])
def test_empty_batch(kernel: str) -> None:
    fn = K.group_advantages if kernel == "group" else K.rloo_advantages
    for dt in F_DTYPES:
        for kw in ({}, {"group_size": 4}, {"group_ids": np.zeros(0, np.int64)}):
            got = fn(np.zeros(0, dt), **kw)
            assert got.shape == (0,) and got.dtype == dt


# ------------------------------------------------------------------- one grouping, any way of naming it


@pytest.mark.parametrize("dtype", F_DTYPES)
def test_every_grouping_path_gives_the_same_bits(dtype: np.dtype) -> None:
    """group_size, ascending ids, runs of ids in any order, scattered ids (counting sort) and sparse ids (sort)
    reduce each group in the same member order: identical bits, whatever the ids' integer dtype."""
    rng = np.random.default_rng(3)
    G, n = 12, 300
    inter = np.arange(n * G) % n  # scattered ids: group g = {g, g + n, g + 2n, ...}
    order = np.argsort(inter, kind="stable")  # the groups made contiguous, members in the same order
    r = rng.normal(size=(n * G, 2)).astype(dtype)[order]
    r1 = np.ascontiguousarray(r[:, 0])
    ascending = np.repeat(np.arange(n), G)
    runs = np.repeat(rng.permutation(n), G)
    back = np.argsort(order)  # x[back] puts the contiguous groups back where the scattered ids have them

    def scattered(f: Any, x: np.ndarray, ids: np.ndarray, **kw: Any) -> Any:
        return f(np.ascontiguousarray(x[back]), ids, **kw)[order]

    calls = [
        lambda f, x, **kw: f(x, group_size=G, **kw),
        lambda f, x, **kw: f(x, ascending, **kw),
        lambda f, x, **kw: f(x, runs.astype(np.int16), **kw),
        lambda f, x, **kw: f(x, (runs * 2**40).astype(np.uint64), **kw),
        lambda f, x, **kw: scattered(f, x, inter.astype(np.int32), **kw),
        lambda f, x, **kw: scattered(f, x, inter * 2**52 - 2**62, **kw),
    ]
    # (kernel, rewards, options, whether a batch-wide reduction runs: over the elements in their own order, so the
    # scattered paths, which reorder the elements, agree to rounding there)
    variants: list[tuple[Any, np.ndarray, dict[str, Any], bool]] = [
        (K.rloo_advantages, r1, {}, False),
        (K.group_advantages, r1, {}, False),
        (K.group_advantages, r1, {"preset": "verl"}, False),
        (K.group_advantages, r1, {"preset": "dr_grpo"}, False),
        (K.group_advantages, r, {"reward_weights": np.array([0.5, 2.0])}, False),
        (K.group_advantages, r1, {"preset": "verl", "scale": "batch"}, True),
        (K.group_advantages, r, {"preset": "trl", "combine": "normalize_then_sum", "eps_on": "var"}, True),
    ]
    for fn, x, kw, batch in variants:
        first = calls[0](fn, x, **kw)
        for i, call in enumerate(calls[1:], 1):
            got = call(fn, x, **kw)
            if batch and i >= 4:
                np.testing.assert_allclose(got, first, rtol=1e-12, atol=1e-12)
            else:
                assert bits_equal(got, first), f"{fn.__name__} {kw}: path {i} differs"


@pytest.mark.parametrize("ids_kind", ["size", "equal_runs", "runs", "scattered", "sparse"])
@pytest.mark.parametrize("dtype", F_DTYPES)
def test_results_identical_for_any_thread_count(ids_kind: str, dtype: np.dtype, restore_threads: None) -> None:
    """Inputs split over the pool (several group ranges, several batch blocks): bitwise the same for 1-3 threads,
    and equal to the reference."""
    rng = np.random.default_rng(5)
    B = 300_000
    r = rng.normal(size=(B, 2)).astype(dtype)
    r1 = np.ascontiguousarray(r[:, 0])
    ids: np.ndarray | None = None
    gs: int | None = None
    if ids_kind == "size":
        gs = 16
    elif ids_kind == "equal_runs":
        ids = np.repeat(rng.permutation(B // 16), 16)
    else:
        sizes = rng.integers(1, 30, size=B // 2)
        sizes = sizes[: int(np.searchsorted(np.cumsum(sizes), B)) + 1]
        sizes[-1] -= sizes.sum() - B
        ids = np.repeat(rng.permutation(sizes.size), sizes)
        if ids_kind != "runs":
            ids = rng.permutation(ids)
        if ids_kind == "sparse":
            ids = ids * 2**45 - 2**62
    calls = {
        "rloo": lambda: K.rloo_advantages(r1, ids, group_size=gs),
        "group": lambda: K.group_advantages(r1, ids, group_size=gs, preset="trl"),
        "batch": lambda: K.group_advantages(r1, ids, group_size=gs, preset="verl", scale="batch"),
        "gdpo": lambda: K.group_advantages(r, ids, group_size=gs, combine="normalize_then_sum"),
    }
    results = {}
    for k in (1, 2, 3):
        K.set_num_threads(k)
        results[k] = {name: call() for name, call in calls.items()}
    for k in (2, 3):
        for name in calls:
            assert bits_equal(results[1][name], results[k][name]), f"{name}: {k} threads differ from 1"
    assert_close(results[2]["group"], R.group_advantages(r1, ids, group_size=gs, preset="trl"), dtype)
    assert_close(results[2]["rloo"], R.rloo_advantages(r1, ids, group_size=gs), dtype)


# ------------------------------------------------------------------------------------- aliasing, in place


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_in_place_and_overlapping_out(kind: str) -> None:
    rng = np.random.default_rng(2)
    r = rng.normal(size=64)
    want_g = R.group_advantages(r, group_size=8, preset="trl")
    want_r = R.rloo_advantages(r, group_size=8)
    for fn, want in ((K.group_advantages, want_g), (K.rloo_advantages, want_r)):
        buf = r.copy()
        x = torch.from_numpy(buf) if kind == "torch" else buf
        kw = {"preset": "trl"} if fn is K.group_advantages else {}
        assert fn(x, group_size=8, out=x, **kw) is x
        np.testing.assert_allclose(buf, want, rtol=1e-12)
        big = np.concatenate([r, np.zeros(1)])  # out shifted by one element over the rewards
        got = fn(big[:64], group_size=8, out=big[1:], **kw)
        np.testing.assert_allclose(got, want, rtol=1e-12)


# ------------------------------------------------------------------------------------------- bad input



def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


GA = K.group_advantages
RL = K.rloo_advantages
R6 = np.linspace(-1.0, 1.0, 6)
BAD: list[tuple[str, type[Exception], str, Any]] = [
    ("rewards-2d-rloo", ValueError, "rewards", lambda: RL(np.zeros((6, 2)))),
    ("rewards-3d", ValueError, "rewards", lambda: GA(np.zeros((2, 3, 1)))),
    ("rewards-0d", ValueError, "rewards", lambda: GA(np.zeros(()))),
    ("rewards-int", TypeError, "rewards", lambda: GA(np.arange(6))),
    ("rewards-float16", TypeError, "rewards", lambda: GA(np.zeros(6, np.float16))),
    ("rewards-rloo-bool", TypeError, "rewards", lambda: RL(np.zeros(6, bool))),
    ("rewards-nan", ValueError, "rewards", lambda: GA(np.array([0.0, np.nan, 1.0, 2.0]), group_size=2)),
    ("rewards-inf-ids", ValueError, "rewards", lambda: GA(np.array([0.0, 1.0, np.inf]), np.array([3, 1, 3]))),
    ("rewards-inf-2d", ValueError, "rewards", lambda: GA(np.array([[0.0, 1.0], [-np.inf, 1.0]]))),
    ("rewards-inf-gdpo", ValueError, "rewards",
     lambda: GA(np.array([[0.0, 1.0], [1.0, np.inf]]), combine="normalize_then_sum")),
    ("rewards-nan-batch", ValueError, "rewards", lambda: GA(np.array([np.nan, 1.0]), scale="batch")),
    ("rewards-nan-rloo", ValueError, "rewards", lambda: RL(np.array([1.0, np.nan]), group_size=1)),
    ("rewards-overflow", ValueError, "rewards", lambda: GA(np.array([1e308, 1e308]))),
    ("group_ids-float", TypeError, "group_ids", lambda: GA(R6, np.zeros(6))),
    ("group_ids-bool", TypeError, "group_ids", lambda: GA(R6, np.zeros(6, bool))),
    ("group_ids-rloo-float", TypeError, "group_ids", lambda: RL(R6, np.zeros(6, np.float32))),
    ("group_ids-shape", ValueError, "group_ids", lambda: GA(R6, np.zeros(5, np.int64))),
    ("group_ids-2d", ValueError, "group_ids", lambda: GA(R6, np.zeros((6, 1), np.int64))),
    ("group_ids-object", TypeError, "group_ids", lambda: GA(R6, np.array([object()] * 6))),
    ("group_size-and-ids", ValueError, "group_size", lambda: GA(R6, np.zeros(6, np.int64), group_size=3)),
    ("group_size-rloo-and-ids", ValueError, "group_size", lambda: RL(R6, np.zeros(6, np.int64), group_size=3)),
    ("group_size-4", ValueError, "group_size", lambda: GA(R6, group_size=4)),
    ("group_size-0", ValueError, "group_size", lambda: GA(R6, group_size=0)),
    ("group_size-negative", ValueError, "group_size", lambda: RL(R6, group_size=-2)),
    ("group_size-huge", ValueError, "group_size", lambda: GA(R6, group_size=2**70)),
    ("group_size-float", TypeError, "group_size", lambda: GA(R6, group_size=3.0)),
    ("group_size-bool", TypeError, "group_size", lambda: RL(R6, group_size=True)),
    ("preset", ValueError, "preset", lambda: GA(R6, preset="grpo")),
    ("preset-none", ValueError, "preset", lambda: GA(R6, preset=None)),
    ("scale", ValueError, "scale", lambda: GA(R6, scale="std")),
    ("eps_on", ValueError, "eps_on", lambda: GA(R6, eps_on="both")),
    ("combine", ValueError, "combine", lambda: GA(R6, combine="mean")),
    ("combine-list", ValueError, "combine", lambda: GA(R6, combine=["sum"])),
    ("ddof-negative", ValueError, "ddof", lambda: GA(R6, ddof=-1)),
    ("ddof-float", TypeError, "ddof", lambda: GA(R6, ddof=1.0)),
    ("eps-negative", ValueError, "eps", lambda: GA(R6, eps=-1e-8)),
    ("eps-nan", ValueError, "eps", lambda: GA(R6, eps=float("nan"))),
    ("eps-inf", ValueError, "eps", lambda: GA(R6, eps=float("inf"))),
    ("eps-str", TypeError, "eps", lambda: GA(R6, eps="1e-8")),
    ("reward_weights-1d-rewards", ValueError, "reward_weights", lambda: GA(R6, reward_weights=np.ones(1))),
    ("reward_weights-shape", ValueError, "reward_weights", lambda: GA(np.zeros((6, 2)), reward_weights=np.ones(3))),
    ("reward_weights-2d", ValueError, "reward_weights",
     lambda: GA(np.zeros((6, 2)), reward_weights=np.ones((1, 2)))),
    ("reward_weights-nan", ValueError, "reward_weights",
     lambda: GA(np.zeros((6, 2)), reward_weights=np.array([1.0, np.nan]))),
    ("reward_weights-bool", TypeError, "reward_weights",
     lambda: GA(np.zeros((6, 2)), reward_weights=np.ones(2, bool))),
    ("reward_weights-float16", TypeError, "reward_weights",
     lambda: GA(np.zeros((6, 2)), reward_weights=np.ones(2, np.float16))),
    ("out-shape", ValueError, "out", lambda: GA(R6, out=np.zeros(5))),
    ("out-dtype", TypeError, "out", lambda: GA(R6, out=np.zeros(6, np.float32))),
    ("out-dtype-weights", TypeError, "out",
     lambda: GA(np.zeros((6, 2), np.float32), reward_weights=np.ones(2), out=np.zeros(6, np.float32))),
    ("out-readonly", ValueError, "out", lambda: RL(R6, out=_readonly(np.zeros(6)))),
    ("out-list", TypeError, "out", lambda: RL(R6, out=[0.0] * 6)),
    ("out-torch-dtype", TypeError, "out", lambda: GA(R6, out=torch.zeros(6, dtype=torch.float32))),
]


def _i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


# The raw bindings check everything they are given (the wrappers' fast path hands them plain arrays).
CG = _core.kernels.group_advantages
CR = _core.kernels.rloo_advantages
CODES = (0, 0, 1e-8, 0, 0)  # scale, ddof, eps, eps_on, singleton
RAW: list[tuple[str, type[Exception], str, Any]] = [
    ("raw-rewards-list", TypeError, "rewards", lambda: CG([0.0], None, None, *CODES, None, 0, None)),
    ("raw-rewards-strided", ValueError, "rewards", lambda: CR(np.zeros(12)[::2], None, None, None)),
    ("raw-rewards-int", TypeError, "rewards", lambda: CR(np.zeros(6, np.int64), None, None, None)),
    ("raw-group_ids-int32", TypeError, "group_ids", lambda: CR(R6, np.zeros(6, np.int32), None, None)),
    ("raw-group_ids-shape", ValueError, "group_ids", lambda: CG(R6, _i64(1, 2), None, *CODES, None, 0, None)),
    ("raw-group_ids-strided", ValueError, "group_ids",
     lambda: CG(R6, np.zeros(12, np.int64)[::2], None, *CODES, None, 0, None)),
    ("raw-group_size-with-ids", ValueError, "group_size", lambda: CR(R6, np.zeros(6, np.int64), 2, None)),
    ("raw-group_size-0", ValueError, "group_size", lambda: CR(R6, None, 0, None)),
    ("raw-group_size-5", ValueError, "group_size", lambda: CG(R6, None, 5, *CODES, None, 0, None)),
    ("raw-scale", ValueError, "scale", lambda: CG(R6, None, None, 3, 0, 1e-8, 0, 0, None, 0, None)),
    ("raw-eps_on", ValueError, "eps_on", lambda: CG(R6, None, None, 0, 0, 1e-8, 2, 0, None, 0, None)),
    ("raw-singleton", ValueError, "singleton", lambda: CG(R6, None, None, 0, 0, 1e-8, 0, -1, None, 0, None)),
    ("raw-combine", ValueError, "combine", lambda: CG(R6, None, None, *CODES, None, 2, None)),
    ("raw-ddof", ValueError, "ddof", lambda: CG(R6, None, None, 0, -1, 1e-8, 0, 0, None, 0, None)),
    ("raw-eps", ValueError, "eps", lambda: CG(R6, None, None, 0, 0, float("nan"), 0, 0, None, 0, None)),
    ("raw-reward_weights-1d", ValueError, "reward_weights",
     lambda: CG(R6, None, None, *CODES, np.ones(1), 0, None)),
    ("raw-reward_weights-f32", TypeError, "reward_weights",
     lambda: CG(np.zeros((6, 2)), None, None, *CODES, np.ones(2, np.float32), 0, None)),
    ("raw-reward_weights-inf", ValueError, "reward_weights",
     lambda: CG(np.zeros((6, 2)), None, None, *CODES, np.array([1.0, np.inf]), 0, None)),
    ("raw-out-f32", TypeError, "out", lambda: CR(R6, None, None, np.zeros(6, np.float32))),
    ("raw-out-strided", ValueError, "out", lambda: CR(R6, None, None, np.zeros(12)[::2])),
    ("raw-out-readonly", ValueError, "out", lambda: CR(R6, None, None, _readonly(np.zeros(6)))),
]


@pytest.mark.parametrize(("exc", "arg", "fn"), [c[1:] for c in BAD + RAW], ids=[c[0] for c in BAD + RAW])
def test_bad_input_raises_naming_the_argument(exc: type[Exception], arg: str, fn: Any) -> None:
    with pytest.raises(exc) as info:
        fn()
    assert str(info.value).startswith(arg + ":") or str(info.value).startswith(arg + " "), str(info.value)


def test_raw_valid_calls_work() -> None:
    """The defaults of the raw cases are valid, so each case fails for its one defect."""
    assert CG(R6, None, None, *CODES, None, 0, None).shape == (6,)
    assert CG(np.zeros((6, 2)), _i64(0, 0, 1, 1, 2, 2), None, *CODES, np.ones(2), 1, np.zeros(6)).shape == (6,)
    assert CR(R6, None, 3, None).shape == (6,)


def test_non_finite_message_names_the_index() -> None:
    with pytest.raises(ValueError, match=r"^rewards: expected finite values, got nan at index 5"):
        K.rloo_advantages(np.array([0.0, 1, 2, 3, 4, np.nan]), group_size=3)
    with pytest.raises(ValueError, match=r"^rewards: expected finite values, got -inf at index \(1, 0\)"):
        K.group_advantages(np.array([[0.0, 1.0], [-np.inf, 1.0]]), reward_weights=[1.0, 0.0])


def test_group_ids_refilled_meanwhile() -> None:
    """Another thread rewriting group_ids while the kernel runs (the GIL is released) may change the grouping or
    raise ValueError naming group_ids, but never reads or writes out of bounds."""
    rng = np.random.default_rng(4)
    B = 20_000
    r = rng.normal(size=B)
    valid = rng.permutation(np.repeat(np.arange(B // 8), 8))  # scattered, dense: the counting-sort path
    far = valid * 2**40  # sparse: the sorting path
    ids = valid.copy()
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            ids[...] = far
            ids[...] = valid
            time.sleep(0)

    t = threading.Thread(target=flip)
    t.start()
    ok = refused = 0
    try:
        for _ in range(60):
            try:
                a = K.group_advantages(r, ids, preset="trl")
                b = K.rloo_advantages(r, ids)
            except ValueError as exc:
                assert str(exc).startswith("group_ids:"), exc
                refused += 1
            else:
                assert np.isfinite(a).all() and np.isfinite(b).all()
                ok += 1
    finally:
        stop.set()
        t.join()
    assert ok + refused == 60


# ------------------------------------------------------------------------- which grouping path ids take

LAYOUT_PROGRAM = r"""
#include <cstdio>
#include <vector>
#include "rltrain/llm_grouping.hpp"
int main() {
  using rltrain::llm::IdGrouping;
  std::vector<std::vector<int64_t>> cases = {
      {4, 4, 4, 9, 9, 9},             // ascending runs of one length
      {9, 9, 4, 4, -7, -7},           // runs of one length, ids in any order
      {9, 4, 4, 4, 4, 4, -7, -7, -7, -7, -7, -7},  // runs of uneven length (4 or more on average)
      {9, 4, 4, -7, -7, -7},          // shorter runs: counting sort
      {1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 1},  // an id in two runs: counting sort
      {3, 1, 3, 1, 2, 2},             // scattered, dense
      {1LL << 60, 5, 1LL << 60, -(1LL << 62)},  // scattered, sparse: hashed keys
      {7, 7, 7},                      // one group
      {5},
  };
  // Runs of 4 on average over several scan chunks: 1023 boundaries in 4096 elements are runs, 1024 are not.
  std::vector<int64_t> fours(4096), more(4096);
  for (std::size_t i = 0; i < fours.size(); ++i) fours[i] = more[i] = static_cast<int64_t>(i < 8 ? 0 : i / 4 - 1);
  fours[4095] = more[4095] = -1;
  more[4094] = -2;
  cases.push_back(fours);
  cases.push_back(more);
  const char* names[] = {"fixed", "runs", "sorted", "done"};
  for (const auto& ids : cases) {
    // The uniform hook is offered dense ids spanning n / size values; declining, it leaves the counting sort.
    const IdGrouping g = rltrain::llm::group_ids_layout(ids.data(), ids.size(), [](int64_t lo, std::size_t count,
                                                                                   std::size_t size) {
      std::printf("offered %lld %zu %zu: ", static_cast<long long>(lo), count, size);
      return false;
    });
    if (ids.size() == 4096) {
      std::printf("%s %zu\n", names[static_cast<int>(g.kind)], g.offsets.size());
      continue;
    }
    std::printf("%s", names[static_cast<int>(g.kind)]);
    if (g.kind == IdGrouping::Kind::Fixed) std::printf(" %zu", g.run);
    for (std::size_t k = 0; k < g.order.size(); ++k) std::printf(" %zu", g.order[k]);
    std::printf(" |");
    for (std::size_t k = 0; k < g.offsets.size(); ++k) std::printf(" %zu", g.offsets[k]);
    std::printf("\n");
  }
}
"""


def test_group_ids_take_the_expected_path(tmp_path: pathlib.Path) -> None:
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    src = tmp_path / "layout.cpp"
    src.write_text(LAYOUT_PROGRAM)
    exe = tmp_path / "layout"
    subprocess.run([cxx, "-std=c++17", "-O1", f"-I{INCLUDE}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == [
        "fixed 3 |",
        "fixed 2 |",
        "runs | 0 1 6 12",
        "sorted 3 4 5 1 2 0 | 0 3 5 6",
        "offered 1 2 6: sorted 0 1 2 3 8 9 10 11 4 5 6 7 | 0 8 12",
        "offered 1 3 2: sorted 1 3 4 5 0 2 | 0 2 4 6",
        "sorted 0 2 1 3 | 0 2 3 4",
        "fixed 3 |",
        "fixed 1 |",
        "runs 1025",
        "sorted 1026",
    ]


# ------------------------------------------------------------------- plain torch CPU calls and group sizes


@pytest.mark.parametrize("name", ["group_advantages", "rloo_advantages"])
@pytest.mark.parametrize("dtype", F_DTYPES)
def test_torch_cpu_calls_match_numpy_bits(name: str, dtype: np.dtype) -> None:
    """Plain torch CPU tensors go straight to the C++ entry (_core.kernels.<name>_fast); tensors it
    must not take that way (grad, out= sharing memory with the rewards, wrong out dtype, non-contiguous) still
    give the NumPy results or the NumPy errors."""
    fn = getattr(K, name)
    rng = np.random.default_rng(7)
    r = rng.normal(size=96).astype(dtype)
    ids = np.repeat(rng.permutation(6), 16)
    want = fn(r, group_size=16)
    want_ids = fn(r, ids)
    t = torch.from_numpy(r.copy())
    out = torch.full_like(t, np.nan)
    assert fn(t, group_size=16, out=out) is out and bits_equal(out.numpy(), want)
    got = fn(t, torch.from_numpy(ids))
    assert isinstance(got, torch.Tensor) and bits_equal(got.numpy(), want_ids)
    assert bits_equal(fn(t.clone().requires_grad_(True), group_size=16).detach().numpy(), want)
    inplace = t.clone()
    assert fn(inplace, group_size=16, out=inplace) is inplace and bits_equal(inplace.numpy(), want)
    big = torch.zeros(2 * 96, dtype=t.dtype)
    big[::2] = t
    assert bits_equal(fn(big[::2], group_size=16).numpy(), want)
    with pytest.raises(TypeError, match="^out:"):
        fn(t, group_size=16, out=torch.empty(96, dtype=torch.float16))


@pytest.mark.parametrize("size", [2, 4, 7, 8, 16, 24, 32, 64, 128])
def test_every_group_size_matches_the_reference(size: int) -> None:
    """Groups of 8, 16, 32 and 64 take a vectorised path (llm_group_fixed.hpp) on CPUs with AVX2; other sizes
    and scattered ids the generic loops: the same values as the reference and the same bits as scattered ids
    naming the same groups (members in the same order), for group counts that leave a short last batch of four
    groups and a short last block of 64."""
    rng = np.random.default_rng(size)
    for groups in (2, 3, 5, 67):
        inter = np.arange(groups * size) % groups  # group g = {g, g + groups, ...}: the counting-sort path
        where = np.argsort(inter, kind="stable")  # element k of the contiguous layout sits at where[k]
        for dtype in F_DTYPES:
            r = (rng.normal(size=groups * size) * 3 + 1).astype(dtype)
            scattered = np.empty_like(r)
            scattered[where] = r
            for preset, scale, eps_on in (("trl", "group", "std"), ("rltrain", "group", "var"),
                                          ("verl", "batch", "std"), ("dr_grpo", "none", "std")):
                kw = {"preset": preset, "scale": scale, "eps_on": eps_on}
                got = K.group_advantages(r, group_size=size, **kw)
                assert_close(got, R.group_advantages(r, group_size=size, **kw), dtype)
                if scale != "batch":  # the batch reduction runs over the elements in their own order
                    assert bits_equal(got, K.group_advantages(scattered, inter, **kw)[where]), kw
            got = K.rloo_advantages(r, group_size=size)
            assert_close(got, R.rloo_advantages(r, group_size=size), dtype)
            assert bits_equal(got, K.rloo_advantages(scattered, inter)[where])


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_vector_clones_match_the_generic_loops_bitwise(size: int, dtype: np.dtype) -> None:
    """Contiguous groups of 8-64 take llm_group_fixed.hpp's AVX2 / AVX-512 clones, and scale="batch" sums in
    vectors; capped to the baseline (``_testing.set_isa_cap(0)``) the same calls run the generic loops. Every clone
    must give the generic loops' bits (group counts not a multiple of 4, several 4096-element batch blocks), and the
    AVX-512 clone the same with groups of 8-32 held in registers or not (``_testing.set_group_regs``)."""
    rng = np.random.default_rng(size)
    r = (rng.standard_normal(size * 1031) * 3.0 + 1.0).astype(dtype)
    r[:size] = 2.5  # an all-equal group: std 0
    r[size : 2 * size] = -0.0  # an all -0.0 group: its lanes start from +0.0, so its mean is +0.0
    r[2 * size : 3 * size : 2] = -0.0
    calls = [lambda: K.rloo_advantages(r, group_size=size)]
    for preset in ("trl", "verl", "dr_grpo", "rltrain"):
        for scale in ("group", "batch", "none"):
            calls.append(lambda p=preset, s=scale: K.group_advantages(r, group_size=size, preset=p, scale=s))
    try:
        results = []
        for cap in range(_core._testing.cpu_isa() + 1):
            _core._testing.set_isa_cap(cap)
            results.append([np.asarray(c()) for c in calls])
        if _core._testing.cpu_isa() == 2:
            _core._testing.set_group_regs(False)
            results.append([np.asarray(c()) for c in calls])
    finally:
        _core._testing.set_isa_cap(2)
        _core._testing.set_group_regs(True)
    for cap, res in enumerate(results[1:], 1):
        for k, (a, b) in enumerate(zip(results[0], res)):
            assert a.tobytes() == b.tobytes(), f"call {k}: clone {cap} differs from the generic loops"


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_non_finite_reward_in_a_whole_batch_of_groups(size: int) -> None:
    """The vector clones take whole batches of four groups apart from the last one to three (AVX-512: in
    registers): a non-finite reward anywhere, in a whole batch or the remainder, raises naming its index; so do
    scattered ids naming groups of one such size (gathered into member order, run there, scattered back)."""
    scattered = np.arange(66 * size) % 66
    for pos in (0, 5 * size + 3, 65 * size + 1):
        r = np.ones(66 * size, np.float32)
        r[pos] = np.inf
        for scale in ("group", "batch", "none"):
            with pytest.raises(ValueError, match=f"at index {pos}$"):
                K.group_advantages(r, group_size=size, scale=scale)
            with pytest.raises(ValueError, match=f"at index {pos}$"):
                K.group_advantages(r, scattered, scale=scale)
        with pytest.raises(ValueError, match=f"at index {pos}$"):
            K.rloo_advantages(r, group_size=size)
        with pytest.raises(ValueError, match=f"at index {pos}$"):
            K.rloo_advantages(r, scattered)


# ------------------------------------------------------- scattered ids in groups of one size (llm_group.hpp)


def _scattered_cases() -> list[tuple[str, np.ndarray]]:
    """(name, ids): dense scattered ids in groups all of 8-64 (counting-sorted with the rewards in one pass), and
    ids offered that path that must leave it (a larger group, an empty key, a size it does not run)."""
    rng = np.random.default_rng(15)

    def shuffled(ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids[rng.permutation(ids.size)], np.int64)

    return [
        ("16 x 4096", shuffled(np.arange(65_536) // 16)),  # the bench's case: 2-byte places
        ("8 x 8203, over 2**16", shuffled(np.arange(8 * 8203) // 8)),  # 4-byte places
        ("64 x 5, negative", shuffled(np.arange(320) // 64 - 1000)),
        ("32 x 3, int64 extremes", shuffled(np.arange(96) // 32 + (2**63 - 3))),
        # n / count = 16, but one group of 12 and one of 20: the pass stops at the first overflow, none written
        ("uneven 12/20/16/16", shuffled(np.repeat(np.arange(4), [12, 20, 16, 16]))),
        ("uneven, larger first", np.repeat(np.arange(4), [20, 12, 16, 16])),
        # keys 0-4 for 80 elements (16 each on average), key 3 empty, key 4 twice as large
        ("empty key", shuffled(np.repeat(np.array([0, 1, 2, 4]), [16, 16, 16, 32]))),
        ("groups of one", shuffled(np.arange(300))),
        ("groups of 4", shuffled(np.arange(400) // 4)),
        ("sparse 16s", shuffled(np.arange(1024) // 16) * 2**40 - 2**62),  # hashed keys: the general path
        # hashed keys in a table that grows (rehashes) with the distinct ids: all distinct, and uneven groups
        ("sparse, all distinct", shuffled(np.arange(5000)) * 2**52 - 2**62),
        ("sparse uneven", shuffled(np.repeat(np.arange(700), np.arange(700) % 5 + 1)) * 2**33 + 12345),
    ]


@pytest.mark.parametrize("dtype", F_DTYPES)
@pytest.mark.parametrize("case", range(12))
def test_scattered_groups_of_one_size_match_contiguous_bits(case: int, dtype: np.dtype) -> None:
    """Scattered ids take the one-pass counting sort of the rewards where the groups all have one size of 8-64,
    and the general counting sort otherwise (a group larger or smaller, an empty key, other sizes, hashed keys).
    Either way: the bits of the same groups made contiguous (members in ascending element order), values close to
    the reference, and the same bits from every vector clone and from the generic loops (isa cap 0)."""
    name, ids = _scattered_cases()[case]
    rng = np.random.default_rng(case)
    r = (rng.standard_normal(ids.size) * 3 + 1).astype(dtype)
    order = np.argsort(ids, kind="stable")  # the groups made contiguous, members in element order
    rc = np.ascontiguousarray(r[order])
    _, counts = np.unique(ids[order], return_counts=True)
    runs = np.repeat(np.arange(counts.size), counts)  # contiguous runs: the group kernels' run path
    calls: list[tuple[str, Any, Any]] = [
        ("rloo", lambda x, i: K.rloo_advantages(x, i), R.rloo_advantages),
        ("verl", lambda x, i: K.group_advantages(x, i, preset="verl"),
         lambda x, i: R.group_advantages(x, i, preset="verl")),
        ("trl var", lambda x, i: K.group_advantages(x, i, preset="trl", eps_on="var"),
         lambda x, i: R.group_advantages(x, i, preset="trl", eps_on="var")),
        ("dr_grpo", lambda x, i: K.group_advantages(x, i, preset="dr_grpo"),
         lambda x, i: R.group_advantages(x, i, preset="dr_grpo")),
    ]
    for label, fn, ref in calls:
        got = fn(r, ids)
        assert_close(got, ref(r, ids), dtype)
        assert bits_equal(got[order], fn(rc, runs)), f"{name} {label}: differs from contiguous groups"
        try:
            for cap in range(_core._testing.cpu_isa()):
                _core._testing.set_isa_cap(cap)
                assert bits_equal(fn(r, ids), got), f"{name} {label}: clone {cap} differs"
        finally:
            _core._testing.set_isa_cap(2)
    out = np.full_like(r, np.nan)
    assert K.rloo_advantages(r, ids, out=out) is out and bits_equal(out, K.rloo_advantages(r, ids))
    # scale="batch": the batch statistics over the elements in their own order, as the reference's
    got = K.group_advantages(r, ids, preset="verl", scale="batch")
    assert_close(got, R.group_advantages(r, ids, preset="verl", scale="batch"), dtype)


def test_scattered_groups_of_one_size_raise_on_bad_rewards() -> None:
    """The one-pass path raises naming the first non-finite reward (after sorting, the group sums see it)."""
    ids = np.random.default_rng(2).permutation(np.arange(4096) // 16)
    for pos in (0, 1234, 4095):
        r = np.zeros(4096)
        r[pos] = np.nan
        for scale in ("group", "batch", "none"):
            with pytest.raises(ValueError, match=f"at index {pos}$"):
                K.group_advantages(r, ids, preset="verl", scale=scale)
        with pytest.raises(ValueError, match=f"at index {pos}$"):
            K.rloo_advantages(r, ids)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [8, 16, 64])
def test_batch_scale_fused_pass_same_bits_everywhere(dtype: Any, size: int, restore_threads: None) -> None:
    """scale="batch" over contiguous groups from 65,536 rewards runs the batch statistics and the groups in one
    pool call (llm_group.hpp batch_groups_fused): the same bits on 1, 2 and 3 threads, on every vector clone and on
    the generic loops, with out= the rewards themselves; within 1e-6 of the reference; non-finite rewards raise."""
    rng = np.random.default_rng(size)
    B = 65_536 + 3 * 64  # not a whole number of 4096-blocks
    r = (rng.standard_normal(B) * 3 + 1).astype(dtype)
    results = []
    for k in (1, 2, 3):
        K.set_num_threads(k)
        results.append(K.group_advantages(r, group_size=size, preset="trl", scale="batch"))
    try:
        for cap in range(_core._testing.cpu_isa() + 1):
            _core._testing.set_isa_cap(cap)
            results.append(K.group_advantages(r, group_size=size, preset="trl", scale="batch"))
    finally:
        _core._testing.set_isa_cap(2)
    inplace = r.copy()
    K.group_advantages(inplace, group_size=size, preset="trl", scale="batch", out=inplace)
    results.append(inplace)
    for res in results[1:]:
        assert res.tobytes() == results[0].tobytes()
    want = R.group_advantages(r.astype(np.float64), group_size=size, preset="trl", scale="batch")
    np.testing.assert_allclose(results[0].astype(np.float64), want, rtol=0,
                               atol=1e-6 if dtype == np.float64 else 1e-5)
    bad = r.copy()
    bad[B // 2] = np.nan
    with pytest.raises(ValueError, match="rewards"):
        K.group_advantages(bad, group_size=size, preset="trl", scale="batch")
