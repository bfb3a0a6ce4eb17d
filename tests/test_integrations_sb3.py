"""rltrain.integrations.sb3 against Stable-Baselines3 itself.

- ``RolloutBuffer``: SB3's PPO and A2C with it end on the same parameters as stock SB3, bit for bit (the kernel does
  SB3's float32 operations in SB3's order), and ``compute_returns_and_advantage`` equals SB3's on random buffers.
- ``make_vec_env``: step by step equal to SB3's ``DummyVecEnv`` over ``Monitor``-wrapped gymnasium envs (SB3's own
  ``make_vec_env``) with the same seeds and actions: observations, rewards, dones, ``terminal_observation``,
  ``TimeLimit.truncated`` and ``episode``; SB3's wrappers, ``evaluate_policy`` and ``learn`` run on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th

pytest.importorskip("stable_baselines3")

from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import RolloutBuffer as SB3RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecFrameStack, VecMonitor, VecNormalize

from rltrain.integrations.sb3 import RltrainVecEnv, RolloutBuffer, make_vec_env

# ------------------------------------------------------------------------------------------------ helpers


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """SB3's tiny MLPs on one torch thread: several times faster than two contended ones on a small machine, and
    the same thread count for the stock and the rltrain runs that are compared bit for bit."""
    before = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(before)



class InfoEnv(gym.Env[np.ndarray, np.int64]):
    """A Python env with step and reset infos and reset options (fork backend only: it is no native id)."""

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(-10.0, 10.0, (2,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.label = "info-env"
        self._x = np.zeros(2, dtype=np.float32)
        self._k = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        start = float((options or {}).get("start", 0.0))
        self._x = (self.np_random.uniform(-1, 1, 2) + start).astype(np.float32)
        self._k = 0
        return self._x.copy(), {"start": start, "first": self._x.copy()}

    def step(self, action: np.int64) -> tuple[np.ndarray, float, bool, bool, dict]:
        self._k += 1
        self._x = (self._x + (0.1 if action else -0.1) + self.np_random.normal(0, 0.1, 2)).astype(np.float32)
        terminated = bool(self.np_random.random() < 0.05)
        return self._x.copy(), float(self._x.sum()), terminated, False, {"k": self._k, "pos": self._x.copy()}

    def double(self, v: int) -> int:
        return 2 * v


def make_info_env() -> gym.Env[Any, Any]:
    return gym.wrappers.TimeLimit(InfoEnv(), max_episode_steps=25)


def random_actions(space: gym.Space[Any], n: int, rng: np.random.Generator) -> np.ndarray:
    if isinstance(space, gym.spaces.Discrete):
        return rng.integers(0, int(space.n), n)
    assert isinstance(space, gym.spaces.Box)
    return rng.uniform(space.low * 1.2, space.high * 1.2, (n, *space.shape)).astype(np.float32)


def assert_same_value(a: Any, b: Any, where: str) -> None:
    if isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), f"{where}: {a} vs {b}"
        for k in b:
            assert_same_value(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b), f"{where}: {a} vs {b}"
    else:
        assert type(a) is type(b) and a == b, f"{where}: {a!r} vs {b!r}"


def assert_same_infos(ours: list[dict[str, Any]], ref: list[dict[str, Any]], where: str) -> int:
    """Equal infos, ``episode["t"]`` aside (wall-clock seconds); returns the number of episode ends seen."""
    ends = 0
    assert len(ours) == len(ref)
    for i, (a, b) in enumerate(zip(ours, ref)):
        if "episode" in b:
            ends += 1
            assert set(a["episode"]) == {"r", "l", "t"} and isinstance(a["episode"]["t"], float)
            assert a["episode"]["t"] >= 0.0
            a = {**a, "episode": {**a["episode"], "t": b["episode"]["t"]}}
        assert_same_value(a, b, f"{where} env {i}")
    return ends


def assert_same_run(ours: Any, ref: Any, steps: int, seed: int = 0) -> tuple[int, int]:
    """Steps both VecEnvs with the same random actions; returns (episode ends, time-outs) seen."""
    rng = np.random.default_rng(seed)
    assert_same_value(ours.reset(), ref.reset(), "reset obs")
    assert_same_infos(ours.reset_infos, ref.reset_infos, "reset infos")
    ends = timeouts = 0
    for t in range(steps):
        actions = random_actions(ref.action_space, ref.num_envs, rng)
        o1, r1, d1, i1 = ours.step(actions)
        o2, r2, d2, i2 = ref.step(actions)
        assert_same_value(o1, o2, f"step {t} obs")
        assert_same_value(r1, r2, f"step {t} rewards")
        assert_same_value(d1, d2, f"step {t} dones")
        ends += assert_same_infos(i1, i2, f"step {t} infos")
        timeouts += sum(bool(i["TimeLimit.truncated"]) for i in i2)
        assert_same_infos(ours.reset_infos, ref.reset_infos, f"step {t} reset infos")
    return ends, timeouts


def params(model: Any) -> dict[str, th.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def assert_same_params(a: dict[str, th.Tensor], b: dict[str, th.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert th.equal(a[k], b[k]), f"{k}: max |diff| {(a[k] - b[k]).abs().max().item()}"


# ------------------------------------------------------------------------------------------------ package face


def test_import_integrations_loads_no_framework() -> None:
    code = "import json, sys, rltrain.integrations; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert loaded.isdisjoint({"stable_baselines3", "torch", "gymnasium"}), loaded


def test_missing_sb3_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['stable_baselines3'] = None\n"
        "try:\n    import rltrain.integrations.sb3\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "pip install stable-baselines3" in out.stdout


def test_attribute_access_loads_the_submodule() -> None:
    import rltrain.integrations as integrations

    assert integrations.sb3.make_vec_env is make_vec_env
    with pytest.raises(AttributeError, match="no attribute"):
        _ = integrations.nope


# ------------------------------------------------------------------------------------------------ rollout buffer


@pytest.mark.parametrize(("gamma", "lam"), [(0.99, 0.95), (0.999, 0.98), (1.0, 1.0), (0.9, 0.0)])
def test_compute_returns_and_advantage_is_sb3s_bitwise(gamma: float, lam: float) -> None:
    rng = np.random.default_rng(7)
    T, N = 97, 33
    obs_space, act_space = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2)
    bufs = [cls(T, obs_space, act_space, gamma=gamma, gae_lambda=lam, n_envs=N) for cls in (SB3RolloutBuffer,
                                                                                               RolloutBuffer)]
    rewards = (rng.normal(size=(T, N)) * 10).astype(np.float32)
    values = (rng.normal(size=(T, N)) * 30).astype(np.float32)
    starts = (rng.random((T, N)) < 0.1).astype(np.float32)
    last_values = th.tensor(rng.normal(size=(N, 1)), dtype=th.float32)
    dones = rng.random(N) < 0.3
    for b in bufs:
        b.rewards[:], b.values[:], b.episode_starts[:] = rewards, values, starts
        b.compute_returns_and_advantage(last_values, dones)
    assert bufs[1].advantages.dtype == np.float32 and bufs[1].returns.dtype == np.float32
    assert np.array_equal(bufs[0].advantages, bufs[1].advantages)
    assert np.array_equal(bufs[0].returns, bufs[1].returns)


PPO_KW: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(n_steps=64, batch_size=64, n_epochs=2),
    "Pendulum-v1": dict(n_steps=256, batch_size=128, n_epochs=2, gae_lambda=0.9),
}


@pytest.mark.parametrize("env_id", sorted(PPO_KW))
def test_ppo_with_rltrain_buffer_and_vec_env_equals_stock_sb3(env_id: str) -> None:
    """Three rollouts and updates; stock SB3, SB3 + rltrain's buffer, SB3 + rltrain's buffer and VecEnv end on the
    same parameters, bit for bit (Pendulum's time-outs go through SB3's terminal_observation bootstrap)."""
    n_envs, kw = 2, PPO_KW[env_id]
    steps = 3 * kw["n_steps"] * n_envs
    results = []
    for env_fn, buffer in ((sb3_make_vec_env, None), (sb3_make_vec_env, RolloutBuffer), (make_vec_env, RolloutBuffer)):
        env = env_fn(env_id, n_envs)
        extra = {} if buffer is None else {"rollout_buffer_class": buffer}
        model = PPO("MlpPolicy", env, seed=3, device="cpu", **kw, **extra)
        assert isinstance(model.rollout_buffer, buffer or SB3RolloutBuffer)
        model.learn(steps)
        assert model.num_timesteps == steps and len(model.ep_info_buffer) > 0
        results.append((params(model), [ep["r"] for ep in model.ep_info_buffer]))
        env.close()
    for p, ep_returns in results[1:]:
        assert_same_params(p, results[0][0])
        assert ep_returns == results[0][1]


def test_a2c_with_rltrain_buffer_and_vec_env_equals_stock_sb3() -> None:
    results = []
    for env_fn, extra in ((sb3_make_vec_env, {}), (make_vec_env, {"rollout_buffer_class": RolloutBuffer})):
        env = env_fn("CartPole-v1", 4)
        model = A2C("MlpPolicy", env, seed=5, device="cpu", n_steps=8, **extra)
        model.learn(3 * 8 * 4)
        results.append(params(model))
        env.close()
    assert_same_params(results[1], results[0])


# ------------------------------------------------------------------------------------------------ VecEnv parity


@pytest.mark.parametrize(
    ("env_id", "backend", "steps"),
    [("CartPole-v1", "native", 400), ("Pendulum-v1", "native", 450), ("MountainCar-v0", "fork", 300)],
)
def test_vec_env_equals_dummy_vec_env(env_id: str, backend: str, steps: int) -> None:
    kw = {"max_episode_steps": 60} if env_id == "MountainCar-v0" else {}
    ours = make_vec_env(env_id, 3, seed=11, backend=backend, **kw)
    ref = sb3_make_vec_env(env_id, 3, seed=11, env_kwargs=kw)
    assert (type(ours.venv).__name__ == "NativeVectorEnv") == (backend == "native")
    assert ours.observation_space == ref.observation_space and ours.action_space == ref.action_space
    ends, timeouts = assert_same_run(ours, ref, steps)
    assert ends > 0 and (timeouts > 0 or env_id == "CartPole-v1")
    ours.close()
    ref.close()


def test_fork_vec_env_passes_env_infos_and_reset_infos() -> None:
    """The env's own step infos (its final step's where an episode ended) and reset infos, as DummyVecEnv."""
    ours = make_vec_env(make_info_env, 3, seed=2, backend="fork")
    ref = sb3_make_vec_env(make_info_env, 3, seed=2)
    ends, timeouts = assert_same_run(ours, ref, 120)
    assert ends > 0 and timeouts > 0
    ours.close()
    ref.close()


def test_seed_and_set_options_apply_at_the_next_reset() -> None:
    ours = make_vec_env(make_info_env, 3, backend="fork")
    ref = sb3_make_vec_env(make_info_env, 3)
    for env in (ours, ref):
        env.seed(40)
        env.set_options([{"start": 5.0}, {}, {"start": 5.0}])
    assert_same_run(ours, ref, 30)
    for env in (ours, ref):
        env.seed(41)
        env.set_options({"start": -3.0})
    assert_same_run(ours, ref, 5)
    assert ours.reset_infos[0]["start"] == -3.0
    for env in (ours, ref):  # without seed() the streams continue: still equal
        env.set_options(None)
    assert_same_run(ours, ref, 5)
    ours.close()
    ref.close()
    native = make_vec_env("CartPole-v1", 2)
    native.set_options({"start": 1.0})
    with pytest.raises(ValueError, match="options"):
        native.reset()
    native.close()


# ------------------------------------------------------------------------------------------------ SB3 wrappers


def test_vec_normalize_frame_stack_and_monitor_wrap_it() -> None:
    def wrapped(env: Any) -> Any:
        with pytest.warns(UserWarning, match="already wrapped with a `Monitor`"):
            env = VecMonitor(env)
        return VecFrameStack(VecNormalize(env, gamma=0.95), n_stack=3)

    ours = wrapped(make_vec_env("Pendulum-v1", 2, seed=4, max_episode_steps=50))
    ref = wrapped(sb3_make_vec_env("Pendulum-v1", 2, seed=4, env_kwargs={"max_episode_steps": 50}))
    rng = np.random.default_rng(1)
    assert_same_value(ours.reset(), ref.reset(), "reset obs")
    ends = 0
    for t in range(120):
        actions = random_actions(ref.action_space, 2, rng)
        (o1, r1, d1, i1), (o2, r2, d2, i2) = ours.step(actions), ref.step(actions)
        assert_same_value(o1, o2, f"step {t} obs")
        assert_same_value(r1, r2, f"step {t} rewards")
        assert_same_value(d1, d2, f"step {t} dones")
        for a, b in zip(i1, i2):
            assert set(a) == set(b) and a["TimeLimit.truncated"] == b["TimeLimit.truncated"]
            if "terminal_observation" in b:
                ends += 1
                assert np.array_equal(a["terminal_observation"], b["terminal_observation"])
                assert a["episode"]["r"] == b["episode"]["r"] and a["episode"]["l"] == b["episode"]["l"]
    assert ends == 4
    ours.close()
    ref.close()


def test_evaluate_policy_runs_on_it() -> None:
    model = PPO("MlpPolicy", sb3_make_vec_env("CartPole-v1", 1, seed=0), seed=0, device="cpu", n_steps=32,
                batch_size=32)
    results = []
    for env in (make_vec_env("CartPole-v1", 4, seed=9), sb3_make_vec_env("CartPole-v1", 4, seed=9)):
        results.append(evaluate_policy(model, env, n_eval_episodes=8, return_episode_rewards=True))
        env.close()
    assert results[0] == results[1] and len(results[0][0]) == 8


def test_learn_smoke_on_fork_backend() -> None:
    env = make_vec_env("CartPole-v1", 2, seed=0, backend="fork")
    model = PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=32, batch_size=32, n_epochs=1,
                rollout_buffer_class=RolloutBuffer)
    model.learn(128)
    assert model.num_timesteps == 128
    env.close()


# ------------------------------------------------------------------------------------------------ the rest of the API


def test_native_attributes_methods_and_wrappers() -> None:
    env = make_vec_env("CartPole-v1", 3, seed=0)
    ref = sb3_make_vec_env("CartPole-v1", 3, seed=0)
    assert isinstance(env, RltrainVecEnv) and env.num_envs == 3
    assert env.get_attr("render_mode") == [None] * 3
    assert [s.id for s in env.get_attr("spec", indices=[0, 2])] == ["CartPole-v1"] * 2
    assert env.get_attr("action_space", 1) == [gym.spaces.Discrete(2)]
    assert env.has_attr("spec") and not env.has_attr("gravity")
    with pytest.raises(AttributeError, match="native envs run in C\\+\\+"):
        env.get_attr("gravity")
    with pytest.raises(AttributeError, match="backend='fork'"):
        env.set_attr("gravity", 1.0)
    with pytest.raises(AttributeError, match="backend='fork'"):
        env.env_method("render")
    for wrapper in (Monitor, gym.wrappers.TimeLimit, gym.wrappers.OrderEnforcing, gym.wrappers.PassiveEnvChecker,
                    gym.wrappers.RecordEpisodeStatistics, gym.wrappers.ClipAction):
        assert env.env_is_wrapped(wrapper) == ref.env_is_wrapped(wrapper), wrapper
    assert env.env_is_wrapped(Monitor, indices=[1]) == [True]
    with pytest.raises(ValueError, match="indices"):
        env.get_attr("spec", indices=[3])
    env.reset()
    with pytest.warns(UserWarning, match="render_mode"):
        assert env.render() is None
    with pytest.warns(UserWarning, match="rgb_array"):
        assert env.get_images() == [None] * 3
    env.close()
    ref.close()


def test_fork_attributes_methods_and_render() -> None:
    env = make_vec_env(make_info_env, 2, seed=0, backend="fork")
    assert env.get_attr("label") == ["info-env"] * 2 and env.get_attr("label", indices=1) == ["info-env"]
    env.set_attr("label", ["a", "list"])
    assert env.get_attr("label") == [["a", "list"]] * 2
    assert env.env_method("double", 21) == [42, 42]
    assert not env.has_attr("no_such_attribute")
    with pytest.raises(ValueError, match="every env"):
        env.env_method("double", 1, indices=[0])
    with pytest.raises(ValueError, match="every env"):
        env.set_attr("label", "x", indices=[1])
    assert env.env_is_wrapped(Monitor) == [True, True]
    assert env.env_is_wrapped(gym.wrappers.ClipAction) == [False, False]
    env.close()

    ours = make_vec_env("CartPole-v1", 2, seed=1, backend="fork", render_mode="rgb_array")
    ref = sb3_make_vec_env("CartPole-v1", 2, seed=1)
    assert ours.render_mode == ref.render_mode == "rgb_array"
    ours.reset()
    ref.reset()
    image = ours.render()
    assert isinstance(image, np.ndarray) and image.ndim == 3
    assert np.array_equal(image, ref.render())
    ours.close()
    ref.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_envs": 0}, ValueError, "n_envs"),
        ({"n_envs": 2.0}, TypeError, "n_envs"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "1"}, TypeError, "seed"),
        ({"backend": "thread"}, ValueError, "backend"),
    ],
)
def test_make_vec_env_checks_its_arguments(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        make_vec_env("CartPole-v1", **kwargs)


def test_vec_env_checks_what_it_wraps() -> None:
    with pytest.raises(TypeError, match="venv"):
        RltrainVecEnv(gym.make("CartPole-v1"))  # type: ignore[arg-type]
    sync = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="autoreset_mode"):
        RltrainVecEnv(sync)
    sync.close()
    env = make_vec_env("CartPole-v1", 1, seed=0)
    with pytest.raises(RuntimeError, match="step_async"):
        env.step_wait()
    env.close()
