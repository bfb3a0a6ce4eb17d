"""ForkVectorEnv: parity with gymnasium's SyncVectorEnv (SAME_STEP), action checks, worker failures, leaks."""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

import rltrain
from rltrain.vec.fork import ForkVectorEnv, WorkerError

SAME_STEP = AutoresetMode.SAME_STEP


class CountingEnv(gym.Env):
    """Deterministic toy env: obs = [start value, step], episode ends after `horizon` steps.

    `fail` makes step number `fail_step` misbehave: "raise", "exit" (os._exit), "hang"; "reset" raises in reset
    after the first one; "create" raises in the constructor.  `info_every` returns {"step": t} every k steps.
    `delay` seconds of sleep in every step (a slow env: the caller stops spinning and sleeps).
    """

    observation_space = spaces.Box(-1e6, 1e6, (2,), np.float32)
    action_space = spaces.Discrete(3)

    def __init__(self, horizon: int = 5, fail: str | None = None, fail_step: int = 3, info_every: int = 0,
                 truncate: bool = False, delay: float = 0.0) -> None:
        if fail == "create":
            raise RuntimeError("factory failure on purpose")
        if fail == "create_hang":
            time.sleep(60)
        self.horizon, self.fail, self.fail_step, self.info_every = horizon, fail, fail_step, info_every
        self.truncate = truncate
        self.delay = delay
        self.t = 0
        self.start = 0.0
        self.resets = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.resets += 1
        if self.fail == "reset" and self.resets > 1:
            raise KeyError("reset failure on purpose")
        self.t = 0
        self.start = float(self.np_random.integers(0, 1000))
        info = {"reset_options": options["tag"]} if options and "tag" in options else {}
        return np.array([self.start, 0.0], np.float32), info

    def step(self, action: Any):
        self.t += 1
        if self.delay:
            time.sleep(self.delay)
        if self.t == self.fail_step:
            if self.fail == "raise":
                raise ZeroDivisionError("step failure on purpose")
            if self.fail == "exit":
                os._exit(3)
            if self.fail == "hang":
                time.sleep(60)
        reward = float(action) + 0.25 * self.t
        done = self.t >= self.horizon
        info: dict[str, Any] = {}
        if self.info_every and self.t % self.info_every == 0:
            info = {"step": self.t, "vec": np.array([self.t, -self.t]), "nested": {"x": float(self.t)}}
        obs = np.array([self.start, self.t], np.float32)
        return obs, reward, done and not self.truncate, done and self.truncate, info


class DictObsEnv(CountingEnv):
    observation_space = spaces.Dict({"x": spaces.Discrete(2)})  # type: ignore[assignment]


def counting(n: int, **overrides: Any) -> list[Callable[[], gym.Env]]:
    """n factories; overrides maps env index -> CountingEnv kwargs (key "all" applies to every env)."""
    common = overrides.pop("all", {})
    return [
        (lambda i=i: CountingEnv(**{"horizon": 3 + i % 4, **common, **overrides.get(str(i), {})}))  # type: ignore[misc]
        for i in range(n)
    ]


def children() -> set[int]:
    """Pids (zombies included) whose parent is this process."""
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.add(int(entry))
    return found


def resources() -> tuple[int, int, set[int], int]:
    return len(os.listdir("/proc/self/fd")), threading.active_count(), children(), len(os.listdir("/dev/shm"))


def assert_info_equal(info: dict[str, Any], ref: dict[str, Any]) -> None:
    assert info.keys() == ref.keys()
    for key, value in info.items():
        if isinstance(value, dict):
            assert_info_equal(value, ref[key])
        elif key == "final_obs":
            for a, b in zip(value, ref[key]):
                assert (a is None) == (b is None)
                if a is not None:
                    np.testing.assert_array_equal(a, b)
        else:
            assert value.dtype == ref[key].dtype
            np.testing.assert_array_equal(value, ref[key])


