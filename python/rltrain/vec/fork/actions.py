"""Checking a batch of actions against the action space before anything is stepped (SPEC §2: a bad action
raises ``ValueError`` naming the env; nothing is stepped)."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rltrain.vec.fork.protocol import array_spec

__all__ = ["ActionChecker"]


class ActionChecker:
    """Validates batches of actions for one action space: shape, a dtype that casts safely, bounds or finiteness."""

    def __init__(self, space: gym.Space[Any], num_envs: int) -> None:
        self.space = space
        self.num_envs = num_envs
        self.shape, self.dtype = array_spec(space, "action")
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        if isinstance(space, spaces.Discrete):
            self.kinds = "iu"
            self.low = np.array([space.start], dtype=np.int64)
            self.high = np.array([space.start + space.n - 1], dtype=np.int64)
        elif isinstance(space, spaces.MultiDiscrete):
            self.kinds = "iu"
            self.low = np.asarray(space.start, dtype=np.int64).reshape(-1)
            self.high = (np.asarray(space.start) + space.nvec - 1).astype(np.int64).reshape(-1)
        elif isinstance(space, spaces.MultiBinary):
            self.kinds = "biu"
            self.low = np.zeros(math.prod(self.shape), dtype=np.int64)
            self.high = np.ones(math.prod(self.shape), dtype=np.int64)
        elif isinstance(space, spaces.Box) and self.dtype.kind in "iub":
            self.kinds = "iub" if self.dtype.kind == "b" else "iu"
            self.low = space.low.reshape(-1)
            self.high = space.high.reshape(-1)
        else:
            # Float Box: any real dtype casts (float64 policies driving float32 envs is the usual case).
            self.kinds = "fiu"

    def __call__(self, actions: Any, ids: np.ndarray | None) -> np.ndarray:
        """``actions`` as an array of shape ``(len(ids) or num_envs, *shape)``; ``ValueError`` naming the first bad
        env (``ids[k]`` for row k when ``ids`` is given)."""
        count = self.num_envs if ids is None else len(ids)

        def env_of(pos: int) -> int:
            return pos if ids is None else int(ids[pos])

        if isinstance(actions, (list, tuple)) and len(actions) == count:
            for pos, action in enumerate(actions):
                if np.shape(action) != self.shape:
                    raise ValueError(
                        f"action for env {env_of(pos)} has shape {np.shape(action)}, expected {self.shape} "
                        f"(single_action_space={self.space})"
                    )
        try:
            array = np.asarray(actions)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"actions cannot be converted to an array: {exc}") from exc
        expected = (count, *self.shape)
        if array.shape != expected:
            raise ValueError(
                f"actions must have shape {expected} ({count} envs x action shape {self.shape}), got {array.shape}"
            )
        if array.dtype.kind not in self.kinds:
            raise ValueError(
                f"actions of dtype {array.dtype} cannot be safely cast to the action space dtype "
                f"{self.dtype} (for all envs 0..{self.num_envs - 1})"
            )
        # Cheap whole-batch checks first; the per-env search runs only to name the offending env.
        flat = array.reshape(count, -1)
        if self.low is None or self.high is None:
            if not np.isfinite(array).all():
                pos = int(np.flatnonzero(~np.isfinite(flat).all(axis=1))[0])
                raise ValueError(f"action for env {env_of(pos)} is not finite: {array[pos]!r}; nothing was stepped")
        elif (flat < self.low).any() or (flat > self.high).any():
            pos = int(np.flatnonzero(((flat < self.low) | (flat > self.high)).any(axis=1))[0])
            raise ValueError(
                f"action for env {env_of(pos)} is outside {self.space}: {array[pos]!r}; nothing was stepped"
            )
        return array
