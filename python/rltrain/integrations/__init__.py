"""rltrain inside other RL frameworks: each submodule adapts rltrain's kernels and rollout engine to one framework.

- :mod:`rltrain.integrations.sb3`: Stable-Baselines3 (``pip install stable-baselines3`` or ``rltrain[sb3]``):
  a ``RolloutBuffer`` whose GAE runs on rltrain's compiled kernel, and ``make_vec_env``, an SB3 ``VecEnv`` over
  :func:`rltrain.make_vec` (native C++ envs or fork workers).

Importing this package loads no framework: a submodule imports its framework when it is itself imported
(``from rltrain.integrations.sb3 import RolloutBuffer``, or the attribute ``rltrain.integrations.sb3``).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["sb3"]

_SUBMODULES = frozenset(__all__)


def __getattr__(name: str) -> Any:
    # Loading a submodule on first attribute access keeps `import rltrain.integrations` free of any framework.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
