"""Resume is exact under every option that changes the update path: ``train(a); train(b)`` equals
``train(a + b)``, and save / load / train equals the uninterrupted run, bitwise on CPU (parameters, optimizer
state, evaluation results), for PPO (target_kl with early stops, fused on and off, normalisers, schedules), the
three GRPO trainers with adaptive KL, and REINFORCE. Each run is a fresh trainer from ``policy=None`` and a seed,
and the first trainer of the process counts as much as any later one."""

from __future__ import annotations

import pathlib
from typing import Any

import pytest
import torch

from rltrain import (
    GRPOConfig,
    HybridAdvGRPOTrainer,
    PerEpAdvGRPOTrainer,
    PerStepAdvGRPOTrainer,
    PPOConfig,
    PPOTrainer,
    ReinforceConfig,
    ReinforceTrainer,
)
from rltrain.algos.base import BaseTrainer

PPO = {"env": "CartPole-v1", "G": 4, "T": 64, "minibatches": 4, "epochs": 6}
GRPO = {"env": "CartPole-v1", "G": 4, "T": 100, "minibatches": 2, "epochs": 3}

CASES: dict[str, tuple[type, type, dict[str, Any]]] = {
    # A tight target_kl makes the epoch loop stop early in some iterations, as PPOConfig's default 0.03 does on
    # bigger batches.
    "ppo-target_kl-fused": (PPOTrainer, PPOConfig, {**PPO, "target_kl": 0.003, "lr": 3e-3}),
    "ppo-target_kl-autograd": (PPOTrainer, PPOConfig, {**PPO, "target_kl": 0.003, "lr": 3e-3,
                                                       "fused_update": False}),
    "ppo-defaults": (PPOTrainer, PPOConfig, PPO),
    "ppo-no-target_kl": (PPOTrainer, PPOConfig, {**PPO, "target_kl": None}),
    "ppo-normalizers": (PPOTrainer, PPOConfig, {**PPO, "normalize_obs": True, "normalize_reward": True}),
    "ppo-schedules": (PPOTrainer, PPOConfig, {**PPO, "lr_schedule": "linear", "clip_schedule": "cosine",
                                              "ent_schedule": "linear", "schedule_iters": 6}),
    "grpo-episode": (PerEpAdvGRPOTrainer, GRPOConfig, GRPO),
    "grpo-step": (PerStepAdvGRPOTrainer, GRPOConfig, {**GRPO, "identical_G": True}),
    "grpo-hybrid": (HybridAdvGRPOTrainer, GRPOConfig, {**GRPO, "ref_update_freq": 2}),
    "reinforce": (ReinforceTrainer, ReinforceConfig, {"env": "CartPole-v1", "G": 4, "T": 100}),
}


def _make(case: str, log_dir: pathlib.Path) -> BaseTrainer:
    cls, cfg_cls, kw = CASES[case]
    return cls(None, cfg_cls(**kw, seed=3, verbose=0, log_dir=str(log_dir)))


def _train(tr: BaseTrainer, iters: int) -> None:
    tr.train(iters=iters, eval_env="CartPole-v1", eval_interval=2, eval_episodes=2)


def _state(tr: BaseTrainer) -> dict[str, Any]:
    opt = tr.optimizer.state_dict()["state"]
    return {
        "params": [p.detach().clone() for p in tr.policy.parameters()],
        "opt": [v.clone() for s in opt.values() for v in s.values() if isinstance(v, torch.Tensor)],
        # The periodic evaluations (a split run also evaluates at the end of each call, on episodes seeded by the
        # iteration, so those at shared iterations must agree too).
        "evals": {e["iteration"]: (e["mean_reward"], e["mean_length"]) for e in tr.eval_history},
        "steps": tr.num_timesteps,
    }


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["steps"] == b["steps"]
    shared = sorted(set(a["evals"]) & set(b["evals"]))
    assert shared and all(a["evals"][i] == b["evals"][i] for i in shared), (a["evals"], b["evals"])
    assert len(a["params"]) == len(b["params"]) and len(a["opt"]) == len(b["opt"])
    for x, y in zip(a["params"] + a["opt"], b["params"] + b["opt"]):
        assert torch.equal(x, y)


@pytest.mark.parametrize("case", list(CASES))
def test_split_and_resumed_runs_equal_the_uninterrupted_one(case: str, tmp_path: pathlib.Path) -> None:
    whole = _make(case, tmp_path / "whole")
    _train(whole, 6)
    want = _state(whole)
    whole.close()

    split = _make(case, tmp_path / "split")
    for k in (2, 1, 3):
        _train(split, k)
    _assert_same(want, _state(split))
    split.close()

    first = _make(case, tmp_path / "first")
    _train(first, 2)
    path = first.save(str(tmp_path / "ckpt.pt"))
    first.close()
    resumed = type(first).load(path)
    _train(resumed, 4)
    _assert_same(want, _state(resumed))
    resumed.close()


def test_an_early_stop_happens_in_the_target_kl_cases(tmp_path: pathlib.Path) -> None:
    # Otherwise the two target_kl cases above would not exercise the early-stop path.
    tr = _make("ppo-target_kl-fused", tmp_path)
    stopped = 0
    for _ in range(6):
        tr.train(iters=1)
        stopped += tr.logger.last["train/n_updates"] < PPO["epochs"] * PPO["minibatches"]
    tr.close()
    assert stopped > 0
