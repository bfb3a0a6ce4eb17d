"""Type stubs of the compiled core (generated with pybind11-stubgen; regenerate after changing the bindings)."""
"""
rltrain compiled core: kernels, thread pool, native environments
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Acrobot', 'AcrobotVec', 'CartPole', 'CartPoleVec', 'MountainCar', 'MountainCarContinuous', 'MountainCarContinuousVec', 'MountainCarVec', 'NATIVE_ENVS', 'Pendulum', 'PendulumVec', 'build_info', 'discounted_returns', 'episodic_advantages', 'gae', 'get_num_threads', 'group_normalize', 'hybrid_advantages', 'per_step_advantages', 'ppo_loss_grad', 'rms_normalize', 'rms_update', 'set_num_threads']
class CartPoleVec:
    """
    Batch of native CartPole-v1 envs stepped on a thread pool, with same-step autoreset.
    
    Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, valid until the next reset()/step(); copy them to keep them. recv() returns copies.
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = 'CartPole-v1'
    num_actions: typing.ClassVar[int] = 2
    obs_dim: typing.ClassVar[int] = 4
    def __init__(self, num_envs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex | None = None, identical_seeds: bool = False, **kwargs) -> None:
        ...
    def buffers(self) -> dict:
        """
        Read-only views of every buffer, refreshed in place by each reset()/step().
        """
    def close(self) -> None:
        """
        Stops the threads; buffers stay readable. Idempotent.
        """
    def recv(self, batch_size: typing.SupportsInt | typing.SupportsIndex | None = None, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> dict:
        """
        Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.
        """
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.ndarray:
        """
        Starts a new episode in every env; returns a view of obs [N, obs_dim].
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.
        """
    def seed_env(self, env_id: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def send(self, actions: typing.Any, env_ids: typing.Any = None) -> None:
        """
        Queues one step for each env in env_ids (all envs if None) and returns at once.
        """
    def step(self, actions: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """
        Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is already the next episode's first observation; see buffers() for final_obs and episode statistics.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def identical_seeds(self) -> bool:
        ...
    @property
    def max_episode_steps(self) -> int:
        ...
    @property
    def num_envs(self) -> int:
        ...
    @property
    def num_in_flight(self) -> int:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class CartPole:
    """
    One native CartPole-v1 env (gymnasium.make semantics).
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = 'CartPole-v1'
    num_actions: typing.ClassVar[int] = 2
    obs_dim: typing.ClassVar[int] = 4
    def __init__(self, **kwargs) -> None:
        ...
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        Like env.reset(seed=...)[0]: the seed restarts the RNG stream.
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def step(self, action: typing.Any) -> tuple[numpy.typing.NDArray[numpy.float32], float, bool, bool]:
        """
        Returns (obs, reward, terminated, truncated) like gymnasium's step without info.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class AcrobotVec:
    """
    Batch of native Acrobot-v1 envs stepped on a thread pool, with same-step autoreset.
    
    Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, valid until the next reset()/step(); copy them to keep them. recv() returns copies.
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = 'Acrobot-v1'
    num_actions: typing.ClassVar[int] = 3
    obs_dim: typing.ClassVar[int] = 6
    def __init__(self, num_envs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex | None = None, identical_seeds: bool = False, **kwargs) -> None:
        ...
    def buffers(self) -> dict:
        """
        Read-only views of every buffer, refreshed in place by each reset()/step().
        """
    def close(self) -> None:
        """
        Stops the threads; buffers stay readable. Idempotent.
        """
    def recv(self, batch_size: typing.SupportsInt | typing.SupportsIndex | None = None, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> dict:
        """
        Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.
        """
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.ndarray:
        """
        Starts a new episode in every env; returns a view of obs [N, obs_dim].
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.
        """
    def seed_env(self, env_id: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def send(self, actions: typing.Any, env_ids: typing.Any = None) -> None:
        """
        Queues one step for each env in env_ids (all envs if None) and returns at once.
        """
    def step(self, actions: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """
        Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is already the next episode's first observation; see buffers() for final_obs and episode statistics.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def identical_seeds(self) -> bool:
        ...
    @property
    def max_episode_steps(self) -> int:
        ...
    @property
    def num_envs(self) -> int:
        ...
    @property
    def num_in_flight(self) -> int:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class Acrobot:
    """
    One native Acrobot-v1 env (gymnasium.make semantics).
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = 'Acrobot-v1'
    num_actions: typing.ClassVar[int] = 3
    obs_dim: typing.ClassVar[int] = 6
    def __init__(self, **kwargs) -> None:
        ...
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        Like env.reset(seed=...)[0]: the seed restarts the RNG stream.
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def step(self, action: typing.Any) -> tuple[numpy.typing.NDArray[numpy.float32], float, bool, bool]:
        """
        Returns (obs, reward, terminated, truncated) like gymnasium's step without info.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class MountainCarVec:
    """
    Batch of native MountainCar-v0 envs stepped on a thread pool, with same-step autoreset.
    
    Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, valid until the next reset()/step(); copy them to keep them. recv() returns copies.
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = 'MountainCar-v0'
    num_actions: typing.ClassVar[int] = 3
    obs_dim: typing.ClassVar[int] = 2
    def __init__(self, num_envs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex | None = None, identical_seeds: bool = False, **kwargs) -> None:
        ...
    def buffers(self) -> dict:
        """
        Read-only views of every buffer, refreshed in place by each reset()/step().
        """
    def close(self) -> None:
        """
        Stops the threads; buffers stay readable. Idempotent.
        """
    def recv(self, batch_size: typing.SupportsInt | typing.SupportsIndex | None = None, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> dict:
        """
        Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.
        """
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.ndarray:
        """
        Starts a new episode in every env; returns a view of obs [N, obs_dim].
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.
        """
    def seed_env(self, env_id: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def send(self, actions: typing.Any, env_ids: typing.Any = None) -> None:
        """
        Queues one step for each env in env_ids (all envs if None) and returns at once.
        """
    def step(self, actions: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """
        Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is already the next episode's first observation; see buffers() for final_obs and episode statistics.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def identical_seeds(self) -> bool:
        ...
    @property
    def max_episode_steps(self) -> int:
        ...
    @property
    def num_envs(self) -> int:
        ...
    @property
    def num_in_flight(self) -> int:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class MountainCar:
    """
    One native MountainCar-v0 env (gymnasium.make semantics).
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = 'MountainCar-v0'
    num_actions: typing.ClassVar[int] = 3
    obs_dim: typing.ClassVar[int] = 2
    def __init__(self, **kwargs) -> None:
        ...
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        Like env.reset(seed=...)[0]: the seed restarts the RNG stream.
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def step(self, action: typing.Any) -> tuple[numpy.typing.NDArray[numpy.float32], float, bool, bool]:
        """
        Returns (obs, reward, terminated, truncated) like gymnasium's step without info.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class MountainCarContinuousVec:
    """
    Batch of native MountainCarContinuous-v0 envs stepped on a thread pool, with same-step autoreset.
    
    Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, valid until the next reset()/step(); copy them to keep them. recv() returns copies.
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = False
    env_id: typing.ClassVar[str] = 'MountainCarContinuous-v0'
    num_actions = None
    obs_dim: typing.ClassVar[int] = 2
    def __init__(self, num_envs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex | None = None, identical_seeds: bool = False, **kwargs) -> None:
        ...
    def buffers(self) -> dict:
        """
        Read-only views of every buffer, refreshed in place by each reset()/step().
        """
    def close(self) -> None:
        """
        Stops the threads; buffers stay readable. Idempotent.
        """
    def recv(self, batch_size: typing.SupportsInt | typing.SupportsIndex | None = None, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> dict:
        """
        Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.
        """
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.ndarray:
        """
        Starts a new episode in every env; returns a view of obs [N, obs_dim].
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.
        """
    def seed_env(self, env_id: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def send(self, actions: typing.Any, env_ids: typing.Any = None) -> None:
        """
        Queues one step for each env in env_ids (all envs if None) and returns at once.
        """
    def step(self, actions: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """
        Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is already the next episode's first observation; see buffers() for final_obs and episode statistics.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def identical_seeds(self) -> bool:
        ...
    @property
    def max_episode_steps(self) -> int:
        ...
    @property
    def num_envs(self) -> int:
        ...
    @property
    def num_in_flight(self) -> int:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class MountainCarContinuous:
    """
    One native MountainCarContinuous-v0 env (gymnasium.make semantics).
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = False
    env_id: typing.ClassVar[str] = 'MountainCarContinuous-v0'
    num_actions = None
    obs_dim: typing.ClassVar[int] = 2
    def __init__(self, **kwargs) -> None:
        ...
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        Like env.reset(seed=...)[0]: the seed restarts the RNG stream.
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def step(self, action: typing.Any) -> tuple[numpy.typing.NDArray[numpy.float32], float, bool, bool]:
        """
        Returns (obs, reward, terminated, truncated) like gymnasium's step without info.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class PendulumVec:
    """
    Batch of native Pendulum-v1 envs stepped on a thread pool, with same-step autoreset.
    
    Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, valid until the next reset()/step(); copy them to keep them. recv() returns copies.
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = False
    env_id: typing.ClassVar[str] = 'Pendulum-v1'
    num_actions = None
    obs_dim: typing.ClassVar[int] = 3
    def __init__(self, num_envs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex | None = None, identical_seeds: bool = False, **kwargs) -> None:
        ...
    def buffers(self) -> dict:
        """
        Read-only views of every buffer, refreshed in place by each reset()/step().
        """
    def close(self) -> None:
        """
        Stops the threads; buffers stay readable. Idempotent.
        """
    def recv(self, batch_size: typing.SupportsInt | typing.SupportsIndex | None = None, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> dict:
        """
        Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.
        """
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.ndarray:
        """
        Starts a new episode in every env; returns a view of obs [N, obs_dim].
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.
        """
    def seed_env(self, env_id: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def send(self, actions: typing.Any, env_ids: typing.Any = None) -> None:
        """
        Queues one step for each env in env_ids (all envs if None) and returns at once.
        """
    def step(self, actions: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """
        Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is already the next episode's first observation; see buffers() for final_obs and episode statistics.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def identical_seeds(self) -> bool:
        ...
    @property
    def max_episode_steps(self) -> int:
        ...
    @property
    def num_envs(self) -> int:
        ...
    @property
    def num_in_flight(self) -> int:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class Pendulum:
    """
    One native Pendulum-v1 env (gymnasium.make semantics).
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = False
    env_id: typing.ClassVar[str] = 'Pendulum-v1'
    num_actions = None
    obs_dim: typing.ClassVar[int] = 3
    def __init__(self, **kwargs) -> None:
        ...
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.typing.NDArray[numpy.float32]:
        """
        Like env.reset(seed=...)[0]: the seed restarts the RNG stream.
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def step(self, action: typing.Any) -> tuple[numpy.typing.NDArray[numpy.float32], float, bool, bool]:
        """
        Returns (obs, reward, terminated, truncated) like gymnasium's step without info.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
class _SleepEnvVec:
    """
    Batch of native _Sleep-v0 envs stepped on a thread pool, with same-step autoreset.
    
    Arrays returned by reset(), step() and buffers() are read-only views of the C++ buffers, valid until the next reset()/step(); copy them to keep them. recv() returns copies.
    """
    act_dim: typing.ClassVar[int] = 1
    discrete: typing.ClassVar[bool] = True
    env_id: typing.ClassVar[str] = '_Sleep-v0'
    num_actions: typing.ClassVar[int] = 1000
    obs_dim: typing.ClassVar[int] = 2
    def __init__(self, num_envs: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex | None = None, seed: typing.SupportsInt | typing.SupportsIndex | None = None, identical_seeds: bool = False, **kwargs) -> None:
        ...
    def buffers(self) -> dict:
        """
        Read-only views of every buffer, refreshed in place by each reset()/step().
        """
    def close(self) -> None:
        """
        Stops the threads; buffers stay readable. Idempotent.
        """
    def recv(self, batch_size: typing.SupportsInt | typing.SupportsIndex | None = None, timeout: typing.SupportsFloat | typing.SupportsIndex | None = None) -> dict:
        """
        Waits for the first batch_size (default: all) sent envs to finish; returns a dict of fresh arrays with their env_id, obs, rewards, terminated, truncated, final_obs, has_final, episode_return/length/time. Raises TimeoutError after `timeout` seconds, RuntimeError if nothing is in flight.
        """
    def reset(self, seed: typing.SupportsInt | typing.SupportsIndex | None = None) -> numpy.ndarray:
        """
        Starts a new episode in every env; returns a view of obs [N, obs_dim].
        """
    def seed(self, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Seeds env i with seed + i (all with seed if identical_seeds); the next reset() uses it.
        """
    def seed_env(self, env_id: typing.SupportsInt | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def send(self, actions: typing.Any, env_ids: typing.Any = None) -> None:
        """
        Queues one step for each env in env_ids (all envs if None) and returns at once.
        """
    def step(self, actions: typing.Any) -> tuple[numpy.ndarray, numpy.ndarray, numpy.ndarray, numpy.ndarray]:
        """
        Steps every env; returns views (obs, rewards, terminated, truncated). Where an episode ended, obs is already the next episode's first observation; see buffers() for final_obs and episode statistics.
        """
    @property
    def act_high(self) -> typing.Any:
        ...
    @property
    def act_low(self) -> typing.Any:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def config(self) -> dict:
        ...
    @property
    def identical_seeds(self) -> bool:
        ...
    @property
    def max_episode_steps(self) -> int:
        ...
    @property
    def num_envs(self) -> int:
        ...
    @property
    def num_in_flight(self) -> int:
        ...
    @property
    def num_threads(self) -> int:
        ...
    @property
    def obs_high(self) -> numpy.ndarray:
        ...
    @property
    def obs_low(self) -> numpy.ndarray:
        ...
def _numpy_f32_trig(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], cosine: bool) -> numpy.typing.NDArray[numpy.float32]:
    """
    Test hook: np.cos / np.sin of float32 scalars, as NumPy computes them.
    """
def _numpy_rng_draws(seed: typing.SupportsInt | typing.SupportsIndex, ops: list) -> list:
    """
    Test hook: default_rng(seed) called with each (kind, low, high) in ops, kind 'uniform' or 'integers'.
    """
def _numpy_rng_uniform(seed: typing.SupportsInt | typing.SupportsIndex, n: typing.SupportsInt | typing.SupportsIndex, low: typing.SupportsFloat | typing.SupportsIndex = 0.0, high: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> numpy.typing.NDArray[numpy.float64]:
    """
    Test hook: n draws of numpy.random.default_rng(seed).uniform(low, high).
    """
def discounted_returns(rewards: typing.Any, dones: typing.Any, last_values: typing.Any, gamma: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any) -> numpy.ndarray:
    ...
def episodic_advantages(rewards: typing.Any, lengths: typing.Any, eps: typing.SupportsFloat | typing.SupportsIndex, ddof: typing.SupportsInt | typing.SupportsIndex, out: typing.Any) -> numpy.ndarray:
    ...
def gae(rewards: typing.Any, values: typing.Any, dones: typing.Any, last_values: typing.Any, terminated: typing.Any, final_values: typing.Any, gamma: typing.SupportsFloat | typing.SupportsIndex, lam: typing.SupportsFloat | typing.SupportsIndex, adv_out: typing.Any, ret_out: typing.Any) -> tuple:
    ...
def get_num_threads() -> int:
    ...
def group_normalize(scores: typing.Any, group_size: typing.SupportsInt | typing.SupportsIndex, scale: typing.SupportsInt | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, ddof: typing.SupportsInt | typing.SupportsIndex, out: typing.Any) -> numpy.ndarray:
    ...
def hybrid_advantages(rewards: typing.Any, lengths: typing.Any, gamma: typing.SupportsFloat | typing.SupportsIndex, alpha: typing.SupportsFloat | typing.SupportsIndex, beta: typing.SupportsFloat | typing.SupportsIndex, clip: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, ddof: typing.SupportsInt | typing.SupportsIndex, out: typing.Any) -> numpy.ndarray:
    ...
def per_step_advantages(rewards: typing.Any, lengths: typing.Any, gamma: typing.SupportsFloat | typing.SupportsIndex, pooled: typing.SupportsInt | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, ddof: typing.SupportsInt | typing.SupportsIndex, out: typing.Any) -> numpy.ndarray:
    ...
def ppo_loss_grad(head: typing.Any, actions: typing.Any, old_logp: typing.Any, adv: typing.Any, returns: typing.Any, values: typing.Any, old_values: typing.Any, clip: typing.SupportsFloat | typing.SupportsIndex, clip_vf: typing.SupportsFloat | typing.SupportsIndex, ent_coef: typing.SupportsFloat | typing.SupportsIndex, vf_coef: typing.SupportsFloat | typing.SupportsIndex, dhead: typing.Any, dvalues: typing.Any, log_std: typing.Any = None, dlog_std: typing.Any = None, normalize_adv: bool = False) -> tuple:
    """
    PPO loss statistics (pg, value, entropy, approx_kl, clip_fraction) and the gradient of SB3's loss with respect to the policy head outputs and the values, written into dhead/dvalues (and dlog_std).
    """
def rms_normalize(x: typing.Any, mean: typing.Any, var: typing.Any, clip: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, out: typing.Any) -> None:
    ...
def rms_update(mean: typing.Any, var: typing.Any, count: typing.SupportsFloat | typing.SupportsIndex, batch: typing.Any) -> float:
    ...
def set_num_threads(num_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def sync_prepare_sleep(words: typing.Any, sleeping: typing.SupportsInt | typing.SupportsIndex, indices: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], target: typing.SupportsInt | typing.SupportsIndex) -> bool:
    ...
def sync_publish(words: typing.Any, index: typing.SupportsInt | typing.SupportsIndex, value: typing.SupportsInt | typing.SupportsIndex, sleeping: typing.SupportsInt | typing.SupportsIndex) -> bool:
    ...
def sync_wait(words: typing.Any, indices: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], target: typing.SupportsInt | typing.SupportsIndex, spin_s: typing.SupportsFloat | typing.SupportsIndex) -> bool:
    ...
NATIVE_ENVS: dict = {'CartPole-v1': 'CartPole', 'Acrobot-v1': 'Acrobot', 'MountainCar-v0': 'MountainCar', 'MountainCarContinuous-v0': 'MountainCarContinuous', 'Pendulum-v1': 'Pendulum'}
build_info: dict = {'sanitizers': '', 'optimized': True, 'compiler': '12.2.0'}
