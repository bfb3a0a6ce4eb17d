"""Robustness suite: each wrapper changes what it claims and nothing else, seeded runs repeat, bad parameters
fail with the argument's name, the t quantile is right, and ``main`` writes valid JSON and PNG reports."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import rltrain  # noqa: F401  (registers the rltrain/* envs)
from rltrain import robustness as rb
from rltrain.robustness import (
    LEVELS,
    PRESETS,
    ActionNoise,
    DelayedReward,
    NonStationaryDynamics,
    NotApplicableError,
    ObservationMask,
    ObservationNoise,
    RewardNoise,
    TransitionNoise,
    evaluate_robustness,
    main,
    make_condition,
    mean_ci,
    physics_parameters,
    set_physics,
    t_quantile,
)

PHYSICS_ENVS = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1",
                "LunarLander-v3"]


def _action_for(env: gym.Env) -> Any:
    """An action that exercises the dynamics (a push, a torque, the main engine off so gravity acts)."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n) - 1 if space.n > 1 else 0
    return np.full(space.shape, 0.7 * float(space.high.flat[0]), dtype=space.dtype)


def _random_actions(env: gym.Env, n: int, seed: int = 0) -> list[Any]:
    env.action_space.seed(seed)
    return [env.action_space.sample() for _ in range(n)]


def _lockstep(wrapped: gym.Env, plain: gym.Env, actions: list[Any], seed: int = 0,
              plain_action: Callable[[Any, dict[str, Any]], Any] | None = None) -> dict[str, list[Any]]:
    """Steps ``wrapped`` and ``plain`` with the same actions from the same seeds (reset together at episode
    ends). ``plain_action(action, wrapped_info)`` picks what ``plain`` is stepped with (default: the same
    action)."""
    keys = ("obs_w", "obs_p", "r_w", "r_p", "end_w", "end_p", "info", "t")
    out: dict[str, list[Any]] = {k: [] for k in keys}
    ow, _ = wrapped.reset(seed=seed)
    op, _ = plain.reset(seed=seed)
    out["obs_w"].append(ow)
    out["obs_p"].append(op)
    ep, t = 0, 0
    for a in actions:
        ow, rw, tw, uw, iw = wrapped.step(a)
        op, rp, tp, up, _ = plain.step(a if plain_action is None else plain_action(a, iw))
        t += 1
        for k, v in (("obs_w", ow), ("obs_p", op), ("r_w", rw), ("r_p", rp), ("end_w", (tw, uw)),
                     ("end_p", (tp, up)), ("info", iw), ("t", t)):
            out[k].append(v)
        if tw or uw or tp or up:
            ep, t = ep + 1, 0
            ow, _ = wrapped.reset(seed=seed + ep)
            op, _ = plain.reset(seed=seed + ep)
            out["obs_w"].append(ow)
            out["obs_p"].append(op)
    return out


# ------------------------------------------------------------------------------------- each wrapper's claim


def test_observation_noise_changes_only_observations() -> None:
    env = gym.make("CartPole-v1")
    w = ObservationNoise(gym.make("CartPole-v1"), std=0.1)
    run = _lockstep(w, env, _random_actions(env, 600))
    assert run["r_w"] == run["r_p"] and run["end_w"] == run["end_p"]
    diff = np.array(run["obs_w"], dtype=np.float64) - np.array(run["obs_p"], dtype=np.float64)
    assert all(np.asarray(o).dtype == np.float32 for o in run["obs_w"])
    assert abs(diff.std() - 0.1) < 0.01 and abs(diff.mean()) < 0.01
    exact = _lockstep(ObservationNoise(gym.make("CartPole-v1"), std=0.0), gym.make("CartPole-v1"),
                      _random_actions(env, 100))
    assert all(np.array_equal(a, b) for a, b in zip(exact["obs_w"], exact["obs_p"]))


def test_observation_noise_per_dimension_std() -> None:
    env = gym.make("CartPole-v1")
    w = ObservationNoise(gym.make("CartPole-v1"), std=[0.0, 0.0, 0.5, 0.0])
    run = _lockstep(w, env, _random_actions(env, 300))
    diff = np.array(run["obs_w"], dtype=np.float64) - np.array(run["obs_p"], dtype=np.float64)
    assert np.all(diff[:, [0, 1, 3]] == 0.0) and abs(diff[:, 2].std() - 0.5) < 0.06


