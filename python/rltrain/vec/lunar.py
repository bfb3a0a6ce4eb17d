"""Native LunarLander ids for ``make_vec``, backed by the extension ``rltrain._box2d`` (Box2D 2.3 compiled in).

:mod:`rltrain.vec.registry` imports this module lazily (the first time the registry is consulted for an id it does not
hold), never on ``import rltrain``. A build without the Box2D sources has no ``_box2d``: then nothing is
registered, :data:`UNAVAILABLE` says why, and these ids run gymnasium's env on the fork backend when pybox2d is
installed (:func:`check_gymnasium_fallback` otherwise raises a ``ValueError`` saying what to install).

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

import importlib
import importlib.util
from typing import Any

from rltrain.vec.registry import register_native_env

__all__ = ["LUNAR_IDS", "UNAVAILABLE", "check_gymnasium_fallback", "make_lunar_vec"]

try:
    _box2d: Any = importlib.import_module("rltrain._box2d")
except ImportError as exc:
    # Only the extension itself may be missing or unloadable; any other import failure is a bug and must surface.
    if exc.name not in ("rltrain._box2d", "_box2d"):
        raise
    _box2d = None
    UNAVAILABLE: str | None = (
        f"rltrain was built without rltrain._box2d ({type(exc).__name__}: {exc}); rebuild with network access "
        "or -C cmake.define.RLTRAIN_BOX2D_SOURCE=DIR for the native LunarLander"
    )
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


def check_gymnasium_fallback(env_id: str) -> None:
    """Raises ``ValueError`` when ``env_id`` is one of gymnasium's or rltrain's LunarLander ids, runs through
    gymnasium (no native ``_box2d``), and gymnasium's LunarLander cannot run because pybox2d is missing."""
    if env_id not in LUNAR_IDS and env_id not in ("LunarLander-v2", "LunarLanderContinuous-v2"):
        return
    try:
        found = importlib.util.find_spec("Box2D") is not None
    except (ImportError, ValueError):  # a None entry in sys.modules, or a broken package
        found = False
    if not found:
        why = f"no native LunarLander in this build ({UNAVAILABLE})" if UNAVAILABLE else "the fork backend"
        raise ValueError(
            f"{env_id}: {why} runs gymnasium's LunarLander, which needs pybox2d (the Box2D module), not "
            "installed here: pip install \"gymnasium[box2d]\""
        )
