"""Type stub for rltrain._box2d, the optional extension with the native Box2D environments."""

from typing import Any

import numpy as np
import numpy.typing as npt

SPAWN_MAX_ANGLE: float
SPAWN_MAX_DX: float
BOX2D_VERSION: str

class _LunarLanderAPI:  # stub-only: both classes below expose this API
    def __init__(
        self,
        *,
        continuous: bool = False,
        gravity: float = -10.0,
        enable_wind: bool = False,
        wind_power: float = 15.0,
        turbulence_power: float = 1.5,
        randomize_angle: bool = False,
        randomize_pos: bool = False,
        sparse: bool = False,
    ) -> None: ...
    def seed(self, seed: int) -> None: ...
    def reset(self, seed: int | None = None) -> npt.NDArray[np.float32]: ...
    def step(self, action: Any) -> tuple[npt.NDArray[np.float32], float, bool, bool]: ...
    def place_lander(
        self,
        x: float,
        y: float,
        angle: float = 0.0,
        vx: float = 0.0,
        vy: float = 0.0,
        angular_velocity: float = 0.0,
    ) -> npt.NDArray[np.float32]: ...
    @property
    def continuous(self) -> bool: ...
    @property
    def id(self) -> str: ...
    @property
    def num_actions(self) -> int: ...
    @property
    def max_episode_steps(self) -> int: ...
    @property
    def observation_bounds(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]: ...
    @property
    def helipad_y(self) -> float: ...
    @property
    def terrain_y(self) -> list[float]: ...
    @property
    def elapsed_steps(self) -> int: ...
    @property
    def config(self) -> dict[str, Any]: ...

class LunarLander(_LunarLanderAPI): ...

class ReplayLunarLander(_LunarLanderAPI):
    def set_uniforms(self, u: npt.ArrayLike) -> None: ...
    @property
    def draws_consumed(self) -> int: ...