def test_reward_noise_changes_only_rewards() -> None:
    env = gym.make("CartPole-v1")
    run = _lockstep(RewardNoise(gym.make("CartPole-v1"), std=0.5), env, _random_actions(env, 800))
    assert all(np.array_equal(a, b) for a, b in zip(run["obs_w"], run["obs_p"]))
    assert run["end_w"] == run["end_p"]
    diff = np.array(run["r_w"]) - np.array(run["r_p"])
    assert abs(diff.std() - 0.5) < 0.05 and abs(diff.mean()) < 0.06


@pytest.mark.parametrize(("env_id", "delay"),
                         [("CartPole-v1", 5), ("CartPole-v1", 1000), ("MountainCar-v0", 7)])
def test_delayed_reward_keeps_the_total_and_pays_on_schedule(env_id: str, delay: int) -> None:
    env = gym.make(env_id)
    run = _lockstep(DelayedReward(gym.make(env_id), delay=delay), env, _random_actions(env, 500))
    assert all(np.array_equal(a, b) for a, b in zip(run["obs_w"], run["obs_p"]))
    assert run["end_w"] == run["end_p"]
    paid_w = paid_p = 0.0
    for rw, rp, (term, trunc), t in zip(run["r_w"], run["r_p"], run["end_w"], run["t"]):
        paid_w += rw
        paid_p += rp
        if rw != 0.0:
            assert t % delay == 0 or term or trunc
        if t % delay == 0 or term or trunc:
            assert paid_w == pytest.approx(paid_p, abs=1e-9)
    assert any(trunc for _, trunc in run["end_w"]) or any(term for term, _ in run["end_w"])


def test_observation_mask_zeroes_about_p_and_leaves_the_rest_exactly() -> None:
    env = gym.make("CartPole-v1")
    run = _lockstep(ObservationMask(gym.make("CartPole-v1"), p=0.3), env, _random_actions(env, 600))
    assert run["r_w"] == run["r_p"] and run["end_w"] == run["end_p"]
    hidden = np.array([i["observation_mask"] for i in run["info"]])
    ow, op = np.array(_step_obs(run, "obs_w")), np.array(_step_obs(run, "obs_p"))
    assert np.all(ow[hidden] == 0.0) and np.array_equal(ow[~hidden], op[~hidden])
    assert abs(hidden.mean() - 0.3) < 0.03
    assert ow.dtype == np.float32


def _step_obs(run: dict[str, list[Any]], key: str) -> list[Any]:
    """The observations returned by step (dropping the reset observations that start each episode)."""
    out, k = [], 1
    for term_trunc in run["end_w"]:
        out.append(run[key][k])
        k += 2 if any(term_trunc) else 1
    return out


def test_action_noise_discrete_replaces_about_p_of_the_actions() -> None:
    env = gym.make("CartPole-v1")
    actions = _random_actions(env, 1500)
    run = _lockstep(ActionNoise(gym.make("CartPole-v1"), p=0.3), env, actions,
                    plain_action=lambda a, info: info["applied_action"])
    # the unwrapped env stepped with the applied action follows exactly the same trajectory
    assert all(np.array_equal(a, b) for a, b in zip(run["obs_w"], run["obs_p"]))
    assert run["r_w"] == run["r_p"] and run["end_w"] == run["end_p"]
    applied = np.array([int(i["applied_action"]) for i in run["info"]])
    changed = (applied != np.array(actions[: len(applied)])).mean()
    # a replacement is uniform over the n=2 actions, so half of the replaced actions are unchanged
    assert abs(changed - 0.3 * 0.5) < 0.03
    same = _lockstep(ActionNoise(gym.make("CartPole-v1"), p=0.0), gym.make("CartPole-v1"), actions[:200])
    assert all(np.array_equal(a, b) for a, b in zip(same["obs_w"], same["obs_p"]))


