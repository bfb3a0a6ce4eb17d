"""Resolving an environment argument (an id, a ``gym.Env`` instance or a factory): native or fork, single env,
spaces. The one place that decides whether an env runs natively, and the one home of the unknown-id error.

Native when possible: an id in ``native_envs()``, or an instance of one of ``rltrain.envs``' classes, which
carries its native id and constructor arguments (``native_id``, ``native_config``); otherwise worker processes,
each building its own copy of the environment.
"""

from __future__ import annotations

import copy
import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from gymnasium.vector import VectorEnv

import rltrain.envs  # noqa: F401  (registers the rltrain/* ids with gymnasium)
from rltrain import _checks
from rltrain.vec.registry import is_native, native_env_spec, native_envs

__all__ = ["build_vec", "env_id_of", "make_single", "native_target", "single_spaces"]

_BACKENDS = ("auto", "native", "fork")


def env_id_of(env: Any) -> str:
    """A readable name for logs and run directories."""
    if isinstance(env, str):
        return env
    spec = getattr(env, "spec", None)
    if spec is not None and getattr(spec, "id", None):
        return str(spec.id)
    return str(getattr(env, "__name__", type(env).__name__))


def native_target(env: Any) -> tuple[str, dict[str, Any]] | None:
    """(native id, kwargs) when ``env`` can run on the native batcher, else None."""
    if isinstance(env, str):
        return (env, {}) if is_native(env) else None
    cfg = getattr(env, "native_config", None)
    native_id = getattr(env, "native_id", None)
    if isinstance(env, gym.Env) and isinstance(native_id, str) and is_native(native_id) and isinstance(cfg, dict):
        return native_id, dict(cfg)
    return None


def _check_known(env_id: str) -> None:
    """``ValueError`` for an id that is neither native nor registered with gymnasium (``module:Id`` ids are
    gymnasium's to import)."""
    if not is_native(env_id) and ":" not in env_id and env_id not in gym.registry:
        raise ValueError(
            f"unknown env id {env_id!r}: not registered with gymnasium, and native envs are {native_envs()}"
        )


def make_single(env: Any, render_mode: str | None = None) -> gym.Env[Any, Any]:
    """One Python environment (evaluation, video): ids through gym.make, instances copied (rebuilt when another
    ``render_mode`` is asked for), factories called."""
    if isinstance(env, str):
        _check_known(env)
        try:
            return gym.make(env, render_mode=render_mode)
        except gym.error.Error as exc:
            raise ValueError(f"env: cannot make {env!r}: {exc}") from exc
    if isinstance(env, gym.Env):
        if render_mode is None or getattr(env, "render_mode", None) == render_mode:
            return copy.deepcopy(env)
        return _with_render_mode(env, render_mode)
    if callable(env):
        e: gym.Env[Any, Any] = env()
        if render_mode is None or getattr(e, "render_mode", None) == render_mode:
            return e
        return _with_render_mode(e, render_mode)
    raise _not_an_env(env)


def _not_an_env(env: Any) -> ValueError:
    return ValueError(f"env: expected a gymnasium id, a gym.Env instance or a factory, got {type(env).__name__}")


def _with_render_mode(env: gym.Env[Any, Any], render_mode: str) -> gym.Env[Any, Any]:
    """A fresh copy of ``env`` rendering as ``render_mode``. rltrain's own classes are rebuilt from their
    constructor arguments; anything made by ``gym.make`` (wrapper stacks included) from its spec, which records
    the kwargs and wrappers; otherwise the base env's ``render_mode`` is set on a copy (wrappers only forward
    that property, they cannot set it)."""
    cfg = getattr(env, "native_config", None)
    if isinstance(cfg, dict):
        cls: Any = type(env)  # rltrain.envs' classes take their native_config back as keyword arguments
        rebuilt: gym.Env[Any, Any] = cls(**cfg, render_mode=render_mode)
        return rebuilt
    spec = getattr(env, "spec", None)
    if spec is not None:
        try:
            return gym.make(spec, render_mode=render_mode)
        except (gym.error.Error, TypeError):  # a spec gymnasium cannot rebuild: fall through
            pass
    e = copy.deepcopy(env)
    e.unwrapped.render_mode = render_mode
    return e


