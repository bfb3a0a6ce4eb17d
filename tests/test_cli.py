"""Command line: train prints the evaluation and where things went; eval reads the checkpoint; bad input fails early."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rltrain.cli import main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rltrain.cli", *args], capture_output=True, text=True, timeout=300)


def test_train_then_eval(tmp_path) -> None:
    out = _run("train", "ppo", "--env", "CartPole-v1", "--G", "4", "--T", "32", "--minibatches", "2", "--epochs", "2",
               "--iters", "3", "--eval-episodes", "2", "--eval-interval", "2", "--log-dir", str(tmp_path),
               "--seed", "1", "--verbose", "0")
    assert out.returncode == 0, out.stderr
    assert "final evaluation" in out.stdout and "logs" in out.stdout
    ckpt = [line.split(": ", 1)[1].split(",")[0] for line in out.stdout.splitlines()
            if line.startswith("checkpoints")][0]
    assert os.path.isfile(ckpt)
    ev = _run("eval", ckpt, "--episodes", "2")
    assert ev.returncode == 0, ev.stderr
    assert "over 2 episodes" in ev.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--lr", "-1"], "lr"), (["--minibatches", "7"], "minibatches"), (["--env", "NoSuchEnv-v0"], "env")],
)
def test_bad_values_fail_before_training(tmp_path, args, needle, capsys) -> None:
    rc = main(["train", "ppo", "--G", "4", "--T", "32", "--iters", "1", "--log-dir", str(tmp_path), "--verbose", "0",
               *(["--env", "CartPole-v1"] if "--env" not in args else []), *args])
    assert rc == 2
    assert needle in capsys.readouterr().err


def test_unknown_command_and_missing_checkpoint(tmp_path, capsys) -> None:
    assert main(["frobnicate"]) == 2
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["grpo-step", "grpo-episode", "grpo-hybrid"])
def test_train_grpo(tmp_path, algo: str) -> None:
    rc = main(["train", algo, "--env", "CartPole-v1", "--G", "4", "--T", "50", "--epochs", "1", "--minibatches", "2",
               "--iters", "2", "--eval-episodes", "2", "--log-dir", str(tmp_path), "--verbose", "0"])
    assert rc == 0


def test_plot_writes_png(tmp_path) -> None:
    from rltrain import PPOConfig, PPOTrainer
    from rltrain.policies import ActorCriticPolicy

    dirs = []
    for seed in (0, 1):
        tr = PPOTrainer(ActorCriticPolicy(4, 2), PPOConfig(env="CartPole-v1", G=4, T=32, minibatches=2, epochs=1,
                                                           seed=seed, verbose=0, log_dir=str(tmp_path)))
        tr.train(iters=3)
        dirs.append(tr.run_dir)
    out = str(tmp_path / "curves.png")
    assert main(["plot", *dirs, "--out", out]) == 0
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(tmp_path / "nope")]) == 2
    # A directory of runs, as `tensorboard --logdir` takes it: every run beneath it.
    assert main(["plot", str(tmp_path), "--out", out]) == 0
    from rltrain.plot import find_runs

    assert find_runs([str(tmp_path)]) == sorted(dirs)
    (tmp_path / "empty").mkdir()
    assert main(["plot", str(tmp_path / "empty")]) == 2


def test_robustness_command_writes_json_and_png(tmp_path) -> None:
    import json

    out = _run("train", "ppo", "--env", "CartPole-v1", "--G", "4", "--T", "32", "--minibatches", "2", "--epochs", "1",
               "--iters", "2", "--eval-episodes", "2", "--log-dir", str(tmp_path), "--seed", "2", "--verbose", "0")
    assert out.returncode == 0, out.stderr
    ckpt = [line.split(": ", 1)[1].split(",")[0] for line in out.stdout.splitlines()
            if line.startswith("checkpoints")][0]
    rob = _run("robustness", ckpt, "--episodes", "2", "--conditions", "obs_noise,transition_noise", "--levels",
               "low,high", "--out", str(tmp_path / "rob"))
    assert rob.returncode == 0, rob.stderr
    files = sorted(os.listdir(tmp_path / "rob"))
    report = json.loads((tmp_path / "rob" / [f for f in files if f.endswith(".json")][0]).read_text())
    png = (tmp_path / "rob" / [f for f in files if f.endswith(".png")][0]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    text = json.dumps(report)
    assert "obs_noise" in text and "transition_noise" in text and "nominal" in text
    assert main(["robustness", str(tmp_path / "missing.pt"), "--env", "CartPole-v1"]) == 2
