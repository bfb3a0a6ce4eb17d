"""Native LunarLander (rltrain._box2d) against gymnasium's LunarLander-v3 and rltrain's Dense/Sparse variants:
semantics on crafted states, reward = gymnasium's shaping formula, determinism, sparse = dense sums, randomised
spawn, and bit-for-bit agreement with gymnasium at every step when both are fed the same random draws."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rltrain.envs
from _replay import replay_reset

try:  # gymnasium's LunarLander, and so rltrain's Python-side variants, need pybox2d
    from gymnasium.envs.box2d.lunar_lander import heuristic

    from rltrain.envs.lunar import SPAWN_MAX_ANGLE, SPAWN_MAX_DX, DenseLunarLander, SparseLunarLander
except (ImportError, gym.error.DependencyNotInstalled) as exc:
    _PYBOX2D_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _PYBOX2D_ERROR = ""

try:
    from rltrain import _box2d
except ImportError as exc:  # built without the Box2D sources (RLTRAIN_BOX2D=OFF, or no network at build time)
    _box2d = None
    _BOX2D_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _BOX2D_ERROR = ""

needs_box2d = pytest.mark.skipif(
    _box2d is None,
    reason=f"rltrain._box2d unavailable ({_BOX2D_ERROR}); rebuild with the Box2D sources (README)",
)
needs_pybox2d = pytest.mark.skipif(
    bool(_PYBOX2D_ERROR),
    reason=f"gymnasium's LunarLander unavailable ({_PYBOX2D_ERROR}): pip install 'gymnasium[box2d]'",
)

W, H = 600 / 30, 400 / 30
LEG_DOWN = 18 / 30


def shaping(s: np.ndarray) -> float:
    s = s.astype(np.float64)
    return float(
        -100 * np.hypot(s[0], s[1]) - 100 * np.hypot(s[2], s[3]) - 100 * abs(s[4]) + 10 * s[6] + 10 * s[7]
    )


def fuel(action: Any, continuous: bool) -> float:
    if not continuous:
        return 0.3 * (action == 2) + 0.03 * (action in (1, 3))
    a = np.clip(np.asarray(action, dtype=np.float32), -1, 1).astype(np.float64)
    m = (np.clip(a[0], 0, 1) + 1) * 0.5 if a[0] > 0 else 0.0
    s = np.clip(abs(a[1]), 0.5, 1.0) if abs(a[1]) > 0.5 else 0.0
    return 0.3 * m + 0.03 * s


def hover(s: np.ndarray) -> int:
    """gymnasium's heuristic pilot with its hover target raised: it never lands, so episodes hit the time limit."""
    angle_targ = float(np.clip(s[0] * 0.5 + s[2], -0.4, 0.4))
    angle_todo = (angle_targ - s[4]) * 0.5 - s[5]
    hover_todo = (0.6 - s[1]) * 0.5 - s[3] * 0.5
    if hover_todo > abs(angle_todo) and hover_todo > 0.05:
        return 2
    if angle_todo < -0.05:
        return 3
    return 1 if angle_todo > 0.05 else 0


class _Pilot:
    """What gymnasium's heuristic(env, s) reads from env: env.unwrapped.continuous."""

    def __init__(self, continuous: bool) -> None:
        self.continuous = continuous
        self.unwrapped = self


def rollout(
    env: Any, policy: Callable[[np.ndarray], Any], seed: int
) -> tuple[list[np.ndarray], list[float], bool, bool]:
    obs = [env.reset(seed=seed)]
    rewards: list[float] = []
    while True:
        o, r, term, trunc = env.step(policy(obs[-1]))
        obs.append(o)
        rewards.append(r)
        if term or trunc:
            return obs, rewards, term, trunc


# --- build / import -------------------------------------------------------------------------------------------


def test_box2d_module_present_when_required() -> None:
    required = os.environ.get("RLTRAIN_REQUIRE_BOX2D") == "1"
    if _box2d is None and not required:
        pytest.skip(
            f"rltrain._box2d unavailable ({_BOX2D_ERROR}); set RLTRAIN_REQUIRE_BOX2D=1 to make this fail"
        )
    assert _box2d is not None, f"RLTRAIN_REQUIRE_BOX2D=1 but rltrain._box2d failed to import: {_BOX2D_ERROR}"


