"""Torch policies: an actor-critic for PPO and an actor-only policy for GRPO / REINFORCE.

Both expose the small interface the trainers use: ``act(obs, deterministic)`` for rollouts and
``evaluate_actions(obs, actions)`` for the update. Action distributions:

- categorical (discrete spaces);
- diagonal Gaussian with a learnable, state-independent log-std (continuous; actions clipped to the space by the
  trainer), optionally squashed by tanh into the space's bounds, with the change-of-variables correction
  ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2) - sum log(scale)`` (Haarnoja et al. 2018, appendix C);
- Beta on bounded spaces (Chou et al. 2017), ``alpha, beta = 1 + softplus(.)`` so the density is unimodal.

Densities are written out directly instead of going through ``torch.distributions``, whose argument validation
costs more than these small networks; tests hold them to ``torch.distributions``. Backbones: MLP (default (64, 64)
tanh), a Transformer over observation features as tokens, a CNN for image observations, or any user
``nn.Module`` class; actor and critic trunks are separate by default (as SB3's MlpPolicy) or shared.
Initialisation follows Stable-Baselines3: orthogonal, gain sqrt(2) for hidden layers, 0.01 for the policy head
and 1 for the value head.
"""

from __future__ import annotations

import importlib
import math
import numbers
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ActorCriticPolicy", "CNNBackbone", "SimpleGRPOPolicy", "TransformerBackbone", "build_backbone", "mlp",
           "policy_from_config"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
_LOG_2PI = math.log(2 * math.pi)
_LOG_2 = math.log(2.0)
DISTRIBUTIONS = ("auto", "categorical", "gaussian", "beta")
BACKBONES = ("mlp", "transformer", "cnn")


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