def assert_same_step(fork_out: tuple, sync_out: tuple, episode_ref: dict[str, Any] | None = None) -> None:
    """Fork step results equal SyncVectorEnv's (episode stats compared with RecordEpisodeStatistics')."""
    for mine, theirs in zip(fork_out[:4], sync_out[:4]):
        assert mine.dtype == theirs.dtype
        np.testing.assert_array_equal(mine, theirs)
    info, ref = dict(fork_out[4]), dict(sync_out[4])
    episode, episode_mask = info.pop("episode", None), info.pop("_episode", None)
    ref_episode, ref_mask = ref.pop("episode", None), ref.pop("_episode", None)
    assert_info_equal(info, ref)
    assert (episode is None) == (ref_episode is None)
    if episode is not None:
        np.testing.assert_array_equal(episode_mask, ref_mask)
        np.testing.assert_array_equal(episode["r"], ref_episode["r"])
        np.testing.assert_array_equal(episode["l"], ref_episode["l"])
        for key in ("_r", "_l", "_t"):
            np.testing.assert_array_equal(episode[key], ref_mask)
        assert np.all(episode["t"] >= 0)


def run_parity(fns: list[Callable[[], gym.Env]], steps: int, seed: int, num_workers: int,
               action_dtype: Any = None, spin: bool = True, pause: float = 0.0) -> int:
    """Step both backends with the same random actions; returns how many episodes ended.

    `pause` seconds between steps (longer than a worker spins: the workers go to sleep between steps)."""
    sync = RecordEpisodeStatistics(SyncVectorEnv(fns, autoreset_mode=SAME_STEP))
    with ForkVectorEnv(fns, num_workers=num_workers, seed=seed, spin=spin) as fork:
        assert fork.single_observation_space == sync.single_observation_space
        assert fork.single_action_space == sync.single_action_space
        assert fork.observation_space == sync.observation_space
        assert fork.action_space == sync.action_space
        assert fork.metadata["autoreset_mode"] == SAME_STEP
        obs, info = fork.reset()
        ref_obs, ref_info = sync.reset(seed=seed)
        np.testing.assert_array_equal(obs, ref_obs)
        assert info.keys() == ref_info.keys()
        fork.action_space.seed(seed)
        ended = 0
        for _ in range(steps):
            actions = fork.action_space.sample()
            if action_dtype is not None:
                actions = actions.astype(action_dtype)
            if pause:
                time.sleep(pause)
            out = fork.step(actions)
            assert_same_step(out, sync.step(actions))
            ended += int(np.sum(out[2] | out[3]))
    sync.close()
    return ended


def test_parity_cartpole() -> None:
    fns = [lambda: gym.make("CartPole-v1") for _ in range(5)]
    assert run_parity(fns, steps=250, seed=123, num_workers=2) > 20


def test_parity_lunar_lander() -> None:
    pytest.importorskip("Box2D")
    fns = [lambda: gym.make("LunarLander-v3") for _ in range(3)]
    assert run_parity(fns, steps=300, seed=7, num_workers=2) > 0


def test_parity_lunar_lander_continuous_and_one_worker() -> None:
    pytest.importorskip("Box2D")
    fns = [lambda: gym.make("LunarLander-v3", continuous=True) for _ in range(2)]
    assert run_parity(fns, steps=150, seed=11, num_workers=1, action_dtype=np.float32) >= 0


def test_parity_info_passthrough_and_truncation() -> None:
    fns = counting(5, all={"info_every": 2}, **{"1": {"truncate": True}})
    assert run_parity(fns, steps=40, seed=3, num_workers=3) > 10


@pytest.mark.parametrize("spin", [False, True])
def test_parity_when_either_side_sleeps(spin: bool) -> None:
    """The step handshake in the shared words when a side gives up spinning and sleeps on its socket: slow envs
    (the caller sleeps), pauses between steps (the workers sleep), with and without spinning at all; info
    replies ride the socket after the words, so stale wake-up bytes must be skipped there too."""
    slow = counting(4, all={"info_every": 2, "delay": 0.003})
    assert run_parity(slow, steps=12, seed=5, num_workers=2, spin=spin) > 3
    fast = counting(5, all={"info_every": 3})
    assert run_parity(fast, steps=30, seed=6, num_workers=2, spin=spin, pause=0.002) > 10
    with ForkVectorEnv(counting(4, all={"delay": 0.003}), num_workers=2, seed=0, spin=spin) as env:
        env.reset()
        for k in range(6):
            env.step(np.zeros(4, dtype=np.int64))
            assert env.get_attr("horizon") == (3, 4, 5, 6)  # control replies after (possibly) stale hints
            if k % 2:
                env.reset(seed=k)
        env.send(np.array([1]), env_ids=[2])
        time.sleep(0.002)
        np.testing.assert_array_equal(env.recv()[4]["env_id"], [2])


