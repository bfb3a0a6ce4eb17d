"""DenseLunarLander and SparseLunarLander: gymnasium's own LunarLander-v3 physics with a randomised spawn
and a sparse (end-of-episode) reward, mirroring the native ``rltrain._box2d`` / lunar_lander.hpp variants.

Each instance keeps the keyword arguments it was built with in ``native_config`` and its id in ``native_id``, so
a trainer can run the same environment natively: ``rltrain.make_vec(env.native_id, n, **env.native_config)``.
The spawn ranges and the rigid placement of the lander are the C++ header's, line for line, and draw from
``self.np_random`` in the same order.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.utils import EzPickle

from rltrain._checks import optional_integer

with warnings.catch_warnings():
    # pybox2d's SWIG types emit DeprecationWarnings on import, and under `-W error` that import segfaults
    # (SWIG < 4.2); silence them for this one import.
    warnings.simplefilter("ignore", DeprecationWarning)
    from gymnasium.envs.box2d.lunar_lander import FPS, LEG_DOWN, SCALE, VIEWPORT_H, VIEWPORT_W, LunarLander

__all__ = ["SPAWN_MAX_ANGLE", "SPAWN_MAX_DX", "DenseLunarLander", "SparseEpisodeReward", "SparseLunarLander"]

SPAWN_MAX_ANGLE = 0.3
"""Randomised spawn tilt ~ uniform(-0.3, 0.3) rad (about 17 degrees; the heuristic pilot recovers up to 0.4)."""
SPAWN_MAX_DX = 3.0
"""Randomised spawn x offset ~ uniform(-3, 3) world units, i.e. +-0.3 in observation x."""


def _shaping(s: list[float]) -> float:
    # gymnasium's potential: distance, speed and tilt penalties plus ten points per leg in contact.
    return float(
        -100 * np.sqrt(s[0] * s[0] + s[1] * s[1])
        - 100 * np.sqrt(s[2] * s[2] + s[3] * s[3])
        - 100 * abs(s[4])
        + 10 * s[6]
        + 10 * s[7]
    )


class DenseLunarLander(LunarLander):
    """LunarLander-v3 with its dense shaped reward and, on request, a randomised spawn.

    Args:
        randomize_angle: after gymnasium's reset, tilt the lander by ``uniform(-SPAWN_MAX_ANGLE, SPAWN_MAX_ANGLE)``.
        randomize_pos: after gymnasium's reset, shift it horizontally by ``uniform(-SPAWN_MAX_DX, SPAWN_MAX_DX)``.
        render_mode, continuous, gravity, enable_wind, wind_power, turbulence_power: as gymnasium's LunarLander.
    """

    sparse: bool = False

    def __init__(
        self,
        randomize_angle: bool = False,
        randomize_pos: bool = False,
        *,
        render_mode: str | None = None,
        continuous: bool = False,
        gravity: float = -10.0,
        enable_wind: bool = False,
        wind_power: float = 15.0,
        turbulence_power: float = 1.5,
    ) -> None:
        physics: dict[str, Any] = {
            "continuous": bool(continuous),
            "gravity": float(gravity),
            "enable_wind": bool(enable_wind),
            "wind_power": float(wind_power),
            "turbulence_power": float(turbulence_power),
        }
        super().__init__(render_mode=render_mode, **physics)
        self.randomize_angle = bool(randomize_angle)
        self.randomize_pos = bool(randomize_pos)
        # make_vec's id and keyword arguments for this configuration (the id carries `sparse`); with
        # rltrain._box2d they run natively, without it through gymnasium.make on the fork backend.
        self.native_id = "rltrain/SparseLunarLander-v0" if self.sparse else "rltrain/DenseLunarLander-v0"
        self.native_config: dict[str, Any] = {
            **physics, "randomize_angle": self.randomize_angle, "randomize_pos": self.randomize_pos
        }
        # The base class pickles its own positional arguments; record this class's keywords instead so that
        # pickling rebuilds the subclass with the same configuration.
        EzPickle.__init__(
            self, randomize_angle=randomize_angle, randomize_pos=randomize_pos, render_mode=render_mode, **physics
        )

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        if self.randomize_angle or self.randomize_pos:
            dtheta = (
                self.np_random.uniform(-SPAWN_MAX_ANGLE, SPAWN_MAX_ANGLE) if self.randomize_angle else 0.0
            )
            dx = self.np_random.uniform(-SPAWN_MAX_DX, SPAWN_MAX_DX) if self.randomize_pos else 0.0
            lander = self.lander
            assert lander is not None
            obs = self.place_lander(
                lander.position.x + dx,
                lander.position.y,
                lander.angle + dtheta,
                lander.linearVelocity.x,
                lander.linearVelocity.y,
                lander.angularVelocity,
            )
        return obs, info

    def place_lander(
        self, x: float, y: float, angle: float, vx: float, vy: float, angular_velocity: float
    ) -> np.ndarray:
        """Move the lander rigidly (legs keep their pose relative to it) to a world pose with the rigid velocity
        field (vx, vy, angular_velocity); return the observation and restart the reward shaping from it."""
        lander = self.lander
        assert lander is not None, "call reset() first"
        cx, cy = lander.position.x, lander.position.y
        dtheta = angle - lander.angle
        c, s = math.cos(dtheta), math.sin(dtheta)
        w = angular_velocity
        for leg in self.legs:
            rx0, ry0 = leg.position.x - cx, leg.position.y - cy
            rx, ry = c * rx0 - s * ry0, s * rx0 + c * ry0
            leg.transform = ((x + rx, y + ry), leg.angle + dtheta)
            leg.linearVelocity = (vx - w * ry, vy + w * rx)
            leg.angularVelocity = w
            leg.awake = True
        lander.transform = ((x, y), angle)
        lander.linearVelocity = (vx, vy)
        lander.angularVelocity = w
        lander.awake = True
        state = self._state()
        self.prev_shaping = _shaping(state)  # type: ignore[assignment]  # gymnasium annotates it as None
        return np.array(state, dtype=np.float32)

    def _state(self) -> list[float]:
        # gymnasium's observation formula (LunarLander.step), evaluated in float64 from Box2D's float32 state.
        assert self.lander is not None
        pos, vel = self.lander.position, self.lander.linearVelocity
        return [
            (pos.x - VIEWPORT_W / SCALE / 2) / (VIEWPORT_W / SCALE / 2),
            (pos.y - (self.helipad_y + LEG_DOWN / SCALE)) / (VIEWPORT_H / SCALE / 2),
            vel.x * (VIEWPORT_W / SCALE / 2) / FPS,
            vel.y * (VIEWPORT_H / SCALE / 2) / FPS,
            self.lander.angle,
            20.0 * self.lander.angularVelocity / FPS,
            1.0 if self.legs[0].ground_contact else 0.0,
            1.0 if self.legs[1].ground_contact else 0.0,
        ]


class SparseLunarLander(DenseLunarLander):
    """DenseLunarLander whose reward is 0 on every step and the episode's summed dense reward on its last one.

    The last step is the terminating one or the ``max_episode_steps``-th, where the env reports
    ``truncated=True`` itself (None: no limit of its own). ``info["dense_reward"]`` carries the per-step dense
    reward. The registered id ``rltrain/SparseLunarLander-v0`` builds it without a limit of its own and lets
    gymnasium's TimeLimit end the episode (1000 steps, or ``gym.make(..., max_episode_steps=N)``); the
    ``SparseEpisodeReward`` wrapper, applied outside the TimeLimit, then pays at whichever step ends it.
    """

    sparse = True

    def __init__(
        self,
        randomize_angle: bool = False,
        randomize_pos: bool = False,
        *,
        max_episode_steps: int | None = 1000,
        **kwargs: Any,
    ) -> None:
        self.max_episode_steps = optional_integer(max_episode_steps, "max_episode_steps", lo=1)
        self._elapsed = 0
        self._episode_return = 0.0
        super().__init__(randomize_angle, randomize_pos, **kwargs)
        if max_episode_steps is not None and max_episode_steps != 1000:
            self.native_config["max_episode_steps"] = max_episode_steps
        EzPickle.__init__(self, randomize_angle=randomize_angle, randomize_pos=randomize_pos,
                          max_episode_steps=max_episode_steps, **kwargs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        # gymnasium's reset runs one internal step() through this class; it belongs to no episode.
        self._elapsed = 0
        self._episode_return = 0.0
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)  # type: ignore[no-untyped-call]
        self._elapsed += 1
        self._episode_return += float(reward)
        limit = self.max_episode_steps
        truncated = truncated or (limit is not None and self._elapsed >= limit)
        info["dense_reward"] = float(reward)
        paid = self._episode_return if (terminated or truncated) else 0.0
        return obs, paid, terminated, truncated, info


class SparseEpisodeReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Pays a sparse env's summed ``info["dense_reward"]`` at the step that ends the episode, whichever wrapper
    inside it ended it (a TimeLimit the env cannot see); steps the env already paid pass through unchanged."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._dense = 0.0
        self._passed = 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self._dense = self._passed = 0.0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._dense += float(info.get("dense_reward", 0.0))
        if terminated or truncated:
            # What the episode earned minus what was already paid out: the env's own payout when it ended the
            # episode itself, the whole sum when an outer TimeLimit did.
            reward = self._dense - self._passed
        self._passed += float(reward)
        return obs, reward, terminated, truncated, info
