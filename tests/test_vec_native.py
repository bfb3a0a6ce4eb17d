"""The native batcher: gymnasium SAME_STEP parity, determinism, async send/recv, validation, lifecycle."""

from __future__ import annotations

import os
import sys
import threading
import types
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rltrain
from rltrain import _core
from rltrain.vec import make_vec, native_envs
from rltrain.vec.native import NativeVectorEnv

pytestmark = pytest.mark.filterwarnings("ignore:.*reward is an inf value:UserWarning")
HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENV_IDS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


def reference(env_id: str, n: int, **kwargs: Any) -> RecordEpisodeStatistics:
    """gymnasium's own same-step vector env with episode statistics: what NativeVectorEnv must equal."""
    envs = SyncVectorEnv([lambda: gym.make(env_id, **kwargs)] * n, autoreset_mode=AutoresetMode.SAME_STEP)
    return RecordEpisodeStatistics(envs)


def sample_actions(env: NativeVectorEnv, rng: np.random.Generator) -> np.ndarray:
    if isinstance(env.single_action_space, gym.spaces.Discrete):
        return rng.integers(0, env.single_action_space.n, env.num_envs)
    return rng.uniform(-2.5, 2.5, (env.num_envs, 1)).astype(np.float32)


def assert_step_equal(ours: tuple, ref: tuple, n: int) -> None:
    for k, name in enumerate(["obs", "rewards", "terminated", "truncated"]):
        assert ours[k].dtype == ref[k].dtype, name
        np.testing.assert_array_equal(ours[k], ref[k], err_msg=name)
    i_ours, i_ref = ours[4], ref[4]
    assert ("final_obs" in i_ours) == ("final_obs" in i_ref)
    if "final_obs" not in i_ref:
        assert "episode" not in i_ours
        return
    assert {"final_obs", "_final_obs", "final_info", "_final_info", "episode", "_episode"} <= set(i_ours)
    np.testing.assert_array_equal(i_ours["_final_obs"], i_ref["_final_obs"])
    assert i_ours["final_obs"].dtype == object and i_ours["final_obs"].shape == (n,)
    for i in range(n):
        if i_ref["_final_obs"][i]:
            assert i_ours["final_obs"][i].tobytes() == i_ref["final_obs"][i].tobytes()
        else:
            assert i_ours["final_obs"][i] is None
    ep_ours, ep_ref = i_ours["episode"], i_ref["episode"]
    for key in ("r", "l"):
        assert ep_ours[key].dtype == ep_ref[key].dtype
        np.testing.assert_array_equal(ep_ours[key], ep_ref[key])
    np.testing.assert_array_equal(i_ours["_episode"], i_ref["_episode"])
    for key in ("_r", "_l", "_t"):
        np.testing.assert_array_equal(ep_ours[key], i_ref["_episode"])
    assert np.all(ep_ours["t"] >= 0) and np.all(ep_ours["t"][~i_ours["_episode"]] == 0)


def threads_now() -> int:
    return len(os.listdir("/proc/self/task"))


# ------------------------------------------------------------------------------------------------ make_vec / API


LUNAR_IDS = [
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
    "rltrain/DenseLunarLander-v0",
    "rltrain/SparseLunarLander-v0",
]


def test_native_envs_and_exports() -> None:
    # LunarLander's ids are native exactly when the optional extension rltrain._box2d imports.
    lunar = LUNAR_IDS if rltrain.envs.native_lunar_available() else []
    games = ["rltrain/ConnectFour-v0", "rltrain/TicTacToe-v0"]  # native too (tests/test_games_env.py)
    assert native_envs() == sorted(ENV_IDS + lunar + games)
    assert rltrain.make_vec is make_vec and rltrain.native_envs is native_envs


def test_spaces_and_metadata() -> None:
    with make_vec("Pendulum-v1", 3, seed=0) as env, make_vec("CartPole-v1", 2, seed=0) as cp:
        ref = SyncVectorEnv([lambda: gym.make("Pendulum-v1")] * 3)
        assert isinstance(env, gym.vector.VectorEnv) and env.num_envs == 3
        assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert env.single_observation_space == ref.single_observation_space
        assert env.single_action_space == ref.single_action_space
        assert env.observation_space == ref.observation_space
        assert env.action_space == ref.action_space
        assert env.spec is not None and env.spec.id == "Pendulum-v1"
        assert cp.single_action_space == gym.spaces.Discrete(2)
        assert cp.action_space == gym.spaces.MultiDiscrete([2, 2])
    assert env.closed


