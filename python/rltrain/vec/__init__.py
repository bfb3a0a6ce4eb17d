"""Rollout engine: ``make_vec`` builds a gymnasium ``VectorEnv`` on the native C++ batcher or on worker processes.

``backend="native"`` runs a C++ environment on rltrain's thread pool (:class:`rltrain.vec.native.NativeVectorEnv`);
``backend="fork"`` runs any gymnasium env in forked worker processes (``rltrain.vec.fork.ForkVectorEnv``);
``backend="auto"`` picks native when the id has a native implementation (:func:`native_envs`), else fork.
Both use same-step autoreset (gymnasium's ``AutoresetMode.SAME_STEP``) and seed env i with ``seed + i``.

Native ids come from ``rltrain._core`` (classic control, registered on import) and from optional extensions
(LunarLander in ``rltrain._box2d``, see :mod:`rltrain.vec.lunar`), whose ids are registered the first time the
registry is asked about an id it lacks, and only when the extension imports.
"""

from __future__ import annotations

import functools
import importlib
import operator
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rltrain import _core

if TYPE_CHECKING:
    import gymnasium as gym
    from gymnasium.vector import VectorEnv

__all__ = ["NativeEnvSpec", "make_vec", "native_env_spec", "native_envs", "register_native_env"]

_BACKENDS = ("auto", "native", "fork")


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


_REGISTRY: dict[str, NativeEnvSpec] = {}


def register_native_env(
    env_id: str, vec_class: Callable[..., Any], single_class: type | None = None, *, overwrite: bool = False
) -> None:
    """Makes ``env_id`` available to ``make_vec`` and :func:`native_envs` (used by native env modules
    outside ``_core``, such as LunarLander)."""
    if env_id in _REGISTRY and not overwrite:
        raise ValueError(f"native env {env_id!r} is already registered")
    _REGISTRY[env_id] = NativeEnvSpec(env_id, vec_class, single_class)


for _env_id, _name in _core.NATIVE_ENVS.items():
    register_native_env(_env_id, getattr(_core, _name + "Vec"), getattr(_core, _name))

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


def native_envs() -> list[str]:
    """The env ids that have a native (C++) implementation, sorted (LunarLander's only when ``rltrain._box2d``
    imports)."""
    _load_optional()
    return sorted(_REGISTRY)


def native_env_spec(env_id: str) -> NativeEnvSpec:
    """The registration of a native env id; ``ValueError`` listing :func:`native_envs` for any other id."""
    if isinstance(env_id, str) and env_id not in _REGISTRY:
        _load_optional()
    try:
        return _REGISTRY[env_id]
    except (KeyError, TypeError):
        raise ValueError(
            f"{env_id!r} has no native implementation; native envs: {native_envs()} "
            "(backend='fork' runs any gymnasium env)"
        ) from None


def make_vec(
    env_id: str | Callable[[], gym.Env],
    num_envs: int,
    *,
    backend: str = "auto",
    seed: int | None = None,
    identical_seeds: bool = False,
    num_threads: int | None = None,
    **env_kwargs: Any,
) -> VectorEnv:
    """A gymnasium ``VectorEnv`` of ``num_envs`` copies of ``env_id`` (an id, or for the fork backend an env factory).

    Args:
        env_id: gymnasium env id, or (fork backend) a zero-argument callable returning a ``gymnasium.Env``.
        num_envs: number of environments.
        backend: ``"native"`` (C++ thread-pool batcher), ``"fork"`` (worker processes) or ``"auto"``.
        seed: env i is seeded ``seed + i``; None draws fresh entropy.
        identical_seeds: seed every env with ``seed`` (GRPO groups that must start from one state).
        num_threads: native: threads stepping the envs (default: min(num_envs, cores or RLTRAIN_NUM_THREADS));
            fork: number of worker processes.
        **env_kwargs: passed to the env (``gymnasium.make`` kwargs such as ``g`` for Pendulum,
            ``max_episode_steps``).
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend: expected one of {list(_BACKENDS)}, got {backend!r}")
    num_envs = _positive_int(num_envs, "num_envs")
    if isinstance(env_id, str) and env_id not in _REGISTRY:
        _load_optional()
    is_native = isinstance(env_id, str) and env_id in _REGISTRY
    if backend == "native" or (backend == "auto" and is_native):
        if not isinstance(env_id, str):
            raise ValueError("backend='native' needs an env id string, not an env factory")
        from rltrain.vec.native import NativeVectorEnv

        native_env_spec(env_id)
        return NativeVectorEnv(
            env_id,
            num_envs,
            seed=seed,
            identical_seeds=identical_seeds,
            num_threads=num_threads,
            **env_kwargs,
        )
    return _make_fork(env_id, num_envs, seed, identical_seeds, num_threads, env_kwargs)


def _positive_int(value: Any, name: str) -> int:
    try:
        n = operator.index(value)
    except TypeError:
        n = 0
    if isinstance(value, bool) or n < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return n


def _make_fork(
    env_id: str | Callable[[], gym.Env],
    num_envs: int,
    seed: int | None,
    identical_seeds: bool,
    num_threads: int | None,
    env_kwargs: dict[str, Any],
) -> VectorEnv:
    import gymnasium as gym

    import rltrain.envs  # noqa: F401  (registers the rltrain/* ids with gymnasium)

    if not hasattr(os, "fork"):
        raise RuntimeError(
            f"make_vec({env_id!r}): the fork backend needs os.fork (Linux, macOS and other POSIX systems), which "
            f"{sys.platform} lacks; native ids ({', '.join(native_envs())}) run everywhere, and any other env "
            "can be vectorised with gymnasium.vector.SyncVectorEnv"
        )
    if isinstance(env_id, str):
        if ":" not in env_id and env_id not in gym.registry:
            raise ValueError(
                f"unknown env id {env_id!r}: not registered with gymnasium, and native envs are {native_envs()}"
            )
        from rltrain.vec.lunar import check_gymnasium_fallback

        check_gymnasium_fallback(env_id)
        factory: Callable[[], gym.Env] = functools.partial(gym.make, env_id, **env_kwargs)
    elif callable(env_id):
        factory = functools.partial(env_id, **env_kwargs) if env_kwargs else env_id
    else:
        raise TypeError(f"env_id: expected an env id string or an env factory, got {type(env_id).__name__}")
    try:
        from rltrain.vec.fork import ForkVectorEnv
    except ModuleNotFoundError as e:
        if e.name not in ("rltrain.vec.fork",):
            raise
        raise RuntimeError("the fork backend (rltrain.vec.fork) is not available in this build") from e
    return ForkVectorEnv(
        [factory] * num_envs, num_workers=num_threads, seed=seed, identical_seeds=identical_seeds
    )


def __getattr__(name: str) -> Any:
    # NativeVectorEnv imports gymnasium; loading it on first use keeps `import rltrain` light.
    if name == "NativeVectorEnv":
        from rltrain.vec.native import NativeVectorEnv

        return NativeVectorEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
