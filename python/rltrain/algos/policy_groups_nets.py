"""The networks of policy groups and the statistics over them: ``PolicyGroupPolicy`` (G groups x M actor policies,
one value function per group, each group's tracked performance), the selection rule and the diversity metrics.

Selection (documented on :func:`selection_probabilities`): a softmax over the groups' standardised tracked
performance with a temperature, mixed with a uniform floor. Diversity (:func:`mean_pairwise_kl`,
:func:`gaussian_mean_pairwise_kl`): the mean KL divergence between the action distributions of every ordered pair
of distinct groups, averaged over a batch of observations; a group's action distribution is the average of its
members' (exact for categorical actions; moment-matched diagonal Gaussian for continuous ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rltrain._checks import choice, integer, real
from rltrain.policies import SimpleGRPOPolicy
from rltrain.policies_backbones import build_backbone

__all__ = ["PolicyGroupPolicy", "gaussian_mean_pairwise_kl", "mean_pairwise_kl", "selection_probabilities"]


def selection_probabilities(perf: np.ndarray, temperature: float, floor: float) -> np.ndarray:
    """Probability of drawing each group: ``p = (1 - floor) * softmax(z / temperature) + floor / G`` with
    ``z_g = (perf_g - mean(perf)) / (std(perf) + 1e-8)`` (population std over the groups). Standardising makes the
    temperature independent of the reward scale (CartPole's 500 and LunarLander's 200 behave alike); equal
    performances give the uniform distribution. It also makes the draw depend on the ranking and spacing of the
    groups, not on the size of the gap: with two groups z is always -1 and +1, so at temperature 1 and floor 0.05
    the better group is drawn with probability 0.86 however far ahead it is."""
    perf = np.asarray(perf, dtype=np.float64)
    if perf.ndim != 1 or perf.size == 0:
        raise ValueError(f"perf: expected a non-empty 1-D array of group performances, got shape {perf.shape}")
    if not np.all(np.isfinite(perf)):
        raise ValueError("perf: expected finite performances")
    temperature = real(temperature, "temperature", lo=0.0, lo_open=True)
    floor = real(floor, "floor", lo=0.0, hi=1.0)
    z = (perf - perf.mean()) / (perf.std() + 1e-8)
    logits = z / temperature
    e = np.exp(logits - logits.max())
    p = (1.0 - floor) * e / e.sum() + floor / perf.size
    out: np.ndarray = p / p.sum()
    return out


def mean_pairwise_kl(probs: torch.Tensor | np.ndarray, eps: float = 1e-12) -> float:
    """Mean over ordered pairs ``g != h`` of the batch-mean ``KL(p_g || p_h)`` for categorical action
    distributions ``probs [G, B, A]`` (each ``probs[g, b]`` sums to 1). Equals the mean symmetrised KL over
    unordered pairs. 0 for a single group. ``eps`` keeps a zero probability from producing infinities."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.ndim != 3:
        raise ValueError(f"probs: expected [groups, batch, actions], got shape {tuple(p.shape)}")
    G = p.shape[0]
    if G < 2:
        return 0.0
    logp = torch.log(p.clamp_min(eps))
    # kl[g, h] = mean_b sum_a p_g (log p_g - log p_h)
    neg_ent = (p * logp).sum(-1).mean(-1)  # [G]
    cross = torch.einsum("gba,hba->ghb", p, logp).mean(-1)  # [G, H]
    kl = neg_ent[:, None] - cross
    off = ~torch.eye(G, dtype=torch.bool)
    return float(kl[off].mean())


def gaussian_mean_pairwise_kl(mean: torch.Tensor | np.ndarray, var: torch.Tensor | np.ndarray) -> float:
    """As :func:`mean_pairwise_kl` for diagonal Gaussians ``N(mean[g, b], diag(var[g, b]))``, ``[G, B, D]``:
    ``KL = 0.5 * sum_d (log(var_h / var_g) + (var_g + (mu_g - mu_h)^2) / var_h - 1)``."""
    mu = torch.as_tensor(mean, dtype=torch.float64)
    v = torch.as_tensor(var, dtype=torch.float64)
    if mu.ndim != 3 or v.shape != mu.shape:
        raise ValueError(f"mean, var: expected two arrays [groups, batch, dims] of one shape, got "
                         f"{tuple(mu.shape)} and {tuple(v.shape)}")
    G = mu.shape[0]
    if G < 2:
        return 0.0
    vg, vh = v[:, None], v[None, :]
    kl = 0.5 * (torch.log(vh / vg) + (vg + (mu[:, None] - mu[None, :]) ** 2) / vh - 1).sum(-1).mean(-1)
    off = ~torch.eye(G, dtype=torch.bool)
    return float(kl[off].mean())