def test_unknown_ids_and_backends() -> None:
    with pytest.raises(ValueError, match="CartPole-v1"):  # the message lists the native ids
        make_vec("Nope-v0", 2, backend="native")
    with pytest.raises(ValueError, match="native envs"):
        make_vec("LunarLanderX-v9", 2)
    with pytest.raises(ValueError, match="backend"):
        make_vec("CartPole-v1", 2, backend="threads")
    with pytest.raises(ValueError, match="num_envs"):
        make_vec("CartPole-v1", 0)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        make_vec("CartPole-v1", 2, gravity=1.0)
    with pytest.raises(ValueError, match="seed"):
        make_vec("CartPole-v1", 2, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        make_vec("CartPole-v1", 3, seed=2**64 - 2)
    make_vec("CartPole-v1", 3, seed=2**64 - 1, identical_seeds=True).close()


def test_fork_backend_is_delegated(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list, dict]] = []

    class FakeFork:
        def __init__(self, env_fns: list, **kw: Any) -> None:
            calls.append((env_fns, kw))

    fake = types.ModuleType("rltrain.vec.fork")
    fake.ForkVectorEnv = FakeFork  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rltrain.vec.fork", fake)
    make_vec("CartPole-v1", 3, backend="fork", seed=4, num_threads=2)
    make_vec("Blackjack-v1", 2, seed=1, identical_seeds=True)  # not native: auto -> fork
    (fns, kw), (fns2, kw2) = calls
    assert len(fns) == 3 and kw == {"num_workers": 2, "seed": 4, "identical_seeds": False}
    assert fns[0]().spec.id == "CartPole-v1"
    assert len(fns2) == 2 and kw2["identical_seeds"] is True


# ------------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_parity_with_gymnasium_same_step(env_id: str) -> None:
    @HYP
    @given(
        seed=st.integers(0, 2**32),
        n=st.integers(1, 5),
        limit=st.one_of(st.none(), st.integers(1, 15)),
        action_seed=st.integers(0, 2**32),
        steps=st.integers(1, 80),
        num_threads=st.integers(1, 3),
    )
    def check(seed: int, n: int, limit: int | None, action_seed: int, steps: int, num_threads: int) -> None:
        kwargs = {} if limit is None else {"max_episode_steps": limit}
        rng = np.random.default_rng(action_seed)
        ref = reference(env_id, n, **kwargs)
        with make_vec(env_id, n, seed=seed, num_threads=num_threads, **kwargs) as env:
            obs, info = env.reset()
            obs_ref, _ = ref.reset(seed=seed)
            assert obs.tobytes() == obs_ref.tobytes() and info == {}
            for _ in range(steps):
                a = sample_actions(env, rng)
                assert_step_equal(env.step(a), ref.step(a), n)
            # reset(seed=) mid-run re-seeds every env like gymnasium's vector reset
            obs, _ = env.reset(seed=seed + 1)
            assert obs.tobytes() == ref.reset(seed=seed + 1)[0].tobytes()
            a = sample_actions(env, rng)
            assert_step_equal(env.step(a), ref.step(a), n)
        ref.close()

    check()


def test_vector_parity_long_run_with_truncation_at_time_limit() -> None:
    """Pendulum always truncates at 200 and CartPole episodes end by termination: both paths at full length."""
    for env_id, steps in [("Pendulum-v1", 410), ("CartPole-v1", 300)]:
        rng = np.random.default_rng(0)
        ref = reference(env_id, 3)
        with make_vec(env_id, 3, seed=11) as env:
            assert env.reset()[0].tobytes() == ref.reset(seed=11)[0].tobytes()
            ended = 0
            for _ in range(steps):
                a = sample_actions(env, rng)
                out = env.step(a)
                assert_step_equal(out, ref.step(a), 3)
                ended += int(out[2].sum() + out[3].sum())
            assert ended >= 3


def test_reset_with_per_env_seed_list() -> None:
    with make_vec("CartPole-v1", 3, seed=0) as env:
        obs, _ = env.reset(seed=[5, None, 9])
    for i, s in [(0, 5), (2, 9)]:
        assert obs[i].tobytes() == gym.make("CartPole-v1").reset(seed=s)[0].tobytes()
    assert (
        obs[1].tobytes() == gym.make("CartPole-v1").reset(seed=1)[0].tobytes()
    )  # kept its stream (seed 0 + 1)


# ------------------------------------------------------------------------------------------------- determinism


