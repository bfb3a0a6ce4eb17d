"""Type stub for rltrain._box2d, the optional extension with the native Box2D environments, and its submodule
_testing (declared as an attribute, like rltrain._core's submodules)."""

import types
from typing import Any, Final, TypedDict

import numpy as np
import numpy.typing as npt
from typing_extensions import Unpack

from rltrain._core import _Env, _VecEnv

SPAWN_MAX_ANGLE: float
SPAWN_MAX_DX: float
BOX2D_VERSION: str

class _LunarLanderConfig(TypedDict, total=False):  # stub-only: LunarLanderConfig's fields, the batchers' kwargs
    gravity: float  # -10.0, in (-12, 0)
    enable_wind: bool  # False
    wind_power: float  # 15.0
    turbulence_power: float  # 1.5
    randomize_angle: bool  # False
    randomize_pos: bool  # False
    sparse: bool  # False
    max_episode_steps: int  # 1000

class _LunarLanderAPI(_Env):  # stub-only: LunarLander and _testing.ReplayLunarLander expose this API
    def __init__(self, *, continuous: bool = False, **config: Unpack[_LunarLanderConfig]) -> None: ...
    def place_lander(
        self, x: float, y: float, angle: float = 0.0, vx: float = 0.0, vy: float = 0.0, angular_velocity: float = 0.0
    ) -> npt.NDArray[np.float32]: ...
    continuous: Final[bool]
    id: Final[str]
    num_actions: Final[int]
    max_episode_steps: Final[int]
    observation_bounds: Final[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]
    helipad_y: Final[float]
    terrain_y: Final[list[float]]
    elapsed_steps: Final[int]
    config: Final[dict[str, Any]]

class LunarLander(_LunarLanderAPI): ...

# The batchers (bind_vec_env): keyword arguments are _LunarLanderConfig's; the class is the action type.
class LunarLanderVec(_VecEnv): ...
class LunarLanderContinuousVec(_VecEnv): ...

class _Testing(types.ModuleType):  # stub-only: the type of rltrain._box2d._testing
    class ReplayLunarLander(_LunarLanderAPI):
        def set_uniforms(self, u: npt.ArrayLike) -> None: ...
        @property
        def draws_consumed(self) -> int: ...

_testing: _Testing
