"""Native single envs == gymnasium.make(id), bit for bit, from the same seed and actions; the NumPy-exact RNG and
maths."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltrain import _core

ENVS: dict[str, type] = {
    "CartPole-v1": _core.envs.CartPole,
    "Acrobot-v1": _core.envs.Acrobot,
    "MountainCar-v0": _core.envs.MountainCar,
    "MountainCarContinuous-v0": _core.envs.MountainCarContinuous,
    "Pendulum-v1": _core.envs.Pendulum,
}
SEEDS = [0, 1, 42, 2**31 - 1, 2**32 - 1, 2**32, 2**32 + 5, 123456789, 2**63 - 1, 2**64 - 1]
# Infinite continuous actions are legal (gymnasium clips them); its passive checker warns about the inf reward
# MountainCarContinuous then pays, which is the behaviour under test.
pytestmark = pytest.mark.filterwarnings("ignore:.*reward is an inf value:UserWarning")
HYP = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same_obs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and a.tobytes() == b.tobytes()


def as_gym_action(env: Any, a: Any) -> Any:
    return a if env.discrete else np.asarray(a, dtype=np.float32).reshape(env.act_dim)


def run_parity(env_id: str, seed: int, actions: list[Any], **kwargs: Any) -> tuple[int, int]:
    """Steps gymnasium and native side by side, resetting (without a seed) after every episode end.
    Returns the number of terminations and truncations seen."""
    ref = gym.make(env_id, **kwargs)
    nat = ENVS[env_id](**kwargs)
    o_ref, _ = ref.reset(seed=seed)
    o_nat = nat.reset(seed=seed)
    assert same_obs(o_ref, o_nat)
    n_term = n_trunc = 0
    for t, a in enumerate(actions):
        a = as_gym_action(nat, a)
        o_ref, r_ref, te_ref, tr_ref, _ = ref.step(a)
        o_nat, r_nat, te_nat, tr_nat = nat.step(a)
        assert same_obs(o_ref, o_nat), (env_id, seed, t, o_ref, o_nat)
        assert float(r_ref) == r_nat, (env_id, seed, t, r_ref, r_nat)
        assert (bool(te_ref), bool(tr_ref)) == (te_nat, tr_nat), (env_id, seed, t)
        if te_nat or tr_nat:
            n_term += te_nat
            n_trunc += tr_nat
            o_ref, _ = ref.reset()
            o_nat = nat.reset()
            assert same_obs(o_ref, o_nat), (env_id, seed, t, "autoreset")
    ref.close()
    return n_term, n_trunc


def action_strategy(env_id: str) -> st.SearchStrategy:
    cls = ENVS[env_id]
    if cls.discrete:
        return st.integers(0, cls.num_actions - 1)
    bound = 2.0 if env_id == "Pendulum-v1" else 1.0
    edge = st.sampled_from([bound, -bound, 0.0, -0.0, 3 * bound, -3 * bound, 1e30, -np.inf, np.inf])
    return st.one_of(st.floats(-3 * bound, 3 * bound, width=32), edge)


# ----------------------------------------------------------------------------------------- NumPy RNG and maths


@pytest.mark.parametrize("seed", SEEDS)
def test_numpy_rng_matches_default_rng(seed: int) -> None:
    for low, high in [(0.0, 1.0), (-0.05, 0.05), (-0.6, -0.4), (-np.pi, np.pi)]:
        ours = _core._testing.numpy_rng_uniform(seed, 257, low, high)
        np.testing.assert_array_equal(ours, np.random.default_rng(seed).uniform(low, high, 257))


@HYP
@given(seed=st.integers(0, 2**64 - 1), low=st.floats(-1e6, 1e6), width=st.floats(0, 1e6))
def test_numpy_rng_uniform_any_seed(seed: int, low: float, width: float) -> None:
    high = low + width
    ours = _core._testing.numpy_rng_uniform(seed, 16, low, high)
    rng = np.random.default_rng(seed)
    np.testing.assert_array_equal(ours, [rng.uniform(low, high) for _ in range(16)])


_INT_RANGES = [
    (-9999, 9999),  # LunarLander's wind and torque phases
    (0, 1),  # a single value: numpy draws nothing
    (0, 2),
    (-5, 7),
    (0, 2**31 + 1),  # a rejection threshold that is often hit
    (0, 2**32),  # exactly 32 bits: a raw 32-bit draw
    (-(2**40), 2**40),  # 64-bit Lemire
    (-(2**63), 2**63 - 1),
    (-(2**63), 2**62),
]


@HYP
@given(
    seed=st.integers(0, 2**64 - 1),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("uniform"), st.just(-1.0), st.just(1.0)),
            st.sampled_from(_INT_RANGES).map(lambda r: ("integers", *r)),
        ),
        max_size=24,
    ),
)
def test_numpy_rng_integers_interleaved_with_uniform(seed: int, ops: list[tuple[str, Any, Any]]) -> None:
    # Generator.integers draws 32-bit half-words and buffers the other half in the bit generator; uniform() skips
    # the buffer. Interleaving both must reproduce numpy's stream exactly.
    rng = np.random.default_rng(seed)
    expected = [rng.uniform(lo, hi) if kind == "uniform" else int(rng.integers(lo, hi)) for kind, lo, hi in ops]
    assert _core._testing.numpy_rng_draws(seed, ops) == expected


def test_numpy_rng_integers_rejects_empty_range() -> None:
    with pytest.raises(ValueError, match="high <= low"):
        _core._testing.numpy_rng_draws(0, [("integers", 3, 3)])


def test_numpy_float32_sin_cos_bitwise() -> None:
    r = np.random.default_rng(0)
    x = np.concatenate(
        [
            r.uniform(-0.2, 0.2, 20000),
            r.uniform(-8e4, 8e4, 20000),
            r.uniform(-1e9, 1e9, 200),
            [0.0, -0.0, np.inf, -np.inf, np.nan, 71476.0625, 71476.07, 117435.992, 117436.0, np.pi / 4],
        ]
    ).astype(np.float32)
    with np.errstate(invalid="ignore"):
        for cosine, fn in [(True, np.cos), (False, np.sin)]:
            expected = np.array(
                [fn(v) for v in x], dtype=np.float32
            )  # NumPy scalars, as gymnasium computes them
            assert _core._testing.numpy_f32_trig(x, cosine).tobytes() == expected.tobytes()


# -------------------------------------------------------------------------------------------------- spaces, API


@pytest.mark.parametrize("env_id", list(ENVS))
def test_spaces_match_gymnasium(env_id: str) -> None:
    ref = gym.make(env_id)
    nat = ENVS[env_id]()
    assert nat.env_id == env_id
    np.testing.assert_array_equal(nat.obs_low, ref.observation_space.low)
    np.testing.assert_array_equal(nat.obs_high, ref.observation_space.high)
    assert nat.obs_low.dtype == np.float32 and nat.obs_dim == ref.observation_space.shape[0]
    if nat.discrete:
        assert nat.num_actions == ref.action_space.n and nat.act_low is None
    else:
        np.testing.assert_array_equal(nat.act_low, ref.action_space.low)
        np.testing.assert_array_equal(nat.act_high, ref.action_space.high)
    assert nat.config["max_episode_steps"] == ref.spec.max_episode_steps


@pytest.mark.parametrize("env_id", list(ENVS))
@pytest.mark.parametrize("seed", SEEDS)
def test_reset_seed_gives_gymnasium_initial_state(env_id: str, seed: int) -> None:
    ref = gym.make(env_id)
    nat = ENVS[env_id]()
    o_ref, _ = ref.reset(seed=seed)
    assert same_obs(o_ref, nat.reset(seed=seed))
    # reset() without a seed continues the same RNG stream, as gymnasium's np_random does.
    for _ in range(3):
        o_ref, _ = ref.reset()
        assert same_obs(o_ref, nat.reset())
    # seed() then reset() is the same as reset(seed=...)
    nat.seed(seed)
    assert same_obs(ref.reset(seed=seed)[0], nat.reset())


def test_unseeded_envs_draw_fresh_entropy() -> None:
    assert not np.array_equal(_core.envs.CartPole().reset(), _core.envs.CartPole().reset())


def test_step_before_reset_and_bad_actions() -> None:
    env = _core.envs.CartPole()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="outside"):
        env.step(2)
    with pytest.raises(ValueError, match="integer"):
        env.step(0.5)
    pend = _core.envs.Pendulum()
    pend.reset(seed=0)
    with pytest.raises(ValueError, match="NaN"):
        pend.step(np.array([np.nan], np.float32))
    with pytest.raises(ValueError, match="shape"):
        pend.step(np.zeros(2, np.float32))


def test_unknown_config_kwarg() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'gravity'"):
        _core.envs.CartPole(gravity=3.0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        _core.envs.Pendulum(max_episode_steps=0)


# ------------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("env_id", list(ENVS))
def test_parity_random_actions(env_id: str) -> None:
    @HYP
    @given(
        seed=st.integers(0, 2**64 - 1), actions=st.lists(action_strategy(env_id), min_size=1, max_size=300)
    )
    def check(seed: int, actions: list[Any]) -> None:
        run_parity(env_id, seed, actions)

    check()


@pytest.mark.parametrize("env_id", list(ENVS))
def test_parity_short_time_limit_crosses_many_episodes(env_id: str) -> None:
    @HYP
    @given(
        seed=st.integers(0, 2**32),
        limit=st.integers(1, 12),
        actions=st.lists(action_strategy(env_id), min_size=1, max_size=60),
    )
    def check(seed: int, limit: int, actions: list[Any]) -> None:
        run_parity(env_id, seed, actions, max_episode_steps=limit)

    check()


def _policy(env_id: str) -> Callable[[np.ndarray, np.random.Generator], Any]:
    """Controllers that reach each env's terminal states (random actions rarely do)."""
    return {
        "CartPole-v1": lambda o, rng: int(o[2] + 0.5 * o[3] > 0),  # balances: truncation at 500
        "Acrobot-v1": lambda o, rng: 2 if o[5] > 0 else 0,  # pumps energy: termination
        "MountainCar-v0": lambda o, rng: 2 if o[1] > 0 else 0,
        "MountainCarContinuous-v0": lambda o, rng: np.float32(
            (1.5 if o[1] >= 0 else -1.5) * rng.uniform(0.5, 1.0)
        ),
        "Pendulum-v1": lambda o, rng: np.float32(rng.uniform(-3, 3)),
    }[env_id]