def test_autoreset_keys() -> None:
    with ForkVectorEnv(counting(3), num_workers=2, seed=0) as env:  # horizons 3, 4, 5
        obs, info = env.reset()
        assert info == {}
        starts = obs[:, 0].copy()
        for t in range(1, 3):
            obs, rew, term, trunc, info = env.step(np.zeros(3, dtype=np.int64))
            assert info == {} and not term.any() and not trunc.any()
            np.testing.assert_array_equal(obs[:, 1], [t, t, t])
        obs, rew, term, trunc, info = env.step(np.array([2, 1, 0]))
        np.testing.assert_array_equal(term, [True, False, False])
        np.testing.assert_array_equal(info["_final_obs"], [True, False, False])
        np.testing.assert_array_equal(info["_final_info"], [True, False, False])
        assert info["final_obs"].dtype == object and info["final_obs"][1] is None
        np.testing.assert_array_equal(info["final_obs"][0], [starts[0], 3])
        assert obs[0, 1] == 0  # already the first observation of the next episode
        np.testing.assert_array_equal(obs[1:, 1], [3, 3])
        np.testing.assert_array_equal(rew, [2 + 0.75, 1 + 0.75, 0.75])


def test_episode_statistics() -> None:
    with ForkVectorEnv(counting(2), seed=0) as env:  # horizons 3 and 4
        env.reset()
        out = [env.step(np.ones(2, dtype=np.int64)) for _ in range(4)]
        info = out[2][4]
        np.testing.assert_array_equal(info["_episode"], [True, False])
        ep = info["episode"]
        assert ep["r"][0] == pytest.approx(3 * 1 + 0.25 * (1 + 2 + 3)) and ep["r"][1] == 0
        assert ep["l"].tolist() == [3, 0] and ep["l"].dtype == np.int64
        np.testing.assert_array_equal(ep["_r"], [True, False])
        assert ep["t"][0] >= 0 and ep["t"][1] == 0
        info = out[3][4]
        np.testing.assert_array_equal(info["_episode"], [False, True])
        assert info["episode"]["l"].tolist() == [0, 4]
        assert "episode" not in out[0][4] and "episode" not in out[1][4]
    with ForkVectorEnv(counting(1), seed=0, episode_statistics=False) as env:
        env.reset()
        for _ in range(3):
            info = env.step(np.zeros(1, dtype=np.int64))[4]
        assert "_final_obs" in info and "episode" not in info


def test_seeding() -> None:
    def lander_obs(seed: int) -> np.ndarray:
        env = gym.make("CartPole-v1")
        obs = env.reset(seed=seed)[0]
        env.close()
        return obs

    fns = [lambda: gym.make("CartPole-v1") for _ in range(4)]
    with ForkVectorEnv(fns, num_workers=2, seed=10) as env:
        obs, _ = env.reset()
        for i in range(4):
            np.testing.assert_array_equal(obs[i], lander_obs(10 + i))
        obs, _ = env.reset(seed=[5, None, 6, 7])
        np.testing.assert_array_equal(obs[[0, 2, 3]], np.stack([lander_obs(s) for s in (5, 6, 7)]))
        np.testing.assert_array_equal(env.reset(seed=3)[0], np.stack([lander_obs(3 + i) for i in range(4)]))
        with pytest.raises(ValueError, match="length"):
            env.reset(seed=[1, 2])
    with ForkVectorEnv(fns, num_workers=2, seed=10, identical_seeds=True) as env:
        obs, _ = env.reset()
        np.testing.assert_array_equal(obs, np.stack([lander_obs(10)] * 4))
        for _ in range(5):
            obs = env.step(np.array([0, 0, 0, 0]))[0]
        assert (obs == obs[0]).all()
        np.testing.assert_array_equal(env.reset(seed=4)[0], np.stack([lander_obs(4)] * 4))


