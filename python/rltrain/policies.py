"""Torch policies: an actor-critic for PPO and an actor-only policy for GRPO.

Both expose the same small interface the trainers use: ``act(obs, deterministic)`` for rollouts and
``evaluate_actions(obs, actions)`` for the update. Distributions are written out directly (log-softmax /
diagonal Gaussian) instead of going through ``torch.distributions``, whose argument validation costs more than
these small networks. Initialisation follows Stable-Baselines3: orthogonal, gain sqrt(2) for hidden layers,
0.01 for the policy head and 1 for the value head.
"""

from __future__ import annotations

import math
import numbers
from typing import Sequence

import torch
from torch import nn

__all__ = ["ActorCriticPolicy", "SimpleGRPOPolicy", "mlp"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
_LOG_2PI = math.log(2 * math.pi)


def mlp(in_dim: int, hidden_sizes: Sequence[int], activation: str = "tanh") -> tuple[nn.Sequential, int]:
    """An MLP trunk with orthogonal init (gain sqrt(2)); returns the module and its output width."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(_ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden_sizes:
        lin = nn.Linear(d, int(h))
        nn.init.orthogonal_(lin.weight, math.sqrt(2))
        nn.init.zeros_(lin.bias)
        layers += [lin, _ACTIVATIONS[activation]()]
        d = int(h)
    return nn.Sequential(*layers), d


def _head(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    lin = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


def _check_dims(obs_dim: int, n_actions: int) -> tuple[int, int]:
    out = []
    for name, v in (("obs_dim", obs_dim), ("n_actions", n_actions)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        out.append(int(v))
    return out[0], out[1]


class _Actor(nn.Module):
    """Policy head over a trunk: Categorical logits (discrete) or a diagonal Gaussian with a learnable,
    state-independent log-std (continuous)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int], activation: str,
                 continuous: bool, log_std_init: float) -> None:
        super().__init__()
        obs_dim, n_actions = _check_dims(obs_dim, n_actions)
        self.init_kwargs = {"obs_dim": obs_dim, "n_actions": n_actions, "hidden_sizes": list(hidden_sizes),
                            "activation": activation, "continuous": continuous, "log_std_init": log_std_init}
        self.obs_dim, self.n_actions, self.continuous = obs_dim, n_actions, continuous
        self.pi_trunk, d = mlp(obs_dim, hidden_sizes, activation)
        self.pi_head = _head(d, n_actions, 0.01)
        if continuous:
            self.log_std = nn.Parameter(torch.full((n_actions,), float(log_std_init)))

    def _pi_out(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi_head(self.pi_trunk(obs))

    def _sample(self, out: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.continuous:
            std = self.log_std.exp()
            a = out if deterministic else out + std * torch.randn_like(out)
            return a, self._gauss_logp(out, a)
        logp_all = torch.log_softmax(out, dim=-1)
        if deterministic:
            a = out.argmax(dim=-1)
        else:
            # Inverse-CDF sampling: the categorical distribution in three small ops (torch.multinomial costs
            # several times more on these sizes); the clamp guards a cumulative sum that rounds below 1.
            u = torch.rand(out.shape[:-1] + (1,), dtype=out.dtype, device=out.device)
            cdf = logp_all.exp().cumsum(-1)
            a = torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=out.shape[-1] - 1)
        return a, logp_all.gather(-1, a.unsqueeze(-1)).squeeze(-1)

    def _gauss_logp(self, mean: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        z = (a - mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def _logp_entropy(self, out: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.continuous:
            logp = self._gauss_logp(out, actions)
            ent = (0.5 + 0.5 * _LOG_2PI + self.log_std).sum().expand(out.shape[0])
            return logp, ent
        logp_all = torch.log_softmax(out, dim=-1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        ent = -(logp_all.exp() * logp_all).sum(-1)
        return logp, ent

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self._logp_entropy(self._pi_out(obs), actions)[0]


class ActorCriticPolicy(_Actor):
    """Actor-critic MLP for PPO (separate actor and critic trunks by default, as SB3's MlpPolicy).

    ``ActorCriticPolicy(obs_dim, n_actions)`` for discrete actions; ``continuous=True`` makes ``n_actions``
    the action dimension of a Gaussian policy (log-std initialised at ``log_std_init``)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "tanh", continuous: bool = False, log_std_init: float = -0.5) -> None:
        super().__init__(obs_dim, n_actions, hidden_sizes, activation, continuous, log_std_init)
        self.vf_trunk, d = mlp(obs_dim, hidden_sizes, activation)
        self.vf_head = _head(d, 1, 1.0)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.vf_head(self.vf_trunk(obs)).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values and log-probabilities for a batch of observations (no gradient)."""
        a, logp = self._sample(self._pi_out(obs), deterministic)
        return a, self.value(obs), logp

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropies of ``actions`` under the current policy."""
        logp, ent = self._logp_entropy(self._pi_out(obs), actions)
        return self.value(obs), logp, ent


class SimpleGRPOPolicy(_Actor):
    """Actor-only MLP policy for the GRPO trainers (no value network)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "tanh", continuous: bool = False, log_std_init: float = -0.5) -> None:
        super().__init__(obs_dim, n_actions, hidden_sizes, activation, continuous, log_std_init)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and log-probabilities (no gradient)."""
        return self._sample(self._pi_out(obs), deterministic)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of ``actions`` under the current policy."""
        return self._logp_entropy(self._pi_out(obs), actions)
