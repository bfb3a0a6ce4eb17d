"""GRPO trainers: the advantages fed to the loss are the kernels', identical_G, KL control, learning, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain import GRPOConfig, HybridAdvGRPOTrainer, PerEpAdvGRPOTrainer, PerStepAdvGRPOTrainer, kernels
from rltrain.policies import SimpleGRPOPolicy


def _cfg(tmp_path, **kw) -> GRPOConfig:
    base = dict(env="CartPole-v1", G=8, T=100, epochs=2, minibatches=4, seed=2, verbose=0, log_dir=str(tmp_path),
                loggers=("csv",))
    base.update(kw)
    return GRPOConfig(**base)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (PerEpAdvGRPOTrainer, lambda r, n, c: kernels.episodic_advantages(r, n, ddof=c.ddof)),
        (PerStepAdvGRPOTrainer, lambda r, n, c: kernels.per_step_advantages(r, n, gamma=c.gamma)),
        (HybridAdvGRPOTrainer, lambda r, n, c: kernels.hybrid_advantages(r, n, gamma=c.gamma)),
    ],
)
def test_advantages_fed_to_the_loss_are_the_kernels(tmp_path, cls, expected) -> None:
    tr = cls(SimpleGRPOPolicy(4, 2), _cfg(tmp_path))
    tr.train(iters=1)
    b = tr.last_batch
    assert b["lengths"].min() >= 1 and b["lengths"].max() <= 100
    np.testing.assert_array_equal(b["advantages"], expected(b["rewards"], b["lengths"], tr.cfg))
    # padded steps carry nothing
    T = b["rewards"].shape[1]
    pad = np.arange(T)[None] >= b["lengths"][:, None]
    assert np.all(b["advantages"][pad] == 0) and np.all(b["rewards"][pad] == 0)


def test_identical_G_gives_identical_first_observations(tmp_path) -> None:
    same = PerStepAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, identical_G=True))
    same.train(iters=2)
    fo = same.last_batch["first_obs"]
    assert np.all(fo == fo[0])
    diff = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, identical_G=False))
    diff.train(iters=1)
    assert len({tuple(r) for r in diff.last_batch["first_obs"]}) == 8


@pytest.mark.parametrize(("target", "direction"), [(1e-12, "up"), (10.0, "down")])
def test_beta_moves_towards_target(tmp_path, target: float, direction: str) -> None:
    tr = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, target_kl=target, lr=3e-3))
    b0 = tr.beta
    tr.train(iters=1)
    expect = b0 * (tr.cfg.kl_adjust_up if direction == "up" else tr.cfg.kl_adjust_down)
    assert tr.beta == pytest.approx(expect)
    assert tr.logger.last["train/beta"] == pytest.approx(b0)


def test_cartpole_smoke_improves(tmp_path) -> None:
    torch.manual_seed(0)
    tr = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, G=16, T=200, epochs=4, minibatches=8))
    before = tr.evaluate(n_episodes=8)["mean_reward"]
    tr.train(iters=8)
    after = tr.evaluate(n_episodes=8)["mean_reward"]
    assert np.isfinite(tr.logger.last["train/policy_gradient_loss"])
    assert after > before + 30, (before, after)


@pytest.mark.parametrize("cls", [PerEpAdvGRPOTrainer, HybridAdvGRPOTrainer])
def test_resume_is_bitwise_identical(tmp_path, cls) -> None:
    torch.manual_seed(4)
    full = cls(SimpleGRPOPolicy(4, 2), _cfg(tmp_path / "a"))
    full.train(iters=4)
    torch.manual_seed(4)
    part = cls(SimpleGRPOPolicy(4, 2), _cfg(tmp_path / "b"))
    part.train(iters=2)
    path = part.save(str(tmp_path / "g.pt"))
    resumed = cls.load(path)
    assert resumed.beta == part.beta
    resumed.train(iters=2)
    for a, b in zip(full.policy.parameters(), resumed.policy.parameters()):
        assert torch.equal(a, b)
    assert resumed.beta == full.beta


def test_options_beyond_the_seeds(tmp_path) -> None:
    tr = PerStepAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, normalize="pooled", ddof=1,
                                                            clip_eps_high=0.28))
    tr.train(iters=1)
    b = tr.last_batch
    np.testing.assert_array_equal(b["advantages"], kernels.per_step_advantages(
        b["rewards"], b["lengths"], gamma=tr.cfg.gamma, normalize="pooled", ddof=1))
    dr = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, scale="none"))
    dr.train(iters=1)
    b = dr.last_batch
    R = b["rewards"].sum(1)
    valid = np.arange(b["rewards"].shape[1])[None] < b["lengths"][:, None]
    np.testing.assert_allclose(b["advantages"][valid], np.broadcast_to((R - R.mean())[:, None], valid.shape)[valid],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="normalize"):
        PerStepAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), _cfg(tmp_path, normalize="median"))


def test_users_script_runs_unchanged_with_eval_and_video(tmp_path) -> None:
    import glob

    from rltrain.envs import SparseLunarLander

    tr = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(8, 4), GRPOConfig(env=SparseLunarLander(), G=4, T=60, epochs=1,
                                                               minibatches=2, identical_G=False, seed=0, verbose=0,
                                                               log_dir=str(tmp_path / "runs")), device="cpu")
    tr.train(iters=2, eval_env=SparseLunarLander(), eval_interval=1, eval_episodes=2,
             video_dir=str(tmp_path / "v"), video_episodes=1)
    assert len(tr.eval_history) == 2 and len(glob.glob(str(tmp_path / "v" / "*.mp4"))) == 1