def test_reset_mask_and_options() -> None:
    fns = counting(3)
    sync = SyncVectorEnv(fns, autoreset_mode=SAME_STEP)
    # gymnasium's RecordEpisodeStatistics loses the reset_mask (SyncVectorEnv pops it first), so compare
    # without episode statistics here.
    with ForkVectorEnv(fns, num_workers=2, episode_statistics=False) as env:
        env.reset(seed=1)
        sync.reset(seed=1)
        for _ in range(2):
            assert_same_step(env.step(np.array([1, 1, 1])), sync.step(np.array([1, 1, 1])))
        mask = np.array([False, True, False])
        obs, info = env.reset(seed=9, options={"reset_mask": mask, "tag": "x"})
        ref_obs, ref_info = sync.reset(seed=9, options={"reset_mask": mask, "tag": "x"})
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(info["_reset_options"], ref_info["_reset_options"])
        assert_same_step(env.step(np.array([0, 2, 1])), sync.step(np.array([0, 2, 1])))
        with pytest.raises(ValueError, match="reset_mask"):
            env.reset(options={"reset_mask": np.zeros(3, dtype=bool)})
    sync.close()


def test_bad_actions_step_nothing() -> None:
    fns = counting(4)
    sync = SyncVectorEnv(fns, autoreset_mode=SAME_STEP)
    with ForkVectorEnv(fns, num_workers=2, seed=0, episode_statistics=False) as env:
        env.reset()
        sync.reset(seed=0)
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros(3, dtype=np.int64))
        with pytest.raises(ValueError, match="shape"):
            env.step(np.zeros((4, 1), dtype=np.int64))
        with pytest.raises(ValueError, match="env 2"):
            env.step([0, 1, np.array([1, 2]), 0])
        with pytest.raises(ValueError, match="dtype"):
            env.step(np.zeros(4, dtype=np.float32))
        with pytest.raises(ValueError, match="env 3"):
            env.step(np.array([0, 1, 2, 3]))
        with pytest.raises(ValueError, match="env 1"):
            env.step(np.array([0, -1, 2, 7]))
        with pytest.raises(ValueError, match=r"shape \(4,\)"):
            env.step(2)
        assert_same_step(env.step(np.array([2, 1, 0, 1])), sync.step(np.array([2, 1, 0, 1])))
    sync.close()


def test_bad_continuous_actions() -> None:
    pytest.importorskip("Box2D")
    fns = [lambda: gym.make("LunarLander-v3", continuous=True) for _ in range(3)]
    with ForkVectorEnv(fns, seed=0) as env:
        env.reset()
        actions = np.zeros((3, 2), dtype=np.float64)  # float64 into a float32 Box is fine
        env.step(actions)
        actions[1, 1] = np.nan
        with pytest.raises(ValueError, match="env 1"):
            env.step(actions)
        with pytest.raises(ValueError, match="dtype"):
            env.step(np.zeros((3, 2), dtype=bool))
        with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
            env.step(np.zeros((3, 3), dtype=np.float32))


def test_worker_exception_carries_traceback() -> None:
    before = children()
    env = ForkVectorEnv(counting(4, **{"2": {"fail": "raise", "horizon": 10}}), num_workers=2, seed=0)
    env.reset()
    env.step(np.zeros(4, dtype=np.int64))
    env.step(np.zeros(4, dtype=np.int64))
    start = time.monotonic()
    with pytest.raises(WorkerError, match="ZeroDivisionError") as excinfo:
        env.step(np.zeros(4, dtype=np.int64))
    assert time.monotonic() - start < 5
    error = excinfo.value
    assert error.worker == 1 and error.env_index == 2
    assert error.worker_traceback is not None and "step failure on purpose" in error.worker_traceback
    assert "in step" in error.worker_traceback and "env 2" in str(error)
    assert children() == before and env.closed
    with pytest.raises(RuntimeError, match="closed"):
        env.step(np.zeros(4, dtype=np.int64))
    env.close()


