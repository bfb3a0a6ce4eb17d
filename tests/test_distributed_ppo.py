"""Data-parallel PPO learner on torch.distributed (gloo, 2 CPU processes): each rank takes half of every minibatch
and the all-reduced gradient makes the update the single-process update on the same global minibatch, equal up
to the order of floating-point sums (stated tolerance: 2e-6 absolute on every parameter after one iteration of
2 epochs x 2 minibatches; the ranks themselves stay bitwise identical)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rltrain import PPOConfig, PPOTrainer

CFG: dict[str, Any] = {"env": "CartPole-v1", "G": 4, "T": 32, "minibatches": 2, "epochs": 2, "seed": 1,
                       "verbose": 0, "loggers": (), "fused_update": False, "hidden_sizes": (16, 16)}
TOL = 2e-6


def _learner(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        # Rank 1 has no seed of its own: the trainer adopts rank 0's seed and weights.
        cfg = PPOConfig(log_dir=os.path.join(out, f"runs{rank}"), **{**CFG, "seed": CFG["seed"] if rank == 0 else None})
        tr = PPOTrainer(None, cfg)
        assert tr._ddp == (rank, world) and tr.seed == CFG["seed"]
        tr.train(1)
        if rank != 0:
            assert tr.env is None and tr._ray is None  # only rank 0 steps environments
        tr.close()
        torch.save({k: v.detach().clone() for k, v in tr.policy.state_dict().items()},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_gloo_learners_equal_the_single_process_update(tmp_path: Path) -> None:
    # fork: the children start without importing torch again (tests stay fast).
    mp.start_processes(_learner, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True,
                       start_method="fork")
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    single = PPOTrainer(None, PPOConfig(log_dir=str(tmp_path / "single"), **CFG))
    before = {k: v.detach().clone() for k, v in single.policy.state_dict().items()}
    single.train(1)
    single.close()
    ref = single.policy.state_dict()
    assert all(torch.equal(r0[k], r1[k]) for k in ref)  # the ranks apply the same update
    worst = max(float((r0[k] - ref[k]).abs().max()) for k in ref)
    print(f"max |ddp - single| = {worst:.3g}")
    assert worst <= TOL, worst
    moved = max(float((ref[k] - before[k]).abs().max()) for k in ref)
    assert moved > 100 * TOL  # the update is far larger than the tolerance
