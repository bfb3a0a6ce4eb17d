"""Rollouts on Ray actors (SPEC section 8): a Ray run with K workers x E envs ends bitwise where the local run with
K*E envs ends, dead and hung workers are restarted, checkpoints resume exactly. One local Ray instance
(``ray.init(num_cpus=2)``) serves the whole module; runs are tiny."""

from __future__ import annotations

import time
from typing import Any

import pytest
import torch

ray = pytest.importorskip("ray")  # the [ray] extra is part of the [test] extra; .ci/run installs it

from rltrain import PPOConfig, PPOTrainer  # noqa: E402
from rltrain.algos.grpo import PerStepAdvGRPOTrainer  # noqa: E402
from rltrain.algos.reinforce import ReinforceTrainer  # noqa: E402
from rltrain.config import GRPOConfig, ReinforceConfig  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Any:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _params(tr: Any) -> list[torch.Tensor]:
    return [v.detach().clone() for v in tr.policy.state_dict().values()]


def _same(a: Any, b: Any) -> bool:
    pa, pb = _params(a), _params(b)
    return len(pa) == len(pb) and all(torch.equal(x, y) for x, y in zip(pa, pb))


def _trainer(cls: type, cfg_cls: type, tmp_path: Any, **kw: Any) -> Any:
    return cls(None, cfg_cls(seed=3, verbose=0, loggers=(), log_dir=str(tmp_path), **kw))


def _run(cls: type, cfg_cls: type, tmp_path: Any, iters: int, **kw: Any) -> Any:
    tr = _trainer(cls, cfg_cls, tmp_path, **kw)
    try:
        tr.train(iters)
    finally:
        tr.close()
    return tr


PPO_SMALL = {"G": 4, "T": 32, "minibatches": 4, "epochs": 2}


def test_ppo_ray_matches_local_then_survives_kill_and_hang_and_resumes(tmp_path: Any) -> None:
    kw = {"env": "CartPole-v1", **PPO_SMALL}
    local = _run(PPOTrainer, PPOConfig, tmp_path, 2, **kw)  # the default local run
    tr = _trainer(PPOTrainer, PPOConfig, tmp_path, rollout_backend="ray", num_rollout_workers=2,
                  rollout_timeout=3.0, **kw)
    try:
        tr.train(2)
        assert _same(local, tr)  # K=2 workers x E=2 envs == 4 local envs, bitwise
        assert list(local.ep_info) == list(tr.ep_info) and tr.num_timesteps == 2 * 4 * 32
        fresh = _trainer(PPOTrainer, PPOConfig, tmp_path, **kw)
        assert not _same(fresh, tr)  # the parameters moved: not a comparison of two untrained policies
        fresh.close()
        path = tr.save(str(tmp_path / "ckpt.pt"))
        tr.train(1)
        after3 = _params(tr)
        # A killed worker: restarted with re-seeded envs, its share collected again, training goes on.
        ray.kill(tr._ray.workers[0])
        with pytest.warns(RuntimeWarning, match=r"worker 0 died.*re-seeded.*collected again"):
            tr.train(1)
        # A hung worker: busy in a call that does not return before rollout_timeout.
        tr._ray.workers[1].__ray_call__.remote(lambda _self: time.sleep(120))
        t0 = time.monotonic()
        with pytest.warns(RuntimeWarning, match="worker 1 did not answer within rollout_timeout=3 s"):
            tr.train(1)
        assert time.monotonic() - t0 < 60
        assert tr._ray.restarts == 2 and tr.iteration == 5 and tr.num_timesteps == 5 * 4 * 32
        assert all(torch.isfinite(p).all() for p in _params(tr))
    finally:
        tr.close()
    resumed = PPOTrainer.load(path)  # the checkpoint of iteration 2 holds each worker's env snapshot
    try:
        assert resumed.cfg.rollout_backend == "ray" and resumed.iteration == 2
        resumed.train(1)
    finally:
        resumed.close()
    assert all(torch.equal(a, b) for a, b in zip(after3, _params(resumed)))


def test_grpo_ray_matches_local_and_a_killed_worker_changes_nothing(tmp_path: Any) -> None:
    # A Gaussian policy here (PPO above is categorical): each worker gets its slice of the normal noise.
    grpo = {"env": "LunarLanderContinuous-v3", "G": 4, "T": 50, "minibatches": 2, "epochs": 2, "identical_G": True}
    local = _run(PerStepAdvGRPOTrainer, GRPOConfig, tmp_path, 3, **grpo)
    tr = _trainer(PerStepAdvGRPOTrainer, GRPOConfig, tmp_path, rollout_backend="ray", num_rollout_workers=2, **grpo)
    try:
        tr.train(2)
        assert tr.last_batch is not None
        # identical_G: one seed for the whole group, across both workers.
        assert (tr.last_batch["first_obs"] == tr.last_batch["first_obs"][0]).all()
        ray.kill(tr._ray.workers[1])
        with pytest.warns(RuntimeWarning, match="rollout worker 1 died"):
            tr.train(1)
        assert tr._ray.restarts == 1
    finally:
        tr.close()
    # Episodes reset from the iteration's seed, so the repeated share is the one the dead worker would have sent.
    assert _same(local, tr) and local.beta == tr.beta


def test_reinforce_ray_matches_local(tmp_path: Any) -> None:
    rf = {"env": "CartPole-v1", "G": 4, "T": 60}
    local = _run(ReinforceTrainer, ReinforceConfig, tmp_path, 2, **rf)
    dist = _run(ReinforceTrainer, ReinforceConfig, tmp_path, 2, rollout_backend="ray", num_rollout_workers=2,
                envs_per_worker=2, **rf)
    assert _same(local, dist) and list(local.ep_info) == list(dist.ep_info)