def test_worker_exception_in_reset_and_factory() -> None:
    env = ForkVectorEnv(counting(2, **{"1": {"fail": "reset"}}), seed=0)
    env.reset()
    with pytest.raises(WorkerError, match="KeyError") as excinfo:
        env.reset()
    assert excinfo.value.env_index == 1 and "reset failure on purpose" in str(excinfo.value)
    env.close()
    before = children()
    with pytest.raises(WorkerError, match="factory failure on purpose") as excinfo:
        ForkVectorEnv(counting(3, **{"2": {"fail": "create"}}), num_workers=3)
    assert excinfo.value.env_index == 2
    assert children() == before


@pytest.mark.parametrize("how", ["os._exit", "SIGKILL"])
def test_dead_worker_is_reported(how: str) -> None:
    before = children()
    fail = {"fail": "exit", "horizon": 10} if how == "os._exit" else {}
    env = ForkVectorEnv(counting(4, **{"0": fail}), num_workers=2, seed=0)
    env.reset()
    env.step(np.zeros(4, dtype=np.int64))
    if how == "SIGKILL":
        os.kill(env._pool.workers[1].process.pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(WorkerError, match="exited with code 3" if how == "os._exit" else "SIGKILL"):
        for _ in range(3):
            env.step(np.zeros(4, dtype=np.int64))
    assert time.monotonic() - start < 5
    assert children() == before


def test_hung_worker_times_out() -> None:
    before = children()
    with ForkVectorEnv(counting(1)) as env:  # "a hung worker raises in the caller within seconds" by default
        assert env.step_timeout == 10.0 and env.startup_timeout == 120.0
    start = time.monotonic()
    with pytest.raises(WorkerError, match="startup_timeout=0.5"):
        ForkVectorEnv(counting(2, **{"1": {"fail": "create_hang"}}), startup_timeout=0.5)
    assert time.monotonic() - start < 5
    assert children() == before
    with pytest.raises(ValueError, match="startup_timeout"):
        ForkVectorEnv(counting(1), startup_timeout=0)
    env = ForkVectorEnv(counting(2, **{"1": {"fail": "hang", "horizon": 10}}), seed=0, step_timeout=0.5)
    env.reset()
    env.step(np.zeros(2, dtype=np.int64))
    env.step(np.zeros(2, dtype=np.int64))
    start = time.monotonic()
    with pytest.raises(WorkerError, match="step_timeout"):
        env.step(np.zeros(2, dtype=np.int64))
    assert time.monotonic() - start < 5
    assert children() == before


def test_unsupported_and_mismatched_spaces() -> None:
    with pytest.raises(TypeError, match="Dict"):
        ForkVectorEnv([DictObsEnv])
    with pytest.raises(ValueError, match="observation"):
        ForkVectorEnv([lambda: gym.make("CartPole-v1"), lambda: gym.make("Pendulum-v1")], num_workers=2)
    with pytest.raises(ValueError, match="num_workers"):
        ForkVectorEnv(counting(2), num_workers=3)


def test_send_recv_subset() -> None:
    fns = counting(4)
    with ForkVectorEnv(fns, num_workers=2, seed=0) as env, ForkVectorEnv(fns, num_workers=2, seed=0) as ref:
        env.reset()
        ref.reset()
        env.send(np.array([1, 2]), env_ids=[3, 0])
        with pytest.raises(RuntimeError, match="recv"):
            env.step(np.zeros(4, dtype=np.int64))
        obs, rew, _, _, info = env.recv()
        np.testing.assert_array_equal(info["env_id"], [3, 0])
        np.testing.assert_array_equal(rew, [1.25, 2.25])
        np.testing.assert_array_equal(obs[:, 1], [1, 1])
        full = env.step(np.zeros(4, dtype=np.int64))[0]
        np.testing.assert_array_equal(full[:, 1], [2, 1, 1, 2])
        ref_obs = ref.step(np.zeros(4, dtype=np.int64))[0]
        np.testing.assert_array_equal(full[:, 0], ref_obs[:, 0])
        with pytest.raises(ValueError, match="env_ids"):
            env.send(np.zeros(2, dtype=np.int64), env_ids=[1, 1])
        with pytest.raises(RuntimeError, match="send"):
            env.recv()


def test_call_get_set_attr() -> None:
    with ForkVectorEnv(counting(3), num_workers=2, seed=0) as env:
        env.reset()
        assert env.get_attr("horizon") == (3, 4, 5)
        env.set_attr("horizon", [7, 8, 9])
        assert env.get_attr("horizon") == (7, 8, 9)
        env.set_attr("horizon", 2)
        assert env.call("_np_random") is not None
        assert env.get_attr("horizon") == (2, 2, 2)
        with pytest.raises(WorkerError, match="AttributeError"):
            env.get_attr("no_such_attribute")
        env.step(np.zeros(3, dtype=np.int64))  # a failed call leaves the pool usable


def test_close_reaps_and_is_idempotent() -> None:
    before = children()
    env = ForkVectorEnv(counting(3), num_workers=3)
    pids = {h.process.pid for h in env._pool.workers}
    assert pids <= children()
    env.close()
    env.close()
    assert children() == before
    with ForkVectorEnv(counting(2)) as env:
        env.reset()
    assert env.closed and children() == before
    env = ForkVectorEnv(counting(2))
    del env
    gc.collect()
    assert children() == before


def test_step_before_reset() -> None:
    with ForkVectorEnv(counting(2)) as env, pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, dtype=np.int64))


