"""Training options beyond the seed configs: schedules (values at known steps, and what the trainers apply),
optimizers, a separate critic learning rate, AMP (warning on CPU; the autocast/GradScaler path exercised on CPU),
the Weights & Biases logger, and the REINFORCE trainer."""

from __future__ import annotations

import csv
import math
import os
import sys
import types

import numpy as np
import pytest
import torch

from rltrain import GRPOConfig, PerEpAdvGRPOTrainer, PPOConfig, PPOTrainer, ReinforceConfig, ReinforceTrainer
from rltrain.algos.base import BaseTrainer
from rltrain.cli import main
from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy
from rltrain.schedules import SCHEDULES, schedule_value


def _ppo(tmp_path, **kw: object) -> PPOTrainer:
    base = dict(env="CartPole-v1", G=2, T=16, minibatches=2, epochs=1, seed=0, verbose=0, log_dir=str(tmp_path),
                loggers=("csv",))
    base.update(kw)
    return PPOTrainer(ActorCriticPolicy(4, 2), PPOConfig(**base))


def _csv(run_dir: str) -> list[dict[str, str]]:
    with open(os.path.join(run_dir, "progress.csv"), newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------- schedules

@pytest.mark.parametrize(("kind", "progress", "expected"), [
    ("constant", 0.0, 1.0), ("constant", 0.7, 1.0), ("constant", 1.0, 1.0),
    ("linear", 0.0, 1.0), ("linear", 0.25, 0.75), ("linear", 1.0, 0.0),
    ("cosine", 0.0, 1.0), ("cosine", 0.5, 0.5), ("cosine", 0.25, 0.5 * (1 + math.cos(math.pi / 4))),
    ("cosine", 1.0, 0.0),
    ("warmup_cosine", 0.0, 0.0), ("warmup_cosine", 0.05, 0.5), ("warmup_cosine", 0.1, 1.0),
    ("warmup_cosine", 0.55, 0.5), ("warmup_cosine", 1.0, 0.0),
])
def test_schedule_values(kind: str, progress: float, expected: float) -> None:
    assert schedule_value(kind, 2.0, progress, warmup=0.1) == pytest.approx(2.0 * expected, abs=1e-12)


def test_schedule_clamps_and_rejects_bad_input() -> None:
    assert schedule_value("linear", 1.0, 1.5) == 0.0 and schedule_value("linear", 1.0, -1) == 1.0
    assert schedule_value("warmup_cosine", 1.0, 0.3, warmup=0.0) == pytest.approx(schedule_value("cosine", 1.0, 0.3))
    with pytest.raises(ValueError, match="schedule"):
        schedule_value("exp", 1.0, 0.5)
    with pytest.raises(ValueError, match="warmup"):
        schedule_value("warmup_cosine", 1.0, 0.5, warmup=1.0)


@pytest.mark.parametrize("field", ["lr_schedule", "clip_schedule", "ent_schedule"])
def test_config_rejects_unknown_schedule(tmp_path, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _ppo(tmp_path, **{field: "step"})


@pytest.mark.parametrize("kind", SCHEDULES)
def test_ppo_applies_every_schedule(tmp_path, kind: str) -> None:
    """Iteration k (0-based) of an n-iteration horizon uses progress (k + 1) / n, as SB3 (progress counted
    after the rollout), for the lr, the clip range and the entropy coefficient alike."""
    n = 4
    tr = _ppo(tmp_path, lr=1e-3, clip_eps=0.3, ent_coef=0.02, lr_schedule=kind, clip_schedule=kind,
              ent_schedule=kind, schedule_iters=n, warmup_frac=0.5, fused_update=False)
    tr.train(n)
    rows = _csv(tr.run_dir)
    for k, row in enumerate(rows):
        p = (k + 1) / n
        assert float(row["train/learning_rate"]) == pytest.approx(schedule_value(kind, 1e-3, p, 0.5))
        assert float(row["train/clip_range"]) == pytest.approx(schedule_value(kind, 0.3, p, 0.5))
        assert float(row["train/ent_coef"]) == pytest.approx(schedule_value(kind, 0.02, p, 0.5))
    assert tr.optimizer.param_groups[0]["lr"] == pytest.approx(schedule_value(kind, 1e-3, 1.0, 0.5))


def test_grpo_and_reinforce_apply_schedules(tmp_path) -> None:
    g = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), GRPOConfig(
        env="CartPole-v1", G=4, T=20, epochs=1, minibatches=1, seed=0, verbose=0, log_dir=str(tmp_path),
        loggers=("csv",), clip_schedule="linear", ent_schedule="cosine", schedule_iters=2))
    g.train(2)
    rows = _csv(g.run_dir)
    assert [float(r["train/clip_range"]) for r in rows] == pytest.approx([0.1, 0.0])
    assert [float(r["train/ent_coef"]) for r in rows] == pytest.approx([0.005, 0.0])
    r = ReinforceTrainer(SimpleGRPOPolicy(4, 2), ReinforceConfig(
        env="CartPole-v1", G=4, T=20, seed=0, verbose=0, log_dir=str(tmp_path), loggers=("csv",),
        lr_schedule="warmup_cosine", warmup_frac=0.5, schedule_iters=2))
    r.train(2)
    assert [float(x["train/learning_rate"]) for x in _csv(r.run_dir)] == pytest.approx([r.cfg.lr, 0.0])


