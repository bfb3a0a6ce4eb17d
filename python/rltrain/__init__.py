"""rltrain: reinforcement-learning training with a compiled core."""

from __future__ import annotations

from rltrain import envs, kernels, reference

__all__ = ["envs", "kernels", "reference", "__version__"]
__version__ = "0.1.0"
