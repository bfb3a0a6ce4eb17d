"""Perturbation wrappers for robustness studies: observation, action, transition and reward noise, delayed
rewards, partial observability and non-stationary dynamics, their low/medium/high presets, and the tables of
physical parameters the transition wrappers perturb. Environment code: no trainer, no torch.

Every wrapper draws its randomness from its own ``numpy.random.Generator``, reseeded by ``reset(seed=s)``
from ``(s, <condition name>)``, so a seeded episode is reproducible and independent of the environment's own
stream. The physical-parameter tables below name attributes that gymnasium 1.x's dynamics actually read
(checked against its source); a parameter the dynamics never read would make the transition wrappers silent
no-ops. One cohesive module (seven small wrappers sharing a base, the tables they read and the presets that
name them), hence a little over 450 lines.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

from rltrain._checks import integer, probability, real

__all__ = [
    "CONDITIONS", "LEVELS", "PRESETS", "ActionNoise", "DelayedReward", "NonStationaryDynamics", "NotApplicableError",
    "ObservationMask", "ObservationNoise", "RewardNoise", "RobustnessWrapper", "TransitionNoise", "make_condition",
    "physics_parameters", "set_physics",
]

ResetResult = tuple[Any, dict[str, Any]]
StepResult = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]

LEVELS: tuple[str, ...] = ("low", "medium", "high")
"""Preset levels, mildest first."""


class NotApplicableError(ValueError):
    """A condition does not apply to an environment (no physical-parameter table, unsupported space)."""


# ------------------------------------------------------------------------------------------------ helpers


def _box_observations(env: gym.Env, who: str) -> gym.spaces.Box:
    space = env.observation_space
    if not isinstance(space, gym.spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        raise NotApplicableError(f"env: {who} needs a floating-point Box observation space, got {space}")
    return space


def _salt(condition: str) -> int:
    return zlib.crc32(condition.encode())


# ------------------------------------------------------------------------------ physical-parameter tables


@dataclasses.dataclass(frozen=True)
class _Physics:
    """The attributes of an env's ``unwrapped`` that its dynamics read, and how to refresh derived ones."""

    label: str
    params: tuple[str, ...]
    sync: Callable[[Any], None] | None = None


def _sync_cartpole(u: Any) -> None:
    # CartPoleEnv.step reads the cached total_mass and polemass_length, not masscart/masspole/length alone.
    u.total_mass = u.masspole + u.masscart
    u.polemass_length = u.masspole * u.length


def _sync_lunar(u: Any) -> None:
    # reset() builds a new b2World from self.gravity; mid-episode changes must reach the live world too.
    world = getattr(u, "world", None)
    if world is not None:
        world.gravity = (0.0, float(u.gravity))


_PHYSICS: dict[str, _Physics] = {
    "gymnasium.envs.classic_control.cartpole.CartPoleEnv": _Physics(
        "CartPole-v1", ("gravity", "masscart", "masspole", "length", "force_mag"), _sync_cartpole),
    # _dsdt reads LINK_MASS_1/2, LINK_LENGTH_1, LINK_COM_POS_1/2 and LINK_MOI (for both links); LINK_LENGTH_2
    # is only drawn by render(), and g = 9.8 is a local constant.
    "gymnasium.envs.classic_control.acrobot.AcrobotEnv": _Physics(
        "Acrobot-v1",
        ("LINK_MASS_1", "LINK_MASS_2", "LINK_LENGTH_1", "LINK_COM_POS_1", "LINK_COM_POS_2", "LINK_MOI")),
    "gymnasium.envs.classic_control.mountain_car.MountainCarEnv": _Physics(
        "MountainCar-v0", ("force", "gravity")),
    # The continuous variant hard-codes its gravity term (0.0025) in step(); only power is an attribute.
    "gymnasium.envs.classic_control.continuous_mountain_car.Continuous_MountainCarEnv": _Physics(
        "MountainCarContinuous-v0", ("power",)),
    "gymnasium.envs.classic_control.pendulum.PendulumEnv": _Physics("Pendulum-v1", ("g", "m", "l")),
    # Engine powers are module constants (shared by every instance), so gravity is the per-env parameter.
    "gymnasium.envs.box2d.lunar_lander.LunarLander": _Physics(
        "LunarLander-v3 (and LunarLanderContinuous-v3, rltrain/DenseLunarLander-v0, "
        "rltrain/SparseLunarLander-v0)",
        ("gravity",), _sync_lunar),
}


def _physics_of(env: gym.Env) -> _Physics:
    u = env.unwrapped
    for cls in type(u).__mro__:
        table = _PHYSICS.get(f"{cls.__module__}.{cls.__qualname__}")
        if table is not None:
            return table
    supported = ", ".join(t.label for t in _PHYSICS.values())
    raise NotApplicableError(
        f"env: no physical-parameter table for {type(u).__name__}; supported envs: {supported}")


