"""rltrain's environments: DenseLunarLander and SparseLunarLander, registered with gymnasium on import, together
with an ``rltrain/<id>`` twin of every native id (:mod:`rltrain.vec.gym_registry`: ``gymnasium.make_vec`` returns
the native batcher).

The classes live in :mod:`rltrain.envs.lunar` and are loaded on first access, so importing this package (and
``rltrain``) needs neither pybox2d nor the optional native extension ``rltrain._box2d``.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import TYPE_CHECKING, Any

import gymnasium

if TYPE_CHECKING:
    from rltrain.envs.lunar import DenseLunarLander, SparseLunarLander

__all__ = ["ENV_IDS", "DenseLunarLander", "SparseLunarLander", "native_lunar_available"]

ENV_IDS: dict[str, str] = {
    "rltrain/DenseLunarLander-v0": "rltrain.envs.lunar:DenseLunarLander",
    "rltrain/SparseLunarLander-v0": "rltrain.envs.lunar:SparseLunarLander",
}
"""gymnasium id -> entry point of every environment this package registers."""


def _register_native_ids() -> None:
    """rltrain/<id> for every native env (rltrain.vec.gym_registry), or, when that module is still loading (its own
    gymnasium import brought us here), a note for it to register them when it ends."""
    module = sys.modules.get("rltrain.vec.gym_registry")
    if module is not None and not hasattr(module, "register_gym_ids"):
        setattr(module, "_register_when_loaded", True)  # noqa: B010 (a module still loading: not typed)
        return
    from rltrain.vec.gym_registry import register_gym_ids

    register_gym_ids()


def _register() -> None:
    # This module is where gymnasium meets rltrain (the trainers and make_vec load it): `import rltrain` and
    # `import rltrain.kernels` stay free of gymnasium, and gymnasium 1.x loads no entry-point plugins.
    # Re-registering an id makes gymnasium warn, so a reload of this module must be a no-op.
    # The sparse env is built without a step limit of its own: gymnasium's TimeLimit (1000 steps, or make's
    # max_episode_steps) ends its episodes, and SparseEpisodeReward, applied outside the TimeLimit, pays there.
    sparse_payout = gymnasium.envs.registration.WrapperSpec(
        name="SparseEpisodeReward", entry_point="rltrain.envs.lunar:SparseEpisodeReward", kwargs={}
    )
    for env_id, entry_point in ENV_IDS.items():
        if env_id not in gymnasium.registry:
            sparse = "Sparse" in env_id
            gymnasium.register(
                id=env_id,
                entry_point=entry_point,
                max_episode_steps=1000,
                reward_threshold=200,
                kwargs={"max_episode_steps": None} if sparse else {},
                additional_wrappers=(sparse_payout,) if sparse else (),
            )
    _register_native_ids()
    for game_id in ("rltrain/TicTacToe-v0", "rltrain/ConnectFour-v0"):
        if game_id not in gymnasium.registry:
            gymnasium.register(id=game_id, entry_point=functools.partial(_make_game, game_id),
                               vector_entry_point=functools.partial(_make_game_vec, game_id))


def _make_game(game_id: str, **kwargs: Any) -> Any:
    """``gymnasium.make`` of a board game: :class:`rltrain.games.GameEnv`."""
    from rltrain.games.env import GameEnv

    return GameEnv(game_id, **kwargs)


def _make_game_vec(game_id: str, num_envs: int = 1, *, num_threads: int | None = None, seed: int | None = None,
                   identical_seeds: bool = False, render_mode: str | None = None, **kwargs: Any) -> Any:
    """``gymnasium.make_vec`` of a board game: ``rltrain.make_vec`` (native, or the Python path for checkpoint
    and callable opponents)."""
    from rltrain.vec import make_vec

    if render_mode is not None:
        raise ValueError(f"render_mode: {game_id} does not render, got {render_mode!r}")
    return make_vec(game_id, num_envs, seed=seed, identical_seeds=identical_seeds, num_threads=num_threads, **kwargs)


def native_lunar_available() -> bool:
    """True when the native LunarLander (``rltrain._box2d``, absent from builds without the Box2D sources) imports."""
    try:
        importlib.import_module("rltrain._box2d")
    except ImportError:
        return False
    return True


def __getattr__(name: str) -> Any:
    if name in ("DenseLunarLander", "SparseLunarLander"):
        return getattr(importlib.import_module("rltrain.envs.lunar"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_register()
