"""Torch policies: an actor-critic for PPO and an actor-only policy for GRPO / REINFORCE.

Both expose the small interface the trainers use: ``act(obs, deterministic)`` for rollouts and
``evaluate_actions(obs, actions)`` for the update. Action distributions:

- categorical (discrete spaces), optionally masked: ``act(obs, action_mask=m)`` and
  ``evaluate_actions(..., action_mask=m)`` set the logits of illegal actions (``m`` False) to -inf, so they are
  never sampled nor chosen greedily, and log-probabilities and entropies are those of the masked distribution;
- diagonal Gaussian with a learnable, state-independent log-std (continuous; actions clipped to the space by the
  trainer), optionally squashed by tanh into the space's bounds, with the change-of-variables correction
  ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2) - sum log(scale)`` (Haarnoja et al. 2018, appendix C);
- Beta on bounded spaces (Chou et al. 2017), ``alpha, beta = 1 + softplus(.)`` so the density is unimodal.

Densities are written out directly instead of going through ``torch.distributions``, whose argument validation
costs more than these small networks; tests hold them to ``torch.distributions``. The feature trunks (MLP,
Transformer, CNN or a user ``nn.Module`` class) live in :mod:`rltrain.policies_backbones` and are re-exported here;
actor and critic trunks are separate by default (as SB3's MlpPolicy) or shared. Policies are built from gymnasium
spaces only (``from_spaces``, ``policy_from_config``); they never construct an environment.
Initialisation follows Stable-Baselines3: orthogonal, gain sqrt(2) for hidden layers, 0.01 for the policy head
and 1 for the value head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rltrain._checks import choice, class_path, integer
from rltrain.policies_backbones import BACKBONES, CNNBackbone, TransformerBackbone, build_backbone, mlp

__all__ = ["BACKBONES", "DISTRIBUTIONS", "ActorCriticPolicy", "CNNBackbone", "SimpleGRPOPolicy",
           "TransformerBackbone", "build_backbone", "mlp", "policy_from_config"]

_A = TypeVar("_A", bound="_Actor")
_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)
_ROW_BLOCK = 64
"""Batch-invariant rollouts pad the batch to a multiple of this many rows, so no element-wise kernel ever runs a
vector tail (whose scalar fallback may round differently) on a real row."""
DISTRIBUTIONS = ("auto", "categorical", "gaussian", "beta")
"""Action distributions a policy can be built with ("auto": categorical or Gaussian from the action space)."""


class ActorAPI(Protocol):
    """The calls the trainers make on a policy (``BaseTrainer`` checks they exist when it takes the policy):
    ``act`` returns the actions first and the log-probabilities last, ``evaluate_actions`` ends with the
    log-probabilities and the entropies."""

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, ...]: ...

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, ...]: ...


class ActorCriticAPI(ActorAPI, Protocol):
    """``ActorAPI`` plus the value function PPO needs (``act`` returns actions, values, log-probabilities and
    ``evaluate_actions`` values, log-probabilities, entropies)."""

    def value(self, obs: torch.Tensor) -> torch.Tensor: ...


def _head(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    lin = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


def _obs_shape(obs_dim: Any) -> tuple[int, ...]:
    """``obs_dim`` (a positive integer or a non-empty shape) as a shape tuple."""
    if not isinstance(obs_dim, (tuple, list)):
        return (integer(obs_dim, "obs_dim", lo=1),)
    if not obs_dim:
        raise ValueError(f"obs_dim: expected a positive integer or a non-empty shape, got {obs_dim!r}")
    return tuple(integer(d, f"obs_dim[{i}]", lo=1) for i, d in enumerate(obs_dim))


def _bounds(name: str, v: Any, n: int) -> np.ndarray | None:
    if v is None:
        return None
    arr = np.full(n, float(v)) if np.ndim(v) == 0 else np.array(v, dtype=np.float64)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected {n} finite numbers (one per action dimension), got {v!r}")
    return arr


class _Actor(nn.Module):
    """Trunk + policy head for every supported action distribution (see the module docstring)."""

    action_low: torch.Tensor | None
    action_high: torch.Tensor | None

    def __init__(self, obs_dim: Any, n_actions: int, hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh",
                 continuous: bool = False, log_std_init: float = -0.5, distribution: str = "auto",
                 squash: bool = False, action_low: Any = None, action_high: Any = None, backbone: Any = "mlp",
                 backbone_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        shape = _obs_shape(obs_dim)
        n_actions = integer(n_actions, "n_actions", lo=1)
        choice(distribution, "distribution", DISTRIBUTIONS)
        if distribution == "auto":
            distribution = "gaussian" if continuous else "categorical"
        continuous = distribution != "categorical"
        low, high = _bounds("action_low", action_low, n_actions), _bounds("action_high", action_high, n_actions)
        if (low is None) != (high is None):
            raise ValueError("action_low/action_high: give both bounds or neither")
        if low is not None and not np.all(high > low):
            raise ValueError(f"action_high: expected every entry > action_low, got low={action_low!r} "
                             f"high={action_high!r}")
        if distribution == "beta" and low is None:
            raise ValueError("action_low/action_high: the beta distribution needs finite action bounds")
        if squash and distribution != "gaussian":
            raise ValueError(f"squash: tanh squashing applies to the gaussian distribution, not {distribution!r}")
        # Records hold the backbone's name or class path; the trunks are built from what was passed.
        backbone_name = class_path(backbone) if isinstance(backbone, type) else backbone
        self.init_kwargs = {"obs_dim": shape[0] if len(shape) == 1 else list(shape), "n_actions": n_actions,
                            "hidden_sizes": [int(h) for h in hidden_sizes], "activation": activation,
                            "continuous": continuous, "log_std_init": float(log_std_init),
                            "distribution": distribution, "squash": bool(squash),
                            "action_low": None if low is None else low.tolist(),
                            "action_high": None if high is None else high.tolist(),
                            "backbone": backbone_name, "backbone_kwargs": dict(backbone_kwargs or {})}
        self.obs_shape, self.obs_dim, self.n_actions = shape, int(np.prod(shape)), n_actions
        self.continuous, self.distribution, self.squash = continuous, distribution, bool(squash)
        self.backbone = backbone_name
        self.pi_trunk, self._feat_dim = build_backbone(backbone, shape, hidden_sizes, activation, backbone_kwargs)
        self.pi_head = _head(self._feat_dim, 2 * n_actions if distribution == "beta" else n_actions, 0.01)
        if distribution == "gaussian":
            self.log_std = nn.Parameter(torch.full((n_actions,), float(log_std_init)))
        if low is not None:
            # Affine map from the distribution's support ([-1, 1] for tanh, [0, 1] for Beta) onto [low, high].
            self.register_buffer("action_low", torch.as_tensor(low, dtype=torch.float32), persistent=False)
            self.register_buffer("action_high", torch.as_tensor(high, dtype=torch.float32), persistent=False)
        else:
            self.action_low = self.action_high = None

    # ------------------------------------------------------------------------------------- densities

    def _pi_out(self, obs: torch.Tensor, rows: bool = False) -> torch.Tensor:
        return rowwise(self.pi_head, rowwise(self.pi_trunk, obs, rows), rows)

    def rollout_noise(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The randomness ``act(..., noise=...)`` turns into sampled actions for a ``shape`` batch of observations
        (e.g. ``(T, G)``), drawn from torch's global generator: one uniform per row (categorical) or one standard
        normal per action dimension (Gaussian). Drawing a whole iteration's noise up front lets it be sliced by
        environment, so a sample never depends on how environments are split among rollout workers."""
        if self.distribution == "beta":
            raise ValueError("distribution: the Beta distribution samples by rejection (Gamma draws) and has no "
                             "pre-drawn noise; use 'gaussian' (optionally squash=True) for rollouts that need it")
        if self.distribution == "categorical":
            return torch.rand(tuple(shape) + (1,))
        return torch.randn(tuple(shape) + (self.n_actions,))

    def _gauss_logp(self, mean: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        z = (a - mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def _span(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.action_low is None or self.action_high is None:  # both or neither (checked in __init__)
            return None
        return self.action_low, self.action_high

    def _bounded_span(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The action bounds of a policy that has them (the Beta distribution: checked in __init__)."""
        span = self._span()
        assert span is not None
        return span

    def _squash_logp(self, mean: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        span = self._span()
        y = a if span is None else (a - span[0]) / (span[1] - span[0]) * 2 - 1
        eps = 1e-6 if y.dtype == torch.float32 else 1e-12
        y = y.clamp(-1 + eps, 1 - eps)
        u = torch.atanh(y)
        # log(1 - tanh(u)^2) = 2 * (log 2 - u - softplus(-2u)), stable for large |u|.
        log_det = 2 * (_LOG_2 - u - F.softplus(-2 * u))
        logp = self._gauss_logp(mean, u) - log_det.sum(-1)
        if span is not None:
            logp = logp - torch.log((span[1] - span[0]) / 2).sum()
        return logp

    def _beta_params(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n_actions
        return 1.0 + F.softplus(out[..., :n]), 1.0 + F.softplus(out[..., n:])

    def _beta_logp(self, alpha: torch.Tensor, beta: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        low, high = self._bounded_span()
        eps = 1e-6 if a.dtype == torch.float32 else 1e-12
        y = ((a - low) / (high - low)).clamp(eps, 1 - eps)
        log_b = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
        logp = (alpha - 1) * torch.log(y) + (beta - 1) * torch.log1p(-y) - log_b
        return logp.sum(-1) - torch.log(high - low).sum()

    def _beta_entropy(self, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        low, high = self._bounded_span()
        ab = alpha + beta
        log_b = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(ab)
        h = (log_b - (alpha - 1) * torch.digamma(alpha) - (beta - 1) * torch.digamma(beta)
             + (ab - 2) * torch.digamma(ab))
        return h.sum(-1) + torch.log(high - low).sum()

    def _mask_logits(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Categorical logits with the illegal actions (``mask`` False) at -inf."""
        if self.distribution != "categorical":
            raise ValueError(f"action_mask: masks apply to categorical policies, not {self.distribution!r} ones")
        m = torch.as_tensor(mask, device=out.device).bool()
        if m.shape != out.shape:
            raise ValueError(f"action_mask: expected shape {tuple(out.shape)}, got {tuple(m.shape)}")
        if not bool(m.any(-1).all()):
            raise ValueError("action_mask: every row needs at least one legal action")
        return out.masked_fill(~m, float("-inf"))

    def _sample(self, out: torch.Tensor, deterministic: bool, noise: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and their log-probabilities from the head's output; ``noise`` (``rollout_noise``) replaces the
        draws from torch's global generator; ``mask`` (categorical only) removes illegal actions, which then
        sample from torch's generator (``torch.multinomial``) whatever ``noise`` says."""
        dist = self.distribution
        if mask is not None and dist != "categorical":
            self._mask_logits(out, mask)  # raises
        if noise is not None and dist == "beta":
            raise ValueError("noise: the Beta distribution cannot sample from pre-drawn noise")
        if dist == "gaussian":
            eps = None if deterministic else (torch.randn_like(out) if noise is None else noise.to(out.dtype))
            if self.squash:
                u = out if eps is None else out + self.log_std.exp() * eps
                y = torch.tanh(u)
                span = self._span()
                a = y if span is None else span[0] + (y + 1) * 0.5 * (span[1] - span[0])
                return a, self._squash_logp(out, a)
            a = out if eps is None else out + self.log_std.exp() * eps
            return a, self._gauss_logp(out, a)
        if dist == "beta":
            alpha, beta = self._beta_params(out)
            if deterministic:
                y = alpha / (alpha + beta)
            else:
                # Beta(a, b) = Ga / (Ga + Gb) with independent Gamma(a, 1), Gamma(b, 1) draws.
                ones = torch.ones_like(alpha)
                ga = torch.distributions.Gamma(alpha, ones, validate_args=False).sample()
                gb = torch.distributions.Gamma(beta, ones, validate_args=False).sample()
                y = ga / (ga + gb)
            low, high = self._bounded_span()
            a = low + y * (high - low)
            return a, self._beta_logp(alpha, beta, a)
        if mask is not None:
            out = self._mask_logits(out, mask)
            logp_all = torch.log_softmax(out, dim=-1)
            # torch.multinomial never draws a zero-probability (illegal) action; the inverse-CDF draw below could
            # land on one at u == 0 or where the cumulative sum rounds below 1.
            a = out.argmax(dim=-1) if deterministic else torch.multinomial(logp_all.exp(), 1).squeeze(-1)
            return a, logp_all.gather(-1, a.unsqueeze(-1)).squeeze(-1)
        logp_all = torch.log_softmax(out, dim=-1)
        if deterministic:
            a = out.argmax(dim=-1)
        else:
            # Inverse-CDF sampling: the categorical distribution in three small ops (torch.multinomial costs
            # several times more on these sizes); the clamp guards a cumulative sum that rounds below 1.
            u = (torch.rand(out.shape[:-1] + (1,), dtype=out.dtype, device=out.device) if noise is None
                 else noise.to(out.dtype))
            cdf = logp_all.exp().cumsum(-1)
            a = torch.searchsorted(cdf, u).squeeze(-1).clamp_(max=out.shape[-1] - 1)
        return a, logp_all.gather(-1, a.unsqueeze(-1)).squeeze(-1)

    def _logp_entropy(self, out: torch.Tensor, actions: torch.Tensor,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.distribution
        if mask is not None and dist != "categorical":
            self._mask_logits(out, mask)  # raises
        if dist == "gaussian":
            if self.squash:
                # No closed form for the squashed Gaussian's entropy: the one-sample estimate -log pi(a)
                # (what SB3 uses when a distribution has none).
                logp = self._squash_logp(out, actions)
                return logp, -logp
            logp = self._gauss_logp(out, actions)
            ent = (0.5 + 0.5 * _LOG_2PI + self.log_std).sum().expand(out.shape[0])
            return logp, ent
        if dist == "beta":
            alpha, beta = self._beta_params(out)
            return self._beta_logp(alpha, beta, actions), self._beta_entropy(alpha, beta)
        if mask is not None:
            m = torch.as_tensor(mask, device=out.device).bool()
            logp_all = torch.log_softmax(self._mask_logits(out, m), dim=-1)
            logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            # Illegal actions have p = 0 and log p = -inf: they add 0 to the entropy (not 0 * -inf = nan).
            safe = logp_all.masked_fill(~m, 0.0)
            return logp, -(safe.exp().masked_fill(~m, 0.0) * safe).sum(-1)
        logp_all = torch.log_softmax(out, dim=-1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        ent = -(logp_all.exp() * logp_all).sum(-1)
        return logp, ent

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor,
                 action_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Log-probability of ``actions`` (in the action space's units) under the policy (masked: see ``act``)."""
        return self._logp_entropy(self._pi_out(obs), actions, action_mask)[0]

    @classmethod
    def _space_kwargs(cls, observation_space: Any, action_space: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
        import gymnasium as gym

        if not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(f"observation_space: expected a gymnasium Box, got {observation_space}")
        shape = tuple(int(s) for s in observation_space.shape)
        out: dict[str, Any] = {"obs_dim": shape[0] if len(shape) == 1 else shape}
        if isinstance(action_space, gym.spaces.Discrete):
            out.update(n_actions=int(action_space.n), continuous=False)
        elif isinstance(action_space, gym.spaces.Box) and len(action_space.shape) == 1:
            out.update(n_actions=int(action_space.shape[0]), continuous=True)
            if np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high)):
                out.update(action_low=action_space.low.tolist(), action_high=action_space.high.tolist())
        else:
            raise ValueError(f"action_space: expected Discrete or a 1-D Box, got {action_space}")
        if kwargs.get("backbone", "mlp") == "cnn" and observation_space.dtype == np.uint8:
            bk = dict(kwargs.get("backbone_kwargs") or {})
            bk.setdefault("scale", 1.0 / 255.0)
            kwargs["backbone_kwargs"] = bk
        dist = kwargs.get("distribution", "auto")
        if isinstance(action_space, gym.spaces.Discrete) and dist not in ("auto", "categorical"):
            raise ValueError(f"distribution: a Discrete action space needs 'categorical', got {dist!r}")
        if isinstance(action_space, gym.spaces.Box) and dist == "categorical":
            raise ValueError("distribution: a Box action space needs 'gaussian' or 'beta', got 'categorical'")
        out.update(kwargs)
        if not out.get("continuous"):
            out.pop("action_low", None), out.pop("action_high", None)
        return out

    @classmethod
    def from_spaces(cls: type[_A], observation_space: Any, action_space: Any, **kwargs: Any) -> _A:
        """Builds the policy for gymnasium spaces: observation shape, action count/dimension, continuity and
        finite action bounds (used by Beta and tanh squashing) come from the spaces; ``kwargs`` override."""
        return cls(**cls._space_kwargs(observation_space, action_space, dict(kwargs)))


class ActorCriticPolicy(_Actor):
    """Actor-critic for PPO (separate actor and critic trunks by default, as SB3's MlpPolicy).

    ``ActorCriticPolicy(obs_dim, n_actions)`` for discrete actions; ``continuous=True`` makes ``n_actions`` the
    action dimension of a Gaussian policy (log-std initialised at ``log_std_init``). ``distribution="beta"`` or
    ``squash=True`` need ``action_low``/``action_high`` (or use ``ActorCriticPolicy.from_spaces``).
    ``backbone`` picks the trunk ("mlp", "transformer", "cnn" or an ``nn.Module`` class, see
    ``build_backbone``); ``share_trunk=True`` feeds one trunk to both heads."""

    def __init__(self, obs_dim: Any, n_actions: int, hidden_sizes: Sequence[int] = (64, 64),
                 activation: str = "tanh", continuous: bool = False, log_std_init: float = -0.5,
                 distribution: str = "auto", squash: bool = False, action_low: Any = None, action_high: Any = None,
                 backbone: Any = "mlp", backbone_kwargs: dict[str, Any] | None = None,
                 share_trunk: bool = False) -> None:
        super().__init__(obs_dim, n_actions, hidden_sizes, activation, continuous, log_std_init, distribution, squash,
                         action_low, action_high, backbone, backbone_kwargs)
        self.init_kwargs["share_trunk"] = bool(share_trunk)
        self.share_trunk = bool(share_trunk)
        if self.share_trunk:
            self.vf_trunk = None
        else:
            self.vf_trunk, _ = build_backbone(backbone, self.obs_shape, hidden_sizes, activation, backbone_kwargs)
        self.vf_head = _head(self._feat_dim, 1, 1.0)

    def _features(self, obs: torch.Tensor, rows: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        f = rowwise(self.pi_trunk, obs, rows)
        return f, (f if self.vf_trunk is None else rowwise(self.vf_trunk, obs, rows))

    def value(self, obs: torch.Tensor, batch_invariant: bool = False) -> torch.Tensor:
        """State values (``batch_invariant``: see ``act``)."""
        trunk = self.pi_trunk if self.vf_trunk is None else self.vf_trunk
        if batch_invariant:
            x, n = _pad_rows(obs)
            with torch.no_grad():
                return rowwise(self.vf_head, rowwise(trunk, x, True), True).squeeze(-1)[:n]
        v: torch.Tensor = self.vf_head(trunk(obs))
        return v.squeeze(-1)

    def critic_parameters(self) -> list[nn.Parameter]:
        """Parameters only the value function uses (its own trunk and head): the group for a separate critic lr."""
        mods = [self.vf_head] + ([] if self.vf_trunk is None else [self.vf_trunk])
        return [p for m in mods for p in m.parameters()]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False, noise: torch.Tensor | None = None,
            batch_invariant: bool = False,
            action_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values and log-probabilities for a batch of observations (no gradient). ``noise``: the
        sampling randomness (``rollout_noise``) instead of torch's global generator; ``batch_invariant``: each
        row's result does not depend on the other rows or on the batch size (MLP trunks; see ``rowwise``);
        ``action_mask`` (bool ``[n, n_actions]``, categorical only): illegal actions get logit -inf, so they are
        never sampled nor chosen greedily, and the log-probabilities are those of the masked distribution."""
        x, n = _pad_rows(obs) if batch_invariant else (obs, obs.shape[0])
        fp, fv = self._features(x, batch_invariant)
        a, logp = self._sample(rowwise(self.pi_head, fp, batch_invariant), deterministic,
                               None if noise is None else _pad_rows(noise)[0] if batch_invariant else noise,
                               None if action_mask is None else _pad_mask(action_mask) if batch_invariant
                               else action_mask)
        v = rowwise(self.vf_head, fv, batch_invariant).squeeze(-1)
        return (a[:n], v[:n], logp[:n]) if batch_invariant else (a, v, logp)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor,
                         action_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropies of ``actions`` under the current policy (masked like ``act``
        when ``action_mask`` is given)."""
        fp, fv = self._features(obs)
        logp, ent = self._logp_entropy(self.pi_head(fp), actions, action_mask)
        return self.vf_head(fv).squeeze(-1), logp, ent


class SimpleGRPOPolicy(_Actor):
    """Actor-only policy for the GRPO and REINFORCE trainers (no value network); same options as
    ``ActorCriticPolicy`` except the critic's."""

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False, noise: torch.Tensor | None = None,
            batch_invariant: bool = False,
            action_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and log-probabilities (no gradient); ``noise``, ``batch_invariant`` and ``action_mask`` as in
        ``ActorCriticPolicy.act``."""
        if not batch_invariant:
            return self._sample(self._pi_out(obs), deterministic, noise, action_mask)
        x, n = _pad_rows(obs)
        a, logp = self._sample(self._pi_out(x, True), deterministic, None if noise is None else _pad_rows(noise)[0],
                               None if action_mask is None else _pad_mask(action_mask))
        return a[:n], logp[:n]

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor,
                         action_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of ``actions`` under the current policy (masked when given)."""
        return self._logp_entropy(self._pi_out(obs), actions, action_mask)


def rowwise(module: nn.Module, x: torch.Tensor, rows: bool = True) -> torch.Tensor:
    """``module(x)``; with ``rows`` every ``nn.Linear`` (also inside ``nn.Sequential``) becomes one small matrix
    product per row (a batched product with an expanded weight), whose result for a row does not depend on the batch
    size. A batched CPU matrix product picks its kernel and blocking from the batch size, so one row's rounding can
    differ between a batch of G and a worker's batch of E. Other modules are called as they are (the element-wise
    activations are row-invariant once ``_pad_rows`` removed vector tails; other trunks carry no such guarantee)."""
    if not rows:
        out: torch.Tensor = module(x)
        return out
    if isinstance(module, nn.Sequential):
        for m in module:
            x = rowwise(m, x, True)
        return x
    if isinstance(module, nn.Linear) and x.dim() == 2:
        b = x.shape[0]
        w = module.weight.t().unsqueeze(0).expand(b, -1, -1)
        y = torch.bmm(x.unsqueeze(1), w).squeeze(1)
        return y if module.bias is None else y + module.bias
    out = module(x)
    return out


def _pad_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``x`` with zero rows appended up to a multiple of ``_ROW_BLOCK`` rows, and its original row count."""
    n = x.shape[0]
    extra = (-n) % _ROW_BLOCK
    if extra == 0:
        return x, n
    return torch.cat([x, x.new_zeros((extra,) + tuple(x.shape[1:]))]), n


def _pad_mask(mask: torch.Tensor) -> torch.Tensor:
    """An action mask padded like ``_pad_rows`` pads its observations, the padding rows all legal."""
    m = torch.as_tensor(mask).bool()
    extra = (-m.shape[0]) % _ROW_BLOCK
    return m if extra == 0 else torch.cat([m, m.new_ones((extra,) + tuple(m.shape[1:]))])


def policy_from_config(cfg: Any, observation_space: Any, action_space: Any, actor_critic: bool = True) -> _Actor:
    """The policy a trainer config describes (``hidden_sizes``, ``activation``, ``backbone``, ``distribution``,
    ``squash``, ``log_std_init`` and, for an actor-critic, ``share_trunk``) for the given gymnasium spaces (the
    trainer passes its vector env's ``single_observation_space`` / ``single_action_space``)."""
    kwargs: dict[str, Any] = {"hidden_sizes": tuple(cfg.hidden_sizes), "activation": cfg.activation,
                              "backbone": cfg.backbone, "distribution": cfg.distribution, "squash": cfg.squash,
                              "log_std_init": cfg.log_std_init}
    if actor_critic:
        return ActorCriticPolicy.from_spaces(observation_space, action_space,
                                             share_trunk=getattr(cfg, "share_trunk", False), **kwargs)
    return SimpleGRPOPolicy.from_spaces(observation_space, action_space, **kwargs)