def physics_parameters(env: gym.Env) -> dict[str, float]:
    """The current physical parameters of ``env`` (a supported env, wrapped or not) by attribute name."""
    table = _physics_of(env)
    return {k: float(getattr(env.unwrapped, k)) for k in table.params}


def set_physics(env: gym.Env, values: dict[str, float]) -> None:
    """Sets physical parameters of ``env.unwrapped`` and recomputes the quantities derived from them."""
    table = _physics_of(env)
    unknown = sorted(set(values) - set(table.params))
    if unknown:
        raise ValueError(f"values: expected parameters among {list(table.params)}, got {unknown}")
    u = env.unwrapped
    for k, v in values.items():
        setattr(u, k, real(v, f"values[{k!r}]"))
    if table.sync is not None:
        table.sync(u)


# ---------------------------------------------------------------------------------------------- wrappers


class RobustnessWrapper(gym.Wrapper):
    """Base of the perturbation wrappers: own seeded generator, presets, ``settings`` for reports."""

    condition: ClassVar[str] = ""

    def __init__(self, env: gym.Env) -> None:
        if not isinstance(env, gym.Env):
            raise TypeError(f"env: expected a gymnasium.Env, got {type(env).__name__}")
        super().__init__(env)
        self._rng = np.random.default_rng()

    def _reseed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng = np.random.default_rng(np.random.SeedSequence([int(seed), _salt(self.condition)]))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        """Reseeds this wrapper's generator when ``seed`` is given, then resets the wrapped env."""
        self._reseed(seed)
        return self.env.reset(seed=seed, options=options)

    @property
    def settings(self) -> dict[str, Any]:
        """The explicit parameters of this perturbation (JSON-friendly)."""
        return {}

    @classmethod
    def preset(cls, env: gym.Env, level: str) -> RobustnessWrapper:
        """This perturbation at a preset ``level`` ("low", "medium" or "high"); see ``PRESETS``."""
        return cls(env, **_preset_kwargs(cls.condition, level))


class ObservationNoise(RobustnessWrapper):
    """Adds Gaussian noise N(0, std) to every observation (reset and step); the dtype is preserved.

    ``std`` is a number or an array broadcastable to the observation shape (absolute, in observation units).
    Noisy observations may leave the observation space's bounds; they are not clipped.
    """

    condition = "obs_noise"

    def __init__(self, env: gym.Env, std: float | Sequence[float] | np.ndarray) -> None:
        super().__init__(env)
        space = _box_observations(env, "ObservationNoise")
        if np.ndim(std) == 0:
            self.std: float | np.ndarray = real(std, "std", lo=0.0)
        else:
            try:
                arr = np.asarray(std, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"std: expected a number or an array of numbers, got {std!r}") from exc
            if not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ValueError(f"std: expected finite values >= 0, got {std!r}")
            try:
                np.broadcast_shapes(arr.shape, space.shape)
            except ValueError as exc:
                raise ValueError(
                    f"std: expected a shape broadcastable to {space.shape}, got {arr.shape}") from exc
            self.std = arr

    def _noisy(self, obs: Any) -> np.ndarray:
        o = np.asarray(obs)
        return (o + self._rng.standard_normal(o.shape) * self.std).astype(o.dtype, copy=False)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        obs, info = super().reset(seed=seed, options=options)
        return self._noisy(obs), info

    def step(self, action: Any) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info

    @property
    def settings(self) -> dict[str, Any]:
        return {"std": self.std if isinstance(self.std, float) else self.std.tolist()}


