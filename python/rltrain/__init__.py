"""rltrain: reinforcement-learning training with a compiled core.

The package face loads lazily (PEP 562): ``import rltrain`` and ``import rltrain.kernels`` cost NumPy and the
compiled core, never torch, gymnasium or the trainers. A name below is imported the first time it is used
(``rltrain.PPOTrainer``, ``from rltrain import make_vec``). Names that build or run environments (the trainers,
``make_vec``, ``native_envs``, ``envs``) first load :mod:`rltrain.envs`, which registers the ``rltrain/*`` ids
with gymnasium, so ids such as ``rltrain/DenseLunarLander-v0`` resolve wherever those names take an id.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy names below resolve to, for type checkers and IDEs
    from importlib.machinery import ModuleSpec

    from rltrain import envs, kernels, reference
    from rltrain.algos.grpo import (
        GRPOBaseTrainer,
        HybridAdvGRPOTrainer,
        PerEpAdvGRPOTrainer,
        PerStepAdvGRPOTrainer,
    )
    from rltrain.algos.policy_groups import PolicyGroupTrainer
    from rltrain.algos.ppo import PPOTrainer
    from rltrain.algos.reinforce import ReinforceTrainer
    from rltrain.algos.selfplay import SelfPlayTrainer
    from rltrain.config import GRPOConfig, PolicyGroupConfig, PPOConfig, ReinforceConfig, SelfPlayConfig
    from rltrain.vec import make_vec, native_envs

__all__ = [
    "GRPOBaseTrainer",
    "GRPOConfig",
    "HybridAdvGRPOTrainer",
    "PPOConfig",
    "PPOTrainer",
    "PerEpAdvGRPOTrainer",
    "PerStepAdvGRPOTrainer",
    "PolicyGroupConfig",
    "PolicyGroupTrainer",
    "ReinforceConfig",
    "ReinforceTrainer",
    "SelfPlayConfig",
    "SelfPlayTrainer",
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
    "PolicyGroupTrainer": "rltrain.algos.policy_groups",
    "ReinforceTrainer": "rltrain.algos.reinforce",
    "GRPOConfig": "rltrain.config",
    "PPOConfig": "rltrain.config",
    "PolicyGroupConfig": "rltrain.config",
    "ReinforceConfig": "rltrain.config",
    "SelfPlayConfig": "rltrain.config",
    "SelfPlayTrainer": "rltrain.algos.selfplay",
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


# ------------------------------------------------------------------------------------ gymnasium registration
# SPEC §5: after `import rltrain`, gymnasium.make_vec("rltrain/CartPole-v1") reaches the native batcher. The ids
# are registered by rltrain.envs, which imports gymnasium; so that `import rltrain` itself stays free of
# gymnasium, they are registered now when gymnasium is already loaded, and otherwise right after gymnasium's
# first import (a one-shot post-import hook; gymnasium >= 1.0 loads no entry-point plugins of its own).


def _register_with_gymnasium() -> None:
    try:
        importlib.import_module(f"{__name__}.envs")
    except Exception as exc:  # a broken extension must not break `import gymnasium`
        warnings.warn(f"rltrain could not register its environments with gymnasium: {exc!r}", stacklevel=2)


class _AfterGymnasiumImport:
    """A meta-path finder and loader (duck-typed: importlib.abc would cost ~20 ms of imports) that finds gymnasium
    through the other finders, runs its module, then registers rltrain's ids; it removes itself on first use."""

    def __init__(self) -> None:
        self._loader: Any = None

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None,
                  ) -> ModuleSpec | None:
        if fullname != "gymnasium":
            return None
        sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec: ModuleSpec | None = None if find is None else find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self  # type: ignore[assignment]
        return spec

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader  # gymnasium's own loader from now on (reloads, resources)
        self._loader.exec_module(module)
        _register_with_gymnasium()


if "gymnasium" in sys.modules:
    _register_with_gymnasium()
elif not any(isinstance(f, _AfterGymnasiumImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterGymnasiumImport())
