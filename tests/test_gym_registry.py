"""The native ids in gymnasium's registry (``rltrain/<id>``, :mod:`rltrain.vec.gym_registry`): ``gymnasium.make_vec``
returns the native batcher stepping as ``rltrain.make_vec`` does, ``gymnasium.make`` one native env stepping as
gymnasium's own env does; keyword arguments, wrappers and the registration without ``import rltrain``."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import rltrain
import rltrain.envs
from rltrain.vec.gym_registry import NativeEnv, gym_id
from rltrain.vec.native import NativeVectorEnv

CLASSIC = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1"]


def _actions(space: gym.Space, n: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def test_every_native_id_is_registered() -> None:
    for native_id in rltrain.native_envs():
        gid = gym_id(native_id)
        assert gid in gym.registry, gid
        if gid != native_id:  # rltrain's own ids keep their registration (no vector entry point)
            assert gym.spec(gid).vector_entry_point is not None
            base = gym.spec(native_id)
            assert gym.spec(gid).max_episode_steps == base.max_episode_steps
            assert gym.spec(gid).kwargs == base.kwargs
    assert "rltrain/CartPole-v1" in gym.registry
    if rltrain.envs.native_lunar_available():
        assert {"rltrain/LunarLander-v3", "rltrain/LunarLanderContinuous-v3"} <= set(gym.registry)


@pytest.mark.parametrize("native_id", [i for i in rltrain.native_envs() if not i.startswith("rltrain/")])
def test_make_vec_is_the_native_batcher(native_id: str) -> None:
    """Same seed, same actions: gymnasium.make_vec and rltrain.make_vec give the same arrays and final_obs."""
    ours = gym.make_vec(gym_id(native_id), num_envs=3, seed=5)
    ref = rltrain.make_vec(native_id, 3, seed=5)
    try:
        assert isinstance(ours, NativeVectorEnv)
        assert ours.spec is not None and ours.spec.id == gym_id(native_id)
        assert ours.single_observation_space == ref.single_observation_space
        assert ours.single_action_space == ref.single_action_space
        np.testing.assert_array_equal(ours.reset(seed=5)[0], ref.reset(seed=5)[0])
        ended = 0
        for a in _actions(ref.action_space, 300 if "Lunar" in native_id else 600, seed=1):
            o1, r1, te1, tr1, i1 = ours.step(a)
            o2, r2, te2, tr2, i2 = ref.step(a)
            for x, y in ((o1, o2), (r1, r2), (te1, te2), (tr1, tr2)):
                np.testing.assert_array_equal(x, y)
            assert i1.keys() == i2.keys()
            if "_final_obs" in i1:
                ended += int(i1["_final_obs"].sum())
                np.testing.assert_array_equal(i1["_final_obs"], i2["_final_obs"])
                for f1, f2 in zip(i1["final_obs"][i1["_final_obs"]], i2["final_obs"][i2["_final_obs"]]):
                    np.testing.assert_array_equal(f1, f2)
        assert ended > 0 or native_id.startswith("MountainCar"), "no episode ended: the test saw no autoreset"
    finally:
        ours.close()
        ref.close()


@pytest.mark.parametrize("native_id", CLASSIC)
def test_make_single_matches_gymnasium(native_id: str) -> None:
    """gymnasium.make("rltrain/<id>") is a native env stepping bitwise as gymnasium.make(id), across episodes
    (TimeLimit included: MountainCar and Pendulum only end by truncation), reset without a seed continuing the
    RNG stream."""
    ours, ref = gym.make(gym_id(native_id)), gym.make(native_id)
    assert isinstance(ours.unwrapped, NativeEnv)
    assert ours.spec is not None and ours.spec.max_episode_steps == ref.spec.max_episode_steps  # type: ignore[union-attr]
    assert ours.observation_space == ref.observation_space and ours.action_space == ref.action_space
    np.testing.assert_array_equal(ours.reset(seed=11)[0], ref.reset(seed=11)[0])
    episodes = 0
    for a in _actions(ref.action_space, 2100, seed=2):
        s1, s2 = ours.step(a), ref.step(a)
        np.testing.assert_array_equal(s1[0], s2[0])
        assert s1[1:4] == s2[1:4]
        if s1[2] or s1[3]:
            episodes += 1
            np.testing.assert_array_equal(ours.reset()[0], ref.reset()[0])
    assert episodes >= 2
    ours.close()
    ref.close()


def test_make_single_max_episode_steps() -> None:
    env = gym.make("rltrain/CartPole-v1", max_episode_steps=1000)  # above the native default of 500
    env.reset(seed=0)
    steps, truncated = 0, False
    unwrapped = env.unwrapped
    assert isinstance(unwrapped, NativeEnv)
    unwrapped._env.reset(0)  # keep the pole up by resetting the physics, never the TimeLimit's counter
    while not truncated:
        _, _, terminated, truncated, _ = env.step(steps % 2)
        steps += 1
        if terminated:
            unwrapped._env.reset(None)
    assert steps == 1000


def test_lunar_single_without_pybox2d(tmp_path: object) -> None:
    """The native LunarLander needs no pybox2d: gymnasium.make runs with the Box2D module made unimportable."""
    if not rltrain.envs.native_lunar_available():
        pytest.skip("this build has no native LunarLander (rltrain._box2d)")
    code = (
        "import sys; sys.modules['Box2D'] = None\n"
        "import gymnasium as gym, rltrain.envs\n"
        "for i in ('rltrain/LunarLander-v3', 'rltrain/LunarLanderContinuous-v3'):\n"
        "    e = gym.make(i); e.reset(seed=0); e.action_space.seed(0)\n"
        "    [e.step(e.action_space.sample()) for _ in range(50)]\n"
        "    v = gym.make_vec(i, 2); v.reset(seed=0); v.step(v.action_space.sample()); v.close()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_keyword_arguments_reach_the_batcher() -> None:
    env = gym.make_vec("rltrain/Pendulum-v1", num_envs=4, num_threads=2, max_episode_steps=7, g=3.0)
    try:
        assert isinstance(env, NativeVectorEnv) and env.num_threads == 2
        assert env.spec is not None and env.spec.kwargs["num_threads"] == 2
        env.reset(seed=0)
        ends = [env.step(np.zeros((4, 1), np.float32))[3].all() for _ in range(7)]
        assert ends == [False] * 6 + [True]
    finally:
        env.close()
    with gym.make_vec("rltrain/CartPole-v1", 4, seed=3, identical_seeds=True) as same:
        obs, _ = same.reset()
        assert (obs == obs[0]).all()


def test_vector_kwargs_and_wrappers() -> None:
    """gymnasium refuses vector_kwargs and wrappers for a vector entry point (before calling it); sync mode applies
    wrappers to native single envs, and vector wrappers wrap the native batcher."""
    with pytest.raises(gym.error.Error, match="vector_kwargs"):
        gym.make_vec("rltrain/CartPole-v1", 2, vector_kwargs={"num_threads": 2})
    with pytest.raises(gym.error.Error, match="wrappers"):
        gym.make_vec("rltrain/CartPole-v1", 2, wrappers=[gym.wrappers.ClipReward])
    clip = lambda e: gym.wrappers.TransformReward(e, lambda r: 2.0 * r)
    sync = gym.make_vec("rltrain/CartPole-v1", 2, vectorization_mode="sync", wrappers=[clip])
    assert isinstance(sync, gym.vector.SyncVectorEnv)
    sync.reset(seed=0)
    np.testing.assert_array_equal(sync.step(np.array([0, 1]))[1], [2.0, 2.0])
    sync.close()
    native = gym.wrappers.vector.TransformReward(gym.make_vec("rltrain/CartPole-v1", 2), lambda r: 3.0 * r)
    native.reset(seed=0)
    np.testing.assert_array_equal(native.step(np.array([0, 1]))[1], [3.0, 3.0])
    native.close()


def test_render_mode_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match=r"do not render.*gymnasium.make\('CartPole-v1'"):
        gym.make("rltrain/CartPole-v1", render_mode="rgb_array")
    with pytest.raises(ValueError, match="do not render"):
        gym.make_vec("rltrain/CartPole-v1", 2, render_mode="rgb_array")


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def test_module_prefixed_id_without_importing_rltrain() -> None:
    """gymnasium's own "module:id" form imports rltrain.envs, which registers the ids: no explicit import."""
    out = _fresh(
        "import sys, gymnasium\n"
        "assert 'rltrain' not in sys.modules\n"
        "e = gymnasium.make_vec('rltrain.envs:rltrain/CartPole-v1', 2)\n"
        "print(type(e).__name__)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["NativeVectorEnv"]


@pytest.mark.parametrize("gymnasium_first", [False, True], ids=["rltrain-then-gymnasium", "gymnasium-then-rltrain"])
def test_registered_by_import_rltrain(gymnasium_first: bool) -> None:
    """SPEC §5: after ``import rltrain`` the bare ids work, in either import order, and ``import rltrain`` itself
    still loads no gymnasium (the ids are registered right after gymnasium's own import)."""
    first = "import gymnasium, rltrain\n" if gymnasium_first else (
        "import sys, rltrain\nassert 'gymnasium' not in sys.modules\nimport gymnasium\n")
    out = _fresh(
        first
        + "v = gymnasium.make_vec('rltrain/CartPole-v1', num_envs=4)\n"
        "e = gymnasium.make('rltrain/CartPole-v1')\n"
        "print(type(v).__name__, type(e.unwrapped).__name__)\n"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["NativeVectorEnv", "NativeEnv"]


@pytest.mark.parametrize("first", ["from rltrain.vec.native import NativeVectorEnv",
                                   "import rltrain.vec.gym_registry", "from rltrain.envs import lunar"])
def test_registered_when_an_rltrain_submodule_is_the_first_import(first: str) -> None:
    """A submodule that imports gymnasium as the process's first rltrain import: the ids are registered by
    gymnasium's post-import hook while that submodule is still loading, which must not be a circular import (it
    was for rltrain.vec.native: a warning, and no ids). Warnings are errors here."""
    out = _fresh(
        first + "\n"
        "import gymnasium\n"
        "v = gymnasium.make_vec('rltrain/CartPole-v1', num_envs=2)\n"
        "print(type(v).__name__)\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["NativeVectorEnv"]
    assert "could not register" not in out.stderr
