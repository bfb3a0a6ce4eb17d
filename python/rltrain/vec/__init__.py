"""Rollout engine: ``make_vec`` builds a gymnasium ``VectorEnv`` on the native C++ batcher or on worker processes.

``backend="native"`` runs a C++ environment on rltrain's thread pool (:class:`rltrain.vec.native.NativeVectorEnv`);
``backend="fork"`` runs any gymnasium env in forked worker processes (:class:`rltrain.vec.fork.ForkVectorEnv`);
``backend="auto"`` picks native when the id has a native implementation (:func:`native_envs`), else fork; that
choice is made in :mod:`rltrain.vec.resolve`, and nowhere else. Both backends use same-step autoreset
(gymnasium's ``AutoresetMode.SAME_STEP``) and seed env i with ``seed + i``.

Importing this package costs NumPy and ``rltrain._core``: gymnasium is loaded by the first ``make_vec``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rltrain.vec.registry import NativeEnvSpec, native_env_spec, native_envs, register_native_env

if TYPE_CHECKING:
    import gymnasium as gym
    from gymnasium.vector import VectorEnv

__all__ = ["NativeEnvSpec", "make_vec", "native_env_spec", "native_envs", "register_native_env"]


def make_vec(
    env_id: str | gym.Env[Any, Any] | Callable[[], gym.Env[Any, Any]],
    num_envs: int,
    *,
    backend: str = "auto",
    seed: int | None = None,
    identical_seeds: bool = False,
    num_threads: int | None = None,
    **env_kwargs: Any,
) -> VectorEnv:
    """A gymnasium ``VectorEnv`` of ``num_envs`` copies of ``env_id``.

    Args:
        env_id: gymnasium env id; or a ``gymnasium.Env`` instance (an ``rltrain.envs`` one runs natively, any other
            is copied into each fork worker); or (fork backend) a zero-argument callable returning a
            ``gymnasium.Env``.
        num_envs: number of environments.
        backend: ``"native"`` (C++ thread-pool batcher), ``"fork"`` (worker processes) or ``"auto"``.
        seed: env i is seeded ``seed + i``; None draws fresh entropy.
        identical_seeds: seed every env with ``seed`` (GRPO groups that must start from one state).
        num_threads: native: threads stepping the envs (default: min(num_envs, cores or RLTRAIN_NUM_THREADS));
            fork: number of worker processes.
        **env_kwargs: passed to the env (``gymnasium.make`` kwargs such as ``g`` for Pendulum,
            ``max_episode_steps``).
    """
    from rltrain.vec.resolve import build_vec

    return build_vec(env_id, num_envs, backend=backend, seed=seed, identical_seeds=identical_seeds,
                     num_threads=num_threads, env_kwargs=env_kwargs)


def __getattr__(name: str) -> Any:
    # NativeVectorEnv imports gymnasium; loading it on first use keeps `import rltrain.vec` light.
    if name == "NativeVectorEnv":
        from rltrain.vec.native import NativeVectorEnv

        return NativeVectorEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
