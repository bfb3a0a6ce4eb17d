"""The native ids in gymnasium's registry: ``gymnasium.make_vec("rltrain/CartPole-v1", 16)`` returns the native
batcher, ``gymnasium.make("rltrain/CartPole-v1")`` one native env. Registered by :mod:`rltrain.envs` on import.

Every id of :func:`rltrain.native_envs` gets an ``rltrain/<id>`` twin (ids already under ``rltrain/`` keep their
own registration) carrying gymnasium's ``max_episode_steps``, ``reward_threshold`` and kwargs for that id, and:

* ``vector_entry_point`` -> :func:`make_native_vec`, a :class:`~rltrain.vec.native.NativeVectorEnv`. gymnasium
  passes ``num_envs``, the spec's ``max_episode_steps`` and any keyword arguments of ``make_vec``, so
  ``num_threads``, ``seed`` and ``identical_seeds`` travel as plain keywords. gymnasium (1.x) itself refuses
  ``vector_kwargs`` and ``wrappers`` for a vector entry point; ``vectorization_mode="sync"`` applies ``wrappers``
  to single native envs, and vector wrappers (``gymnasium.wrappers.vector``) wrap the native batcher.
* ``entry_point`` -> :class:`NativeEnv`, the C++ single env (the same code as each env of the batcher, so the same
  numbers, and LunarLander without pybox2d). It never truncates by itself: gymnasium's TimeLimit does, as for
  gymnasium's own ids. Native envs do not render; ``render_mode`` is an error naming gymnasium's id, which does.

gymnasium 1.x dropped its entry-point plugin loader (``load_plugin_envs``), so nothing registers these ids before
``rltrain.envs`` is imported: ``import rltrain.envs`` (or ``gymnasium.register_envs(rltrain.envs)``), or the
module-prefixed id ``gymnasium.make_vec("rltrain.envs:rltrain/CartPole-v1", 16)``, which imports it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, SupportsFloat

import gymnasium as gym
import numpy as np

from rltrain.vec.registry import native_env_spec, native_envs

if TYPE_CHECKING:
    from rltrain.vec.native import NativeVectorEnv

# rltrain.vec.native is imported where it is used: it imports gymnasium, whose first import registers these ids
# (rltrain/__init__.py), so a module-level import here made `from rltrain.vec.native import NativeVectorEnv`, as
# a process's first rltrain import, a circular one (the registration failed with a warning).

__all__ = ["NAMESPACE", "NativeEnv", "gym_id", "make_native_vec", "register_gym_ids"]

NAMESPACE = "rltrain"
_NO_LIMIT = 2**31 - 1
"""The native single env's own step limit inside ``gymnasium.make``: none in effect, TimeLimit ends episodes."""


def gym_id(native_id: str) -> str:
    """The gymnasium id under which a native id is registered: ``rltrain/<id>`` (unchanged when already so)."""
    return native_id if native_id.startswith(NAMESPACE + "/") else f"{NAMESPACE}/{native_id}"


def _no_render(native_id: str, render_mode: str | None) -> None:
    if render_mode is not None:
        raise ValueError(
            f"{gym_id(native_id)}: native envs do not render (render_mode={render_mode!r}); "
            f"gymnasium.make({native_id!r}, render_mode={render_mode!r}) draws the same dynamics"
        )


def make_native_vec(
    native_id: str,
    num_envs: int = 1,
    *,
    num_threads: int | None = None,
    seed: int | None = None,
    identical_seeds: bool = False,
    render_mode: str | None = None,
    **env_kwargs: Any,
) -> NativeVectorEnv:
    """The vector entry point of ``rltrain/<native_id>``: ``gymnasium.make_vec``'s arguments to the batcher."""
    _no_render(native_id, render_mode)
    from rltrain.vec.native import NativeVectorEnv

    return NativeVectorEnv(native_id, num_envs, seed=seed, identical_seeds=identical_seeds,
                           num_threads=num_threads, **env_kwargs)


class NativeEnv(gym.Env[np.ndarray, Any]):
    """One native C++ env behind gymnasium's ``Env`` API (what ``gymnasium.make("rltrain/<id>")`` builds).

    Args:
        native_id: a native id (:func:`rltrain.native_envs`), e.g. ``"CartPole-v1"``.
        max_episode_steps: the env's own step limit; None (``gymnasium.make``) leaves it to gymnasium's TimeLimit.
        render_mode: must be None (native envs do not render).
        **env_kwargs: the env's options, as gymnasium's class takes them (``continuous``, ``gravity``...).

    ``reset(seed=s)`` restarts the env's RNG stream at ``s`` as gymnasium's ``reset`` does; the first reset
    without a seed draws fresh entropy. ``native_id`` and ``native_config`` let ``rltrain.make_vec(env, n)`` run
    the same configuration on the batcher.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        native_id: str,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        _no_render(native_id, render_mode)
        single = native_env_spec(native_id).single_class
        if single is None:
            raise ValueError(f"{native_id}: no native single-env class is registered")
        limit = _NO_LIMIT if max_episode_steps is None else max_episode_steps
        self._env: Any = single(**env_kwargs, max_episode_steps=limit)
        self.native_id = native_id
        self.native_config: dict[str, Any] = dict(env_kwargs)
        if max_episode_steps is not None:
            self.native_config["max_episode_steps"] = max_episode_steps
        from rltrain.vec.native import native_spaces

        self.observation_space, self.action_space = native_spaces(native_id, **env_kwargs)
        self.render_mode = None
        self._seeded = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"{gym_id(self.native_id)}: reset options are not supported by native envs")
        super().reset(seed=seed)
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(2**63))  # the fresh entropy super().reset just drew
        self._seeded = True
        return self._env.reset(seed), {}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated = self._env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), {}


def register_gym_ids() -> list[str]:
    """Registers ``rltrain/<id>`` for every native id not under ``rltrain/`` already (a no-op for ids already
    registered, so that re-importing warns nothing); returns the gymnasium ids."""
    ids = []
    for native_id in native_envs():
        gid = gym_id(native_id)
        if gid == native_id:
            continue
        ids.append(gid)
        if gid in gym.registry:
            continue
        base = gym.spec(native_id) if native_id in gym.registry else None
        gym.register(
            id=gid,
            entry_point=functools.partial(NativeEnv, native_id),
            vector_entry_point=functools.partial(make_native_vec, native_id),
            max_episode_steps=base.max_episode_steps if base else None,
            reward_threshold=base.reward_threshold if base else None,
            kwargs=dict(base.kwargs) if base else {},
        )
    return ids


# `_register_when_loaded` is set by rltrain.envs when it ran while this module was still loading:
# `import rltrain.vec.gym_registry` as a process's first rltrain import runs gymnasium's first import above, whose
# post-import hook (rltrain/__init__.py) loads rltrain.envs, which then leaves these ids to the end of this module.
# (Not assigned beforehand here: an assignment after the gymnasium import would undo rltrain.envs' note.)
if globals().get("_register_when_loaded"):
    register_gym_ids()