# ------------------------------------------------------------------------------------------ optimizers

@pytest.mark.parametrize(("name", "cls", "checks"), [
    ("adam", torch.optim.Adam, {"eps": 1e-5, "weight_decay": 0.0}),
    ("adamw", torch.optim.AdamW, {"eps": 1e-5, "weight_decay": 0.01}),
    ("sgd", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.0}),
])
def test_optimizers(tmp_path, name: str, cls: type, checks: dict) -> None:
    tr = _ppo(tmp_path, optimizer=name, fused_update=False)
    assert type(tr.optimizer) is cls
    for k, v in checks.items():
        assert tr.optimizer.param_groups[0][k] == v
    before = [p.detach().clone() for p in tr.policy.parameters()]
    tr.train(1)
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))


def test_fused_update_only_with_plain_adam(tmp_path) -> None:
    assert _ppo(tmp_path).fused is not None
    assert _ppo(tmp_path, optimizer="adamw").fused is None
    assert _ppo(tmp_path, vf_lr=1e-3).fused is None
    assert _ppo(tmp_path, weight_decay=1e-4).fused is None


def test_bad_optimizer_options(tmp_path) -> None:
    for kw, name in ((dict(optimizer="rmsprop"), "optimizer"), (dict(weight_decay=-1.0), "weight_decay"),
                     (dict(momentum=1.5), "momentum"), (dict(vf_lr=0.0), "vf_lr"), (dict(amp="fp8"), "amp"),
                     (dict(warmup_frac=1.0), "warmup_frac"), (dict(distribution="dirac"), "distribution")):
        with pytest.raises(ValueError, match=name):
            _ppo(tmp_path, **kw)


def test_separate_critic_learning_rate(tmp_path) -> None:
    """Two parameter groups; Adam's first step moves each parameter by about its group's lr."""
    tr = _ppo(tmp_path, lr=1e-4, vf_lr=1e-2, epochs=1, minibatches=1, max_grad_norm=None, target_kl=None,
              lr_schedule="linear", schedule_iters=2)
    pol = tr.policy
    critic = {id(p) for p in pol.critic_parameters()}
    groups = tr.optimizer.param_groups
    assert len(groups) == 2 and {id(p) for p in groups[1]["params"]} == critic
    assert not critic & {id(p) for p in groups[0]["params"]}
    before = {n: p.detach().clone() for n, p in pol.named_parameters()}
    tr.train(1)
    assert groups[0]["lr"] == pytest.approx(0.5e-4) and groups[1]["lr"] == pytest.approx(0.5e-2)
    step = {n: float((p.detach() - before[n]).abs().max()) for n, p in pol.named_parameters()}
    assert 0.2e-2 < step["vf_head.bias"] <= 0.51e-2
    assert 0.2e-4 < step["pi_head.bias"] <= 0.51e-4


# ----------------------------------------------------------------------------------------------- AMP

