"""rltrain: reinforcement-learning training with a compiled core."""

from __future__ import annotations

from rltrain import envs, kernels, reference
from rltrain.vec import make_vec, native_envs

__all__ = ["__version__", "envs", "kernels", "make_vec", "native_envs", "reference"]
__version__ = "0.1.0"
