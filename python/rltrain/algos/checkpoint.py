"""What loading a checkpoint trusts: the classes a checkpoint may name, and the data it may pass to them.

A checkpoint stores the dotted names of its trainer, policy and environment classes (and a policy's backbone) so
``load`` can rebuild them. A file from someone else must not choose what runs: names resolve only to rltrain's own
trainer, policy and environment classes, or to classes the caller hands to ``load(path, classes=[...])``, looked up
in a table, never by importing the named module. Stored constructor arguments must be plain data (numbers,
strings, bools, None, and lists/tuples/dicts of those). Anything else is a ``ValueError`` raised before any class is
looked up or called. Environment ids that name a module (``"pkg.mod:Env-v0"``, which ``gymnasium.make`` would
import) are refused the same way unless the caller passes ``env=``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

__all__ = ["check_plain_data", "class_name", "resolve_class", "trusted_classes"]

_OWN_CLASSES = {
    "rltrain.algos.ppo": ("PPOTrainer",),
    "rltrain.algos.grpo": ("GRPOBaseTrainer", "PerStepAdvGRPOTrainer", "PerEpAdvGRPOTrainer", "HybridAdvGRPOTrainer"),
    "rltrain.algos.reinforce": ("ReinforceTrainer",),
    "rltrain.policies": ("ActorCriticPolicy", "SimpleGRPOPolicy", "TransformerBackbone", "CNNBackbone"),
    "rltrain.envs.lunar": ("DenseLunarLander", "SparseLunarLander"),
}
"""rltrain's classes a checkpoint may name without the caller's say-so (a fixed list of rltrain's own modules)."""

_PLAIN = (bool, int, float, str, type(None))


def class_name(cls: type) -> str:
    """The name a checkpoint stores for ``cls``: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_classes(classes: Iterable[type] = ()) -> dict[str, type]:
    """rltrain's own checkpoint classes plus ``classes``, by every name a checkpoint may use for them
    (``module.QualName`` as saved, ``module:QualName`` as a backbone path)."""
    table: dict[str, type] = {}
    own: list[type] = []
    for module, names in _OWN_CLASSES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:  # rltrain.envs.lunar needs pybox2d; without it its classes cannot be in use
            continue
        own.extend(getattr(mod, n) for n in names)
    for cls in [*own, *classes]:
        if not isinstance(cls, type):
            raise TypeError(f"classes: expected classes, got {cls!r}")
        table[class_name(cls)] = cls
        table[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return table


def resolve_class(name: Any, what: str, table: dict[str, type]) -> type:
    """The class ``name`` stands for in ``table``; a ``ValueError`` naming ``what`` when it is not there."""
    if not isinstance(name, str) or name not in table:
        raise ValueError(
            f"{what}: the checkpoint names {name!r}, which is not one of rltrain's trainer, policy or environment "
            "classes; loading never imports or calls a class a file names. If you trust this file and the class, "
            "pass it: load(path, classes=[ThatClass])"
        )
    return table[name]


def check_plain_data(value: Any, what: str) -> None:
    """Raises ``ValueError`` unless ``value`` is plain data: numbers, strings, bools, None, and lists, tuples and
    dicts (string keys) of those."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain_data(v, f"{what}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{what}: keys must be strings, got {k!r}")
            check_plain_data(v, f"{what}[{k!r}]")
        return
    raise ValueError(f"{what}: stored arguments must be plain data, got {type(value).__name__}")
