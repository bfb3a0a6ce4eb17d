"""REINFORCE (Williams 1992): the Monte-Carlo policy gradient ``grad J = E[sum_t grad log pi(a_t|s_t) * G_t]``.

Each iteration collects G whole episodes (``EpisodicTrainer``), computes the return-to-go
``G_t = r_t + gamma * G_{t+1}`` of every step with the C++ ``kernels.discounted_returns`` (episode ends as dones,
no bootstrap), optionally subtracts the batch-mean baseline and divides by the standard deviation (a variance
reduction that leaves the gradient's direction unbiased up to scale for the mean baseline), and takes
``epochs`` x ``minibatches`` gradient steps on ``-mean(log pi(a|s) * A) - ent_coef * entropy``.
"""

from __future__ import annotations

from typing import cast

import numpy as np
import torch

from rltrain import kernels
from rltrain.algos.episodic import EpisodicTrainer, valid_mask
from rltrain.config import ReinforceConfig
from rltrain.policies import ActorAPI

__all__ = ["ReinforceTrainer"]


class ReinforceTrainer(EpisodicTrainer):
    """``ReinforceTrainer(SimpleGRPOPolicy(obs_dim, n_actions), ReinforceConfig(...)).train(iters)``."""

    algo = "reinforce"
    config_class = ReinforceConfig
    cfg: ReinforceConfig

    def returns(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Return-to-go ``[G, T]`` of padded episode rewards (zero past each episode's end)."""
        G, T = rewards.shape
        dones = np.zeros((T, G), np.bool_)
        ends = np.asarray(lengths) - 1
        has = ends >= 0
        dones[ends[has], np.flatnonzero(has)] = True
        r = np.where(valid_mask(lengths, T), rewards, 0).T
        ret: np.ndarray = kernels.discounted_returns(np.ascontiguousarray(r, dtype=np.float32), dones,
                                                     gamma=self.cfg.gamma).T
        return ret

    def _iteration(self, progress: float) -> dict[str, float]:
        self._ensure_env()
        c, dev = self.cfg, self.device
        b = self._collect()
        mask = valid_mask(b["lengths"], c.T)
        ret = self.returns(b["rewards"], b["lengths"])[mask]
        adv = ret.astype(np.float64)
        if c.baseline == "mean":
            adv = adv - adv.mean()
        if c.normalize_returns and adv.size > 1:
            adv = adv / (adv.std() + 1e-8)

        def sel(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x[mask])).to(dev)

        obs, actions = sel(b["obs"]), sel(b["actions"])
        adv_t = torch.from_numpy(adv.astype(np.float32)).to(dev)
        n = obs.shape[0]
        mb = max(1, -(-n // c.minibatches))
        ent_coef = self._ent_at(progress)
        pol = cast(ActorAPI, self.policy)  # BaseTrainer.__init__ checked evaluate_actions
        pg_sum = ent_sum = 0.0
        count = 0
        for _epoch in range(c.epochs):
            order = torch.randperm(n, generator=self._gen).to(dev) if c.minibatches > 1 else None
            for start in range(0, n, mb):
                idx = slice(start, start + mb) if order is None else order[start:start + mb]
                with self._autocast():
                    logp, ent = pol.evaluate_actions(obs[idx], actions[idx])[-2:]
                logp, ent = logp.float(), ent.float()
                pg = -(logp * adv_t[idx]).mean()
                loss = pg - ent_coef * ent.mean()
                self._optimizer_step(loss)
                pg_sum += float(pg.detach())
                ent_sum += float(ent.detach().mean())
                count += 1
        self._sync_rollout_policy()
        k = max(count, 1)
        return {"train/policy_gradient_loss": pg_sum / k, "train/entropy_loss": -ent_sum / k,
                "train/ent_coef": ent_coef, "train/n_updates": float(count),
                "train/return_to_go_mean": float(ret.mean()) if ret.size else float("nan"),
                "rollout/batch_episode_length": float(b["lengths"].mean())}
