"""Smoke run of the Stable-Baselines3 benchmark section (``python -m rltrain.bench sb3 --quick``): it runs both
variants and reports every field. No timing assertions: timings live in bench/ results."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("Box2D")  # the stock variant steps gymnasium's LunarLander

from rltrain.bench import sb3 as bench_sb3
from rltrain.bench.__main__ import SECTIONS, main

FIELDS = {"variant", "seed", "steps", "wall_s", "sps", "rollout_s", "rollout_sps", "gae_s", "update_s", "steps_to_200",
          "last100_mean", "episodes_in_buffer"}


def test_quick_run_reports_both_variants(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert SECTIONS["sb3"] == "rltrain.bench.sb3"
    out = tmp_path / "sb3.json"
    threads = torch.get_num_threads()
    try:
        assert main(["sb3", "--quick", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the section runs torch on one thread
    assert "rollout phase" in capsys.readouterr().out
    section = json.loads(out.read_text())["sections"]["sb3"]
    rows = section["rows"]
    assert [r["variant"] for r in rows] == list(bench_sb3.VARIANTS)
    for r in rows:
        assert set(r) == FIELDS
        assert r["steps"] == 4096 and r["sps"] > 0 and 0 < r["rollout_s"] < r["wall_s"] and r["gae_s"] > 0
        assert r["steps_to_200"] is None or r["steps_to_200"] <= r["steps"]
    assert {"rollout_speedup", "sps_speedup", "sb3_sps", "rltrain_sps"} <= set(section["summary"])
    assert section["config"]["n_timesteps"] == 4096


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(ValueError, match="variant"):
        bench_sb3.run_one("envpool", 0, 10)