@pytest.mark.parametrize(
    ("env_id", "expect_term", "expect_trunc"),
    [
        ("CartPole-v1", False, True),
        ("Acrobot-v1", True, False),
        ("MountainCar-v0", True, False),
        ("MountainCarContinuous-v0", True, False),
        ("Pendulum-v1", False, True),
    ],
)
def test_parity_full_episodes_with_controllers(env_id: str, expect_term: bool, expect_trunc: bool) -> None:
    """Long episodes up to the real time limit or the real goal, across several autoresets."""
    ref, nat = gym.make(env_id), ENVS[env_id]()
    rng = np.random.default_rng(0)
    policy = _policy(env_id)
    o_ref, _ = ref.reset(seed=7)
    o_nat = nat.reset(seed=7)
    terms = truncs = steps = 0
    while terms + truncs < 3:
        a = as_gym_action(nat, policy(o_nat, rng))
        o_ref, r_ref, te_ref, tr_ref, _ = ref.step(a)
        o_nat, r_nat, te_nat, tr_nat = nat.step(a)
        steps += 1
        assert same_obs(o_ref, o_nat) and float(r_ref) == r_nat and (te_ref, tr_ref) == (te_nat, tr_nat), (
            steps
        )
        if te_nat or tr_nat:
            terms, truncs = terms + te_nat, truncs + tr_nat
            o_nat = nat.reset()
            assert same_obs(ref.reset()[0], o_nat)
    assert (terms > 0, truncs > 0) == (expect_term, expect_trunc)
    if expect_trunc:
        assert steps == 3 * ref.spec.max_episode_steps


def test_parity_mountain_car_continuous_truncates_at_999() -> None:
    n_term, n_trunc = run_parity("MountainCarContinuous-v0", 3, [np.float32(0.0)] * 1000)
    assert (n_term, n_trunc) == (0, 1)


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("Pendulum-v1", {"g": 9.81}),
        ("CartPole-v1", {"sutton_barto_reward": True}),
        ("MountainCar-v0", {"goal_velocity": 0.01}),
        ("MountainCarContinuous-v0", {"goal_velocity": 0.02}),
    ],
)
def test_parity_config_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    rng = np.random.default_rng(1)
    policy = _policy(env_id)
    ref, nat = gym.make(env_id, **kwargs), ENVS[env_id](**kwargs)
    o = nat.reset(seed=5)
    assert same_obs(ref.reset(seed=5)[0], o)
    for _ in range(600):
        a = as_gym_action(nat, policy(o, rng))
        o_ref, r_ref, te_ref, tr_ref, _ = ref.step(a)
        o, r, te, tr = nat.step(a)
        assert same_obs(o_ref, o) and float(r_ref) == r and (te_ref, tr_ref) == (te, tr)
        if te or tr:
            o = nat.reset()
            assert same_obs(ref.reset()[0], o)
