"""Resolving an environment argument (an id, a ``gym.Env`` instance or a factory) into vector and single environments.

Native when possible: an id in ``native_envs()`` or an instance of one of ``rltrain.envs``' classes mapped with
its constructor arguments; otherwise worker processes, each building its own copy of the environment.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import gymnasium as gym

import rltrain.envs  # noqa: F401  (registers the rltrain/* ids with gymnasium)

__all__ = ["env_id_of", "make_single", "make_vec_for", "native_target"]


def env_id_of(env: Any) -> str:
    """A readable name for logs and run directories."""
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return spec.id
    return getattr(env, "__name__", type(env).__name__)


def native_target(env: Any) -> tuple[str, dict[str, Any]] | None:
    """(native id, kwargs) when ``env`` can run on the native batcher, else None."""
    from rltrain.vec import native_envs

    ids = set(native_envs())
    if isinstance(env, str):
        return (env, {}) if env in ids else None
    cfg = getattr(env, "native_config", None)
    native_id = getattr(env, "native_id", None)
    if isinstance(env, gym.Env) and native_id in ids and isinstance(cfg, dict):
        return native_id, dict(cfg)
    return None


def _factory(env: Any, **kwargs: Any) -> Callable[[], gym.Env]:
    if isinstance(env, str):
        return lambda: gym.make(env, **kwargs)
    if isinstance(env, gym.Env):
        proto = env
        return lambda: copy.deepcopy(proto)
    if callable(env):
        return env
    raise ValueError(f"env: expected a gymnasium id, a gym.Env instance or a factory, got {type(env).__name__}")


def make_single(env: Any, render_mode: str | None = None) -> gym.Env:
    """One Python environment (evaluation, video): ids through gym.make, instances copied (rebuilt when another
    ``render_mode`` is asked for), factories called."""
    if isinstance(env, str):
        try:
            return gym.make(env, render_mode=render_mode)
        except gym.error.Error as exc:
            raise ValueError(f"env: cannot make {env!r}: {exc}") from exc
    if isinstance(env, gym.Env):
        if render_mode is None or getattr(env, "render_mode", None) == render_mode:
            return copy.deepcopy(env)
        return _with_render_mode(env, render_mode)
    if callable(env):
        e = env()
        return e if render_mode is None or getattr(e, "render_mode", None) == render_mode else \
            _with_render_mode(e, render_mode)
    raise ValueError(f"env: expected a gymnasium id, a gym.Env instance or a factory, got {type(env).__name__}")


def _with_render_mode(env: gym.Env, render_mode: str) -> gym.Env:
    """A fresh copy of ``env`` rendering as ``render_mode``. rltrain's own classes are rebuilt from their
    constructor arguments; anything made by ``gym.make`` (wrapper stacks included) from its spec, which records
    the kwargs and wrappers; otherwise the base env's ``render_mode`` is set on a copy (wrappers only forward
    that property, they cannot set it)."""
    cfg = getattr(env, "native_config", None)
    if isinstance(cfg, dict):
        return type(env)(**cfg, render_mode=render_mode)
    spec = getattr(env, "spec", None)
    if spec is not None:
        try:
            return gym.make(spec, render_mode=render_mode)
        except (gym.error.Error, TypeError):  # a spec gymnasium cannot rebuild: fall through
            pass
    e = copy.deepcopy(env)
    e.unwrapped.render_mode = render_mode
    return e


def make_vec_for(env: Any, num_envs: int, *, backend: str = "auto", seed: int | None = None,
                identical_seeds: bool = False, num_workers: int | None = None) -> gym.vector.VectorEnv:
    """A same-step-autoreset VectorEnv for ``env`` (see the module docstring for the backend choice)."""
    from rltrain.vec import make_vec

    target = native_target(env)
    if backend in ("auto", "native") and target is not None:
        native_id, kwargs = target
        return make_vec(native_id, num_envs, backend="native", seed=seed, identical_seeds=identical_seeds,
                        num_threads=num_workers, **kwargs)
    if backend == "native":
        from rltrain.vec import native_envs

        raise ValueError(f"env: {env_id_of(env)!r} has no native implementation; native envs: {native_envs()}")
    if isinstance(env, str):
        try:
            gym.spec(env)
        except gym.error.Error as exc:
            raise ValueError(f"env: unknown environment id {env!r} ({exc})") from exc
    return make_vec(_factory(env), num_envs, backend="fork", seed=seed, identical_seeds=identical_seeds,
                    num_threads=num_workers)