def test_create_close_cycles_leak_nothing() -> None:
    fns = counting(2)
    with ForkVectorEnv(fns) as env:  # warm up lazily created module state before counting
        env.reset(seed=0)
    fds, threads, kids, shm = resources()
    # Every resource is counted exactly, so one leaked fd, thread, child or segment per cycle shows at once; 60
    # cycles also catch one lost every few cycles (a race) and cost ~5 s instead of 200 cycles' ~20 s.
    for i in range(60):
        env = ForkVectorEnv(fns, seed=i)
        env.reset()
        env.step(np.ones(2, dtype=np.int64))
        env.close()
    assert resources() == (fds, threads, kids, shm)


def test_interrupted_step_closes_the_pool() -> None:
    before = children()
    env = ForkVectorEnv(counting(2, all={"fail": "hang", "horizon": 10}), seed=0)
    env.reset()
    env.step(np.zeros(2, dtype=np.int64))
    env.step(np.zeros(2, dtype=np.int64))

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        with pytest.raises(KeyboardInterrupt):
            env.step(np.zeros(2, dtype=np.int64))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert env.closed and children() == before


def test_fork_backend_says_it_needs_posix(monkeypatch: pytest.MonkeyPatch) -> None:
    # As on Windows: no os.fork. Native ids keep working; anything else gets a clear error, not an AttributeError.
    monkeypatch.delattr(os, "fork")
    with pytest.raises(RuntimeError, match=r"fork backend needs os\.fork.*SyncVectorEnv"):
        rltrain.make_vec("Taxi-v3", 2)
    with rltrain.make_vec("CartPole-v1", 2, seed=0) as env:
        env.reset()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"])
def test_workers_do_not_inherit_the_parents_signal_handlers(tmp_path, signame: str) -> None:
    # A user's `SIGTERM -> trainer.save(path)` handler must not run in every worker on a stale copy of the trainer:
    # a worker gets the default action (here: it dies, and the caller hears of it).
    sig = getattr(signal, signame)
    marker = tmp_path / "handler-ran"

    def handler(signum: int, frame: Any) -> None:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")

    previous = signal.signal(sig, handler)
    try:
        env = ForkVectorEnv([lambda: gym.make("CartPole-v1")] * 2, num_workers=2)
        try:
            env.reset(seed=0)
            for h in env._pool.workers:
                os.kill(h.process.pid, sig)
            for h in env._pool.workers:
                h.process.join(10)
                assert h.process.exitcode == -sig, h.process.exitcode
            with pytest.raises(WorkerError, match=signame):
                env.step(np.zeros(2, dtype=np.int64))
        finally:
            env.close()
        os.kill(os.getpid(), sig)  # the parent keeps its handler
    finally:
        signal.signal(sig, previous)
    assert marker.read_text().split() == [str(os.getpid())]