class ActionNoise(RobustnessWrapper):
    """Perturbs the agent's action before the env sees it; ``info["applied_action"]`` holds what was applied.

    Discrete spaces (give ``p``): with probability ``p`` the action is replaced by one drawn uniformly from
    the space (which may be the same action). Box spaces (give ``std``): Gaussian noise with standard
    deviation ``std`` times the half-range of each dimension (absolute ``std`` where a bound is infinite),
    then clipped to the bounds.
    """

    condition = "action_noise"

    def __init__(self, env: gym.Env, p: float | None = None, std: float | None = None) -> None:
        super().__init__(env)
        space = env.action_space
        self.p: float | None = None
        self.std: float | None = None
        if isinstance(space, gym.spaces.Discrete):
            if std is not None:
                raise ValueError(f"std: applies to Box action spaces; this env's action space is {space}, "
                                 f"got std={std!r} (use p)")
            if p is None:
                raise ValueError(f"p: expected the probability of a random action for {space}, got None")
            self.p = probability(p, "p")
        elif isinstance(space, gym.spaces.Box):
            if p is not None:
                raise ValueError(f"p: applies to Discrete action spaces; this env's action space is {space}, "
                                 f"got p={p!r} (use std)")
            if std is None:
                raise ValueError(
                    f"std: expected the noise std (fraction of the half-range) for {space}, got None")
            self.std = real(std, "std", lo=0.0)
            low, high = space.low.astype(np.float64), space.high.astype(np.float64)
            finite = np.isfinite(low) & np.isfinite(high)
            half_range = (np.where(finite, high, 0.0) - np.where(finite, low, 0.0)) / 2.0
            self._scale = np.where(finite, half_range, 1.0)
        else:
            raise NotApplicableError(f"env: ActionNoise supports Discrete and Box action spaces, got {space}")

    @classmethod
    def preset(cls, env: gym.Env, level: str) -> RobustnessWrapper:
        kwargs = _preset_kwargs(cls.condition, level)
        if isinstance(env.action_space, gym.spaces.Discrete):
            return cls(env, p=kwargs["p"])
        return cls(env, std=kwargs["std"])

    def step(self, action: Any) -> StepResult:
        space = self.env.action_space
        if isinstance(space, gym.spaces.Discrete):
            assert self.p is not None
            replace = self._rng.random() < self.p
            random_action = int(space.start) + int(self._rng.integers(int(space.n)))
            applied: Any = np.int64(random_action) if replace else action
        else:
            assert isinstance(space, gym.spaces.Box) and self.std is not None
            a = np.asarray(action, dtype=np.float64)
            noisy = a + self._rng.standard_normal(space.shape) * self.std * self._scale
            applied = np.clip(noisy, space.low, space.high).astype(space.dtype)
        obs, reward, terminated, truncated, info = self.env.step(applied)
        return obs, reward, terminated, truncated, {**info, "applied_action": applied}

    @property
    def settings(self) -> dict[str, Any]:
        return {"p": self.p} if self.p is not None else {"std": self.std, "relative_to": "half-range"}


class TransitionNoise(RobustnessWrapper):
    """At each reset, multiplies every physical parameter by an independent factor ~ U[1 - scale, 1 + scale].

    Factors apply to the nominal values captured when wrapping, so they never compound. ``params`` holds the
    parameters of the current episode, ``nominal`` the originals. Supported envs: see ``physics_parameters``
    (others raise ``NotApplicableError``, a ``ValueError``, listing them).
    """

    condition = "transition_noise"

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = real(scale, "scale", lo=0.0, hi=1.0, hi_open=True, what="a number (factors stay positive)")
        self.nominal = physics_parameters(env)
        self.params = dict(self.nominal)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        self._reseed(seed)
        factors = self._rng.uniform(1.0 - self.scale, 1.0 + self.scale, len(self.nominal))
        self.params = {k: v * float(f) for (k, v), f in zip(self.nominal.items(), factors)}
        set_physics(self.env, self.params)
        return self.env.reset(seed=seed, options=options)

    @property
    def settings(self) -> dict[str, Any]:
        return {"scale": self.scale, "parameters": list(self.nominal)}


class NonStationaryDynamics(RobustnessWrapper):
    """Physical parameters start nominal at each reset and drift during the episode.

    Before every step each parameter's log-factor takes an independent N(0, drift) increment and is clipped
    so that the factor stays within ``bounds``. Same parameter tables as ``TransitionNoise``; ``params`` holds
    the current values, ``nominal`` the originals captured when wrapping.
    """

    condition = "nonstationary"

    def __init__(self, env: gym.Env, drift: float, bounds: tuple[float, float] = (0.5, 2.0)) -> None:
        super().__init__(env)
        self.drift = real(drift, "drift", lo=0.0)
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise TypeError(f"bounds: expected a (low, high) pair of factors, got {bounds!r}")
        lo, hi = real(bounds[0], "bounds[0]"), real(bounds[1], "bounds[1]")
        if not 0.0 < lo <= 1.0 <= hi:
            raise ValueError(f"bounds: expected 0 < low <= 1 <= high, got {bounds!r}")
        self.bounds = (lo, hi)
        self.nominal = physics_parameters(env)
        self.params = dict(self.nominal)
        self._log = np.zeros(len(self.nominal))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        self._reseed(seed)
        self._log = np.zeros(len(self.nominal))
        self.params = dict(self.nominal)
        set_physics(self.env, self.params)
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> StepResult:
        step = self._rng.standard_normal(len(self._log)) * self.drift
        self._log = np.clip(self._log + step, math.log(self.bounds[0]), math.log(self.bounds[1]))
        self.params = {k: v * float(math.exp(x)) for (k, v), x in zip(self.nominal.items(), self._log)}
        set_physics(self.env, self.params)
        return self.env.step(action)

    @property
    def settings(self) -> dict[str, Any]:
        return {"drift": self.drift, "bounds": list(self.bounds), "parameters": list(self.nominal)}