def test_action_noise_box_is_relative_to_the_half_range_and_stays_in_bounds() -> None:
    env = gym.make("Pendulum-v1")  # actions in [-2, 2]: half-range 2
    zeros = [np.zeros(1, np.float32)] * 600
    run = _lockstep(ActionNoise(gym.make("Pendulum-v1"), std=0.1), env, zeros,
                    plain_action=lambda a, info: info["applied_action"])
    assert all(np.array_equal(a, b) for a, b in zip(run["obs_w"], run["obs_p"]))
    applied = np.array([i["applied_action"] for i in run["info"]])
    assert applied.dtype == np.float32 and abs(applied.std() - 0.2) < 0.02
    edge = _lockstep(ActionNoise(gym.make("Pendulum-v1"), std=0.4), gym.make("Pendulum-v1"),
                     [np.full(1, 2.0, np.float32)] * 300, plain_action=lambda a, info: info["applied_action"])
    applied = np.array([i["applied_action"] for i in edge["info"]])
    assert applied.min() >= -2.0 and applied.max() <= 2.0 and (applied == 2.0).mean() > 0.3
    assert (applied < 2.0).mean() > 0.3


@pytest.mark.parametrize("env_id", PHYSICS_ENVS)
def test_every_physical_parameter_is_read_by_the_dynamics(env_id: str) -> None:
    nominal = physics_parameters(gym.make(env_id))
    for name, value in nominal.items():
        a, b = gym.make(env_id), gym.make(env_id)
        oa, _ = a.reset(seed=3)
        ob, _ = b.reset(seed=3)
        set_physics(b, {name: value * 1.5})
        act = _action_for(a)
        for _ in range(5):
            oa, *_ = a.step(act)
            ob, *_ = b.step(act)
        assert not np.allclose(oa, ob, rtol=0, atol=1e-9), f"{env_id}: {name} changed nothing"


@pytest.mark.parametrize("env_id", PHYSICS_ENVS)
def test_transition_noise_perturbs_parameters_at_reset_within_the_scale(env_id: str) -> None:
    w = TransitionNoise(gym.make(env_id), scale=0.5)
    nominal = dict(w.nominal)
    seen = []
    for seed in range(6):
        w.reset(seed=seed)
        assert physics_parameters(w) == w.params
        for k, v in w.params.items():
            lo, hi = sorted((0.5 * nominal[k], 1.5 * nominal[k]))
            assert lo <= v <= hi
        seen.append(tuple(w.params.values()))
        u = w.unwrapped
        if env_id == "CartPole-v1":
            assert u.total_mass == pytest.approx(u.masscart + u.masspole)
            assert u.polemass_length == pytest.approx(u.masspole * u.length)
        if env_id == "LunarLander-v3":
            assert tuple(u.world.gravity) == pytest.approx((0.0, w.params["gravity"]))
    assert len(set(seen)) == 6 and all(s != tuple(nominal.values()) for s in seen)
    assert w.nominal == nominal  # factors never compound


@pytest.mark.parametrize("env_id", PHYSICS_ENVS)
def test_zero_transition_noise_and_zero_drift_reproduce_the_unwrapped_env(env_id: str) -> None:
    for wrapped in (TransitionNoise(gym.make(env_id), scale=0.0),
                    NonStationaryDynamics(gym.make(env_id), drift=0.0)):
        plain = gym.make(env_id)
        run = _lockstep(wrapped, plain, _random_actions(plain, 120, seed=1))
        assert all(np.array_equal(a, b) for a, b in zip(run["obs_w"], run["obs_p"]))
        assert run["r_w"] == run["r_p"] and run["end_w"] == run["end_p"]


def test_nonstationary_dynamics_drift_during_the_episode_and_restart_at_reset() -> None:
    w = NonStationaryDynamics(gym.make("CartPole-v1"), drift=0.05)
    obs, _ = w.reset(seed=0)
    assert w.params == w.nominal
    history = []
    for _ in range(30):
        obs, _, terminated, truncated, _ = w.step(int(obs[2] + 0.5 * obs[3] > 0))
        assert not (terminated or truncated)
        history.append(dict(w.params))
        u = w.unwrapped
        assert u.total_mass == pytest.approx(u.masscart + u.masspole)
        assert physics_parameters(w) == w.params
        for k, v in w.params.items():
            assert 0.5 * w.nominal[k] - 1e-12 <= v <= 2.0 * w.nominal[k] + 1e-12
    assert len({tuple(h.values()) for h in history}) == 30
    w.reset(seed=1)
    assert w.params == w.nominal and physics_parameters(w) == w.nominal