@needs_pybox2d
def test_envs_import_without_native_module() -> None:
    code = (
        "import sys; sys.modules['rltrain._box2d'] = None\n"
        "import rltrain.envs as e\n"
        "assert not e.native_lunar_available()\n"
        "env = e.DenseLunarLander(randomize_angle=True); env.reset(seed=0); print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "ok"


# --- spaces, configuration, argument checks -------------------------------------------------------------------


@needs_pybox2d
@needs_box2d
@pytest.mark.parametrize("continuous", [False, True])
def test_spaces_match_gymnasium(continuous: bool) -> None:
    nat = _box2d.LunarLander(continuous=continuous)
    ref = gym.make("LunarLander-v3", continuous=continuous)
    low, high = nat.observation_bounds
    np.testing.assert_array_equal(low, ref.observation_space.low)
    np.testing.assert_array_equal(high, ref.observation_space.high)
    assert nat.continuous is continuous
    assert nat.id == ("LunarLanderContinuous-v3" if continuous else "LunarLander-v3")
    assert nat.num_actions == (0 if continuous else 4)
    assert nat.max_episode_steps == ref.spec.max_episode_steps == 1000
    assert _box2d.SPAWN_MAX_ANGLE == SPAWN_MAX_ANGLE and _box2d.SPAWN_MAX_DX == SPAWN_MAX_DX


@needs_box2d
def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="gravity"):
        _box2d.LunarLander(gravity=-12.5)
    env = _box2d.LunarLander()
    with pytest.raises(ValueError, match="before reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (4, -1):
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            env.step(bad)
    with pytest.raises(TypeError):
        env.step(True)
    with pytest.raises(TypeError):
        env.step(1.5)
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)
    cont = _box2d.LunarLander(continuous=True)
    cont.reset(seed=0)
    with pytest.raises(ValueError, match="finite"):
        cont.step(np.array([np.nan, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match="2 floats"):
        cont.step(np.zeros(3, dtype=np.float32))
    assert env.step(np.int64(2))[0].shape == (8,)
    replay = _box2d._testing.ReplayLunarLander()
    replay.set_uniforms(np.full(5, 0.5))
    with pytest.raises(IndexError, match="ran out"):
        replay.reset()
    with pytest.raises(ValueError, match="before reset"):
        replay.step(0)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        replay.set_uniforms(np.array([0.5, 1.0]))


# --- observation / reward / termination semantics -------------------------------------------------------------


@needs_box2d
def test_observation_formula_on_placed_state() -> None:
    env = _box2d.LunarLander()
    env.reset(seed=3)
    x, y, angle, vx, vy, w = 12.5, 9.0, 0.25, 1.5, -2.0, 0.7
    obs = env.place_lander(x, y, angle, vx, vy, w)
    f = np.float32
    expected = [
        (float(f(x)) - W / 2) / (W / 2),
        (float(f(y)) - (env.helipad_y + LEG_DOWN)) / (H / 2),
        float(f(vx)) * (W / 2) / 50,
        float(f(vy)) * (H / 2) / 50,
        float(f(angle)),
        20.0 * float(f(w)) / 50,
        0.0,
        0.0,
    ]
    np.testing.assert_array_equal(obs, np.array(expected, dtype=np.float32))
    assert env.helipad_y == pytest.approx(H / 4)
    terrain = env.terrain_y
    assert len(terrain) == 11 and all(t == pytest.approx(0.99 * H / 4) for t in terrain[4:7])


@needs_box2d
@pytest.mark.parametrize("continuous", [False, True])
def test_reward_is_gymnasium_shaping_minus_fuel(continuous: bool) -> None:
    env = _box2d.LunarLander(continuous=continuous)
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(5):
        prev = env.reset(seed=seed)
        while True:
            a = rng.uniform(-1, 1, 2).astype(np.float32) if continuous else int(rng.integers(4))
            obs, r, term, _ = env.step(a)
            if term:
                assert r in (-100.0, 100.0)
                break
            assert r == pytest.approx(shaping(obs) - shaping(prev) - fuel(a, continuous), abs=2e-3)
            checked += 1
            prev = obs
    assert checked > 200


@needs_box2d
def test_leaving_the_viewport_terminates_with_minus_100() -> None:
    env = _box2d.LunarLander()
    for side in (1, -1):
        env.reset(seed=0)
        env.place_lander(W / 2 + side * 0.95 * W / 2, 10.0, 0.0, 0.0, 0.0, 0.0)
        assert not env.step(0)[2]
        # 0.003 inside the edge, moving outwards by 0.006 per step
        env.place_lander(W / 2 + side * 0.997 * W / 2, 10.0, 0.0, side * 3.0, 0.0, 0.0)
        obs, r, term, trunc = env.step(0)
        assert side * obs[0] >= 1.0 and term and not trunc and r == -100.0


@needs_box2d
def test_body_contact_is_a_crash() -> None:
    env = _box2d.LunarLander()
    env.reset(seed=0)
    env.place_lander(W / 2, env.helipad_y + 2.0, math.pi, 0.0, -3.0, 0.0)  # upside down above the pad
    for _ in range(100):
        obs, r, term, _ = env.step(0)
        if term:
            break
    assert term and r == -100.0 and abs(obs[4]) > 3.0


@needs_pybox2d
@needs_box2d
@pytest.mark.parametrize("drop, outcome", [(0.02, 100.0), (0.2, -100.0)])
def test_landing_outcome_matches_gymnasium(drop: float, outcome: float) -> None:
    # Resting on both legs until Box2D puts the lander to sleep is the +100 landing; a 0.2 unit drop crushes the
    # legs and the body touches down. Both engines must agree, step for step.
    results = []
    for env in (_box2d.LunarLander(), DenseLunarLander()):
        env.reset(seed=0)
        env.place_lander(W / 2, env.helipad_y + LEG_DOWN + drop, 0.0, 0.0, 0.0, 0.0)
        n, both_legs = 0, 0
        while True:
            obs, r, term, trunc = env.step(0)[:4]
            n += 1
            both_legs += bool(obs[6] and obs[7])
            if term or trunc:
                break
        results.append((n, float(r), bool(term), both_legs))
    assert results[0] == results[1]
    assert results[0][1] == outcome and results[0][3] > 0


@needs_box2d
def test_time_limit_truncates_at_1000_steps() -> None:
    env = _box2d.LunarLander()
    _, rewards, term, trunc = rollout(env, hover, seed=1)
    assert len(rewards) == 1000 and trunc and not term and env.elapsed_steps == 1000


# --- determinism, sparse reward, randomised spawn -------------------------------------------------------------


@needs_box2d
@pytest.mark.parametrize("kwargs", [{}, {"continuous": True}, {"enable_wind": True}])
def test_fixed_seed_is_deterministic(kwargs: dict[str, Any]) -> None:
    def policy_for(seed: int) -> Callable[[np.ndarray], Any]:
        rng = np.random.default_rng(seed)
        if kwargs.get("continuous"):
            return lambda s: rng.uniform(-1, 1, 2).astype(np.float32)
        return lambda s: int(rng.integers(4))

    a, b = _box2d.LunarLander(**kwargs), _box2d.LunarLander(**kwargs)
    run_a = rollout(a, policy_for(5), seed=42)
    run_b = rollout(b, policy_for(5), seed=42)
    rerun = rollout(a, policy_for(5), seed=42)
    other = rollout(a, policy_for(5), seed=43)
    for run in (run_b, rerun):
        np.testing.assert_array_equal(np.array(run_a[0]), np.array(run[0]))
        assert run_a[1] == run[1]
    assert not np.array_equal(run_a[0][0], other[0][0])


@needs_box2d
@pytest.mark.parametrize("policy", ["random", "hover"])
def test_sparse_pays_the_dense_sum_at_the_last_step(policy: str) -> None:
    def make_policy() -> Callable[[np.ndarray], Any]:
        rng = np.random.default_rng(11)
        return hover if policy == "hover" else (lambda s: int(rng.integers(4)))

    for seed in range(3):
        _, dense, d_term, d_trunc = rollout(_box2d.LunarLander(), make_policy(), seed)
        _, sparse, s_term, s_trunc = rollout(_box2d.LunarLander(sparse=True), make_policy(), seed)
        assert (d_term, d_trunc) == (s_term, s_trunc) and len(dense) == len(sparse)
        assert all(r == 0.0 for r in sparse[:-1])
        assert sparse[-1] == pytest.approx(sum(dense), rel=1e-12, abs=1e-9)
        assert s_trunc == (policy == "hover")


@needs_box2d
def test_randomized_spawn_varies_and_stays_in_range() -> None:
    def reset_obs(**kw: bool) -> np.ndarray:
        env = _box2d.LunarLander(**kw)
        return np.array([env.reset(seed=s) for s in range(200)])

    fixed = reset_obs()
    tilted = reset_obs(randomize_angle=True)
    shifted = reset_obs(randomize_pos=True)
    both = reset_obs(randomize_angle=True, randomize_pos=True)
    assert np.abs(fixed[:, 4]).max() < 0.02 and np.abs(fixed[:, 0]).max() < 0.02
    assert tilted[:, 4].std() > 0.1 and np.abs(tilted[:, 4]).max() <= _box2d.SPAWN_MAX_ANGLE + 0.02
    assert np.abs(tilted[:, 0]).max() < 0.02
    shift = _box2d.SPAWN_MAX_DX / (W / 2)
    assert shifted[:, 0].std() > 0.1 and np.abs(shifted[:, 0]).max() <= shift + 0.02
    assert np.abs(shifted[:, 4]).max() < 0.02
    assert both[:, 0].std() > 0.1 and both[:, 4].std() > 0.1


@needs_pybox2d
def test_python_randomized_spawn_varies() -> None:
    env = DenseLunarLander(randomize_angle=True, randomize_pos=True)
    obs = np.array([env.reset(seed=s)[0] for s in range(50)])
    assert obs[:, 4].std() > 0.1 and obs[:, 0].std() > 0.1
    assert np.abs(obs[:, 4]).max() <= SPAWN_MAX_ANGLE + 0.02
    plain = DenseLunarLander()
    ref = gym.make("LunarLander-v3").unwrapped
    for seed in range(3):
        np.testing.assert_array_equal(plain.reset(seed=seed)[0], ref.reset(seed=seed)[0])


# --- the gymnasium-side classes -------------------------------------------------------------------------------


@needs_pybox2d
def test_registered_ids_and_native_config() -> None:
    for env_id, cls in (
        ("rltrain/DenseLunarLander-v0", DenseLunarLander),
        ("rltrain/SparseLunarLander-v0", SparseLunarLander),
    ):
        assert env_id in rltrain.envs.ENV_IDS
        env = gym.make(env_id, randomize_pos=True, continuous=True, gravity=-9.0)
        assert env.spec is not None and env.spec.max_episode_steps == 1000
        inner = env.unwrapped
        assert isinstance(inner, cls)
        assert inner.native_id == env_id  # the id carries `sparse`
        cfg = inner.native_config
        assert cfg == {
            "continuous": True,
            "gravity": -9.0,
            "enable_wind": False,
            "wind_power": 15.0,
            "turbulence_power": 1.5,
            "randomize_angle": False,
            "randomize_pos": True,
        }
        clone = pickle.loads(pickle.dumps(inner))
        assert type(clone) is cls and clone.native_config == cfg
        if _box2d is not None:
            native = _box2d.LunarLander(**cfg, sparse=cls is SparseLunarLander).config
            assert native == {**cfg, "sparse": cls is SparseLunarLander, "max_episode_steps": 1000}


@needs_pybox2d
def test_python_sparse_pays_at_truncation_and_termination() -> None:
    for policy, truncated in ((hover, True), (lambda s: 0, False)):
        env = gym.make("rltrain/SparseLunarLander-v0")
        obs, _ = env.reset(seed=2)
        dense_sum, n = 0.0, 0
        while True:
            obs, r, term, trunc, info = env.step(policy(obs))
            dense_sum += info["dense_reward"]
            n += 1
            if term or trunc:
                break
            assert r == 0.0
        assert trunc == truncated and (n == 1000) == truncated
        assert r == pytest.approx(dense_sum, abs=1e-9)


@needs_pybox2d
def test_python_sparse_pays_at_a_shorter_time_limit() -> None:
    """gym.make(..., max_episode_steps=N) ends the episode in the TimeLimit, outside the env: the sparse payout
    still arrives at step N (the SparseEpisodeReward wrapper), as it does natively."""
    env = gym.make("rltrain/SparseLunarLander-v0", max_episode_steps=40)
    env.reset(seed=3)
    dense_sum = 0.0
    for n in range(1, 41):
        _, r, term, trunc, info = env.step(0)
        dense_sum += info["dense_reward"]
        if n < 40:
            assert r == 0.0 and not (term or trunc)
    assert trunc and not term and r == pytest.approx(dense_sum, abs=1e-9) and r != 0.0
    direct = SparseLunarLander(max_episode_steps=40)
    direct.reset(seed=3)
    rewards = [direct.step(0)[1] for _ in range(40)]
    assert rewards[-1] == pytest.approx(dense_sum, abs=1e-9) and not any(rewards[:-1])
    assert direct.native_config["max_episode_steps"] == 40
    assert pickle.loads(pickle.dumps(direct)).max_episode_steps == 40
    with pytest.raises(ValueError, match="max_episode_steps"):
        SparseLunarLander(max_episode_steps=0)
    if _box2d is not None:
        from rltrain import make_vec

        with make_vec("rltrain/SparseLunarLander-v0", 1, seed=3, max_episode_steps=40) as venv:
            venv.reset(seed=3)
            out = [venv.step(np.zeros(1, np.int64)) for _ in range(40)]
        assert not any(o[1][0] for o in out[:-1]) and out[-1][3][0]
        assert out[-1][1][0] == pytest.approx(dense_sum, rel=1e-3)


# --- parity with gymnasium under identical random draws -------------------------------------------------------


@needs_pybox2d
@needs_box2d
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"continuous": True},
        {"enable_wind": True},
        {"randomize_angle": True, "randomize_pos": True},
        {"sparse": True},
    ],
    ids=["discrete", "continuous", "wind", "random-spawn", "sparse"],
)
def test_trajectories_match_gymnasium_given_the_same_draws(kwargs: dict[str, Any]) -> None:
    continuous = bool(kwargs.get("continuous"))
    nat = _box2d._testing.ReplayLunarLander(**kwargs)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "sparse"}
    ref = gym.make(
        "rltrain/SparseLunarLander-v0" if kwargs.get("sparse") else "rltrain/DenseLunarLander-v0",
        **ref_kwargs,
    )
    rng = np.random.default_rng(2024)
    for _ in range(20):
        u = rng.random(2200)
        actions = (
            rng.uniform(-1, 1, (1000, 2)).astype(np.float32) if continuous else rng.integers(4, size=1000)
        )
        nat.set_uniforms(u)
        o_nat = nat.reset()
        o_ref, _ = replay_reset(ref, u)
        np.testing.assert_array_equal(o_nat, o_ref)
        for t in range(1000):
            a = actions[t] if continuous else int(actions[t])
            o_nat, r_nat, te_nat, tr_nat = nat.step(a)
            o_ref, r_ref, te_ref, tr_ref, _ = ref.step(a)
            # The same Box2D 2.3 on both sides: bit for bit at every step.
            np.testing.assert_array_equal(o_nat, o_ref, err_msg=f"step {t}")
            assert (r_nat, te_nat, tr_nat) == (float(r_ref), te_ref, tr_ref), f"step {t}"
            if te_ref or tr_ref:
                break


@needs_pybox2d
@needs_box2d
def test_heuristic_pilot_lands_natively() -> None:
    env = _box2d.LunarLander()
    pilot = _Pilot(False)
    returns = [sum(rollout(env, lambda s: heuristic(pilot, s), seed)[1]) for seed in range(50)]
    assert np.mean(returns) > 200
