"""Feature trunks ("backbones") of rltrain's policies: an MLP (default (64, 64) tanh), a Transformer over
observation features as tokens, a CNN for image observations, or any user ``nn.Module`` class, all initialised as
Stable-Baselines3 does (orthogonal, gain sqrt(2)). ``build_backbone`` picks one from a name, a class or its path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rltrain._checks import choice, class_from_path, integer

__all__ = ["BACKBONES", "CNNBackbone", "TransformerBackbone", "build_backbone", "mlp"]

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
BACKBONES = ("mlp", "transformer", "cnn")
"""The built-in backbones, by name."""


def mlp(in_dim: int, hidden_sizes: Sequence[int], activation: str = "tanh") -> tuple[nn.Sequential, int]:
    """An MLP trunk with orthogonal init (gain sqrt(2)); returns the module and its output width."""
    choice(activation, "activation", sorted(_ACTIVATIONS))
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
            integer(v, f"backbone_kwargs[{name!r}]", lo=1)
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
        out: torch.Tensor = self.norm(self.encoder(tokens)[:, 0])
        return out


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
                assert m.bias is not None  # Conv2d's default bias=True
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
        tb = TransformerBackbone(flat, **kw)
        return tb, tb.out_dim
    if backbone == "cnn":
        cb = CNNBackbone(obs_shape, **kw)
        return cb, cb.out_dim
    # A path the caller wrote (a config's backbone) may be imported; a checkpoint's was resolved before this.
    cls = class_from_path(backbone, "backbone", allow_import=True,
                          hint=f" (or one of {BACKBONES})") if isinstance(backbone, str) else backbone
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"backbone: expected one of {BACKBONES}, an nn.Module class or its import path, "
                         f"got {backbone!r}")
    m = cls(obs_shape, **kw)
    out_dim = getattr(m, "out_dim", None)
    if isinstance(out_dim, int):
        return m, out_dim
    with torch.no_grad():
        y = m(torch.zeros((2,) + tuple(obs_shape)))
    if y.ndim != 2 or y.shape[0] != 2:
        raise ValueError(f"backbone: {cls.__name__} must return [batch, features], got shape {tuple(y.shape)}")
    return m, int(y.shape[1])