class TransformerBackbone(nn.Module):
    """Observation features as tokens: feature i becomes ``x_i * w_i + b_i`` (a learned value embedding per
    feature, which also tells the tokens apart), a learned [CLS] token is prepended, a pre-norm
    ``nn.TransformerEncoder`` mixes them and the [CLS] output is the feature vector."""

    def __init__(self, obs_dim: int, d_model: int = 32, n_heads: int = 4, n_layers: int = 2,
                 dim_feedforward: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        for name, v in (("d_model", d_model), ("n_heads", n_heads), ("n_layers", n_layers),
                        ("dim_feedforward", dim_feedforward)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"backbone_kwargs[{name!r}]: expected a positive integer, got {v!r}")
        if d_model % n_heads:
            raise ValueError(f"backbone_kwargs['n_heads']: expected a divisor of d_model={d_model}, got {n_heads}")
        self.obs_dim, self.out_dim = int(obs_dim), d_model
        self.value_weight = nn.Parameter(torch.randn(self.obs_dim, d_model) / math.sqrt(d_model))
        self.value_bias = nn.Parameter(torch.randn(self.obs_dim, d_model) * 0.02)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout=dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.reshape(obs.shape[0], self.obs_dim)
        tokens = x.unsqueeze(-1) * self.value_weight + self.value_bias  # [B, F, D]
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.norm(self.encoder(tokens)[:, 0])


class CNNBackbone(nn.Module):
    """Convolutional trunk for image observations ([C, H, W], or [H, W, C] with ``channels_last``), scaled by
    ``scale`` (1/255 for uint8 images). Images of at least 36x36 get the Nature-DQN stack (Mnih et al. 2015:
    32 8x8/4, 64 4x4/2, 64 3x3/1); smaller ones three 3x3 convolutions. A linear layer of ``features`` with
    ReLU follows."""

    def __init__(self, obs_shape: Sequence[int], features: int = 256, channels_last: bool | None = None,
                 scale: float = 1.0) -> None:
        super().__init__()
        shape = tuple(int(s) for s in obs_shape)
        if len(shape) != 3:
            raise ValueError(f"obs_dim: the cnn backbone needs image observations of 3 dims, got shape {shape}")
        if channels_last is None:
            channels_last = shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4)
        self.channels_last, self.scale = bool(channels_last), float(scale)
        c, h, w = (shape[2], shape[0], shape[1]) if self.channels_last else shape
        if min(h, w) >= 36:
            convs = [nn.Conv2d(c, 32, 8, 4), nn.ReLU(), nn.Conv2d(32, 64, 4, 2), nn.ReLU(),
                     nn.Conv2d(64, 64, 3, 1), nn.ReLU()]
        else:
            convs = [nn.Conv2d(c, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                     nn.Conv2d(64, 64, 3, 2, 1), nn.ReLU()]
        for m in convs:
            if isinstance(m, nn.Conv2d):
                nn.init.orthogonal_(m.weight, math.sqrt(2))
                nn.init.zeros_(m.bias)
        self.convs = nn.Sequential(*convs, nn.Flatten())
        with torch.no_grad():
            n = self.convs(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Linear(n, int(features))
        nn.init.orthogonal_(self.fc.weight, math.sqrt(2))
        nn.init.zeros_(self.fc.bias)
        self.out_dim = int(features)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.permute(0, 3, 1, 2) if self.channels_last else obs
        return F.relu(self.fc(self.convs(x * self.scale)))


def _import_class(path: str) -> Any:
    module, sep, name = path.partition(":")
    if not sep:
        module, _, name = path.rpartition(".")
    if not module:
        raise ValueError(f"backbone: expected one of {BACKBONES}, an nn.Module class or 'module.Class', got {path!r}")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"backbone: cannot import {path!r} ({exc})") from exc
    return obj


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def build_backbone(backbone: Any, obs_shape: tuple[int, ...], hidden_sizes: Sequence[int] = (64, 64),
                   activation: str = "tanh", backbone_kwargs: dict[str, Any] | None = None) -> tuple[nn.Module, int]:
    """A feature trunk and its output width. ``backbone``: "mlp", "transformer", "cnn", an ``nn.Module`` class
    or its import path ("pkg.mod:Class"); a user class is called as ``cls(obs_shape, **backbone_kwargs)`` and
    must map ``[B, *obs_shape]`` to ``[B, F]`` (F is read from ``out_dim`` or found with one forward pass)."""
    kw = dict(backbone_kwargs or {})
    flat = int(np.prod(obs_shape)) if obs_shape else 1
    if backbone == "mlp":
        trunk, d = mlp(flat, hidden_sizes, activation)
        if len(obs_shape) != 1:
            trunk = nn.Sequential(nn.Flatten(), *trunk)
        return trunk, d
    if backbone == "transformer":
        m = TransformerBackbone(flat, **kw)
        return m, m.out_dim
    if backbone == "cnn":
        m = CNNBackbone(obs_shape, **kw)
        return m, m.out_dim
    cls = _import_class(backbone) if isinstance(backbone, str) else backbone
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"backbone: expected one of {BACKBONES}, an nn.Module class or its import path, got {backbone!r}")
    m = cls(obs_shape, **kw)
    d = getattr(m, "out_dim", None)
    if not isinstance(d, int):
        with torch.no_grad():
            y = m(torch.zeros((2,) + tuple(obs_shape)))
        if y.ndim != 2 or y.shape[0] != 2:
            raise ValueError(f"backbone: {cls.__name__} must return [batch, features], got shape {tuple(y.shape)}")
        d = int(y.shape[1])
    return m, d


def _head(in_dim: int, out_dim: int, gain: float) -> nn.Linear:
    lin = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(lin.weight, gain)
    nn.init.zeros_(lin.bias)
    return lin


def _obs_shape(obs_dim: Any) -> tuple[int, ...]:
    if isinstance(obs_dim, numbers.Integral) and not isinstance(obs_dim, bool):
        dims: tuple[Any, ...] = (obs_dim,)
    elif isinstance(obs_dim, (tuple, list)) and obs_dim:
        dims = tuple(obs_dim)
    else:
        raise ValueError(f"obs_dim: expected a positive integer or a shape tuple, got {obs_dim!r}")
    if any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1 for d in dims):
        raise ValueError(f"obs_dim: expected a positive integer or a shape tuple, got {obs_dim!r}")
    return tuple(int(d) for d in dims)


def _bounds(name: str, v: Any, n: int) -> np.ndarray | None:
    if v is None:
        return None
    arr = np.full(n, float(v)) if np.ndim(v) == 0 else np.array(v, dtype=np.float64)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected {n} finite numbers (one per action dimension), got {v!r}")
    return arr