class RewardNoise(RobustnessWrapper):
    """Adds Gaussian noise N(0, std) to every reward; observations and episode ends are untouched."""

    condition = "reward_noise"

    def __init__(self, env: gym.Env, std: float) -> None:
        super().__init__(env)
        self.std = real(std, "std", lo=0.0)

    def step(self, action: Any) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward) + float(self._rng.standard_normal()) * self.std, terminated, truncated, info

    @property
    def settings(self) -> dict[str, Any]:
        return {"std": self.std}


class DelayedReward(RobustnessWrapper):
    """Accumulates rewards and pays their sum every ``delay`` steps and at episode end, 0 otherwise.

    The episode total is unchanged (up to floating-point summation order).
    """

    condition = "delayed_reward"

    def __init__(self, env: gym.Env, delay: int) -> None:
        super().__init__(env)
        self.delay = integer(delay, "delay", lo=1)
        self._pending = 0.0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        self._pending = 0.0
        self._t = 0
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._pending += float(reward)
        self._t += 1
        paid = 0.0
        if terminated or truncated or self._t % self.delay == 0:
            paid, self._pending = self._pending, 0.0
        return obs, paid, terminated, truncated, info

    @property
    def settings(self) -> dict[str, Any]:
        return {"delay": self.delay}


class ObservationMask(RobustnessWrapper):
    """Partial observability: each observation entry is independently set to 0 with probability ``p``.

    A new mask is drawn for every observation (reset and step); ``info["observation_mask"]`` is True where an
    entry was hidden.
    """

    condition = "obs_mask"

    def __init__(self, env: gym.Env, p: float) -> None:
        super().__init__(env)
        _box_observations(env, "ObservationMask")
        self.p = probability(p, "p")

    def _masked(self, obs: Any, info: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        o = np.asarray(obs)
        hidden = self._rng.random(o.shape) < self.p
        return np.where(hidden, np.zeros((), o.dtype), o).astype(o.dtype, copy=False), {
            **info, "observation_mask": hidden}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        obs, info = super().reset(seed=seed, options=options)
        return self._masked(obs, info)

    def step(self, action: Any) -> StepResult:
        obs, reward, terminated, truncated, info = self.env.step(action)
        masked, info = self._masked(obs, info)
        return masked, reward, terminated, truncated, info

    @property
    def settings(self) -> dict[str, Any]:
        return {"p": self.p}


CONDITIONS: dict[str, type[RobustnessWrapper]] = {
    cls.condition: cls
    for cls in (ObservationNoise, ActionNoise, TransitionNoise, RewardNoise, DelayedReward, ObservationMask,
                NonStationaryDynamics)
}
"""Condition name -> wrapper class."""

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "obs_noise": {"low": {"std": 0.05}, "medium": {"std": 0.1}, "high": {"std": 0.2}},
    # p for Discrete action spaces, std (fraction of the half-range) for Box ones.
    "action_noise": {"low": {"p": 0.05, "std": 0.1}, "medium": {"p": 0.1, "std": 0.2},
                     "high": {"p": 0.25, "std": 0.4}},
    "transition_noise": {"low": {"scale": 0.1}, "medium": {"scale": 0.25}, "high": {"scale": 0.5}},
    "reward_noise": {"low": {"std": 0.1}, "medium": {"std": 0.5}, "high": {"std": 1.0}},
    "delayed_reward": {"low": {"delay": 5}, "medium": {"delay": 20}, "high": {"delay": 50}},
    "obs_mask": {"low": {"p": 0.1}, "medium": {"p": 0.25}, "high": {"p": 0.5}},
    "nonstationary": {"low": {"drift": 0.005}, "medium": {"drift": 0.01}, "high": {"drift": 0.02}},
}
"""Condition name -> level -> constructor keyword arguments."""


def _preset_kwargs(name: str, level: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"name: expected one of {sorted(PRESETS)}, got {name!r}")
    if level not in PRESETS[name]:
        raise ValueError(f"level: expected one of {list(LEVELS)}, got {level!r}")
    return dict(PRESETS[name][level])


def make_condition(env: gym.Env, name: str, level: str) -> RobustnessWrapper:
    """Wraps ``env`` in condition ``name`` (a key of ``PRESETS``) at preset ``level``."""
    _preset_kwargs(name, level)
    return CONDITIONS[name].preset(env, level)
