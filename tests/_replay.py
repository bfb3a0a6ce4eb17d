"""Test helper (in tests/, not shipped) comparing the native LunarLander with gymnasium's: both get the same draws.

``ReplayGenerator`` stands in for an env's ``np_random`` and maps supplied uniforms to draws exactly as
``rltrain._box2d._testing.ReplayLunarLander`` (replay_rng.hpp) does, so both environments see identical terrain, initial
push, engine dispersion, wind phase and spawn offsets.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["ReplayGenerator", "replay_reset"]


class ReplayGenerator:
    """The subset of ``numpy.random.Generator`` LunarLander uses, replaying ``u`` (floats in [0, 1))."""

    def __init__(self, u: np.ndarray) -> None:
        self._u = np.asarray(u, dtype=np.float64)
        self._next = 0

    @property
    def consumed(self) -> int:
        """How many uniforms have been drawn."""
        return self._next

    def _take(self, n: int) -> np.ndarray:
        if self._next + n > self._u.size:
            raise IndexError(f"ReplayGenerator: ran out of supplied uniforms after {self._next} draws")
        out = self._u[self._next : self._next + n]
        self._next += n
        return out

    def uniform(self, low: float = 0.0, high: float = 1.0, size: Any = None) -> Any:
        if size is None:
            return low + (high - low) * float(self._take(1)[0])
        shape = (size,) if isinstance(size, int) else tuple(size)
        return low + (high - low) * self._take(math.prod(shape)).reshape(shape)

    def integers(self, low: int, high: int) -> int:
        return low + math.floor(float(self._take(1)[0]) * float(high - low))


def replay_reset(env: Any, u: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Reset a gymnasium LunarLander (wrapped or not) so that the episode draws from ``u``."""
    env.unwrapped.np_random = ReplayGenerator(u)
    obs, info = env.reset()
    return obs, info
