"""Training runs that other code relies on: evaluation and videos with gym.make envs, wrapper stacks, factories
and rltrain's own classes (the final model is saved before them), and run directories that parallel runs with
the same algo/env/seed never share."""

from __future__ import annotations

import os
import pathlib
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import pytest

from rltrain import PPOConfig, PPOTrainer
from rltrain.vec.resolve import make_single


def _trainer(tmp_path: pathlib.Path, env: Any = "CartPole-v1") -> PPOTrainer:
    cfg = PPOConfig(env=env, G=2, T=16, minibatches=1, epochs=1, seed=0, verbose=0, log_dir=str(tmp_path / "runs"))
    return PPOTrainer(None, cfg)


def _dense() -> gym.Env:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pybox2d's SWIG types
        from rltrain.envs import DenseLunarLander

        return DenseLunarLander(randomize_angle=True)


EVAL_ENVS: dict[str, Callable[[], Any]] = {
    "gym.make": lambda: gym.make("CartPole-v1"),
    "wrapper-stack": lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1", max_episode_steps=60)),
    "factory": lambda: (lambda: gym.make("CartPole-v1")),
    "id": lambda: "CartPole-v1",
}


@pytest.mark.parametrize("make_env", list(EVAL_ENVS.values()), ids=list(EVAL_ENVS))
def test_eval_and_video_with_gym_envs(tmp_path: pathlib.Path, make_env: Callable[[], Any]) -> None:
    trainer = _trainer(tmp_path)
    try:
        trainer.train(iters=2, eval_env=make_env(), eval_interval=1, eval_episodes=1, video_dir=str(tmp_path / "v"),
                      video_episodes=1)
        assert os.path.isfile(os.path.join(trainer.run_dir, "final_model.pt"))
        assert list((tmp_path / "v").glob("*.mp4"))
    finally:
        trainer.close()


def test_render_mode_rebuilds_keep_kwargs_and_wrappers() -> None:
    env = gym.wrappers.RecordEpisodeStatistics(gym.make("CartPole-v1", max_episode_steps=60))
    e = make_single(env, render_mode="rgb_array")
    assert e.render_mode == "rgb_array" and env.render_mode is None
    assert isinstance(e, gym.wrappers.RecordEpisodeStatistics) and e.spec.max_episode_steps == 60
    e.reset(seed=0)
    assert e.render().ndim == 3
    pytest.importorskip("Box2D")
    d = make_single(_dense(), render_mode="rgb_array")
    assert d.render_mode == "rgb_array" and d.native_config["randomize_angle"] is True


def test_final_model_is_saved_before_a_failing_video(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = _trainer(tmp_path)

    def broken(*a: Any, **k: Any) -> None:
        raise RuntimeError("video encoder missing")

    monkeypatch.setattr(trainer, "record_video", broken)
    try:
        with pytest.raises(RuntimeError, match="video encoder"):
            trainer.train(iters=2, video_dir=str(tmp_path / "v"))
        saved = PPOTrainer.load(os.path.join(trainer.run_dir, "final_model.pt"))
        assert saved.iteration == 2
        saved.close()
    finally:
        trainer.close()


def test_parallel_runs_get_distinct_directories(tmp_path: pathlib.Path) -> None:
    trainers = [_trainer(tmp_path) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: t._ensure_logger(), trainers))
    dirs = [t.run_dir for t in trainers]
    try:
        assert len(set(dirs)) == 8 and all(os.path.isdir(d) for d in dirs)
    finally:
        for t in trainers:
            t.close()


def test_progress_csv_rewrite_is_atomic(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new column rewrites the file; if that write dies half-way the old file must still be there, whole.
    from rltrain.logger import Logger

    log = Logger(str(tmp_path), backends=("csv",))
    log.record("a", 1.0)
    log.dump(1)
    before = (tmp_path / "progress.csv").read_text()
    real_open = open

    def failing_open(path: Any, mode: str = "r", *a: Any, **k: Any) -> Any:
        f = real_open(path, mode, *a, **k)
        if "w" in mode:
            f.write("step,a,b\n1,")
            f.close()
            raise OSError("disk full")
        return f

    monkeypatch.setattr("builtins.open", failing_open)
    log.record("a", 2.0)
    log.record("b", 3.0)
    with pytest.raises(OSError, match="disk full"):
        log.dump(2)
    monkeypatch.undo()
    assert (tmp_path / "progress.csv").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["progress.csv"]  # no temporary left behind
    log.close()