def test_nonstationary_dynamics_change_the_trajectory() -> None:
    plain = gym.make("CartPole-v1")
    run = _lockstep(NonStationaryDynamics(gym.make("CartPole-v1"), drift=0.05), plain, [0, 1] * 5)
    assert not np.allclose(run["obs_w"][-1], run["obs_p"][-1])


@pytest.mark.parametrize("name", list(PRESETS))
def test_seeded_runs_repeat_and_seeds_matter(name: str) -> None:
    def trajectory(seed: int) -> tuple[list[np.ndarray], list[float]]:
        w = make_condition(gym.make("CartPole-v1"), name, "high")
        run = _lockstep(w, gym.make("CartPole-v1"), _random_actions(w, 150), seed=seed)
        return run["obs_w"], run["r_w"]

    (o1, r1), (o2, r2), (o3, r3) = trajectory(4), trajectory(4), trajectory(5)
    assert r1 == r2 and all(np.array_equal(a, b) for a, b in zip(o1, o2))
    assert r1 != r3 or any(not np.array_equal(a, b) for a, b in zip(o1, o3))


# ----------------------------------------------------------------------------------------- presets and errors


def test_presets_cover_every_condition_and_level() -> None:
    assert set(PRESETS) == set(rb.CONDITIONS)
    for name, table in PRESETS.items():
        assert tuple(table) == LEVELS
        for env_id in ("CartPole-v1", "Pendulum-v1"):
            w = make_condition(gym.make(env_id), name, "medium")
            assert isinstance(w, rb.CONDITIONS[name])
            for key, value in w.settings.items():
                if key in table["medium"]:
                    assert value == table["medium"][key]
    assert make_condition(gym.make("Pendulum-v1"), "action_noise", "low").settings["std"] == 0.1
    assert make_condition(gym.make("CartPole-v1"), "action_noise", "high").settings == {"p": 0.25}