def trajectory(
    env_id: str, n: int, num_threads: int, identical: bool = False, steps: int = 150
) -> list[bytes]:
    rng = np.random.default_rng(3)
    out: list[bytes] = []
    with make_vec(env_id, n, seed=21, num_threads=num_threads, identical_seeds=identical) as env:
        out.append(env.reset()[0].tobytes())
        for _ in range(steps):
            a = sample_actions(env, rng)
            if identical:
                a = np.repeat(a[:1], n, axis=0)
            obs, r, te, tr, info = env.step(a)
            out += [obs.tobytes(), r.tobytes(), te.tobytes(), tr.tobytes()]
            if "final_obs" in info:
                out += [
                    info["_final_obs"].tobytes(),
                    info["episode"]["r"].tobytes(),
                    info["episode"]["l"].tobytes(),
                ]
    return out


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "MountainCarContinuous-v0"])
def test_results_do_not_depend_on_num_threads(env_id: str) -> None:
    base = trajectory(env_id, 37, 1)
    assert trajectory(env_id, 37, 2) == base
    assert trajectory(env_id, 37, 5) == base


def test_identical_seeds_give_identical_envs() -> None:
    rng = np.random.default_rng(0)
    with make_vec("Acrobot-v1", 6, seed=99, identical_seeds=True, num_threads=2) as env:
        obs, _ = env.reset()
        assert obs.tobytes() == np.repeat(gym.make("Acrobot-v1").reset(seed=99)[0][None], 6, 0).tobytes()
        for _ in range(50):
            obs, r, *_ = env.step(np.full(6, rng.integers(3)))
            assert (obs == obs[0]).all() and (r == r[0]).all()
    assert trajectory("CartPole-v1", 4, 1, identical=True) == trajectory("CartPole-v1", 4, 2, identical=True)


# ------------------------------------------------------------------------------------------ buffers and stats


def test_episode_statistics_sum_rewards_of_each_episode() -> None:
    rng = np.random.default_rng(0)
    with make_vec("CartPole-v1", 4, seed=0, max_episode_steps=20) as env:
        env.reset()
        ret, length, seen = np.zeros(4), np.zeros(4, int), 0
        for _ in range(100):
            _, r, te, tr, info = env.step(rng.integers(0, 2, 4))
            ret += r
            length += 1
            done = te | tr
            if done.any():
                seen += done.sum()
                ep = info["episode"]
                np.testing.assert_array_equal(ep["r"][done], ret[done])
                np.testing.assert_array_equal(ep["l"][done], length[done])
                assert (ep["r"][~done] == 0).all() and (ep["l"][~done] == 0).all()
                ret[done], length[done] = 0, 0
        assert seen >= 20


def test_copy_false_returns_read_only_views_copy_true_owns() -> None:
    with (
        make_vec("CartPole-v1", 2, seed=0) as owned,
        NativeVectorEnv("CartPole-v1", 2, seed=0, copy=False) as views,
    ):
        o1, _ = owned.reset()
        v1, _ = views.reset()
        assert o1.flags.writeable and o1.flags.owndata and not v1.flags.writeable
        a = np.array([0, 1])
        o2 = owned.step(a)[0]
        v2 = views.step(a)[0]
        assert v1 is not v2 and np.shares_memory(v1, v2)  # the view was refreshed in place
        np.testing.assert_array_equal(v1, o2)
        assert not np.shares_memory(o1, o2)
        buffers = views.core.buffers()
        assert set(buffers) >= {"obs", "final_obs", "has_final", "episode_return", "episode_length"}


def test_views_keep_the_batcher_alive() -> None:
    env = _core.envs.CartPoleVec(3, 1, 0)
    obs = env.reset()
    del env
    assert obs.shape == (3, 4) and np.isfinite(obs).all()


# -------------------------------------------------------------------------------------------------- validation


def test_bad_actions_raise_naming_the_env_and_step_nothing() -> None:
    with make_vec("CartPole-v1", 4, seed=0) as env, make_vec("CartPole-v1", 4, seed=0) as twin:
        env.reset()
        twin.reset()
        with pytest.raises(ValueError, match=r"env 2\b.*outside \[0, 2\)"):
            env.step(np.array([0, 1, 2, 0]))
        with pytest.raises(ValueError, match="env 1"):
            env.step(np.array([0, -1, 0, 0]))
        with pytest.raises(ValueError, match=r"shape \(4,\)"):
            env.step(np.zeros(3, np.int64))
        with pytest.raises(ValueError, match="integer"):
            env.step(np.zeros(4, np.float32))
        for dtype in (np.int8, np.uint16, np.int32, np.uint64):
            a = np.array([1, 0, 1, 0], dtype=dtype)
            assert_step_equal(env.step(a), twin.step(a.astype(np.int64)), 4)
    with make_vec("Pendulum-v1", 3, seed=0) as env, make_vec("Pendulum-v1", 3, seed=0) as twin:
        env.reset()
        twin.reset()
        with pytest.raises(ValueError, match="env 1.*NaN"):
            env.step(np.array([[0.0], [np.nan], [1.0]], np.float32))
        with pytest.raises(ValueError, match=r"shape \(3, 1\)"):
            env.step(np.zeros(3, np.float32))
        with pytest.raises(ValueError, match="float"):
            env.step(np.zeros((3, 1), np.int64))
        a = np.array([[0.5], [-1.0], [3.0]])
        assert_step_equal(env.step(a), twin.step(a.astype(np.float32)), 3)  # float64 is rounded to float32