def test_amp_on_cpu_warns_and_trains_in_full_precision(tmp_path) -> None:
    with pytest.warns(RuntimeWarning, match="amp"):
        tr = _ppo(tmp_path, amp="bf16")
    assert tr._amp_dtype is None and tr.scaler is None
    tr.train(1)
    assert all(p.dtype == torch.float32 for p in tr.policy.parameters())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_amp_code_path_runs_under_cpu_autocast(tmp_path, dtype: torch.dtype) -> None:
    """The CUDA AMP path (autocast + GradScaler for fp16) exercised with CPU autocast, which torch supports."""
    tr = _ppo(tmp_path, fused_update=False, max_grad_norm=0.5)
    tr._amp_dtype = dtype
    # A small initial scale: the default 2**16 overflows fp16 on the first steps, which GradScaler then skips.
    tr.scaler = torch.amp.GradScaler("cpu", init_scale=16.0) if dtype == torch.float16 else None
    seen = []
    orig = tr.policy.evaluate_actions

    def spy(obs, actions):
        out = orig(obs, actions)
        seen.append((torch.is_autocast_enabled("cpu"), out[0].dtype))
        return out

    tr.policy.evaluate_actions = spy  # type: ignore[method-assign]
    before = [p.detach().clone() for p in tr.policy.parameters()]
    tr.train(1)
    assert seen and all(enabled for enabled, _ in seen)
    assert any(d == dtype for _, d in seen)  # the value head ran in reduced precision
    assert math.isfinite(tr.logger.last["train/loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))
    assert all(p.dtype == torch.float32 for p in tr.policy.parameters())


# --------------------------------------------------------------------------------------------- wandb

class _FakeRun:
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def log(self, values: dict, step: int) -> None:
        self.calls.append(("log", dict(values), step))

    def finish(self) -> None:
        self.calls.append(("finish",))


def test_wandb_logger_receives_every_row(tmp_path, monkeypatch) -> None:
    calls: list = []
    fake = types.ModuleType("wandb")
    fake.init = lambda **kw: (calls.append(("init", kw)), _FakeRun(calls))[1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    tr = _ppo(tmp_path, loggers=("csv", "wandb"), wandb_project="proj")
    tr.train(2)
    tr.close()
    init = calls[0][1]
    assert init["project"] == "proj" and init["dir"] == tr.run_dir and init["config"]["G"] == 2
    logs = [c for c in calls if c[0] == "log"]
    assert [c[2] for c in logs] == [32, 64]
    assert "train/value_loss" in logs[0][1] and calls[-1] == ("finish",)


def test_wandb_missing_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)
    tr = _ppo(tmp_path, loggers=("wandb",))
    with pytest.raises(ValueError, match="loggers.*wandb"):
        tr.train(1)


def test_wandb_offline_run_is_written(tmp_path, monkeypatch) -> None:
    pytest.importorskip("wandb", reason="optional extra rltrain[wandb]")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    tr = _ppo(tmp_path, loggers=("wandb",))
    tr.train(1)
    tr.close()
    runs = [d for d in os.listdir(os.path.join(tr.run_dir, "wandb")) if d.startswith("offline-run-")]
    assert len(runs) == 1
    files = os.listdir(os.path.join(tr.run_dir, "wandb", runs[0]))
    assert any(f.endswith(".wandb") and os.path.getsize(os.path.join(tr.run_dir, "wandb", runs[0], f)) > 0
               for f in files)


# ----------------------------------------------------------------------------------------- REINFORCE

def _reinforce(tmp_path, **kw: object) -> ReinforceTrainer:
    base = dict(env="CartPole-v1", G=4, T=60, seed=3, verbose=0, log_dir=str(tmp_path), loggers=("csv",))
    base.update(kw)
    torch.manual_seed(0)
    return ReinforceTrainer(SimpleGRPOPolicy(4, 2), ReinforceConfig(**base))


def test_reinforce_returns_are_discounted_returns_to_go(tmp_path) -> None:
    tr = _reinforce(tmp_path, gamma=0.9)
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(3, 6)).astype(np.float32)
    lengths = np.array([6, 2, 0])
    got = tr.returns(rewards, lengths)
    for i, n in enumerate(lengths):
        acc = 0.0
        for t in reversed(range(6)):
            acc = (rewards[i, t] + 0.9 * acc) if t < n else 0.0
            assert got[i, t] == pytest.approx(acc if t < n else 0.0, rel=1e-5, abs=1e-6)


def test_reinforce_gradient_is_the_policy_gradient(tmp_path) -> None:
    """One SGD step (lr 1, no momentum) moves the parameters by exactly mean(grad log pi * A)."""
    tr = _reinforce(tmp_path, optimizer="sgd", momentum=0.0, lr=1.0, baseline="none", normalize_returns=False)
    tr._ensure_env()
    state = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    rng_state = torch.get_rng_state()
    b = tr._collect()
    mask = np.arange(tr.cfg.T)[None] < b["lengths"][:, None]
    ret = torch.from_numpy(tr.returns(b["rewards"], b["lengths"])[mask])
    logp = tr.policy.evaluate_actions(torch.from_numpy(b["obs"][mask]), torch.from_numpy(b["actions"][mask]))[0]
    grads = torch.autograd.grad((logp * ret).mean(), list(tr.policy.parameters()))
    expected = [p.detach() + g for p, g in zip(tr.policy.parameters(), grads)]
    tr.policy.load_state_dict(state)
    torch.set_rng_state(rng_state)
    tr.iteration = 0
    tr._iteration(progress=0.0)
    for p, e in zip(tr.policy.parameters(), expected):
        torch.testing.assert_close(p.detach(), e, rtol=1e-5, atol=1e-6)


def test_reinforce_learns_cartpole_smoke(tmp_path) -> None:
    tr = _reinforce(tmp_path, G=16, T=500, seed=0)
    tr.train(12)
    first = np.mean([float(r["rollout/ep_rew_mean"]) for r in _csv(tr.run_dir)[:2]])
    assert tr.evaluate(n_episodes=8, seed=5)["mean_reward"] > 2 * first


def test_reinforce_resume_is_bitwise(tmp_path) -> None:
    full = _reinforce(tmp_path / "a")
    full.train(4)
    part = _reinforce(tmp_path / "b")
    part.train(2)
    path = part.save(str(tmp_path / "r.pt"))
    back = BaseTrainer.load(path)
    assert isinstance(back, ReinforceTrainer)
    back.train(2)
    for a, b in zip(full.policy.parameters(), back.policy.parameters()):
        assert torch.equal(a, b)


def test_reinforce_bad_input(tmp_path) -> None:
    with pytest.raises(ValueError, match="baseline"):
        _reinforce(tmp_path, baseline="critic")
    with pytest.raises(TypeError, match="policy"):
        ReinforceTrainer(torch.nn.Linear(4, 2), ReinforceConfig(env="CartPole-v1", verbose=0))


def test_cli_reinforce_and_policy_options(tmp_path) -> None:
    assert main(["train", "reinforce", "--env", "CartPole-v1", "--G", "4", "--T", "50", "--iters", "2",
                 "--eval-episodes", "2", "--log-dir", str(tmp_path), "--verbose", "0"]) == 0
    assert main(["train", "ppo", "--env", "Pendulum-v1", "--distribution", "beta", "--G", "2", "--T", "16",
                 "--minibatches", "2", "--epochs", "1", "--iters", "1", "--eval-episodes", "1", "--log-dir",
                 str(tmp_path), "--verbose", "0", "--optimizer", "adamw", "--lr-schedule", "cosine",
                 "--share-trunk", "--vf-lr", "1e-3"]) == 0
    assert main(["train", "grpo-episode", "--env", "CartPole-v1", "--backbone", "transformer", "--G", "2", "--T",
                 "20", "--epochs", "1", "--minibatches", "1", "--iters", "1", "--eval-episodes", "1", "--log-dir",
                 str(tmp_path), "--verbose", "0"]) == 0


class TinyNet(torch.nn.Module):
    """A user trunk named by the config."""

    def __init__(self, obs_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(int(np.prod(obs_shape)), 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.lin(x))


def test_policy_built_from_the_config(tmp_path) -> None:
    tr = PPOTrainer(None, PPOConfig(env="Pendulum-v1", G=2, T=16, minibatches=2, epochs=1, seed=4, verbose=0,
                                    log_dir=str(tmp_path), loggers=("csv",), backbone="transformer",
                                    distribution="beta", share_trunk=True))
    pol = tr.policy
    assert isinstance(pol, ActorCriticPolicy) and pol.distribution == "beta" and pol.vf_trunk is None
    assert pol.init_kwargs["action_low"] == [-2.0] and pol.backbone == "transformer"
    again = PPOTrainer(None, PPOConfig(env="Pendulum-v1", G=2, T=16, minibatches=2, epochs=1, seed=4, verbose=0,
                                       log_dir=str(tmp_path), loggers=("csv",), backbone="transformer",
                                       distribution="beta", share_trunk=True))
    for a, b in zip(pol.parameters(), again.policy.parameters()):
        assert torch.equal(a, b)  # same seed, same initial weights
    tr.train(1)
    custom = ReinforceTrainer(None, ReinforceConfig(env="CartPole-v1", G=2, T=20, seed=0, verbose=0,
                                                    log_dir=str(tmp_path), loggers=("csv",), backbone=TinyNet))
    assert isinstance(custom.policy, SimpleGRPOPolicy) and isinstance(custom.policy.pi_trunk, TinyNet)
    custom.train(1)
    back = BaseTrainer.load(custom.save(str(tmp_path / "c.pt")), classes=[TinyNet])
    assert isinstance(back.policy.pi_trunk, TinyNet)


@pytest.mark.parametrize("dist,squash", [("gaussian", False), ("gaussian", True), ("beta", False)])
def test_actor_only_trainers_on_continuous_actions(tmp_path, dist: str, squash: bool) -> None:
    common = dict(env="Pendulum-v1", G=3, T=30, seed=1, verbose=0, log_dir=str(tmp_path), loggers=("csv",),
                  distribution=dist, squash=squash)
    for tr in (PerEpAdvGRPOTrainer(None, GRPOConfig(**common, epochs=1, minibatches=2)),
               ReinforceTrainer(None, ReinforceConfig(**common))):
        before = [p.detach().clone() for p in tr.policy.parameters()]
        tr.train(2)
        assert any(not torch.equal(a, b) for a, b in zip(before, tr.policy.parameters()))
        assert all(math.isfinite(float(v)) for k, v in tr.logger.last.items() if k.startswith("train/"))
        a = tr.predict(np.zeros((4, 3), np.float32))
        assert a.shape == (4, 1) and np.all(np.abs(a) <= 2.0)
