"""Type stub of rltrain._core, the compiled core, and of its submodules (kernels, envs, sync, _testing).

The submodules are attributes of the extension (``from rltrain._core import kernels``; ``import
rltrain._core.kernels`` works at run time too). Each is declared here as an instance of a stub-only
``types.ModuleType`` subclass, and the batcher and single-env classes share stub-only base classes that declare
their common API once (bind_vec_env / bind_single_env in cpp/bindings/vec_binding.hpp).
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt

build_info: dict[str, Any]
MAX_THREADS: int

def default_num_threads() -> int: ...
def available_cpus() -> int: ...

_F32 = npt.NDArray[np.float32]

class _Env:  # stub-only: gymnasium's reset/step on one env (also rltrain._box2d.LunarLander's)
    def seed(self, seed: int) -> None: ...
    def reset(self, seed: int | None = None) -> _F32: ...
    def step(self, action: Any) -> tuple[_F32, float, bool, bool]: ...

class _Spaces:  # stub-only: the spaces of a native env class (read-only; the Final names are properties)
    env_id: ClassVar[str]
    obs_dim: ClassVar[int]
    act_dim: ClassVar[int]
    discrete: ClassVar[bool]
    num_actions: ClassVar[int | None]
    def __init__(self, **kwargs: Any) -> None: ...
    config: Final[dict[str, Any]]
    obs_low: Final[_F32]
    obs_high: Final[_F32]
    act_low: Final[_F32 | None]
    act_high: Final[_F32 | None]

class _VecEnv(_Spaces):  # stub-only: the API of every batcher class (VecEnv<E>, bind_vec_env)
    def __init__(
        self,
        num_envs: int,
        num_threads: int | None = None,
        seed: int | None = None,
        identical_seeds: bool = False,
        **kwargs: Any,
    ) -> None: ...
    num_envs: Final[int]
    num_threads: Final[int]
    identical_seeds: Final[bool]
    num_in_flight: Final[int]
    closed: Final[bool]
    def get_state(self) -> bytes: ...
    def set_state(self, state: bytes) -> None: ...
    def seed(self, seed: int) -> None: ...
    def seed_env(self, env_id: int, seed: int) -> None: ...
    def reset(self, seed: int | None = None) -> _F32: ...
    def step(
        self, actions: npt.ArrayLike
    ) -> tuple[_F32, npt.NDArray[np.float64], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]: ...
    def buffers(self) -> dict[str, npt.NDArray[Any]]: ...
    def send(self, actions: npt.ArrayLike, env_ids: npt.ArrayLike | None = None) -> None: ...
    def recv(self, batch_size: int | None = None, timeout: float | None = None) -> dict[str, npt.NDArray[Any]]: ...
    def close(self) -> None: ...
    max_episode_steps: Final[int]

class _SingleEnv(_Env, _Spaces):  # stub-only: the API of every single-env class (bind_single_env)
    pass

class _Kernels(types.ModuleType):  # stub-only: the type of rltrain._core.kernels (register_kernels/ppo/llm_token.cpp)
    @staticmethod
    def set_num_threads(num_threads: int) -> None: ...
    @staticmethod
    def get_num_threads() -> int: ...
    @staticmethod
    def gae(
        rewards: Any,
        values: Any,
        dones: Any,
        last_values: Any,
        terminated: Any,
        final_values: Any,
        gamma: float,
        lam: float,
        adv_out: Any,
        ret_out: Any,
    ) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]: ...
    @staticmethod
    def discounted_returns(
        rewards: Any, dones: Any, last_values: Any, gamma: float, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def episodic_advantages(
        rewards: Any, lengths: Any, eps: float, ddof: int, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def per_step_advantages(
        rewards: Any, lengths: Any, gamma: float, pooled: int, eps: float, ddof: int, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def hybrid_advantages(
        rewards: Any,
        lengths: Any,
        gamma: float,
        alpha: float,
        beta: float,
        clip: float,
        eps: float,
        ddof: int,
        out: Any,
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def group_normalize(
        scores: Any, group_size: int, scale: int, eps: float, ddof: int, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def group_advantages(
        rewards: Any,
        group_ids: Any,
        group_size: int | None,
        scale: int,
        ddof: int,
        eps: float,
        eps_on: int,
        singleton: int,
        reward_weights: Any,
        combine: int,
        out: Any,
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def rloo_advantages(
        rewards: Any, group_ids: Any, group_size: int | None, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def group_advantages_fast(
        rewards: Any,
        group_ids: Any,
        group_size: Any,
        preset: Any,
        scale: Any,
        ddof: Any,
        eps: Any,
        eps_on: Any,
        reward_weights: Any,
        combine: Any,
        out: Any,
        presets: dict[str, tuple[int, int, float, int, int]],
    ) -> Any: ...
    @staticmethod
    def rloo_advantages_fast(rewards: Any, group_ids: Any, group_size: Any, out: Any) -> Any: ...
    @staticmethod
    def token_returns_fast(token_rewards: Any, mask: Any, gamma: Any, masked: Any, out: Any) -> Any: ...
    @staticmethod
    def token_gae_fast(token_rewards: Any, values: Any, mask: Any, gamma: Any, lam: Any, out: Any) -> Any: ...
    @staticmethod
    def masked_whiten_fast(x: Any, mask: Any, shift_mean: Any, eps: Any, times_mask: Any, out: Any) -> Any: ...
    @staticmethod
    def kl_estimate_fast(logp: Any, ref_logp: Any, mask: Any, kind: Any, clamp: Any, out: Any) -> Any: ...
    @staticmethod
    def token_returns(
        token_rewards: Any, mask: Any, gamma: float, carry: int, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def token_gae(
        token_rewards: Any, values: Any, mask: Any, gamma: float, lam: float, adv_out: Any, ret_out: Any
    ) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]]: ...
    @staticmethod
    def masked_whiten(
        x: Any, mask: Any, shift_mean: bool, eps: float, out: Any, times_mask: bool = False
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def kl_estimate(
        logp: Any, ref_logp: Any, mask: Any, kind: int, clamp: bool, out: Any
    ) -> npt.NDArray[np.floating[Any]]: ...
    @staticmethod
    def rms_update(mean: Any, var: Any, count: float, batch: Any) -> float: ...
    @staticmethod
    def rms_normalize(x: Any, mean: Any, var: Any, clip: float, eps: float, out: Any) -> None: ...
    @staticmethod
    def ppo_loss_grad(
        head: Any,
        actions: Any,
        old_logp: Any,
        adv: Any,
        returns: Any,
        values: Any,
        old_values: Any,
        clip: float,
        clip_vf: float,
        ent_coef: float,
        vf_coef: float,
        dhead: Any,
        dvalues: Any,
        log_std: Any = None,
        dlog_std: Any = None,
        normalize_adv: bool = False,
    ) -> tuple[float, float, float, float, float]: ...

class _Envs(types.ModuleType):  # stub-only: the type of rltrain._core.envs (register_envs.cpp)
    NATIVE_ENVS: dict[str, str]  # gymnasium id -> class name; the batcher is the class name + "Vec"
    class CartPole(_SingleEnv): ...
    class CartPoleVec(_VecEnv): ...
    class Acrobot(_SingleEnv): ...
    class AcrobotVec(_VecEnv): ...
    class MountainCar(_SingleEnv): ...
    class MountainCarVec(_VecEnv): ...
    class MountainCarContinuous(_SingleEnv): ...
    class MountainCarContinuousVec(_VecEnv): ...
    class Pendulum(_SingleEnv): ...
    class PendulumVec(_VecEnv): ...

class _Sync(types.ModuleType):  # stub-only: the type of rltrain._core.sync (register_sync.cpp)
    @staticmethod
    def sync_publish(words: npt.NDArray[np.int64], index: int, value: int, sleeping: int) -> bool: ...
    @staticmethod
    def sync_wait(words: npt.NDArray[np.int64], indices: Sequence[int], target: int, spin_s: float) -> bool: ...
    @staticmethod
    def sync_prepare_sleep(
        words: npt.NDArray[np.int64], sleeping: int, indices: Sequence[int], target: int
    ) -> bool: ...

class _Testing(types.ModuleType):  # stub-only: the type of rltrain._core._testing (register_testing.cpp)
    class SleepEnvVec(_VecEnv): ...

    @staticmethod
    def numpy_rng_uniform(seed: int, n: int, low: float = 0.0, high: float = 1.0) -> npt.NDArray[np.float64]: ...
    @staticmethod
    def numpy_rng_draws(seed: int, ops: list[tuple[str, float, float]]) -> list[float | int]: ...
    @staticmethod
    def numpy_f32_trig(x: npt.ArrayLike, cosine: bool) -> _F32: ...
    # the LLM bench's bare-loop ceilings (register_llm_floor.cpp); float32 C-contiguous arrays, results in out
    @staticmethod
    def floor_groups(x: _F32, out: _F32, eps: float = 1e-4) -> None: ...
    @staticmethod
    def floor_roundtrip(x: _F32, out: _F32, c: float = 1.0) -> float: ...
    @staticmethod
    def floor_scatter(ids: npt.NDArray[np.int64], x: _F32, out: _F32, eps: float = 1e-4) -> None: ...
    @staticmethod
    def floor_chain(r: _F32, mask: _F32, out: _F32, gamma: float = 1.0) -> None: ...
    @staticmethod
    def floor_pass(a: _F32, b: _F32, out: _F32) -> None: ...
    @staticmethod
    def floor_permute(order: npt.NDArray[np.int64], x: _F32, tmp: _F32, out: _F32) -> None: ...
    @staticmethod
    def floor_divider(x: _F32, eps: float = 1e-4) -> float: ...
    # the vector clones' switches (simd_isa.hpp, llm_group_fixed.hpp): tests compare their bits
    @staticmethod
    def cpu_isa() -> int: ...
    @staticmethod
    def set_isa_cap(cap: int) -> None: ...
    @staticmethod
    def set_group_regs(on: bool) -> None: ...

kernels: _Kernels
envs: _Envs
sync: _Sync
_testing: _Testing
