"""Robustness suite: perturbation wrappers (observation, action, transition and reward noise, delayed rewards,
partial observability, non-stationary dynamics) with low/medium/high presets, and ``rltrain robustness
CHECKPOINT``, which evaluates a trained agent under every preset and reports mean ± 95% CI per condition.

Every wrapper draws its randomness from its own ``numpy.random.Generator``, reseeded by ``reset(seed=s)``
from ``(s, <condition name>)``, so a seeded episode is reproducible and independent of the environment's own
stream. The physical-parameter tables below name attributes that gymnasium 1.x's dynamics actually read
(checked against its source); a parameter the dynamics never read would make the transition wrappers silent
no-ops.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import statistics
import sys
import zlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np

__all__ = [
    "CONDITIONS",
    "LEVELS",
    "PRESETS",
    "ActionNoise",
    "DelayedReward",
    "NonStationaryDynamics",
    "NotApplicableError",
    "ObservationMask",
    "ObservationNoise",
    "RewardNoise",
    "RobustnessWrapper",
    "TransitionNoise",
    "evaluate_robustness",
    "main",
    "make_condition",
    "mean_ci",
    "physics_parameters",
    "set_physics",
    "t_quantile",
    "write_report",
]

ResetResult = tuple[Any, dict[str, Any]]
StepResult = tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]

LEVELS: tuple[str, ...] = ("low", "medium", "high")
"""Preset levels, mildest first."""


class NotApplicableError(ValueError):
    """A condition does not apply to an environment (no physical-parameter table, unsupported space)."""


# --------------------------------------------------------------------------------------------- validation


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return v


def _nonneg(name: str, value: Any) -> float:
    v = _real(name, value)
    if v < 0:
        raise ValueError(f"{name}: expected a number >= 0, got {value!r}")
    return v


def _probability(name: str, value: Any) -> float:
    v = _real(name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    return v


def _int_at_least(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer >= {lo}, got {type(value).__name__} {value!r}")
    if int(value) < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {value!r}")
    return int(value)


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
        setattr(u, k, _real(f"values[{k!r}]", v))
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
            self.std: float | np.ndarray = _nonneg("std", std)
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
            self.p = _probability("p", p)
        elif isinstance(space, gym.spaces.Box):
            if p is not None:
                raise ValueError(f"p: applies to Discrete action spaces; this env's action space is {space}, "
                                 f"got p={p!r} (use std)")
            if std is None:
                raise ValueError(
                    f"std: expected the noise std (fraction of the half-range) for {space}, got None")
            self.std = _nonneg("std", std)
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
        s = _real("scale", scale)
        if not 0.0 <= s < 1.0:
            raise ValueError(f"scale: expected a number in [0, 1) (factors stay positive), got {scale!r}")
        self.scale = s
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
        self.drift = _nonneg("drift", drift)
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise TypeError(f"bounds: expected a (low, high) pair of factors, got {bounds!r}")
        lo, hi = _real("bounds[0]", bounds[0]), _real("bounds[1]", bounds[1])
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
        self.std = _nonneg("std", std)

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
        self.delay = _int_at_least("delay", delay, 1)
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
        self.p = _probability("p", p)

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


# ----------------------------------------------------------------------------------------------- statistics


def _t_abs_cdf(theta: float, dof: int) -> float:
    """P(|T| <= sqrt(dof) tan(theta)) for Student's t with integer ``dof`` (Abramowitz & Stegun 26.7.3-4)."""
    s, c = math.sin(theta), math.cos(theta)
    c2 = c * c
    if dof % 2 == 1:
        total, term = 0.0, c
        for j in range(1, (dof - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * j) / (2 * j + 1)
        return (2.0 / math.pi) * (theta + s * total)
    total, term = 0.0, 1.0
    for j in range(1, dof // 2 + 1):
        total += term
        term *= c2 * (2 * j - 1) / (2 * j)
    return s * total


def t_quantile(q: float, dof: int) -> float:
    """The ``q`` quantile of Student's t distribution with ``dof`` degrees of freedom.

    Exact (closed-form CDF, bisection) up to 1000 degrees of freedom; beyond, the Cornish-Fisher expansion
    around the normal quantile (A&S 26.7.5), whose error there is below 1e-12. No scipy needed.
    """
    q = _real("q", q)
    if not 0.0 < q < 1.0:
        raise ValueError(f"q: expected a probability in (0, 1), got {q!r}")
    dof = _int_at_least("dof", dof, 1)
    if q < 0.5:
        return -t_quantile(1.0 - q, dof)
    if q == 0.5:
        return 0.0
    if dof > 1000:
        z = statistics.NormalDist().inv_cdf(q)
        g1 = (z**3 + z) / 4
        g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
        g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
        g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
        return z + g1 / dof + g2 / dof**2 + g3 / dof**3 + g4 / dof**4
    target = 2.0 * q - 1.0
    lo, hi = 0.0, math.pi / 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if _t_abs_cdf(mid, dof) < target:
            lo = mid
        else:
            hi = mid
    return math.sqrt(dof) * math.tan(0.5 * (lo + hi))


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, half-width of its ``confidence`` interval (Student t, n-1 dof), sample std and n.

    With fewer than two values the half-width and std are None.
    """
    c = _real("confidence", confidence)
    if not 0.0 < c < 1.0:
        raise ValueError(f"confidence: expected a number in (0, 1), got {confidence!r}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values: expected at least one value, got an empty sequence")
    n = int(x.size)
    if n < 2:
        return {"mean": float(x[0]), "ci": None, "std": None, "n": n}
    std = float(np.std(x, ddof=1))
    half_width = t_quantile(0.5 + c / 2, n - 1) * std / math.sqrt(n)
    return {"mean": float(x.mean()), "ci": half_width, "std": std, "n": n}


# ----------------------------------------------------------------------------------------------- evaluation


class _ReturnMeter(gym.Wrapper):
    """Innermost wrapper: the episode's true return and length, whatever the outer wrappers do to rewards."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.total = 0.0
        self.length = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        self.total, self.length = 0.0, 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> StepResult:
        out = self.env.step(action)
        self.total += float(out[1])
        self.length += 1
        return out


@dataclasses.dataclass
class _Slot:
    env: gym.Env
    meter: _ReturnMeter
    episode: int
    obs: Any
    observed: float = 0.0


def _run_episodes(trainer: Any, build: Callable[[], tuple[gym.Env, _ReturnMeter]], seeds: Sequence[int],
                  max_envs: int) -> tuple[list[float], list[float], list[int]]:
    """Runs one episode per seed on up to ``max_envs`` envs in lockstep, one batched predict per step."""
    n = len(seeds)
    true_r, observed_r, lengths = [0.0] * n, [0.0] * n, [0] * n
    pool = [build() for _ in range(min(max_envs, n))]
    active: list[_Slot] = []
    next_ep = 0
    try:
        for env, meter in pool:
            obs, _ = env.reset(seed=int(seeds[next_ep]))
            active.append(_Slot(env, meter, next_ep, obs))
            next_ep += 1
        while active:
            batch = np.stack([np.asarray(s.obs, dtype=np.float32) for s in active])
            actions = np.asarray(trainer.predict(batch, deterministic=True))
            still: list[_Slot] = []
            for s, a in zip(active, actions):
                s.obs, r, terminated, truncated, _ = s.env.step(a)
                s.observed += float(r)
                if not (terminated or truncated):
                    still.append(s)
                    continue
                true_r[s.episode], observed_r[s.episode] = s.meter.total, s.observed
                lengths[s.episode] = s.meter.length
                if next_ep < n:
                    s.obs, _ = s.env.reset(seed=int(seeds[next_ep]))
                    s.episode, s.observed = next_ep, 0.0
                    next_ep += 1
                    still.append(s)
            active = still
    finally:
        for env, _ in pool:
            env.close()
    return true_r, observed_r, lengths


def _entry(condition: str, level: str | None, settings: dict[str, Any], true_r: list[float],
           observed_r: list[float], lengths: list[int]) -> dict[str, Any]:
    stats = mean_ci(true_r)
    return {
        "condition": condition,
        "level": level,
        "settings": settings,
        "mean": stats["mean"],
        "ci95": stats["ci"],
        "std": stats["std"],
        "n": stats["n"],
        "returns": [float(r) for r in true_r],
        "observed_mean": float(np.mean(observed_r)),
        "observed_returns": [float(r) for r in observed_r],
        "mean_length": float(np.mean(lengths)),
    }


def evaluate_robustness(trainer: Any, env_id: Any, conditions: Sequence[str] | None = None,
                        levels: Sequence[str] = LEVELS, episodes: int = 20, seed: int = 0,
                        max_envs: int = 32) -> dict[str, Any]:
    """Evaluates ``trainer`` (anything with ``predict(obs_batch, deterministic=True)``) on ``env_id`` (an id,
    an instance or a factory) nominally and under every condition x level.

    Episode k of every condition is reset with seed ``seed + k`` (common random numbers across conditions).
    The reported ``mean``/``ci95``/``std``/``returns`` are true environment returns (measured below the
    perturbation); ``observed_mean``/``observed_returns`` are what the perturbed reward signal summed to,
    which differs only under reward_noise (delayed_reward preserves the total). Conditions that do not apply
    to the env are listed under ``skipped`` with the reason. Returns a JSON-friendly dict.
    """
    from rltrain.vec.resolve import env_id_of, make_single

    names = list(PRESETS) if conditions is None else list(conditions)
    bad = [c for c in names if c not in PRESETS]
    if bad:
        raise ValueError(f"conditions: expected names among {sorted(PRESETS)}, got {bad}")
    lv = list(levels)
    bad = [x for x in lv if x not in LEVELS]
    if bad or not lv:
        raise ValueError(f"levels: expected a non-empty subset of {list(LEVELS)}, got {lv}")
    episodes = _int_at_least("episodes", episodes, 1)
    seed = _int_at_least("seed", seed, 0)
    max_envs = _int_at_least("max_envs", max_envs, 1)
    seeds = [seed + k for k in range(episodes)]

    def base() -> tuple[gym.Env, _ReturnMeter]:
        meter = _ReturnMeter(make_single(env_id))
        return meter, meter

    results = [_entry("nominal", None, {}, *_run_episodes(trainer, base, seeds, max_envs))]
    skipped: list[dict[str, str]] = []
    for name in names:
        probe = make_single(env_id)
        try:
            make_condition(probe, name, lv[0])
        except NotApplicableError as exc:
            skipped.append({"condition": name, "reason": str(exc)})
            continue
        finally:
            probe.close()
        for level in lv:
            settings: dict[str, Any] = {}

            def build(name: str = name, level: str = level,
                      settings: dict[str, Any] = settings) -> tuple[gym.Env, _ReturnMeter]:
                meter = _ReturnMeter(make_single(env_id))
                wrapped = make_condition(meter, name, level)
                settings.update(wrapped.settings)
                return wrapped, meter

            runs = _run_episodes(trainer, build, seeds, max_envs)
            results.append(_entry(name, level, settings, *runs))
    nominal = results[0]["mean"]
    for r in results:
        r["delta"] = r["mean"] - nominal
    return {
        "env": env_id_of(env_id),
        "episodes": episodes,
        "seed": seed,
        "levels": lv,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metric": "true episode return (mean, 95% CI of the mean: Student t, n-1 dof)",
        "results": results,
        "skipped": skipped,
    }


# -------------------------------------------------------------------------------------------------- report


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def write_report(result: dict[str, Any], out_dir: str) -> tuple[str, str]:
    """Writes ``robustness-<env>.json`` and a bar chart ``robustness-<env>.png`` (one bar per condition x
    level, 95% CI error bars, dashed line at the nominal mean) into ``out_dir``; returns both paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            "rltrain robustness needs matplotlib for its chart (pip install matplotlib)") from exc
    if not isinstance(result, dict) or "results" not in result or not result["results"]:
        raise ValueError("result: expected the dict returned by evaluate_robustness, got "
                         f"{type(result).__name__} without results")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"robustness-{_slug(str(result.get('env', 'env')))}")
    json_path, png_path = stem + ".json", stem + ".png"
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2, allow_nan=False)
        f.write("\n")

    rows = result["results"]
    colors = {"low": "#9ecae1", "medium": "#4292c6", "high": "#08519c", None: "#969696"}
    labels = [r["condition"] if r["level"] is None else f"{r['condition']}/{r['level']}" for r in rows]
    means = [r["mean"] for r in rows]
    errs = [0.0 if r["ci95"] is None else r["ci95"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2.0), 4.5))
    x = np.arange(len(rows))
    ax.bar(x, means, yerr=errs, capsize=3, color=[colors.get(r["level"], "#4292c6") for r in rows])
    ax.axhline(rows[0]["mean"], color="black", linestyle="--", linewidth=1, label="nominal mean")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("episode return (mean ± 95% CI)")
    title = f"{result.get('env', '')}: robustness over {result.get('episodes', '?')} episodes per condition"
    if result.get("skipped"):
        title += f"\n(not applicable: {', '.join(s['condition'] for s in result['skipped'])})"
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return json_path, png_path


def _format_table(result: dict[str, Any]) -> str:
    lines = [f"{'condition':<18}{'level':<8}{'mean ± ci95':>24}{'n':>5}{'delta':>11}"]
    for r in result["results"]:
        ci = "n/a" if r["ci95"] is None else f"{r['ci95']:.2f}"
        cell = f"{r['mean']:.2f} ± {ci}"
        lines.append(f"{r['condition']:<18}{r['level'] or '-':<8}{cell:>24}{r['n']:>5}{r['delta']:>+11.2f}")
    for s in result["skipped"]:
        lines.append(f"{s['condition']:<18}skipped: {s['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``rltrain robustness CHECKPOINT [--env ID] ...``: evaluates, prints a table, writes JSON + PNG."""
    p = argparse.ArgumentParser(
        prog="rltrain robustness",
        description="Evaluate a checkpoint under observation/action/transition/reward perturbations at "
                    "low/medium/high presets.")
    p.add_argument("checkpoint", help="checkpoint written by a trainer's save()")
    p.add_argument("--env", default=None, help="environment id (default: the checkpoint's env)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per condition and level (default 20)")
    p.add_argument("--conditions", default=None,
                   help=f"comma-separated subset of {','.join(PRESETS)} (default all)")
    p.add_argument("--levels", default=",".join(LEVELS), help="comma-separated subset of low,medium,high")
    p.add_argument("--seed", type=int, default=0,
                   help="episode k of every condition uses seed SEED+k (default 0)")
    p.add_argument("--out", default=None, help="output directory (default: <checkpoint dir>/robustness)")
    p.add_argument("--device", default="cpu", help="device to load the policy on (default cpu)")
    try:
        a = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2

    def fail(msg: str) -> int:
        print(f"rltrain robustness: error: {msg}", file=sys.stderr)
        return 2

    if not os.path.isfile(a.checkpoint):
        return fail(f"checkpoint: no such file {a.checkpoint!r}")
    conditions = None if a.conditions is None else [c.strip() for c in a.conditions.split(",") if c.strip()]
    levels = [x.strip() for x in a.levels.split(",") if x.strip()]
    try:
        if conditions is not None and (not conditions or any(c not in PRESETS for c in conditions)):
            raise ValueError(f"--conditions: expected a comma-separated subset of {','.join(PRESETS)}, "
                             f"got {a.conditions!r}")
        if not levels or any(x not in LEVELS for x in levels):
            raise ValueError(
                f"--levels: expected a comma-separated subset of {','.join(LEVELS)}, got {a.levels!r}")
        if a.episodes < 1:
            raise ValueError(f"--episodes: expected an integer >= 1, got {a.episodes}")
        if a.seed < 0:
            raise ValueError(f"--seed: expected an integer >= 0, got {a.seed}")
        from rltrain.algos.base import BaseTrainer

        try:
            trainer = BaseTrainer.load(a.checkpoint, device=a.device, env=a.env, verbose=0)
        except (ValueError, TypeError):
            raise
        except Exception as exc:  # torch.load on a corrupt or foreign file raises many kinds of error
            raise ValueError(
                f"checkpoint: cannot load {a.checkpoint!r}: {type(exc).__name__}: {exc}") from exc
        env = a.env if a.env is not None else trainer.cfg.env
        result = evaluate_robustness(trainer, env, conditions=conditions, levels=levels, episodes=a.episodes,
                                     seed=a.seed)
        result = {"checkpoint": os.path.abspath(a.checkpoint), "algo": trainer.algo,
                  "trained_timesteps": int(trainer.num_timesteps), **result}
        out = a.out if a.out is not None else os.path.join(os.path.dirname(os.path.abspath(a.checkpoint)),
                                                           "robustness")
        json_path, png_path = write_report(result, out)
    except (ValueError, TypeError, RuntimeError) as exc:
        return fail(str(exc))
    print(_format_table(result))
    print(f"wrote {json_path}\nwrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
