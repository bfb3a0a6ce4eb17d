"""``rltrain pipeline``: one command trains to a step budget, evaluates, runs the robustness suite and writes the
checkpoint, the training log, the learning curves, the robustness JSON/PNG and report.json into one directory."""

from __future__ import annotations

import json
import pathlib

import pytest

from rltrain.pipeline import robustness_summary, run_pipeline


def _check_run_dir(out: pathlib.Path, algo: str, conditions: list[str]) -> dict:
    report = json.loads((out / "report.json").read_text())
    for key in ("checkpoint", "progress_csv", "learning_curves", "robustness_json", "robustness_png", "report"):
        assert report["files"][key] is not None, key
        assert (out / report["files"][key]).is_file(), key
    assert report["files"]["checkpoint"] == "model.pt"
    assert (out / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["algo"] == algo and report["env"] == "CartPole-v1"
    rob = json.loads((out / report["files"]["robustness_json"]).read_text())
    got = {(r["condition"], r["level"]) for r in rob["results"]}
    assert got == {("nominal", None)} | {(c, lv) for c in conditions for lv in ("low", "medium", "high")}
    assert report["robustness"]["nominal"] == rob["results"][0]["mean"]
    assert set(report["robustness"]["by_condition"]) == set(conditions)
    assert report["evaluation"]["n_episodes"] == 2
    return report


def test_pipeline_policy_groups_writes_the_run_directory(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "pg"
    conditions = ["obs_noise", "action_noise"]
    report = run_pipeline("CartPole-v1", "policy-groups", steps=300, out=str(out), seed=1,
                          config={"groups": 2, "group_size": 2, "G": 2, "T": 60, "epochs": 1},
                          eval_episodes=2, robustness_episodes=2, conditions=conditions)
    _check_run_dir(out, "policy-groups", conditions)
    assert report["env_steps"] >= 300
    assert report["config"]["groups"] == 2


def test_pipeline_cli_ppo(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rltrain.cli import main

    out = tmp_path / "ppo"
    rc = main(["pipeline", "--env", "CartPole-v1", "--algo", "ppo", "--steps", "512", "--out", str(out),
               "--config", '{"G": 4, "T": 64, "minibatches": 4, "epochs": 2}', "--eval-episodes", "2",
               "--episodes", "2", "--conditions", "obs_mask", "--verbose", "0"])
    text = capsys.readouterr().out
    assert rc == 0, text
    report = _check_run_dir(out, "ppo", ["obs_mask"])
    assert report["env_steps"] == 512 and report["iterations"] == 2
    assert "report.json" in text


def test_pipeline_bad_input(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rltrain.cli import main

    with pytest.raises(ValueError, match="algo"):
        run_pipeline("CartPole-v1", "a2c", steps=10, out=str(tmp_path))
    with pytest.raises(ValueError, match="config: unknown field"):
        run_pipeline("CartPole-v1", "ppo", steps=10, out=str(tmp_path), config={"nope": 1})
    assert main(["pipeline", "--env", "CartPole-v1", "--algo", "ppo", "--config", "[1]", "--out",
                 str(tmp_path)]) == 2
    assert "--config" in capsys.readouterr().err
    assert main(["pipeline", "--env", "CartPole-v1", "--algo", "grpo-episode", "--steps", "10", "--out",
                 str(tmp_path), "--config", '{"lr_schedule": "linear"}', "--verbose", "0"]) == 2
    assert "schedule_iters" in capsys.readouterr().err


def test_robustness_summary() -> None:
    res = {"results": [{"condition": "nominal", "level": None, "mean": 100.0},
                       {"condition": "a", "level": "low", "mean": 80.0},
                       {"condition": "a", "level": "high", "mean": 40.0},
                       {"condition": "b", "level": "low", "mean": 90.0}], "skipped": []}
    s = robustness_summary(res)
    assert s["nominal"] == 100.0
    assert s["mean_over_conditions"] == pytest.approx(70.0)
    assert s["retention"] == pytest.approx(0.7)
    assert s["by_condition"] == {"a": {"low": 80.0, "high": 40.0}, "b": {"low": 90.0}}
