"""PPO (Schulman et al. 2017) with Stable-Baselines3's semantics on rltrain's rollout engine.

Rollout: G environments x T steps, actions from a CPU copy of the policy; terminated and truncated are kept
apart and truncated episodes bootstrap from the value of their true final observation (one batched forward
pass per step over the envs that were truncated), then ``rltrain.kernels.gae``. Update: ``epochs`` passes of
``minibatches`` shuffled minibatches on ``device`` with the clipped surrogate, optional SB3-style value clipping,
entropy bonus, per-minibatch advantage normalisation, schedules for lr / clip range / entropy coefficient, mixed
precision on CUDA, the k3 approximate KL with SB3's early stop
(before the step of the minibatch that exceeds 1.5 * target_kl) and gradient-norm clipping.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import torch

from rltrain import kernels
from rltrain.algos.base import BaseTrainer
from rltrain.algos.fused_mlp import FusedActorCritic, fused_eligible
from rltrain.algos.rollout import (
    ActFn,
    collect_steps,
    make_act,
    make_value,
    native_for,
    new_step_buffers,
    reports_action_mask,
)
from rltrain.config import PPOConfig
from rltrain.distributed.ddp import allreduce_sum, rank_world, shard, sync_start
from rltrain.kernels import RewardNormalizer, RunningMeanStd
from rltrain.policies import ActorCriticAPI
from rltrain.schedules import schedule_value

__all__ = ["PPOTrainer", "ppo_loss"]


def ppo_loss(values: torch.Tensor, logp: torch.Tensor, entropy: torch.Tensor, old_logp: torch.Tensor,
             adv: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, *, clip: float,
             clip_vf: float | None, ent_coef: float, vf_coef: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SB3's PPO loss ``pg + ent_coef * (-mean entropy) + vf_coef * value_loss`` for autograd (any device, any
    policy), and its detached statistics pg, vf, ent, kl (k3 estimator) and clipfrac. The same loss as the C++
    kernel ``rltrain.kernels.ppo_loss_grad`` and its specification ``rltrain.reference.ppo_loss_grad`` (tests
    compare loss and gradient); ``adv`` arrives already normalised when normalisation is on."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    pg_loss = -torch.min(adv * ratio, adv * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
    v_pred = values if clip_vf is None else old_values + torch.clamp(values - old_values, -clip_vf, clip_vf)
    v_loss = torch.nn.functional.mse_loss(returns, v_pred)
    ent_loss = -entropy.mean()
    loss = pg_loss + ent_coef * ent_loss + vf_coef * v_loss
    with torch.no_grad():
        stats = {"pg": pg_loss.detach(), "vf": v_loss.detach(), "ent": ent_loss.detach(),
                 "kl": ((ratio - 1) - log_ratio).mean(), "clipfrac": ((ratio - 1).abs() > clip).float().mean()}
    return loss, stats


class PPOTrainer(BaseTrainer):
    """``PPOTrainer(ActorCriticPolicy(obs_dim, n_actions), PPOConfig(...), device="cpu").train(iters)``;
    ``PPOTrainer(None, cfg)`` builds the policy the config describes (backbone, distribution, trunk sharing)."""

    algo = "ppo"
    config_class = PPOConfig
    cfg: PPOConfig
    actor_critic = True

    def __init__(self, policy: torch.nn.Module | None, cfg: PPOConfig, device: str | torch.device = "cpu") -> None:
        super().__init__(policy, cfg, device)
        policy = self.policy
        self.reward_norm: RewardNormalizer | None = None
        self._buffers: dict[str, np.ndarray] | None = None
        self.fused: FusedActorCritic | None = None
        self._ddp = rank_world()
        """(rank, world size) of a data-parallel learner (``rltrain.distributed.ddp``), else None."""
        if self._ddp is not None:  # every rank starts from rank 0's seed and weights
            self.seed = sync_start(self.policy, self.seed)
            torch.manual_seed(self.seed)
            self._gen.manual_seed(self.seed)
            self._sync_rollout_policy()
            if self._ddp[0] != 0 and self.env is not None:  # built for the spaces only: rank 0 steps the envs
                self.env.close()
                self.env = None
        # fused_eligible includes "on CPU": the fused step takes its loss gradient from the C++ kernel. The fused
        # step has no hook for the gradient all-reduce, so a data-parallel learner uses autograd.
        if (self._ddp is None and cfg.fused_update and fused_eligible(policy) and cfg.optimizer == "adam"
                and cfg.vf_lr is None and not cfg.weight_decay and self._amp_dtype is None
                and not reports_action_mask(cfg.env)):
            self.fused = FusedActorCritic(policy, lr=cfg.lr, adam_eps=cfg.adam_eps)
            self.optimizer = self.fused.optimizer
            if self._rollout_policy is not self.policy:
                self._sync_rollout_policy()

    # ------------------------------------------------------------------------------------------ rollout

    def _ensure_buffers(self) -> None:
        """The rollout buffers alone (a data-parallel learner's rank > 0 receives the batch into them)."""
        if self._buffers is None:
            if not hasattr(self, "observation_space"):
                self._make_env()
            shape = self.observation_space.shape
            if shape is None:
                raise TypeError(f"observation_space: PPO needs observations with a shape, got {self.observation_space}")
            self._buffers = new_step_buffers(self.cfg.T, self.cfg.G, tuple(shape), self.action_space)

    def _ensure_env(self) -> None:
        if self._ddp is not None and self._ddp[0] != 0:  # a data-parallel rank > 0 never steps envs
            self._ensure_buffers()
            return
        super()._ensure_env()
        if self._mask is not None and self.fused is not None:
            # An env that reports action masks but was not known to (a custom env): the fused kernel knows no
            # masks, so the plain optimizer takes over before the first update.
            if self.iteration > 0:
                raise ValueError("env: it reports info['action_mask'], which the fused update cannot use; set "
                                 "fused_update=False")
            self.fused = None
            self.optimizer = self._make_optimizer()
        obs_shape = self.observation_space.shape
        if obs_shape is None:
            raise TypeError(f"observation_space: PPO needs observations with a shape, got {self.observation_space}")
        if self.cfg.normalize_obs and self.obs_rms is None:
            self.obs_rms = RunningMeanStd(shape=obs_shape)
            self.obs_rms.update(self._obs)  # the first reset's observations, as SB3's VecNormalize
        if self.cfg.normalize_reward and self.reward_norm is None:
            self.reward_norm = RewardNormalizer(self.cfg.G, gamma=self.cfg.gamma)
        if self._buffers is None:
            self._buffers = new_step_buffers(self.cfg.T, self.cfg.G, tuple(obs_shape), self.action_space,
                                             None if self._mask is None else tuple(self._mask.shape[1:]))

    def _update_obs_stats(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_rms is None:
            return obs
        self.obs_rms.update(obs)
        normalized: np.ndarray = self.obs_rms.normalize(obs)
        return normalized

    @torch.no_grad()
    def _collect(self) -> dict[str, np.ndarray]:
        assert self._buffers is not None and self._obs is not None
        b = self._buffers
        cfg = self.cfg
        pol = cast(ActorCriticAPI, self._rollout_policy)  # BaseTrainer.__init__ checked act and value
        noise = self._rollout_noise((cfg.T, cfg.G))
        invariant = cfg.batch_invariant_rollout()
        if self._ray is not None:
            if self._mask is not None:
                raise ValueError("rollout_backend: the env reports info['action_mask'] and masked rollouts run "
                                 "locally only; use rollout_backend='local'")
            got, episodes, last_values, obs_raw = self._ray.collect_steps(self._rollout_policy, noise, cfg.T)
            for k, v in got.items():
                b[k][...] = v
        else:
            assert self.env is not None
            # rltrain's default MLP policies roll out through the C++ forward (rows independent of the batch size,
            # so a local run and a Ray run agree whatever batch_invariant says); with the fused update it reads the
            # fused flat parameters directly. Otherwise the fused trunks' torch pass, unless the rollout must not
            # depend on the batch size.
            fused = self.fused if self.fused is not None and self._rollout_policy is self.policy else None
            native = fused.native if fused is not None and fused.native_act else (
                native_for(pol) if self._mask is None else None)
            act: ActFn = make_act(pol, invariant, native)
            value = make_value(pol, invariant, native)
            if native is None and fused is not None and not invariant:
                def fused_act(o: torch.Tensor, n: torch.Tensor | None,
                              m: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
                    assert fused is not None
                    return fused.act(o, noise=n)  # never masked: a masked env has no fused step (see __init__)
                act = fused_act
            obs_rms = self.obs_rms
            obs_raw, episodes, last_values, self._mask = collect_steps(
                self.env, act, value, self._obs, b, noise, self._clip_actions,
                normalize=None if obs_rms is None else self._normalize_obs,
                observe=None if obs_rms is None else self._update_obs_stats, reward_norm=self.reward_norm,
                mask=self._mask)
        self._obs = obs_raw
        for _t, _i, ret, length in episodes:
            self.ep_info.append((ret, length))
        adv, ret_ = kernels.gae(b["rewards"], b["values"], b["dones"], last_values, gamma=cfg.gamma,
                                lam=cfg.lam, terminated=b["terminated"], final_values=b["final_values"])
        self.num_timesteps += cfg.T * cfg.G
        return {"advantages": adv, "returns": ret_}

    # ------------------------------------------------------------------------------------------- update

    def _iteration(self, progress: float) -> dict[str, float]:
        if self._ddp is None:
            self._ensure_env()
            res = self._collect()
            return self._update(res["advantages"], res["returns"], progress)
        # Data-parallel learner: rank 0 collects, every rank receives the batch.
        from rltrain.distributed.ddp import broadcast_arrays

        cfg = self.cfg
        if self._ddp[0] == 0:
            self._ensure_env()
            res = self._collect()
            adv, ret = np.ascontiguousarray(res["advantages"]), np.ascontiguousarray(res["returns"])
        else:
            self._ensure_buffers()
            adv, ret = np.zeros((cfg.T, cfg.G), np.float32), np.zeros((cfg.T, cfg.G), np.float32)
            self.num_timesteps += cfg.T * cfg.G
        b = self._buffers
        assert b is not None
        broadcast_arrays([b["obs"], b["actions"], b["logp"], b["values"], adv, ret])
        return self._update(adv, ret, progress)

    def _update(self, advantages: np.ndarray, returns: np.ndarray, progress: float) -> dict[str, float]:
        b = self._buffers
        assert b is not None
        cfg, dev = self.cfg, self.device
        n = cfg.T * cfg.G

        def flat(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x.reshape((n,) + x.shape[2:])).to(dev)

        obs, actions = flat(b["obs"]), flat(b["actions"])
        masked = "masks" in b
        masks = flat(b["masks"]) if masked else torch.zeros(n, 1, dtype=torch.bool, device=dev)
        old_logp, old_values = flat(b["logp"]), flat(b["values"])
        adv_all, ret_all = flat(advantages), flat(returns)
        mb = n // cfg.minibatches
        clip = schedule_value(cfg.clip_schedule, cfg.clip_eps, progress, cfg.warmup_frac)
        ent_coef = self._ent_at(progress)
        clip_vf = cfg.clip_range_vf
        pol = cast(ActorCriticAPI, self.policy)  # BaseTrainer.__init__ checked evaluate_actions
        stats: dict[str, list[Any]] = {k: [] for k in ("pg", "vf", "ent", "clipfrac", "kl")}
        continue_training = True
        n_updates = 0
        last_loss: Any = 0.0
        if self._ddp is not None and mb < self._ddp[1]:
            raise ValueError(f"minibatches: a minibatch of {mb} rows cannot be shared among {self._ddp[1]} learners")
        whole = cfg.minibatches == 1  # one minibatch: no shuffling, and its advantages normalise once
        fused = None if masked else self.fused  # the fused kernel knows no masks
        if whole and cfg.normalize_advantage and n > 1:
            adv_all = (adv_all - adv_all.mean()) / (adv_all.std() + 1e-8)
        tensors = (obs, actions, old_logp, adv_all, ret_all, old_values, masks)
        # One minibatch and no shuffling: every epoch sees the same samples, so the C++ call runs them all at once.
        epochs_per_call = cfg.epochs if whole and fused is not None and fused.native_epoch else 1
        for _epoch in range(0, cfg.epochs, epochs_per_call):
            # One gather per tensor and epoch; minibatches are then contiguous slices of the shuffled copies.
            shuffled: tuple[torch.Tensor, ...] = tensors
            if not whole:
                perm = torch.randperm(n, generator=self._gen).to(dev)
                shuffled = tuple(x[perm] for x in tensors)
            if fused is not None and fused.native_epoch:
                # The whole epoch in one C++ call: the same minibatch steps as fused.step below.
                rows, done, stopped = fused.epoch(
                    *shuffled[:6], minibatch=mb, clip=clip, clip_vf=clip_vf, ent_coef=ent_coef, vf_coef=cfg.vf_coef,
                    max_grad_norm=cfg.max_grad_norm, target_kl=cfg.target_kl,
                    normalize_adv=cfg.normalize_advantage and not whole, epochs=epochs_per_call)
                for row in rows:
                    for k, x in zip(("pg", "vf", "ent", "kl", "clipfrac"), row):
                        stats[k].append(x)
                n_updates += done
                if done:
                    pg, vf, ent = rows[done - 1][:3]
                    last_loss = float(pg) + ent_coef * float(ent) + cfg.vf_coef * float(vf)
                if stopped:
                    break
                continue
            for start in range(0, n, mb):
                o_mb, a_mb, lp_mb, adv, r_mb, v_mb, m_mb = (x[start:start + mb] for x in shuffled)
                norm_mb = cfg.normalize_advantage and not whole
                if fused is not None:
                    st, stopped = fused.step(o_mb, a_mb, lp_mb, adv, r_mb, v_mb,
                                             clip=clip, clip_vf=clip_vf, ent_coef=ent_coef, vf_coef=cfg.vf_coef,
                                             max_grad_norm=cfg.max_grad_norm, target_kl=cfg.target_kl,
                                             normalize_adv=norm_mb)
                    for k in stats:
                        stats[k].append(st[k])
                    if stopped:
                        continue_training = False
                        break
                    last_loss = float(st["pg"]) + ent_coef * float(st["ent"]) + cfg.vf_coef * float(st["vf"])
                    n_updates += 1
                    continue
                if norm_mb and adv.numel() > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                frac = 1.0
                if self._ddp is not None:  # this rank's share of the minibatch (normalised over all of it)
                    part = shard(o_mb.shape[0], *self._ddp)
                    frac = (part.stop - part.start) / o_mb.shape[0]
                    o_mb, a_mb, lp_mb, adv, r_mb, v_mb = (x[part] for x in (o_mb, a_mb, lp_mb, adv, r_mb, v_mb))
                with self._autocast():
                    if masked:
                        values, logp, entropy = pol.evaluate_actions(o_mb, a_mb, action_mask=m_mb)  # type: ignore[call-arg]
                    else:
                        values, logp, entropy = pol.evaluate_actions(o_mb, a_mb)
                loss, st = ppo_loss(values.float(), logp.float(), entropy.float(), lp_mb, adv, r_mb, v_mb,
                                    clip=clip, clip_vf=clip_vf, ent_coef=ent_coef, vf_coef=cfg.vf_coef)
                if self._ddp is not None:
                    # Shard means weighted by their share sum to the global minibatch's means.
                    loss = loss * frac
                    keys = sorted(st)
                    total = allreduce_sum(torch.stack([st[k] for k in keys]) * frac)
                    st = dict(zip(keys, total.unbind()))
                for k in stats:
                    stats[k].append(st[k])
                approx_kl = st["kl"]
                if cfg.target_kl is not None and approx_kl.item() > 1.5 * cfg.target_kl:
                    continue_training = False
                    break
                self._optimizer_step(loss)
                last_loss = loss.detach() if self._ddp is None else (
                    st["pg"] + ent_coef * st["ent"] + cfg.vf_coef * st["vf"])
                n_updates += 1
            if not continue_training:
                break
        self._sync_rollout_policy()

        def mean(xs: list[Any]) -> float:
            return float(np.mean([float(x) for x in xs])) if xs else float("nan")

        v_np, r_np = b["values"].reshape(-1), returns.reshape(-1)
        var_r = float(np.var(r_np))
        explained = float("nan") if var_r == 0 else 1.0 - float(np.var(r_np - v_np)) / var_r
        out = {
            "train/policy_gradient_loss": mean(stats["pg"]),
            "train/value_loss": mean(stats["vf"]),
            "train/entropy_loss": mean(stats["ent"]),
            "train/approx_kl": mean(stats["kl"]),
            "train/clip_fraction": mean(stats["clipfrac"]),
            "train/loss": float(last_loss),
            "train/explained_variance": explained,
            "train/n_updates": float(n_updates),
            "train/clip_range": clip,
            "train/ent_coef": ent_coef,
        }
        log_std = getattr(self.policy, "log_std", None)
        if isinstance(log_std, torch.Tensor):
            out["train/std"] = float(log_std.detach().exp().mean())
        return out

    # -------------------------------------------------------------------------------------- checkpoints

    def _extra_state(self) -> dict[str, Any]:
        if self.reward_norm is None:
            return {}
        return {"reward_norm": {k: torch.from_numpy(np.asarray(v)) for k, v in self.reward_norm.state_dict().items()}}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        rn = state.get("reward_norm")
        if rn is not None:
            self.reward_norm = RewardNormalizer(self.cfg.G, gamma=self.cfg.gamma)
            self.reward_norm.load_state_dict({k: v.numpy() for k, v in rn.items()})
