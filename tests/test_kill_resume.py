"""Kill -9 and resume (bench/kill_resume.py, short): a run checkpointing every iteration, killed with SIGKILL four
times (twice inside a checkpoint write) and resumed from its newest checkpoint each time, ends bitwise where the
uninterrupted run ends; every checkpoint left behind loads."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "kill_resume.py"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SIGKILL of a subprocess, POSIX timing")
def test_killed_and_resumed_run_ends_where_the_uninterrupted_one_does(tmp_path: pathlib.Path) -> None:
    spec = importlib.util.spec_from_file_location("kill_resume", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.run_with_kills(str(tmp_path), iters=16, kills=4, seed=0)
    assert r["kills"] == 4 and r["during_save"] >= 1
    assert r["equal"]


def test_checkpoint_interval_is_validated() -> None:
    from rltrain import PPOConfig

    for bad, error in ((0, ValueError), (-1, ValueError), (True, TypeError), (1.5, TypeError)):
        with pytest.raises(error, match="checkpoint_interval"):
            PPOConfig(env="CartPole-v1", checkpoint_interval=bad).validate()
