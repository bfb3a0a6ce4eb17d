"""GRPO for control (Shao et al. 2024, "DeepSeekMath", sec. 4): actor only, group-relative advantages.

Each iteration collects G episodes of at most T steps (``EpisodicTrainer``: in parallel through ``make_vec``,
all from one seed with ``identical_G`` or from G consecutive seeds, a fresh seed every iteration); the padded
``[G, T]`` rewards and the lengths go straight to the C++ group kernels:
``per_step_advantages`` (process supervision), ``episodic_advantages`` (outcome supervision) or
``hybrid_advantages``. Loss: clipped surrogate on the group advantages (optionally clip-higher), entropy bonus and
``beta * KL(pi || pi_ref)`` with the k3 estimator ``ratio - log(ratio) - 1``, ``ratio = pi_ref / pi``; beta adapts
towards ``target_kl`` and pi_ref is refreshed every ``ref_update_freq`` iterations.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np
import torch

from rltrain import kernels
from rltrain.algos.episodic import EpisodicTrainer
from rltrain.config import GRPOConfig
from rltrain.policies import ActorAPI
from rltrain.schedules import schedule_value

__all__ = ["GRPOBaseTrainer", "HybridAdvGRPOTrainer", "PerEpAdvGRPOTrainer", "PerStepAdvGRPOTrainer"]


class GRPOBaseTrainer(EpisodicTrainer):
    """Collection, loss, KL control and bookkeeping shared by the three GRPO variants; subclasses choose the
    advantage (``advantages``)."""

    algo = "grpo"
    config_class = GRPOConfig
    cfg: GRPOConfig

    def __init__(self, policy: torch.nn.Module | None, cfg: GRPOConfig, device: str | torch.device = "cpu") -> None:
        super().__init__(policy, cfg, device)
        self.beta = float(cfg.beta_kl)
        self.ref_policy = copy.deepcopy(self.policy).requires_grad_(False)
        self.last_batch: dict[str, np.ndarray] | None = None

    # --------------------------------------------------------------------------------------- advantages

    def advantages(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _episodic(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        c = self.cfg
        if c.scale == "group":
            adv: np.ndarray = kernels.episodic_advantages(rewards, lengths, eps=1e-8, ddof=c.ddof)
            return adv
        # Dr. GRPO: centred episode returns, no division by the group std.
        R = np.where(np.arange(rewards.shape[1])[None] < lengths[:, None], rewards, 0).sum(1).astype(rewards.dtype)
        A = kernels.group_normalize(R, scale="none", ddof=c.ddof)
        return np.where(np.arange(rewards.shape[1])[None] < lengths[:, None], A[:, None], 0).astype(rewards.dtype)

    # -------------------------------------------------------------------------------------------- update

    def _iteration(self, progress: float) -> dict[str, float]:
        self._ensure_env()
        c = self.cfg
        if self.iteration % c.ref_update_freq == 0:
            self.ref_policy.load_state_dict(self.policy.state_dict())
        b = self._collect()
        adv = self.advantages(b["rewards"], b["lengths"])
        b["advantages"] = adv
        self.last_batch = b
        stats = self._update(b, progress)
        R = b["rewards"].sum(1)
        stats["grpo/group_reward_mean"] = float(R.mean())
        stats["grpo/group_reward_std"] = float(R.std())
        stats["grpo/zero_variance_fraction"] = _zero_variance_fraction(b["rewards"], b["lengths"])
        stats["grpo/mean_episode_length"] = float(b["lengths"].mean())
        return stats

    def _update(self, b: dict[str, np.ndarray], progress: float = 0.0) -> dict[str, float]:
        c, dev = self.cfg, self.device
        mask = np.arange(c.T)[None] < b["lengths"][:, None]

        def sel(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x[mask])).to(dev)

        obs, actions, old_logp, adv = sel(b["obs"]), sel(b["actions"]), sel(b["logp"]), sel(b["advantages"])
        masks = sel(b["masks"]) if "masks" in b else None
        kw: dict[str, Any] = {} if masks is None else {"action_mask": masks}
        n = obs.shape[0]
        with torch.no_grad():
            ref_logp = self._ref_logp(obs, actions, **kw)
        clip = schedule_value(c.clip_schedule, c.clip_eps, progress, c.warmup_frac)
        # Clip-higher keeps its ratio to clip_eps under the clip schedule.
        clip_high = clip if c.clip_eps_high is None else (
            c.clip_eps_high * clip / c.clip_eps if c.clip_eps > 0 else c.clip_eps_high)
        lo, hi = 1 - clip, 1 + clip_high
        ent_coef = self._ent_at(progress)
        mb = max(1, -(-n // c.minibatches))
        sums = {"pg": 0.0, "kl": 0.0, "ent": 0.0, "clipfrac": 0.0}
        count = 0
        pol = cast(ActorAPI, self.policy)  # BaseTrainer.__init__ checked evaluate_actions
        for _epoch in range(c.epochs):
            perm = torch.randperm(n, generator=self._gen).to(dev)
            for start in range(0, n, mb):
                idx = perm[start:start + mb]
                with self._autocast():
                    logp, ent = pol.evaluate_actions(obs[idx], actions[idx],
                                                     **{k: v[idx] for k, v in kw.items()})[-2:]
                logp, ent = logp.float(), ent.float()
                ratio = torch.exp(logp - old_logp[idx])
                a = adv[idx]
                pg = -torch.min(a * ratio, a * torch.clamp(ratio, lo, hi)).mean()
                log_ref_ratio = ref_logp[idx] - logp
                kl = (torch.exp(log_ref_ratio) - log_ref_ratio - 1).mean()
                loss = pg - ent_coef * ent.mean() + self.beta * kl
                self._optimizer_step(loss)
                with torch.no_grad():
                    sums["pg"] += float(pg)
                    sums["kl"] += float(kl)
                    sums["ent"] += float(ent.mean())
                    sums["clipfrac"] += float(((ratio < lo) | (ratio > hi)).float().mean())
                count += 1
        self._sync_rollout_policy()
        with torch.no_grad():
            lp = pol.evaluate_actions(obs, actions, **kw)[-2]
            d = ref_logp - lp
            measured_kl = float((torch.exp(d) - d - 1).mean())
        beta_used = self.beta
        if measured_kl > c.target_kl:
            self.beta *= c.kl_adjust_up
        elif measured_kl < c.target_kl:
            self.beta *= c.kl_adjust_down
        k = max(count, 1)
        return {"train/policy_gradient_loss": sums["pg"] / k, "train/kl_ref": measured_kl,
                "train/kl_ref_minibatch_mean": sums["kl"] / k, "train/beta": beta_used, "train/beta_next": self.beta,
                "train/entropy_loss": -sums["ent"] / k, "train/clip_fraction": sums["clipfrac"] / k,
                "train/n_updates": float(count), "train/clip_range": clip, "train/ent_coef": ent_coef}

    def _ref_logp(self, obs: torch.Tensor, actions: torch.Tensor, **kw: Any) -> torch.Tensor:
        return cast(ActorAPI, self.ref_policy).evaluate_actions(obs, actions, **kw)[-2]  # a copy of self.policy

    # --------------------------------------------------------------------------------------- checkpoints

    def _extra_state(self) -> dict[str, Any]:
        return {"beta": self.beta, "ref_policy": {k: v.detach().cpu() for k, v in self.ref_policy.state_dict().items()}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])
        self.ref_policy.load_state_dict(state["ref_policy"])


def _zero_variance_fraction(rewards: np.ndarray, lengths: np.ndarray) -> float:
    """Fraction of timesteps (with at least two episodes alive) at which every alive episode got the same reward:
    there the per-step group advantage carries no signal."""
    T = rewards.shape[1]
    alive = np.arange(T)[None] < lengths[:, None]
    n = alive.sum(0)
    cols = n >= 2
    if not cols.any():
        return 0.0
    big, small = np.where(alive, rewards, -np.inf).max(0), np.where(alive, rewards, np.inf).min(0)
    return float(np.mean(big[cols] == small[cols]))


class PerStepAdvGRPOTrainer(GRPOBaseTrainer):
    """Process supervision: step rewards normalised per timestep across the G episodes (or pooled), discounted
    sum of the future normalised rewards. Use ``identical_G=True`` so the G episodes share their start."""

    algo = "grpo-step"

    def advantages(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        c = self.cfg
        adv: np.ndarray = kernels.per_step_advantages(rewards, lengths, gamma=c.gamma, normalize=c.normalize,
                                                      eps=1e-8, ddof=c.ddof)
        return adv


class PerEpAdvGRPOTrainer(GRPOBaseTrainer):
    """Outcome supervision: every step of episode i gets its group-normalised total reward."""

    algo = "grpo-episode"

    def advantages(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return self._episodic(rewards, lengths)


class HybridAdvGRPOTrainer(GRPOBaseTrainer):
    """Sign +1 only when both the episodic and the per-step advantage are positive; magnitude
    ``|A_ep|^alpha * |A_step|^beta``, clipped, then normalised."""

    algo = "grpo-hybrid"

    def advantages(self, rewards: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        c = self.cfg
        adv: np.ndarray = kernels.hybrid_advantages(rewards, lengths, gamma=c.gamma, alpha=c.hybrid_alpha,
                                                    beta=c.hybrid_beta, clip=c.hybrid_clip, eps=1e-8, ddof=c.ddof)
        return adv
