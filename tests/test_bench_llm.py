"""Smoke run of the LLM-kernel benchmark section (``python -m rltrain.bench llm --quick``): every block runs, the
peers (TRL's advantage blocks, verl's estimators or their transcription) and rltrain compute the same numbers. No
timing assertions: timings live in bench/README.md."""

from __future__ import annotations

from rltrain.bench import llm as bench_llm
from rltrain.bench.__main__ import SECTIONS


def test_section_is_registered() -> None:
    assert SECTIONS["llm"] == "rltrain.bench.llm"

def test_quick_run_covers_every_kernel_and_agrees_with_the_peers() -> None:
    res = bench_llm.run(quick=True)
    rows = res["rows"]
    kernels = {r["kernel"] for r in rows}
    assert kernels == {"token_gae + whiten", "token_gae", "token_returns + whiten", "token_returns", "masked_whiten",
                       "kl_estimate k3", "group_advantages", "group_advantages group", "group_advantages batch",
                       "group_advantages none", "rloo_advantages", "group_advantages ids", "rloo_advantages ids"}
    floors = [r for r in rows if r["impl"].startswith(("floor", "call overhead"))]
    # the bare loops: serial chain and elementwise pass of the long row, groups, counting sort; call overheads of
    # four kernels
    assert sorted(r["impl"] for r in floors) == ["call overhead"] * 4 + [
        "floor: bare counting sort", "floor: bare groups", "floor: bare pass", "floor: divider (group only)",
        "floor: float64 round trip", "floor: random gather + scatter", "floor: serial chain"]
    assert all(r["median_ms"] > 0 for r in floors)
    with_floor = [r for r in rows if "%floor" in r]
    assert len(with_floor) == 9 and all(r["%floor"] > 0 and r["impl"].startswith("rltrain") for r in with_floor)
    peers = [r for r in rows if not r["impl"].startswith(("rltrain", "floor", "call overhead"))]
    assert len(peers) == 14  # 4 token blocks x 2 shapes, 6 group blocks
    for r in peers:  # float32 on both sides; whitening divides by a std near 1
        assert r["max_abs_diff"] < 1e-3, r
        assert r["rltrain_speedup"] > 0
    for r in rows:
        if r["impl"].startswith("rltrain") and "%copy" in r:
            assert r["%copy"] > 0 and r["GB/s"] > 0
    assert res["summary"]


def test_floor_loops_compute_the_kernels_results() -> None:
    """The bench's bare loops do the real work (so their times are floors of that work, not of less)."""
    import numpy as np
    import pytest

    from rltrain import _core
    from rltrain import reference as R

    rng = np.random.default_rng(3)
    x = rng.standard_normal(16 * 37).astype(np.float32)
    out = np.empty_like(x)
    _core._testing.floor_groups(x, out, 1e-4)
    want = R.group_advantages(x, group_size=16, preset="trl")
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert _core._testing.floor_roundtrip(x, out, 0.5) == pytest.approx(float(x.astype(np.float64).sum()))
    np.testing.assert_array_equal(out, (x.astype(np.float64) * 0.5).astype(np.float32))
    perm = rng.permutation(x.size)
    ids = (np.arange(x.size) // 16)[perm]
    _core._testing.floor_scatter(ids, x, out, 1e-4)
    np.testing.assert_allclose(out, R.group_advantages(x, ids, preset="trl"), rtol=1e-5, atol=1e-6)
    r = rng.standard_normal(1000).astype(np.float32)
    m = (rng.random(1000) < 0.8).astype(np.float32)
    o = np.empty_like(r)
    _core._testing.floor_chain(r, m, o, 0.9)
    np.testing.assert_array_equal(o, R.token_returns(r[None], m[None], gamma=0.9, masked="carry")[0])
    _core._testing.floor_pass(r, m, o)
    np.testing.assert_array_equal(o, r - m)
    with pytest.raises(ValueError, match="^b"):
        _core._testing.floor_pass(r, m[:10], o)
    order, tmp, moved = np.argsort(ids, kind="stable").astype(np.int64), np.empty_like(x), np.empty_like(x)
    _core._testing.floor_permute(order, x, tmp, moved)
    np.testing.assert_array_equal(tmp, x[order])  # group order: each group's members contiguous
    np.testing.assert_array_equal(moved, x)  # and back
    v = np.abs(x[: x.size // 64 * 64].reshape(-1, 64)[:, :4].astype(np.float64))
    want_div = float((1.0 / (np.sqrt(v / 15.0) + 1e-4)).sum())
    assert _core._testing.floor_divider(x, 1e-4) == pytest.approx(want_div, rel=1e-12)
    with pytest.raises(ValueError, match="^ids"):
        _core._testing.floor_scatter(np.zeros(x.size, np.int64), x, out)
    with pytest.raises(ValueError, match="^x"):
        _core._testing.floor_groups(x[:20], out[:20])
    with pytest.raises(ValueError, match="^out"):
        _core._testing.floor_chain(r, m, o[:10])
