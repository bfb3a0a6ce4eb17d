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
                       "kl_estimate k3", "group_advantages group", "group_advantages batch", "group_advantages none",
                       "rloo_advantages", "group_advantages ids", "rloo_advantages ids"}
    peers = [r for r in rows if not r["impl"].startswith("rltrain")]
    assert len(peers) == 14  # 4 token blocks x 2 shapes, 6 group blocks
    for r in peers:  # float32 on both sides; whitening divides by a std near 1
        assert r["max_abs_diff"] < 1e-3, r
        assert r["rltrain_speedup"] > 0
    for r in rows:
        if r["impl"].startswith("rltrain") and "%copy" in r:
            assert r["%copy"] > 0 and r["GB/s"] > 0
    assert res["summary"]