class _GroupCritic(nn.Module):
    """A group's value function: its own MLP trunk and a linear head."""

    def __init__(self, obs_shape: tuple[int, ...], hidden_sizes: list[int], activation: str) -> None:
        super().__init__()
        self.trunk, d = build_backbone("mlp", obs_shape, hidden_sizes, activation)
        self.head = nn.Linear(d, 1)
        nn.init.orthogonal_(self.head.weight, 1.0)
        nn.init.zeros_(self.head.bias)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        v: torch.Tensor = self.head(self.trunk(obs))
        return v.squeeze(-1)


class PolicyGroupPolicy(nn.Module):
    """``groups`` x ``group_size`` actor policies (``SimpleGRPOPolicy`` built from ``actor_kwargs``), one value
    function per group, and each group's tracked performance (buffers ``perf`` and ``seen``, saved with the
    weights).

    As a policy (``act``, ``evaluate_actions``, what ``predict`` / ``evaluate`` / the robustness suite call) it is
    the trained agent: ``eval_mode="best_group"`` acts with the averaged action distribution of the members of the
    group with the highest tracked performance; ``"mixture"`` with all groups' averaged distributions weighted by
    their selection probabilities. Deterministic acting takes the mode of that distribution for categorical
    actions and the (weighted) average of the members' mean actions for Gaussian ones."""

    perf: torch.Tensor
    seen: torch.Tensor

    def __init__(self, groups: int, group_size: int, actor_kwargs: dict[str, Any],
                 critic_hidden_sizes: list[int] | tuple[int, ...] = (64, 64), activation: str = "tanh",
                 eval_mode: str = "best_group", temperature: float = 1.0, selection_floor: float = 0.05) -> None:
        super().__init__()
        self.groups = integer(groups, "groups", lo=1)
        self.group_size = integer(group_size, "group_size", lo=1)
        self.eval_mode = choice(eval_mode, "eval_mode", ("best_group", "mixture"))
        self.temperature = real(temperature, "temperature", lo=0.0, lo_open=True)
        self.selection_floor = real(selection_floor, "selection_floor", lo=0.0, hi=1.0)
        kw = dict(actor_kwargs)
        members = [SimpleGRPOPolicy(**kw) for _ in range(self.groups * self.group_size)]
        first = members[0]
        if first.distribution not in ("categorical", "gaussian") or first.squash:
            raise ValueError(f"actor_kwargs: policy groups support categorical and (unsquashed) gaussian actions, "
                             f"got distribution={first.distribution!r}, squash={first.squash}")
        self.members = nn.ModuleList(members)
        self.critics = nn.ModuleList(_GroupCritic(first.obs_shape, [int(h) for h in critic_hidden_sizes], activation)
                                     for _ in range(self.groups))
        self.continuous = first.continuous
        self.register_buffer("perf", torch.zeros(self.groups, dtype=torch.float64))
        self.register_buffer("seen", torch.zeros(self.groups, dtype=torch.float64))
        self.init_kwargs: dict[str, Any] = {
            "groups": self.groups, "group_size": self.group_size, "actor_kwargs": dict(first.init_kwargs),
            "critic_hidden_sizes": [int(h) for h in critic_hidden_sizes], "activation": activation,
            "eval_mode": self.eval_mode, "temperature": self.temperature, "selection_floor": self.selection_floor}

    # ------------------------------------------------------------------------------------------ parts

    def member(self, g: int, m: int) -> SimpleGRPOPolicy:
        """Member ``m`` of group ``g``."""
        mod = self.members[g * self.group_size + m]
        assert isinstance(mod, SimpleGRPOPolicy)
        return mod

    def group_members(self, g: int) -> list[SimpleGRPOPolicy]:
        return [self.member(g, m) for m in range(self.group_size)]

    def critic(self, g: int) -> nn.Module:
        """Group ``g``'s value function."""
        mod = self.critics[g]
        assert isinstance(mod, nn.Module)
        return mod

    def group_parameters(self, g: int) -> list[nn.Parameter]:
        """The parameters one iteration of group ``g`` trains: its members' and its critic's."""
        return [p for mod in [*self.group_members(g), self.critic(g)] for p in mod.parameters()]

    # ------------------------------------------------------------------------------ performance, selection

    def selection_probabilities(self) -> np.ndarray:
        """Current probabilities of drawing each group (:func:`selection_probabilities` on the tracked
        performance; groups not measured yet count with the mean of the measured ones)."""
        perf = self.perf.numpy().copy()
        seen = self.seen.numpy() > 0
        if not seen.any():
            return np.full(self.groups, 1.0 / self.groups)
        perf[~seen] = perf[seen].mean()
        return selection_probabilities(perf, self.temperature, self.selection_floor)

    def best_group(self) -> int:
        """The measured group with the highest tracked performance (group 0 before any measurement)."""
        seen = self.seen.numpy() > 0
        if not seen.any():
            return 0
        return int(np.argmax(np.where(seen, self.perf.numpy(), -np.inf)))

    def record_performance(self, g: int, mean_return: float, ema: float) -> None:
        """Folds one iteration's mean episode return of group ``g`` into its tracked performance."""
        if self.seen[g] > 0:
            self.perf[g] = (1.0 - ema) * self.perf[g] + ema * float(mean_return)
        else:
            self.perf[g] = float(mean_return)
            self.seen[g] = 1.0

    # ---------------------------------------------------------------------------- group distributions

    def group_probs(self, g: int, obs: torch.Tensor) -> torch.Tensor:
        """Averaged action probabilities ``[B, A]`` of group ``g``'s members (categorical actions)."""
        return torch.stack([torch.softmax(p._pi_out(obs), -1) for p in self.group_members(g)]).mean(0)

    def group_gaussian(self, g: int, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance ``[B, D]`` of the diagonal Gaussian moment-matched to group ``g``'s mixture of its
        members' Gaussians (continuous actions)."""
        mus = torch.stack([p._pi_out(obs) for p in self.group_members(g)])
        var = torch.stack([torch.exp(2 * p.log_std).expand_as(mus[0]) for p in self.group_members(g)])
        mu = mus.mean(0)
        return mu, (var + mus**2).mean(0) - mu**2

    def _agent_weights(self) -> list[tuple[int, float]]:
        if self.eval_mode == "best_group":
            return [(self.best_group(), 1.0)]
        return [(g, float(w)) for g, w in enumerate(self.selection_probabilities()) if w > 0]

    def agent_probs(self, obs: torch.Tensor) -> torch.Tensor:
        """The agent's action probabilities ``[B, A]`` (categorical actions)."""
        return torch.stack([w * self.group_probs(g, obs) for g, w in self._agent_weights()]).sum(0)

    # ------------------------------------------------------------------------------------ policy API

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The agent's actions and their log-probabilities under its (mixture) distribution."""
        if not self.continuous:
            probs = self.agent_probs(obs)
            if deterministic:
                a = probs.argmax(-1)
            else:
                u = torch.rand(probs.shape[:-1] + (1,), dtype=probs.dtype)
                a = torch.searchsorted(probs.cumsum(-1), u).squeeze(-1).clamp_(max=probs.shape[-1] - 1)
            return a, torch.log(probs.gather(-1, a.unsqueeze(-1)).squeeze(-1).clamp_min(1e-30))
        weights = self._agent_weights()
        if deterministic:
            a = torch.stack([w * p._pi_out(obs) for g, w in weights for p in self.group_members(g)]).sum(0)
            a = a / self.group_size
        else:
            # A mixture sample: each observation draws one member (group by weight, member uniformly).
            flat = [(p, w / self.group_size) for g, w in weights for p in self.group_members(g)]
            pw = torch.tensor([w for _, w in flat], dtype=torch.float64)
            pick = torch.multinomial(pw, obs.shape[0], replacement=True)
            samples = torch.stack([p.act(obs)[0] for p, _ in flat])
            a = samples[pick, torch.arange(obs.shape[0])]
        return a, self._mixture_logp(obs, a, weights)

    def _mixture_logp(self, obs: torch.Tensor, actions: torch.Tensor,
                      weights: list[tuple[int, float]]) -> torch.Tensor:
        terms = [p.log_prob(obs, actions) + float(np.log(w / self.group_size))
                 for g, w in weights for p in self.group_members(g)]
        return torch.logsumexp(torch.stack(terms), 0)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities of ``actions`` under the agent's mixture and its entropy (exact for categorical
        actions; for Gaussian ones the one-sample estimate ``-log p(action)``, as no closed form exists)."""
        if not self.continuous:
            probs = self.agent_probs(obs)
            logp_all = torch.log(probs.clamp_min(1e-30))
            return logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), -(probs * logp_all).sum(-1)
        logp = self._mixture_logp(obs, actions, self._agent_weights())
        return logp, -logp

    # -------------------------------------------------------------------------------------- diversity

    @torch.no_grad()
    def diversity(self, obs: torch.Tensor) -> dict[str, float]:
        """Between-group diversity (mean pairwise KL of the groups' averaged action distributions on ``obs``)
        and the mean within-group diversity (mean pairwise KL between the members of each group)."""
        if not self.continuous:
            between = mean_pairwise_kl(torch.stack([self.group_probs(g, obs) for g in range(self.groups)]))
            within = [mean_pairwise_kl(torch.stack([torch.softmax(p._pi_out(obs), -1) for p in self.group_members(g)]))
                      for g in range(self.groups)]
        else:
            stats = [self.group_gaussian(g, obs) for g in range(self.groups)]
            between = gaussian_mean_pairwise_kl(torch.stack([s[0] for s in stats]), torch.stack([s[1] for s in stats]))
            within = []
            for g in range(self.groups):
                mus = torch.stack([p._pi_out(obs) for p in self.group_members(g)])
                var = torch.stack([torch.exp(2 * p.log_std).expand_as(mus[0]) for p in self.group_members(g)])
                within.append(gaussian_mean_pairwise_kl(mus, var))
        return {"between": between, "within": float(np.mean(within))}