def single_spaces(env: Any) -> tuple[gym.Space[Any], gym.Space[Any]]:
    """The (observation, action) spaces of one env of ``env``, as the vector env of :func:`rltrain.make_vec` reports
    them (``single_observation_space``, ``single_action_space``). Native envs answer from the C++ batcher, without
    building a Python env; anything else is built once with :func:`make_single` and closed."""
    target = native_target(env)
    if target is not None:
        from rltrain.vec.native import native_spaces

        native_id, kwargs = target
        return native_spaces(native_id, **kwargs)
    probe = make_single(env)
    try:
        return probe.observation_space, probe.action_space
    finally:
        probe.close()


def build_vec(env: Any, num_envs: int, *, backend: str, seed: int | None, identical_seeds: bool,
              num_threads: int | None, env_kwargs: dict[str, Any]) -> VectorEnv:
    """:func:`rltrain.make_vec`'s body: the native-or-fork decision, ``env_kwargs`` passed to the env."""
    _checks.choice(backend, "backend", _BACKENDS)
    num_envs = _checks.integer(num_envs, "num_envs", lo=1)
    game = _python_game(env, env_kwargs)
    if game is not None:
        # A board game against a checkpoint or callable opponent: those cannot run on the C++ threads.
        from rltrain.games.env import GameVectorEnv

        return GameVectorEnv(game[0], num_envs, seed=seed, identical_seeds=identical_seeds, **game[1])
    target = native_target(env)
    if target is not None and backend in ("auto", "native"):
        from rltrain.vec.native import NativeVectorEnv

        native_id, kwargs = target
        return NativeVectorEnv(native_id, num_envs, seed=seed, identical_seeds=identical_seeds,
                               num_threads=num_threads, **kwargs, **env_kwargs)
    if backend == "native":
        if not isinstance(env, str):
            raise ValueError(f"backend='native' needs a native env id or an rltrain.envs instance, not "
                             f"{env_id_of(env)!r}; native envs: {native_envs()}")
        native_env_spec(env)  # raises: no native implementation, listing the native ids
    return _make_fork(env, num_envs, seed, identical_seeds, num_threads, env_kwargs)


def _python_game(env: Any, env_kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(game id, kwargs) when ``env`` is a board game whose opponent runs on the Python path, else None."""
    from rltrain.vec.games import is_game, native_opponent

    if isinstance(env, str) and is_game(env):
        if native_opponent(env, env_kwargs.get("opponent", "random")) is None:
            return env, dict(env_kwargs)
        return None
    games_env = sys.modules.get("rltrain.games.env")  # not loaded: env cannot be a GameEnv (and torch stays out)
    if games_env is not None and isinstance(env, games_env.GameEnv) and not hasattr(env, "native_id"):
        if env_kwargs:
            raise TypeError(f"keyword arguments {sorted(env_kwargs)} apply to env ids, not to an env instance")
        return env.env_id, {"opponent": env.opponent, "agent_player": env.agent_player}
    return None


def _make_fork(env: Any, num_envs: int, seed: int | None, identical_seeds: bool, num_threads: int | None,
               env_kwargs: dict[str, Any]) -> VectorEnv:
    if not hasattr(os, "fork"):
        raise RuntimeError(
            f"make_vec({env_id_of(env)!r}): the fork backend needs os.fork (Linux, macOS and other POSIX systems), "
            f"which {sys.platform} lacks; native ids ({', '.join(native_envs())}) run everywhere, and any other "
            "env can be vectorised with gymnasium.vector.SyncVectorEnv"
        )
    factory: Callable[[], gym.Env[Any, Any]]
    if isinstance(env, str):
        _check_known(env)
        from rltrain.vec.lunar import check_gymnasium_fallback

        check_gymnasium_fallback(env)
        factory = functools.partial(gym.make, env, **env_kwargs)
    elif isinstance(env, gym.Env):
        if env_kwargs:
            raise TypeError(f"keyword arguments {sorted(env_kwargs)} apply to env ids and factories, not to an env "
                            "instance")
        factory = functools.partial(copy.deepcopy, env)
    elif callable(env):
        factory = functools.partial(env, **env_kwargs) if env_kwargs else env
    else:
        raise _not_an_env(env)
    try:
        from rltrain.vec.fork import ForkVectorEnv
    except ModuleNotFoundError as e:
        if e.name != "rltrain.vec.fork":
            raise
        raise RuntimeError("the fork backend (rltrain.vec.fork) is not available in this build") from e
    return ForkVectorEnv([factory] * num_envs, num_workers=num_threads, seed=seed, identical_seeds=identical_seeds)