class _Custom(gym.Env):
    """A Box-observation env without a physical-parameter table."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.5, -0.5], np.float32), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        self.t += 1
        return np.array([0.5, -0.5], np.float32), float(action), self.t >= 4, False, {}


@pytest.mark.parametrize(
    ("make", "exc", "needle"),
    [
        (lambda: ObservationNoise(gym.make("CartPole-v1"), std=-0.1), ValueError, "std"),
        (lambda: ObservationNoise(gym.make("CartPole-v1"), std="big"), TypeError, "std"),
        (lambda: ObservationNoise(gym.make("CartPole-v1"), std=[0.1, 0.2]), ValueError, "std"),
        (lambda: ObservationNoise(gym.make("CartPole-v1"), std=["a", "b"]), TypeError, "std"),
        (lambda: ObservationNoise(gym.make("CartPole-v1"), std=float("nan")), ValueError, "std"),
        (lambda: ActionNoise(gym.make("CartPole-v1"), p=1.5), ValueError, "p"),
        (lambda: ActionNoise(gym.make("CartPole-v1")), ValueError, "p"),
        (lambda: ActionNoise(gym.make("CartPole-v1"), std=0.1), ValueError, "std"),
        (lambda: ActionNoise(gym.make("Pendulum-v1"), p=0.1), ValueError, "p"),
        (lambda: ActionNoise(gym.make("Pendulum-v1"), std=-1.0), ValueError, "std"),
        (lambda: TransitionNoise(gym.make("CartPole-v1"), scale=1.0), ValueError, "scale"),
        (lambda: TransitionNoise(gym.make("CartPole-v1"), scale=-0.1), ValueError, "scale"),
        (lambda: RewardNoise(gym.make("CartPole-v1"), std=-2), ValueError, "std"),
        (lambda: RewardNoise(gym.make("CartPole-v1"), std=True), TypeError, "std"),
        (lambda: DelayedReward(gym.make("CartPole-v1"), delay=0), ValueError, "delay"),
        (lambda: DelayedReward(gym.make("CartPole-v1"), delay=2.5), TypeError, "delay"),
        (lambda: ObservationMask(gym.make("CartPole-v1"), p=-0.1), ValueError, "p"),
        (lambda: NonStationaryDynamics(gym.make("CartPole-v1"), drift=-0.01), ValueError, "drift"),
        (lambda: NonStationaryDynamics(gym.make("CartPole-v1"), drift=0.01, bounds=(1.5, 2.0)), ValueError,
         "bounds"),
        (lambda: RewardNoise("CartPole-v1", std=0.1), TypeError, "env"),
        (lambda: make_condition(gym.make("CartPole-v1"), "gravity_storm", "low"), ValueError, "name"),
        (lambda: make_condition(gym.make("CartPole-v1"), "obs_noise", "extreme"), ValueError, "level"),
        (lambda: set_physics(gym.make("CartPole-v1"), {"LINK_MOI": 1.0}), ValueError, "values"),
    ],
)
def test_bad_parameters_name_the_argument(make: Callable[[], Any], exc: type, needle: str) -> None:
    with pytest.raises(exc) as info:
        make()
    assert str(info.value).startswith(f"{needle}:"), str(info.value)


def test_transition_conditions_on_an_unsupported_env_list_the_supported_ones() -> None:
    for cls in (TransitionNoise, NonStationaryDynamics):
        with pytest.raises(NotApplicableError) as info:
            cls(_Custom(), 0.1)
        assert isinstance(info.value, ValueError)
        for env_id in ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "LunarLander-v3"):
            assert env_id in str(info.value)


# --------------------------------------------------------------------------------------------- statistics


def test_t_quantile_known_values() -> None:
    assert t_quantile(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-4)
    assert t_quantile(0.975, 4) == pytest.approx(2.7764, abs=1e-4)
    assert t_quantile(0.975, 29) == pytest.approx(2.0452, abs=1e-4)
    assert t_quantile(0.995, 10) == pytest.approx(3.1693, abs=1e-4)
    assert t_quantile(0.975, 10**6) == pytest.approx(1.95997, abs=1e-5)
    assert t_quantile(0.025, 4) == -t_quantile(0.975, 4) and t_quantile(0.5, 7) == 0.0
    for bad, needle in (((1.0, 3), "q"), ((0.9, 0), "dof"), ((0.9, 2.5), "dof")):
        with pytest.raises((ValueError, TypeError), match=needle):
            t_quantile(*bad)


def test_t_quantile_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for dof in (1, 2, 3, 5, 8, 19, 64, 500, 1000, 1001, 4000):
        for q in (0.55, 0.9, 0.975, 0.999):
            assert t_quantile(q, dof) == pytest.approx(stats.t.ppf(q, dof), rel=1e-9)


def test_mean_ci() -> None:
    res = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert res["mean"] == 3.0 and res["n"] == 5
    assert res["std"] == pytest.approx(math.sqrt(2.5))
    assert res["ci"] == pytest.approx(2.7764451 * math.sqrt(2.5) / math.sqrt(5))
    assert mean_ci([7.0]) == {"mean": 7.0, "ci": None, "std": None, "n": 1}
    with pytest.raises(ValueError, match="values"):
        mean_ci([])


# --------------------------------------------------------------------------------------------- evaluation


class _PolePolicy:
    """A deterministic CartPole controller standing in for a trainer (predict on a batch)."""

    def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        assert obs.ndim == 2 and deterministic
        return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def test_evaluate_robustness_uses_common_seeds_and_true_returns() -> None:
    res = evaluate_robustness(_PolePolicy(), "CartPole-v1",
                              conditions=["reward_noise", "delayed_reward", "obs_mask"], levels=["high"],
                              episodes=3, seed=5)
    rows = {(r["condition"], r["level"]): r for r in res["results"]}
    nominal = rows[("nominal", None)]
    assert nominal["n"] == 3 and len(nominal["returns"]) == 3 and res["skipped"] == []
    # the policy never sees rewards: its true returns are the nominal ones episode by episode
    assert rows[("reward_noise", "high")]["returns"] == nominal["returns"]
    assert rows[("reward_noise", "high")]["observed_returns"] != nominal["returns"]
    assert rows[("delayed_reward", "high")]["observed_returns"] == pytest.approx(nominal["returns"])
    assert rows[("obs_mask", "high")]["mean"] < nominal["mean"]
    assert rows[("obs_mask", "high")]["delta"] == rows[("obs_mask", "high")]["mean"] - nominal["mean"]
    again = evaluate_robustness(_PolePolicy(), "CartPole-v1", conditions=["obs_mask"], levels=["high"],
                                episodes=3, seed=5, max_envs=2)
    assert again["results"][1]["returns"] == rows[("obs_mask", "high")]["returns"]


def test_evaluate_robustness_skips_conditions_that_do_not_apply() -> None:
    class Const:
        def predict(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
            return np.ones(len(obs), np.int64)

    res = evaluate_robustness(Const(), _Custom(), levels=["low"], episodes=2)
    assert {s["condition"] for s in res["skipped"]} == {"transition_noise", "nonstationary"}
    assert "CartPole-v1" in res["skipped"][0]["reason"]
    assert {r["condition"] for r in res["results"]} == {"nominal"} | set(PRESETS) - {"transition_noise",
                                                                                    "nonstationary"}
    assert all(r["mean"] == 4.0 and r["ci95"] == 0.0 for r in res["results"])
    with pytest.raises(ValueError, match="conditions"):
        evaluate_robustness(Const(), _Custom(), conditions=["nope"])
    with pytest.raises(ValueError, match="levels"):
        evaluate_robustness(Const(), _Custom(), levels=["extreme"])


# ------------------------------------------------------------------------------------------- end to end


def _train_and_save(tmp_path: Any, env_id: str, policy: Any) -> str:
    from rltrain import PPOConfig, PPOTrainer

    cfg = PPOConfig(env=env_id, G=4, T=32, minibatches=2, epochs=1, seed=0, verbose=0, log_dir=str(tmp_path),
                    loggers=("csv",))
    trainer = PPOTrainer(policy, cfg)
    try:
        trainer.train(iters=1)
        return trainer.save(str(tmp_path / "model.pt"))
    finally:
        trainer.close()


def _check_outputs(out_dir: Any, env_id: str, conditions: list[str], levels: list[str]) -> dict[str, Any]:
    import matplotlib.image

    slug = env_id.replace("/", "-")
    report = json.loads((out_dir / f"robustness-{slug}.json").read_text())
    for key in ("checkpoint", "env", "episodes", "seed", "date", "results", "skipped"):
        assert key in report
    assert report["env"] == env_id
    got = [(r["condition"], r["level"]) for r in report["results"]]
    assert got == [("nominal", None)] + [(c, lv) for c in conditions for lv in levels]
    for r in report["results"]:
        for key in ("mean", "ci95", "std", "n", "returns", "settings", "delta"):
            assert key in r
        assert r["n"] == report["episodes"] == len(r["returns"])
    png = out_dir / f"robustness-{slug}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(png))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    return report


def test_robustness_command_on_a_tiny_cartpole_run(tmp_path, capsys) -> None:
    from rltrain.policies import ActorCriticPolicy

    ckpt = _train_and_save(tmp_path, "CartPole-v1", ActorCriticPolicy(4, 2))
    rc = main([ckpt, "--env", "CartPole-v1", "--episodes", "3", "--out", str(tmp_path / "rob")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "nominal" in out and "transition_noise" in out and "wrote" in out
    report = _check_outputs(tmp_path / "rob", "CartPole-v1", list(PRESETS), list(LEVELS))
    assert report["skipped"] == [] and report["episodes"] == 3


def test_robustness_command_on_a_continuous_pendulum_run(tmp_path) -> None:
    from rltrain.policies import ActorCriticPolicy

    ckpt = _train_and_save(tmp_path, "Pendulum-v1", ActorCriticPolicy(3, 1, continuous=True))
    conditions = ["action_noise", "transition_noise", "nonstationary"]
    rc = main([ckpt, "--episodes", "2", "--conditions", ",".join(conditions), "--levels", "low,high"])
    assert rc == 0
    report = _check_outputs(tmp_path / "robustness", "Pendulum-v1", conditions, ["low", "high"])
    noisy = [r for r in report["results"] if r["condition"] == "action_noise"]
    assert noisy[0]["settings"] == {"std": 0.1, "relative_to": "half-range"}
    assert noisy[1]["returns"] != report["results"][0]["returns"]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--levels", "extreme"], "--levels"), (["--conditions", "gravity_storm"], "--conditions"),
     (["--episodes", "0"], "--episodes"), ([], "checkpoint")],
)
def test_robustness_command_bad_input_returns_2(tmp_path, capsys, extra: list[str], needle: str) -> None:
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main([str(bogus), *extra]) == 2
    assert needle in capsys.readouterr().err
    assert main([str(tmp_path / "missing.pt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([str(bogus), "--episodes", "many"]) == 2
