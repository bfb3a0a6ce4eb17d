"""Native LunarLander ids for ``make_vec``, backed by the optional extension ``rltrain._box2d``.

:mod:`rltrain.vec` imports this module lazily (the first time the registry is consulted for an id it does not
hold), never on ``import rltrain``: ``_box2d`` links libbox2d, which a plain ``import rltrain`` must not need.
When ``_box2d`` cannot be imported (built without Box2D, or libbox2d missing at run time) nothing is registered,
:data:`UNAVAILABLE` says why, and these ids run through gymnasium on the fork backend.

Registered ids and the keyword arguments each accepts (everything else is a ``TypeError``, as in gymnasium):

* ``LunarLander-v3``, ``LunarLanderContinuous-v3``: gymnasium's ``continuous``, ``gravity``, ``enable_wind``,
  ``wind_power``, ``turbulence_power`` and ``max_episode_steps``;
* ``rltrain/DenseLunarLander-v0``, ``rltrain/SparseLunarLander-v0``: those plus ``randomize_angle`` and
  ``randomize_pos`` (the id fixes ``sparse``), as :class:`rltrain.envs.DenseLunarLander` takes them, so
  ``make_vec(env.native_id, n, **env.native_config)`` rebuilds a gymnasium-side instance natively.

``continuous`` picks the batcher class (``LunarLanderContinuousVec`` or ``LunarLanderVec``), as it picks the
action space in gymnasium.
"""

from __future__ import annotations

from typing import Any

from rltrain.vec import register_native_env

__all__ = ["LUNAR_IDS", "UNAVAILABLE", "make_lunar_vec"]

try:
    from rltrain import _box2d
except ImportError as exc:
    # Only the extension itself may be missing or unloadable; any other import failure is a bug and must surface.
    # (A failed dlopen, e.g. libbox2d.so absent, names the module by its short name.)
    if exc.name not in ("rltrain._box2d", "_box2d"):
        raise
    _box2d = None
    UNAVAILABLE: str | None = f"{type(exc).__name__}: {exc}"
else:
    UNAVAILABLE = None

_GYM_KWARGS = frozenset({"gravity", "enable_wind", "wind_power", "turbulence_power", "max_episode_steps"})
_SPAWN_KWARGS = frozenset({"randomize_angle", "randomize_pos"})

LUNAR_IDS: dict[str, dict[str, Any]] = {
    "LunarLander-v3": {"continuous": False, "fixed": {}, "spawn": False},
    "LunarLanderContinuous-v3": {"continuous": True, "fixed": {}, "spawn": False},
    "rltrain/DenseLunarLander-v0": {"continuous": False, "fixed": {"sparse": False}, "spawn": True},
    "rltrain/SparseLunarLander-v0": {"continuous": False, "fixed": {"sparse": True}, "spawn": True},
}
"""The native LunarLander ids: default ``continuous``, the configuration the id fixes, whether it takes the
spawn options."""


def make_lunar_vec(
    env_id: str,
    num_envs: int,
    num_threads: int | None,
    seed: int | None,
    identical_seeds: bool,
    **kwargs: Any,
) -> Any:
    """The ``_box2d`` batcher for ``env_id`` configured by gymnasium-style ``kwargs`` (see the module docs)."""
    if _box2d is None:
        raise RuntimeError(f"native LunarLander unavailable: {UNAVAILABLE}")
    entry = LUNAR_IDS[env_id]
    accepted = _GYM_KWARGS | (_SPAWN_KWARGS if entry["spawn"] else frozenset())
    continuous = bool(kwargs.pop("continuous", entry["continuous"]))
    for key in kwargs:
        if key not in accepted:
            hint = " (rltrain/DenseLunarLander-v0 takes it)" if key in _SPAWN_KWARGS else ""
            raise TypeError(
                f"{env_id}: unexpected keyword argument {key!r}{hint}; "
                f"accepted: {', '.join(sorted(accepted | {'continuous'}))}"
            )
    cls = _box2d.LunarLanderContinuousVec if continuous else _box2d.LunarLanderVec
    return cls(num_envs, num_threads, seed, identical_seeds, **kwargs, **entry["fixed"])


def _register() -> None:
    for env_id in LUNAR_IDS:

        def factory(*args: Any, _id: str = env_id, **kwargs: Any) -> Any:
            return make_lunar_vec(_id, *args, **kwargs)

        register_native_env(env_id, factory, _box2d.LunarLander)


if _box2d is not None:
    _register()
