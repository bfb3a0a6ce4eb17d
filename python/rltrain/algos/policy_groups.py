"""Policy groups: several groups of policies, one group drawn per iteration by performance-weighted sampling.

Each iteration (``PolicyGroupTrainer._iteration``):

1. **Selection.** Groups never measured are taken first, in order; afterwards group g is drawn with probability
   ``p_g = (1 - floor) * softmax_g(z / temperature) + floor / groups``, ``z_g = (perf_g - mean) / (std + 1e-8)``
   over the groups' tracked performances (``rltrain.algos.policy_groups_nets.selection_probabilities``), from a
   generator seeded by (seed, iteration).
2. **Acting.** The group's M members act side by side on the rollout engine (``make_vec``, native when possible):
   ``G`` environments, env ``j`` played by member ``j % M``; every member plays ``E = G / M`` episodes of at most T
   steps, and episode e of every member starts from the same seed (fresh seeds each iteration), so the members'
   returns are comparable.
3. **Performance.** The group's tracked performance is an exponential moving average of its iterations' mean
   episode return (``perf_ema``).
4. **Update** with group-relative advantages (below): a clipped surrogate and entropy bonus per member plus the
   group critic's value loss, ``epochs`` x ``minibatches`` optimizer steps, gradients clipped per member and per
   critic (each member is trained as if alone; only the selected group's parameters move).
5. **Logging** (same Logger as the other trainers): each group's performance and selection probability, the
   selected group, the between-group diversity (mean pairwise KL of the groups' averaged action distributions
   on observations of this iteration) and the within-group diversity.

**Group-relative advantage.** For member m of the selected group g, episode e, step t (``group_relative_advantages``)::

    R[e, m]       = sum_t r[e, m, t]                                        (episode return)
    A_grp[e, m]   = (R[e, m] - mean_m' R[e, m']) / (std_m' R[e, m'] + 1e-8)  kernels.episodic_advantages, batch axis e
    A_gae[e,m,t]  = GAE(gamma, lam) of member m's episode with the critic V_g  kernels.gae (terminal: 0;
                    truncated or cut at T: V_g of the final observation)
    A_crit        = (A_gae - mean) / (std + 1e-8) over all valid steps of the group's batch   kernels.group_normalize
    A[e, m, t]    = A_grp[e, m] + gae_weight * A_crit[e, m, t]

The first term is GRPO's outcome advantage with the group as the baseline: how much better member m did than
its siblings from the same start (population std; 0 when all members scored alike or M = 1). The second is
per-step credit assignment from the group's own value function ``V_g``, which is fitted to all members' returns
(``returns = A_gae + V_g``) and so estimates the group's average return from a state: it is a group-relative
baseline too, conditioned on the state. ``gae_weight=0`` gives the pure GRPO outcome advantage.

The trained agent (``predict``, ``evaluate``, the robustness suite): ``PolicyGroupPolicy`` with ``eval_mode``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain import kernels
from rltrain.algos.episodic import EpisodicTrainer, valid_mask
from rltrain.algos.policy_groups_nets import PolicyGroupPolicy
from rltrain.config import PolicyGroupConfig
from rltrain.policies import SimpleGRPOPolicy
from rltrain.schedules import schedule_value

__all__ = ["PolicyGroupPolicy", "PolicyGroupTrainer", "group_relative_advantages"]


def group_relative_advantages(rewards: np.ndarray, values: np.ndarray, lengths: np.ndarray,
                              terminated: np.ndarray, final_values: np.ndarray, *, group_size: int, gamma: float,
                              lam: float, gae_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The group-relative advantages and critic targets of one group's batch (module docstring).

    ``rewards``, ``values`` ``[N, T]`` (env-major, padded after each episode); ``lengths [N]``; ``terminated [N]``:
    the episode ended in a terminal state (else it was truncated or cut at T and bootstraps from
    ``final_values [N]``, the critic's value of its final observation). Env ``j`` is played by member
    ``j % group_size``, and ``N / group_size`` episodes share each start. Returns ``(advantages, returns)``,
    ``[N, T]`` float32, 0 past each episode's end."""
    rewards = np.ascontiguousarray(rewards, dtype=np.float32)
    values = np.ascontiguousarray(values, dtype=np.float32)
    N, T = rewards.shape
    if values.shape != (N, T):
        raise ValueError(f"values: expected shape {(N, T)} like rewards, got {values.shape}")
    if N % group_size != 0:
        raise ValueError(f"group_size: expected a divisor of the {N} environments, got {group_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    valid = valid_mask(lengths, T)
    ends = lengths - 1
    # Time-major arrays for kernels.gae: each episode's trace is cut at its last step; padding is terminal.
    t_idx = np.arange(T)[:, None]
    dones = t_idx >= ends[None, :]
    term = (t_idx > ends[None, :]) | ((t_idx == ends[None, :]) & np.asarray(terminated, bool)[None, :])
    fin = np.where(t_idx == ends[None, :], np.asarray(final_values, np.float32)[None, :], 0).astype(np.float32)
    r_tm = np.where(valid, rewards, 0).T.copy()
    v_tm = np.where(valid, values, 0).T.copy()
    gae, ret = kernels.gae(r_tm, v_tm, dones, np.zeros(N, np.float32), gamma=gamma, lam=lam, terminated=term,
                           final_values=fin)
    gae, ret = gae.T, ret.T
    E = N // group_size
    ep = kernels.episodic_advantages(np.where(valid, rewards, 0).reshape(E, group_size, T).astype(np.float32),
                                     lengths.reshape(E, group_size), eps=1e-8, ddof=0).reshape(N, T)
    adv = np.zeros((N, T), np.float32)
    flat = np.ascontiguousarray(gae[valid], dtype=np.float32)
    crit = kernels.group_normalize(flat, scale="group", eps=1e-8) if flat.size else flat
    adv[valid] = ep[valid] + np.float32(gae_weight) * crit
    returns = np.where(valid, ret, 0).astype(np.float32)
    return adv, returns


class PolicyGroupTrainer(EpisodicTrainer):
    """``PolicyGroupTrainer(None, PolicyGroupConfig(env="CartPole-v1", groups=4, group_size=8)).train(iters)``
    (see the module docstring). ``trainer.policy`` is the ``PolicyGroupPolicy`` holding every group."""

    algo = "policy-groups"
    config_class = PolicyGroupConfig
    cfg: PolicyGroupConfig
    policy: PolicyGroupPolicy
    _rollout_policy: PolicyGroupPolicy

    def __init__(self, policy: torch.nn.Module | None, cfg: PolicyGroupConfig,
                 device: str | torch.device = "cpu") -> None:
        if not isinstance(cfg, PolicyGroupConfig):
            raise TypeError(f"cfg: expected a PolicyGroupConfig, got {type(cfg).__name__}")
        if policy is None:
            if cfg.torch_threads is not None:
                torch.set_num_threads(int(cfg.torch_threads))
            cfg.validate()
            policy = self.build_policy(cfg)
        elif not isinstance(policy, PolicyGroupPolicy):
            raise TypeError(f"policy: expected a PolicyGroupPolicy (or None to build one), got {type(policy).__name__}")
        if (policy.groups, policy.group_size) != (cfg.groups, cfg.group_size):
            raise ValueError(f"policy: has {policy.groups} groups of {policy.group_size}, the config asks for "
                             f"{cfg.groups} of {cfg.group_size}")
        super().__init__(policy, cfg, device)
        self.recent_obs: np.ndarray | None = None

    @staticmethod
    def build_policy(cfg: PolicyGroupConfig) -> PolicyGroupPolicy:
        """The ``PolicyGroupPolicy`` the config describes, for its env's spaces (seeded by ``cfg.seed``)."""
        from rltrain.vec.resolve import single_spaces

        obs_space, act_space = single_spaces(cfg.env)
        if cfg.seed is not None:
            torch.manual_seed(int(cfg.seed))
        actor = SimpleGRPOPolicy._space_kwargs(obs_space, act_space, {
            "hidden_sizes": tuple(cfg.hidden_sizes), "activation": cfg.activation, "backbone": cfg.backbone,
            "distribution": cfg.distribution, "squash": cfg.squash, "log_std_init": cfg.log_std_init})
        probe = SimpleGRPOPolicy(**actor)
        return PolicyGroupPolicy(cfg.groups, cfg.group_size, probe.init_kwargs, list(cfg.hidden_sizes),
                                 cfg.activation, cfg.eval_mode, cfg.temperature, cfg.selection_floor)

    # ------------------------------------------------------------------------------------------ rollout

    def _select_group(self) -> tuple[int, np.ndarray]:
        pol = self.policy
        probs = pol.selection_probabilities()
        unseen = np.flatnonzero(pol.seen.cpu().numpy() == 0)
        if unseen.size:
            return int(unseen[0]), probs
        rng = np.random.default_rng([self.seed, self.iteration, 0x5E1EC7])
        return int(rng.choice(pol.groups, p=probs)), probs

    @torch.no_grad()
    def _collect_group(self, g: int) -> dict[str, np.ndarray]:
        assert self.env is not None
        c = self.cfg
        N, T, M = c.G, c.T, c.group_size
        base = self._iteration_seed()
        # Per-env seeds: episode e of every member starts alike (make_vec's envs take a list, as gymnasium's do).
        obs, _ = self.env.reset(seed=[base + j // M for j in range(N)])  # type: ignore[arg-type]
        obs = np.asarray(obs, np.float32)
        space = self.action_space
        a_shape = tuple(space.shape or ())
        a_dtype = np.int64 if isinstance(space, gym.spaces.Discrete) else np.float32
        b: dict[str, np.ndarray] = {
            "obs": np.zeros((N, T) + tuple(obs.shape[1:]), np.float32),
            "actions": np.zeros((N, T) + a_shape, a_dtype),
            "logp": np.zeros((N, T), np.float32),
            "values": np.zeros((N, T), np.float32),
            "rewards": np.zeros((N, T), np.float32),
        }
        lengths = np.zeros(N, np.int64)
        terminated = np.zeros(N, bool)
        final_values = np.zeros(N, np.float32)
        alive = np.ones(N, bool)
        pol = self._rollout_policy
        members, critic = pol.group_members(g), pol.critic(g)
        for t in range(T):
            o = torch.from_numpy(obs)
            for m, p in enumerate(members):
                a, logp = p.act(o[m::M])
                b["actions"][m::M, t] = a.numpy()
                b["logp"][m::M, t] = logp.numpy()
            b["obs"][:, t] = obs
            b["values"][:, t] = critic(o).numpy()
            nxt, rew, term, trunc, infos = self.env.step(self._clip_actions(b["actions"][:, t]))
            nxt = np.asarray(nxt, np.float32)
            term, trunc = np.asarray(term, bool), np.asarray(trunc, bool)
            b["rewards"][alive, t] = np.asarray(rew, np.float32)[alive]
            lengths[alive] += 1
            ended = alive & (term | trunc)
            terminated[ended & term] = True
            boot = np.flatnonzero(ended & ~term)
            if boot.size:
                final = np.stack([np.asarray(infos["final_obs"][j], np.float32) for j in boot])
                final_values[boot] = critic(torch.from_numpy(final)).numpy()
            alive &= ~(term | trunc)
            obs = nxt
            if not alive.any():
                break
        cut = np.flatnonzero(alive)  # still running at T: bootstrap from the observation reached
        if cut.size:
            final_values[cut] = critic(torch.from_numpy(obs[cut])).numpy()
        b.update(lengths=lengths, terminated=terminated, final_values=final_values)
        for j in range(N):
            self.ep_info.append((float(b["rewards"][j, : lengths[j]].sum()), float(lengths[j])))
        self.num_timesteps += int(lengths.sum())
        return b

    # ------------------------------------------------------------------------------------------- update

    def _iteration(self, progress: float) -> dict[str, float]:
        self._ensure_env()
        c = self.cfg
        g, probs = self._select_group()
        b = self._collect_group(g)
        adv, ret = group_relative_advantages(b["rewards"], b["values"], b["lengths"], b["terminated"],
                                             b["final_values"], group_size=c.group_size, gamma=c.gamma, lam=c.lam,
                                             gae_weight=c.gae_weight)
        mask = valid_mask(b["lengths"], c.T)
        returns = b["rewards"].sum(1)
        self.policy.record_performance(g, float(returns.mean()), c.perf_ema)
        stats = self._update(g, b, adv, ret, mask, progress)
        obs = b["obs"][mask]
        k = min(c.diversity_obs, obs.shape[0])
        self.recent_obs = obs[np.linspace(0, obs.shape[0] - 1, k).round().astype(np.int64)]
        div = self.policy.diversity(torch.from_numpy(self.recent_obs).to(self.device))
        stats.update({"groups/selected": float(g), "groups/diversity_kl": div["between"],
                      "groups/within_kl": div["within"], "groups/iteration_return": float(returns.mean()),
                      "groups/best": float(self.policy.best_group())})
        perf = self.policy.perf.cpu().numpy()
        for i in range(c.groups):
            stats[f"groups/perf_g{i}"] = float(perf[i]) if self.policy.seen[i] > 0 else float("nan")
            stats[f"groups/select_prob_g{i}"] = float(probs[i])
        v, r = b["values"][mask], ret[mask]
        var_r = float(np.var(r))
        stats["train/explained_variance"] = float("nan") if var_r == 0 else 1.0 - float(np.var(r - v)) / var_r
        return stats

    def _update(self, g: int, b: dict[str, np.ndarray], adv: np.ndarray, ret: np.ndarray, mask: np.ndarray,
                progress: float) -> dict[str, float]:
        c, dev, M = self.cfg, self.device, self.cfg.group_size
        pol = self.policy
        members, critic = pol.group_members(g), pol.critic(g)

        def sel(x: np.ndarray, rows: slice) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(x[rows][mask[rows]])).to(dev)

        per_member = []
        for m in range(M):
            rows = slice(m, None, M)
            per_member.append(tuple(sel(x, rows) for x in (b["obs"], b["actions"], b["logp"], adv)))
        all_rows = slice(None)
        v_obs, v_ret = sel(b["obs"], all_rows), sel(ret, all_rows)
        clip = schedule_value(c.clip_schedule, c.clip_eps, progress, c.warmup_frac)
        ent_coef = self._ent_at(progress)
        K = c.minibatches
        sums = {"pg": 0.0, "vf": 0.0, "ent": 0.0, "clipfrac": 0.0, "kl": 0.0}
        count = 0
        mods: list[torch.nn.Module] = [*members, critic]
        for _epoch in range(c.epochs):
            perms = [torch.randperm(x[0].shape[0], generator=self._gen).to(dev) for x in per_member]
            v_perm = torch.randperm(v_obs.shape[0], generator=self._gen).to(dev)
            for k in range(K):
                loss = torch.zeros((), device=dev)
                for p, (o, a, lp_old, A), perm in zip(members, per_member, perms):
                    n = o.shape[0]
                    size = -(-n // K)
                    idx = perm[k * size:(k + 1) * size]
                    if idx.numel() == 0:
                        continue
                    logp, ent = p.evaluate_actions(o[idx], a[idx])
                    log_ratio = logp - lp_old[idx]
                    ratio = torch.exp(log_ratio)
                    adv_mb = A[idx]
                    pg = -torch.min(adv_mb * ratio, adv_mb * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
                    loss = loss + pg - ent_coef * ent.mean()
                    with torch.no_grad():
                        sums["pg"] += float(pg) / M
                        sums["ent"] += float(ent.mean()) / M
                        sums["kl"] += float(((ratio - 1) - log_ratio).mean()) / M
                        sums["clipfrac"] += float(((ratio - 1).abs() > clip).float().mean()) / M
                size = -(-v_obs.shape[0] // K)
                vidx = v_perm[k * size:(k + 1) * size]
                if vidx.numel():
                    vf = torch.nn.functional.mse_loss(critic(v_obs[vidx]), v_ret[vidx])
                    loss = loss + c.vf_coef * vf
                    sums["vf"] += float(vf.detach())
                self._group_step(loss, mods)
                count += 1
        self._sync_rollout_policy()
        n = max(count, 1)
        return {"train/policy_gradient_loss": sums["pg"] / n, "train/value_loss": sums["vf"] / n,
                "train/entropy_loss": -sums["ent"] / n, "train/approx_kl": sums["kl"] / n,
                "train/clip_fraction": sums["clipfrac"] / n, "train/n_updates": float(count),
                "train/clip_range": clip, "train/ent_coef": ent_coef}

    def _group_step(self, loss: torch.Tensor, mods: list[torch.nn.Module]) -> None:
        """Backward and one optimizer step; the gradient norm is clipped per member and per critic. Parameters of
        the groups not selected have no gradient, so the optimizer leaves them (and their Adam moments) alone."""
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        mgn = self.cfg.max_grad_norm
        if mgn is not None and mgn > 0:
            for mod in mods:
                torch.nn.utils.clip_grad_norm_(list(mod.parameters()), mgn)
        opt.step()

    def _extra_state(self) -> dict[str, Any]:
        return {}