class _Actor(nn.Module):
    """Trunk + policy head for every supported action distribution (see the module docstring)."""

    def __init__(self, obs_dim: Any, n_actions: int, hidden_sizes: Sequence[int] = (64, 64), activation: str = "tanh",
                 continuous: bool = False, log_std_init: float = -0.5, distribution: str = "auto",
                 squash: bool = False, action_low: Any = None, action_high: Any = None, backbone: Any = "mlp",
                 backbone_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        shape = _obs_shape(obs_dim)
        if isinstance(n_actions, bool) or not isinstance(n_actions, numbers.Integral) or n_actions < 1:
            raise ValueError(f"n_actions: expected a positive integer, got {n_actions!r}")
        n_actions = int(n_actions)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")
        if distribution == "auto":
            distribution = "gaussian" if continuous else "categorical"
        continuous = distribution != "categorical"
        low, high = _bounds("action_low", action_low, n_actions), _bounds("action_high", action_high, n_actions)
        if (low is None) != (high is None):
            raise ValueError("action_low/action_high: give both bounds or neither")
        if low is not None and not np.all(high > low):
            raise ValueError(f"action_high: expected every entry > action_low, got low={action_low!r} high={action_high!r}")
        if distribution == "beta" and low is None:
            raise ValueError("action_low/action_high: the beta distribution needs finite action bounds")
        if squash and distribution != "gaussian":
            raise ValueError(f"squash: tanh squashing applies to the gaussian distribution, not {distribution!r}")
        if backbone not in BACKBONES and isinstance(backbone, type):
            backbone = _class_path(backbone)
        self.init_kwargs = {"obs_dim": shape[0] if len(shape) == 1 else list(shape), "n_actions": n_actions,
                            "hidden_sizes": [int(h) for h in hidden_sizes], "activation": activation,
                            "continuous": continuous, "log_std_init": float(log_std_init),
                            "distribution": distribution, "squash": bool(squash),
                            "action_low": None if low is None else low.tolist(),
                            "action_high": None if high is None else high.tolist(),
                            "backbone": backbone, "backbone_kwargs": dict(backbone_kwargs or {})}
        self.obs_shape, self.obs_dim, self.n_actions = shape, int(np.prod(shape)), n_actions
        self.continuous, self.distribution, self.squash = continuous, distribution, bool(squash)
        self.backbone = backbone
        self.pi_trunk, self._feat_dim = build_backbone(backbone, shape, hidden_sizes, activation, backbone_kwargs)
        self.pi_head = _head(self._feat_dim, 2 * n_actions if distribution == "beta" else n_actions, 0.01)
        if distribution == "gaussian":
            self.log_std = nn.Parameter(torch.full((n_actions,), float(log_std_init)))
        if low is not None:
            # Affine map from the distribution's support ([-1, 1] for tanh, [0, 1] for Beta) onto [low, high].
            self.register_buffer("action_low", torch.as_tensor(low, dtype=torch.float32), persistent=False)
            self.register_buffer("action_high", torch.as_tensor(high, dtype=torch.float32), persistent=False)
        else:
            self.action_low = self.action_high = None  # type: ignore[assignment]

    # ------------------------------------------------------------------------------------- densities

    def _pi_out(self, obs: torch.Tensor) -> torch.Tensor:
        return self.pi_head(self.pi_trunk(obs))

    def _gauss_logp(self, mean: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        z = (a - mean) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - 0.5 * _LOG_2PI).sum(-1)

    def _span(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.action_low is None:
            return None
        return self.action_low, self.action_high

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
        low, high = self._span()  # type: ignore[misc]
        eps = 1e-6 if a.dtype == torch.float32 else 1e-12
        y = ((a - low) / (high - low)).clamp(eps, 1 - eps)
        log_b = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(alpha + beta)
        logp = (alpha - 1) * torch.log(y) + (beta - 1) * torch.log1p(-y) - log_b
        return logp.sum(-1) - torch.log(high - low).sum()

    def _beta_entropy(self, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        low, high = self._span()  # type: ignore[misc]
        ab = alpha + beta
        log_b = torch.lgamma(alpha) + torch.lgamma(beta) - torch.lgamma(ab)
        h = (log_b - (alpha - 1) * torch.digamma(alpha) - (beta - 1) * torch.digamma(beta)
             + (ab - 2) * torch.digamma(ab))
        return h.sum(-1) + torch.log(high - low).sum()

    def _sample(self, out: torch.Tensor, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.distribution
        if dist == "gaussian":
            if self.squash:
                u = out if deterministic else out + self.log_std.exp() * torch.randn_like(out)
                y = torch.tanh(u)
                span = self._span()
                a = y if span is None else span[0] + (y + 1) * 0.5 * (span[1] - span[0])
                return a, self._squash_logp(out, a)
            a = out if deterministic else out + self.log_std.exp() * torch.randn_like(out)
            return a, self._gauss_logp(out, a)
        if dist == "beta":
            alpha, beta = self._beta_params(out)
            if deterministic:
                y = alpha / (alpha + beta)
            else:
                # Beta(a, b) = Ga / (Ga + Gb) with independent Gamma(a, 1), Gamma(b, 1) draws.
                ga, gb = torch._standard_gamma(alpha), torch._standard_gamma(beta)
                y = ga / (ga + gb)
            low, high = self._span()  # type: ignore[misc]
            a = low + y * (high - low)
            return a, self._beta_logp(alpha, beta, a)
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

    def _logp_entropy(self, out: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.distribution
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
        logp_all = torch.log_softmax(out, dim=-1)
        logp = logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        ent = -(logp_all.exp() * logp_all).sum(-1)
        return logp, ent

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``actions`` (in the action space's units) under the policy."""
        return self._logp_entropy(self._pi_out(obs), actions)[0]

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
    def from_spaces(cls, observation_space: Any, action_space: Any, **kwargs: Any) -> Any:
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

    def _features(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.pi_trunk(obs)
        return f, (f if self.vf_trunk is None else self.vf_trunk(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        trunk = self.pi_trunk if self.vf_trunk is None else self.vf_trunk
        return self.vf_head(trunk(obs)).squeeze(-1)

    def critic_parameters(self) -> list[nn.Parameter]:
        """Parameters only the value function uses (its own trunk and head): the group for a separate critic lr."""
        mods = [self.vf_head] + ([] if self.vf_trunk is None else [self.vf_trunk])
        return [p for m in mods for p in m.parameters()]

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Actions, values and log-probabilities for a batch of observations (no gradient)."""
        fp, fv = self._features(obs)
        a, logp = self._sample(self.pi_head(fp), deterministic)
        return a, self.vf_head(fv).squeeze(-1), logp

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values, log-probabilities and entropies of ``actions`` under the current policy."""
        fp, fv = self._features(obs)
        logp, ent = self._logp_entropy(self.pi_head(fp), actions)
        return self.vf_head(fv).squeeze(-1), logp, ent


class SimpleGRPOPolicy(_Actor):
    """Actor-only policy for the GRPO and REINFORCE trainers (no value network); same options as
    ``ActorCriticPolicy`` except the critic's."""

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Actions and log-probabilities (no gradient)."""
        return self._sample(self._pi_out(obs), deterministic)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities and entropies of ``actions`` under the current policy."""
        return self._logp_entropy(self._pi_out(obs), actions)


def policy_from_config(cfg: Any, actor_critic: bool = True) -> _Actor:
    """The policy a trainer config describes (``hidden_sizes``, ``activation``, ``backbone``, ``distribution``,
    ``squash``, ``log_std_init`` and, for an actor-critic, ``share_trunk``) for the spaces of ``cfg.env``."""
    from rltrain.vec.resolve import make_single

    probe = make_single(cfg.env)
    obs_space, act_space = probe.observation_space, probe.action_space
    probe.close()
    kwargs: dict[str, Any] = {"hidden_sizes": tuple(cfg.hidden_sizes), "activation": cfg.activation,
                              "backbone": cfg.backbone, "distribution": cfg.distribution, "squash": cfg.squash,
                              "log_std_init": cfg.log_std_init}
    if actor_critic:
        return ActorCriticPolicy.from_spaces(obs_space, act_space, share_trunk=getattr(cfg, "share_trunk", False),
                                             **kwargs)
    return SimpleGRPOPolicy.from_spaces(obs_space, act_space, **kwargs)