def test_step_before_reset_and_after_close() -> None:
    env = make_vec("CartPole-v1", 2, seed=0)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2, np.int64))
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()


def test_worker_exception_reraises_in_caller() -> None:
    env = _core._testing.SleepEnvVec(4, 2, 0)
    env.reset()
    with pytest.raises(RuntimeError, match="failed on purpose"):
        env.step(np.array([0, 0, 999, 0]))
    env.send(np.array([0, 999]), np.array([1, 3]))
    with pytest.raises(RuntimeError, match="env 3: SleepEnv: step failed on purpose"):
        env.recv(2, timeout=5)
    # Only the failed env left flight; env 1's result is still there for the next recv().
    assert env.num_in_flight == 1
    assert list(env.recv(1, timeout=5)["env_id"]) == [1] and env.num_in_flight == 0
    env.step(np.zeros(4, np.int64))  # still usable
    env.close()


def test_async_error_keeps_the_other_envs_episode_ends() -> None:
    # Env 0 ends its episode (max_episode_steps=1) in the same batch in which env 2 fails: after the error, the
    # episode end of env 0 and the result of env 1 are still delivered, once each, and the batcher goes on.
    env = _core._testing.SleepEnvVec(3, 2, 0, max_episode_steps=1)
    env.reset()
    env.send(np.array([0, 0, 999]), np.arange(3))
    with pytest.raises(RuntimeError, match="env 2: "):
        env.recv(3, timeout=5)
    got = env.recv(2, timeout=5)
    assert sorted(got["env_id"]) == [0, 1] and got["truncated"].all()
    assert env.num_in_flight == 0
    with pytest.raises(RuntimeError, match="no environments in flight"):
        env.recv(1, timeout=1)
    env.send(np.zeros(3, np.int64), np.arange(3))
    assert sorted(env.recv(3, timeout=5)["env_id"]) == [0, 1, 2]
    env.close()


# ------------------------------------------------------------------------------------------------------- async


def test_send_recv_equals_sync_step() -> None:
    rng = np.random.default_rng(0)
    with (
        make_vec("CartPole-v1", 8, seed=5, max_episode_steps=30) as a,
        make_vec("CartPole-v1", 8, seed=5, max_episode_steps=30) as s,
    ):
        a.reset()
        s.reset()
        for _ in range(60):
            acts = rng.integers(0, 2, 8)
            a.send(acts)
            obs, r, te, tr, info = a.recv(timeout=10)
            order = np.argsort(info["env_id"])
            assert sorted(info["env_id"]) == list(range(8))
            s_obs, s_r, s_te, s_tr, s_info = s.step(acts)
            np.testing.assert_array_equal(obs[order], s_obs)
            np.testing.assert_array_equal(r[order], s_r)
            np.testing.assert_array_equal(te[order], s_te)
            np.testing.assert_array_equal(tr[order], s_tr)
            if "final_obs" in s_info:
                np.testing.assert_array_equal(info["_final_obs"][order], s_info["_final_obs"])
                np.testing.assert_array_equal(info["episode"]["r"][order], s_info["episode"]["r"])
                for k, i in enumerate(info["env_id"]):
                    if s_info["_final_obs"][i]:
                        np.testing.assert_array_equal(info["final_obs"][k], s_info["final_obs"][i])


def test_async_partial_batches_keep_each_env_independent() -> None:
    """EnvPool-style pipelining: envs come back in finishing order, each result depends only on its own actions."""
    env = _core._testing.SleepEnvVec(4, 2, 100)
    env.reset()
    env.send(np.array([60, 0, 0]), np.array([0, 1, 2]))
    first = env.recv(2, timeout=5)
    assert sorted(first["env_id"]) == [1, 2]  # env 0 sleeps; the others are ready first
    env.send(np.array([1, 2]), first["env_id"])
    got = [env.recv(1, timeout=5) for _ in range(3)]
    by_env = {int(d["env_id"][0]): d for d in got}
    assert set(by_env) == {0, 1, 2}
    assert by_env[0]["obs"][0].tolist() == [100, 1] and by_env[0]["rewards"][0] == 60
    assert by_env[1]["obs"][0].tolist() == [101, 2] and by_env[2]["obs"][0].tolist() == [102, 2]
    env.close()


