"""rltrain: reinforcement-learning training with a compiled core.

The package face loads lazily (PEP 562): ``import rltrain`` and ``import rltrain.kernels`` cost NumPy and the
compiled core, never torch, gymnasium or the trainers. A name below is imported the first time it is used
(``rltrain.PPOTrainer``, ``from rltrain import make_vec``). Names that build or run environments (the trainers,
``make_vec``, ``native_envs``, ``envs``) first load :mod:`rltrain.envs`, which registers the ``rltrain/*`` ids
with gymnasium, so ids such as ``rltrain/DenseLunarLander-v0`` resolve wherever those names take an id.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from rltrain import envs, kernels, reference
    from rltrain.algos.grpo import (
        GRPOBaseTrainer,
        HybridAdvGRPOTrainer,
        PerEpAdvGRPOTrainer,
        PerStepAdvGRPOTrainer,
    )
    from rltrain.algos.ppo import PPOTrainer
    from rltrain.algos.reinforce import ReinforceTrainer
    from rltrain.config import GRPOConfig, PPOConfig, ReinforceConfig
    from rltrain.vec import make_vec, native_envs

__all__ = [
    "GRPOBaseTrainer",
    "GRPOConfig",
    "HybridAdvGRPOTrainer",
    "PPOConfig",
    "PPOTrainer",
    "PerEpAdvGRPOTrainer",
    "PerStepAdvGRPOTrainer",
    "ReinforceConfig",
    "ReinforceTrainer",
    "__version__",
    "envs",
    "kernels",
    "make_vec",
    "native_envs",
    "reference",
]
__version__ = "0.1.0"

_SUBMODULES = ("envs", "kernels", "reference")

_LAZY: dict[str, str] = {
    "GRPOBaseTrainer": "rltrain.algos.grpo",
    "HybridAdvGRPOTrainer": "rltrain.algos.grpo",
    "PerEpAdvGRPOTrainer": "rltrain.algos.grpo",
    "PerStepAdvGRPOTrainer": "rltrain.algos.grpo",
    "PPOTrainer": "rltrain.algos.ppo",
    "ReinforceTrainer": "rltrain.algos.reinforce",
    "GRPOConfig": "rltrain.config",
    "PPOConfig": "rltrain.config",
    "ReinforceConfig": "rltrain.config",
    "make_vec": "rltrain.vec",
    "native_envs": "rltrain.vec",
}
"""Public name -> the module defining it."""

_DATA_ONLY = ("rltrain.config",)
"""Modules of plain data that need no environment registered (configs name an env id, they do not resolve it)."""


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # the import system also binds it here
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if module not in _DATA_ONLY:
        importlib.import_module(f"{__name__}.envs")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