class _UnpicklableInfo(gym.Wrapper):
    """Puts a lock (which cannot be pickled) into the info of step 3."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.t = 0

    def step(self, action: Any) -> Any:
        obs, r, term, trunc, info = self.env.step(action)
        self.t += 1
        if self.t == 3:
            info = {**info, "handle": threading.Lock()}
        return obs, r, term, trunc, info


@pytest.mark.timeout(60)
def test_unpicklable_info_is_reported_with_key_and_env() -> None:
    fns = [lambda: gym.make("CartPole-v1")] * 3 + [lambda: _UnpicklableInfo(gym.make("CartPole-v1"))]
    env = ForkVectorEnv(fns, num_workers=2)
    try:
        env.reset(seed=0)
        env.step(np.zeros(4, dtype=np.int64))
        env.step(np.zeros(4, dtype=np.int64))
        with pytest.raises(WorkerError, match=r"env 3: info\['handle'\] \(lock\) cannot be pickled") as info:
            env.step(np.zeros(4, dtype=np.int64))
        assert info.value.env_index == 3 and info.value.worker == 1
    finally:
        env.close()


class _SlowStep(gym.Wrapper):
    def step(self, action: Any) -> Any:
        time.sleep(0.3)
        return self.env.step(action)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("call", ["step", "recv", "reset"])
def test_close_from_another_thread_while_a_call_waits(call: str) -> None:
    # close() must never unmap the shared memory under a waiting call: the waiter finishes (or raises a Python
    # error), close() then shuts down, and every later call raises RuntimeError. Never a segfault.
    for delay in (0.0, 0.05, 0.2):
        env = ForkVectorEnv([lambda: _SlowStep(gym.make("CartPole-v1"))] * 2, num_workers=2)
        env.reset(seed=0)
        outcome: dict[str, Any] = {}
        acts = np.zeros(2, dtype=np.int64)
        if call == "recv":
            env.send(acts)

        def waiter(env: ForkVectorEnv = env, acts: np.ndarray = acts, outcome: dict[str, Any] = outcome) -> None:
            try:
                if call == "step":
                    outcome["result"] = env.step(acts)
                elif call == "recv":
                    outcome["result"] = env.recv()
                else:
                    outcome["result"] = env.reset(seed=1)
            except (RuntimeError, WorkerError) as exc:
                outcome["error"] = exc

        t = threading.Thread(target=waiter)
        t.start()
        time.sleep(delay)
        env.close()
        t.join(30)
        assert not t.is_alive()
        assert "result" in outcome or "error" in outcome, outcome
        if "result" in outcome:
            obs = outcome["result"][0]
            assert obs.shape == (2, 4) and np.isfinite(obs).all()
        assert env.closed
        with pytest.raises(RuntimeError, match="closed"):
            env.step(acts)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("spin", [True, False])
@pytest.mark.parametrize("call", ["step", "send-recv", "reset", "call"])
def test_ctrl_c_at_any_moment_leaves_the_env_closed_or_consistent(spin: bool, call: str) -> None:
    # Ctrl-C (KeyboardInterrupt from a signal handler) lands at many points of a call: in the caller's spin, in
    # its sleep, while replies are read. Afterwards the env is closed, or it is consistent: every env has been
    # stepped equally often (no slice stepped twice, no torn reply).
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    closed = consistent = 0
    try:
        for k, delay in enumerate([0.0002, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.013] * 2):
            env = ForkVectorEnv(counting(4, all={"horizon": 10**6, "delay": 0.002 * (k % 3)}), num_workers=2,
                                spin=spin, seed=0)
            try:
                env.reset()
                acts = np.zeros(4, dtype=np.int64)
                signal.setitimer(signal.ITIMER_REAL, delay)
                try:
                    while True:  # until the timer's KeyboardInterrupt lands somewhere in here
                        if call == "step":
                            env.step(acts)
                        elif call == "send-recv":
                            env.send(acts)
                            env.recv()
                        elif call == "reset":
                            env.reset()
                        else:
                            env.get_attr("t")
                except KeyboardInterrupt:
                    pass
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if env.closed:
                    closed += 1
                    continue
                if env._pending is not None:  # interrupted between send and recv: the step is still to collect
                    env.recv()
                steps = np.array(env.get_attr("t"))
                assert (steps == steps[0]).all(), steps
                obs = env.step(acts)[0]
                assert (obs[:, 1] == steps + 1).all(), (obs, steps)
                consistent += 1
            finally:
                env.close()
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert closed + consistent == 16
