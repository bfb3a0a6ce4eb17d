"""The native env ids: which gymnasium ids have a C++ implementation, and how to build each one's batcher.

Ids come from ``rltrain._core`` (classic control, registered on import) and from optional extensions
(LunarLander in ``rltrain._box2d``, see :mod:`rltrain.vec.lunar`), whose ids are registered the first time the
registry is asked about an id it lacks, and only when the extension imports. NumPy and ``_core`` only: no
gymnasium, so ``import rltrain.vec`` stays light.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rltrain import _core

__all__ = ["NativeEnvSpec", "is_native", "native_env_spec", "native_envs", "register_native_env"]


@dataclass(frozen=True)
class NativeEnvSpec:
    """How to build one native env id."""

    env_id: str
    """The gymnasium id the native env reproduces, e.g. ``"CartPole-v1"``."""
    vec_class: Callable[..., Any]
    """A batcher class made by ``bind_vec_env`` (C++), or a factory choosing one from the keyword arguments:
    ``vec_class(num_envs, num_threads, seed, identical_seeds, **config)``."""
    single_class: type | None = None
    """The matching single-env class made by ``bind_single_env``, if any (parity tests, debugging)."""
    action_mask: Callable[[Any], Any] | None = None
    """For envs with state-dependent legal moves (the board games): observations ``[n, obs_dim]`` -> legal-action
    mask ``[n, n_actions]``, reported as ``info["action_mask"]`` after every reset and step."""


_REGISTRY: dict[str, NativeEnvSpec] = {}


def register_native_env(
    env_id: str, vec_class: Callable[..., Any], single_class: type | None = None, *, overwrite: bool = False,
    action_mask: Callable[[Any], Any] | None = None,
) -> None:
    """Makes ``env_id`` available to ``make_vec`` and :func:`native_envs` (used by native env modules
    outside ``_core``, such as LunarLander)."""
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"native env {env_id!r} is already registered")
    _REGISTRY[env_id] = NativeEnvSpec(env_id, vec_class, single_class, action_mask)


for _env_id, _name in _core.envs.NATIVE_ENVS.items():
    register_native_env(_env_id, getattr(_core.envs, _name + "Vec"), getattr(_core.envs, _name))


def _register_games() -> None:
    import functools

    from rltrain.vec.games import action_mask, make_game_batcher

    for env_id, name in _core.envs.GAME_ENVS.items():
        register_native_env(env_id, make_game_batcher(env_id), getattr(_core.envs, name),
                            action_mask=functools.partial(action_mask, env_id))


_register_games()

_OPTIONAL_MODULES = ("rltrain.vec.lunar",)
"""Modules registering the native envs of optional extensions when imported (each registers nothing when its
extension is unavailable). Loaded on demand, not with ``rltrain``: ``rltrain._box2d`` is a separate, optional
module, and only LunarLander users pay for loading it."""
_optional_lock = threading.Lock()
_optional_loaded = False


def _load_optional() -> None:
    global _optional_loaded
    if _optional_loaded:
        return
    with _optional_lock:
        if not _optional_loaded:
            for name in _OPTIONAL_MODULES:
                importlib.import_module(name)
            _optional_loaded = True


def is_native(env_id: object) -> bool:
    """Whether ``env_id`` is a native id (an optional extension is loaded first when the id is not known yet)."""
    if not isinstance(env_id, str):
        return False
    if env_id not in _REGISTRY:
        _load_optional()
    return env_id in _REGISTRY


def native_envs() -> list[str]:
    """The env ids that have a native (C++) implementation, sorted (LunarLander's only when ``rltrain._box2d``
    imports)."""
    _load_optional()
    return sorted(_REGISTRY)


def native_env_spec(env_id: str) -> NativeEnvSpec:
    """The registration of a native env id; ``ValueError`` listing :func:`native_envs` for any other id."""
    if not is_native(env_id):
        raise ValueError(
            f"{env_id!r} has no native implementation; native envs: {native_envs()} "
            "(backend='fork' runs any gymnasium env)"
        )
    return _REGISTRY[env_id]