def test_recv_errors_and_timeout() -> None:
    env = _core._testing.SleepEnvVec(3, 2, 0)
    env.reset()
    with pytest.raises(RuntimeError, match="no environments in flight"):
        env.recv()
    env.send(np.array([300, 0, 0]))
    with pytest.raises(ValueError, match="already in flight"):
        env.send(np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="batch_size"):
        env.recv(4)
    with pytest.raises(RuntimeError, match="in flight"):
        env.step(np.zeros(3, np.int64))
    assert len(env.recv(2, timeout=5)["env_id"]) == 2
    with pytest.raises(TimeoutError, match="timed out"):
        env.recv(1, timeout=0.01)
    assert env.recv(1, timeout=5)["env_id"].tolist() == [
        0
    ]  # still in flight after the timeout, then received
    with pytest.raises(ValueError, match="appears twice"):
        env.send(np.array([0, 0]), np.array([1, 1]))
    with pytest.raises(ValueError, match="outside"):
        env.send(np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="env 2"):
        env.send(np.array([0, 1000]), np.array([1, 2]))
    assert env.num_in_flight == 0  # nothing was queued by the failed sends
    env.close()


def test_native_vector_env_async_infos_and_timeout() -> None:
    with make_vec("MountainCar-v0", 3, seed=0, max_episode_steps=2) as env:
        env.reset()
        env.send(np.array([0, 1, 2]))
        _, _, _, tr, info = env.recv(3, timeout=5)
        assert not tr.any() and "env_id" in info and "final_obs" not in info
        env.send(np.array([1, 1]), np.array([2, 0]))
        obs, _, _, tr, info = env.recv(timeout=5)
        assert tr.all() and sorted(info["env_id"]) == [0, 2] and info["_final_obs"].all()
        assert info["episode"]["l"].tolist() == [2, 2] and obs.shape == (2, 2)
        with pytest.raises(RuntimeError, match="no environments in flight"):
            env.recv(timeout=0.1)


def test_concurrent_calls_from_two_threads_raise_instead_of_racing() -> None:
    env = _core._testing.SleepEnvVec(2, 2, 0)
    env.reset()
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: env.step(np.array([200, 0])))
    t.start()
    try:
        for _ in range(100):  # wait until the other thread is inside step (it releases the GIL)
            if env.num_in_flight == 0:
                try:
                    env.reset()
                except RuntimeError as e:
                    errors.append(e)
                    break
            threading.Event().wait(0.001)
    finally:
        t.join()
    assert errors and "busy" in str(errors[0])
    env.close()


# ---------------------------------------------------------------------------------------------------- lifecycle


def test_create_close_cycles_do_not_leak_threads() -> None:
    before = threads_now()
    for i in range(200):
        env = make_vec("CartPole-v1", 4, seed=i, num_threads=3)
        env.reset()
        env.step(np.zeros(4, np.int64))
        if i % 2:
            env.send(np.ones(4, np.int64))  # starts the async driver thread
            if i % 4 == 1:
                env.recv(timeout=5)
        env.close()
    with make_vec("Pendulum-v1", 2, num_threads=2) as env:
        env.reset()
    env = _core.envs.CartPoleVec(4, 3, 0)
    del env  # destruction without close() joins the threads too
    assert threads_now() == before


def test_forked_child_neither_hangs_nor_steps_the_parents_env() -> None:
    env = make_vec("CartPole-v1", 8, seed=0, num_threads=3)
    env.reset()
    env.send(np.zeros(8, np.int64))
    env.recv(timeout=5)
    threading.Event().wait(0.05)  # the async driver and the pool workers now wait on condition variables
    pid = os.fork()
    if pid == 0:  # child: the parent's threads do not exist here
        code = 1
        try:
            try:
                env.step(np.zeros(8, np.int64))
            except RuntimeError as e:
                code = 0 if "another process" in str(e) else 2
            env.close()  # must not join threads that are not in this process
            del env
        finally:
            os._exit(code)
    deadline = 50
    while deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        threading.Event().wait(0.1)
        deadline -= 1
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("forked child hung")
    assert os.waitstatus_to_exitcode(status) == 0
    env.step(np.ones(8, np.int64))  # the parent's env is unaffected
    env.close()
