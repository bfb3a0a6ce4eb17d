"""Policy groups: the selection rule and its sampling, one value function per group (only the drawn group moves),
the group-relative advantage against a plain NumPy reference, the diversity metrics on hand-made distributions,
logging, acting, exact resume and the command line."""

from __future__ import annotations

import csv
import math
import pathlib
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import PolicyGroupConfig, PolicyGroupTrainer
from rltrain.algos.base import BaseTrainer
from rltrain.algos.policy_groups import group_relative_advantages
from rltrain.algos.policy_groups_nets import (
    PolicyGroupPolicy,
    gaussian_mean_pairwise_kl,
    mean_pairwise_kl,
    selection_probabilities,
)

TINY: dict[str, Any] = {"env": "CartPole-v1", "groups": 3, "group_size": 2, "G": 4, "T": 60, "epochs": 2,
                        "minibatches": 2, "verbose": 0, "loggers": ("csv",), "save_best": False}


def _trainer(tmp_path: pathlib.Path, seed: int = 0, **kw: Any) -> PolicyGroupTrainer:
    return PolicyGroupTrainer(None, PolicyGroupConfig(**{**TINY, "seed": seed, "log_dir": str(tmp_path), **kw}))


# ------------------------------------------------------------------------------------------------ selection


def test_selection_probabilities_formula() -> None:
    perf = np.array([10.0, 20.0, 40.0])
    z = (perf - perf.mean()) / (perf.std() + 1e-8)
    soft = np.exp(z / 0.5) / np.exp(z / 0.5).sum()
    want = 0.9 * soft + 0.1 / 3
    np.testing.assert_allclose(selection_probabilities(perf, 0.5, 0.1), want, rtol=1e-12)
    # Scale-free: the same ranking at 100x the reward scale gives the same probabilities.
    np.testing.assert_allclose(selection_probabilities(100 * perf + 7, 0.5, 0.1), want, rtol=1e-6)
    np.testing.assert_allclose(selection_probabilities(np.full(4, 3.0), 1.0, 0.0), np.full(4, 0.25))
    cold = selection_probabilities(perf, 1e-3, 0.0)
    assert cold[2] > 1 - 1e-9
    np.testing.assert_allclose(selection_probabilities(perf, 1e-3, 0.3)[:2], [0.1, 0.1], rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        selection_probabilities(perf, 0.0, 0.1)
    with pytest.raises(ValueError, match="perf"):
        selection_probabilities(np.array([1.0, np.nan]), 1.0, 0.1)


def test_selection_sampling_follows_probabilities(tmp_path: pathlib.Path) -> None:
    tr = _trainer(tmp_path, groups=4, G=2, group_size=2)
    # Groups never measured come first, in order.
    assert tr._select_group()[0] == 0
    tr.policy.seen[:2] = 1.0
    assert tr._select_group()[0] == 2
    tr.policy.seen[:] = 1.0
    tr.policy.perf[:] = torch.tensor([0.0, 10.0, 30.0, 5.0], dtype=torch.float64)
    probs = tr.policy.selection_probabilities()
    n = 4000
    counts = np.zeros(4)
    for it in range(n):
        tr.iteration = it
        g, p = tr._select_group()
        counts[g] += 1
    np.testing.assert_allclose(p, probs)
    # Each frequency within 4 binomial standard deviations of its probability.
    assert np.all(np.abs(counts / n - probs) <= 4 * np.sqrt(probs * (1 - probs) / n)), (counts / n, probs)
    tr.iteration = 17
    assert tr._select_group()[0] == tr._select_group()[0]  # seeded by (seed, iteration)


def test_performance_is_an_ema_of_mean_returns() -> None:
    pol = PolicyGroupPolicy(2, 1, {"obs_dim": 4, "n_actions": 2})
    pol.record_performance(1, 10.0, 0.25)
    pol.record_performance(1, 30.0, 0.25)
    assert pol.perf[1].item() == pytest.approx(0.75 * 10 + 0.25 * 30)
    assert pol.seen.tolist() == [0.0, 1.0]
    assert pol.best_group() == 1


# ----------------------------------------------------------------------------------------- value functions


def test_each_group_has_its_own_critic_and_only_the_drawn_group_trains(tmp_path: pathlib.Path) -> None:
    tr = _trainer(tmp_path)
    pol = tr.policy
    ids = [{id(p) for p in pol.critic(g).parameters()} for g in range(3)]
    assert all(not (ids[a] & ids[b]) for a in range(3) for b in range(a + 1, 3))
    member_ids = {id(p) for m in pol.members for p in m.parameters()}
    assert not member_ids & set().union(*ids)
    before = {k: v.clone() for k, v in pol.state_dict().items()}
    tr.train(1)  # the first iteration takes group 0 (never measured yet)
    after = pol.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any(k.startswith("critics.0.") for k in changed)
    assert any(k.startswith("members.0.") for k in changed) and any(k.startswith("members.1.") for k in changed)
    assert not any(k.startswith(("critics.1.", "critics.2.", "members.2.", "members.3.", "members.4.",
                                 "members.5.")) for k in changed), changed
    assert pol.seen.tolist() == [1.0, 0.0, 0.0]
    tr.close()


# ------------------------------------------------------------------------------------------------ advantages


def _reference(rewards: np.ndarray, values: np.ndarray, lengths: np.ndarray, terminated: np.ndarray,
               final_values: np.ndarray, M: int, gamma: float, lam: float, w: float) -> tuple[np.ndarray, np.ndarray]:
    """Loops over episodes, straight from the definition in rltrain.algos.policy_groups."""
    N, T = rewards.shape
    gae = np.zeros((N, T))
    for j in range(N):
        L = lengths[j]
        a = 0.0
        for t in reversed(range(L)):
            if t == L - 1:
                nxt = 0.0 if terminated[j] else final_values[j]
                a = 0.0
            else:
                nxt = values[j, t + 1]
            delta = rewards[j, t] + gamma * nxt - values[j, t]
            a = delta + gamma * lam * a
            gae[j, t] = a
    R = np.array([rewards[j, : lengths[j]].sum() for j in range(N)]).reshape(N // M, M)
    ep = (R - R.mean(1, keepdims=True)) / (R.std(1, keepdims=True) + 1e-8)
    valid = np.arange(T)[None] < lengths[:, None]
    flat = gae[valid]
    crit = (flat - flat.mean()) / (flat.std() + 1e-8)
    adv = np.zeros((N, T))
    adv[valid] = ep.reshape(N)[np.nonzero(valid)[0]] + w * crit
    ret = np.where(valid, gae + values, 0)
    return adv, ret


@pytest.mark.parametrize("gae_weight", [1.0, 0.5, 0.0])
def test_group_relative_advantages_match_reference(gae_weight: float) -> None:
    rng = np.random.default_rng(3)
    M, E, T = 4, 3, 9
    N = M * E
    lengths = rng.integers(1, T + 1, N)
    lengths[0] = T
    rewards = rng.normal(size=(N, T)).astype(np.float32)
    values = rng.normal(size=(N, T)).astype(np.float32)
    rewards[np.arange(T)[None] >= lengths[:, None]] = 99.0  # padding must be ignored
    terminated = rng.random(N) < 0.5
    final_values = rng.normal(size=N).astype(np.float32)
    adv, ret = group_relative_advantages(rewards, values, lengths, terminated, final_values, group_size=M,
                                         gamma=0.9, lam=0.8, gae_weight=gae_weight)
    want_adv, want_ret = _reference(rewards.astype(np.float64), values.astype(np.float64), lengths, terminated,
                                    final_values.astype(np.float64), M, 0.9, 0.8, gae_weight)
    assert adv.dtype == np.float32 and adv.shape == (N, T)
    np.testing.assert_allclose(adv, want_adv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ret, want_ret, rtol=1e-4, atol=1e-4)
    # The episodic term is relative within each start: it sums to zero over the members sharing a start.
    if gae_weight == 0.0:
        first = adv[:, 0].reshape(E, M)
        np.testing.assert_allclose(first.sum(1), 0.0, atol=1e-4)


def test_group_relative_advantages_bad_input() -> None:
    z = np.zeros((6, 4), np.float32)
    with pytest.raises(ValueError, match="group_size"):
        group_relative_advantages(z, z, np.full(6, 4), np.zeros(6, bool), np.zeros(6), group_size=4, gamma=0.9,
                                  lam=0.9)
    with pytest.raises(ValueError, match="values"):
        group_relative_advantages(z, z[:, :3], np.full(6, 4), np.zeros(6, bool), np.zeros(6), group_size=3,
                                  gamma=0.9, lam=0.9)


# -------------------------------------------------------------------------------------------------- diversity


def test_mean_pairwise_kl_on_hand_made_distributions() -> None:
    p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    probs = np.stack([p, q])[:, None, :]  # [G=2, B=1, A=2]
    assert mean_pairwise_kl(probs) == pytest.approx((kl_pq + kl_qp) / 2, rel=1e-9)
    same = np.tile(np.array([0.2, 0.3, 0.5]), (3, 5, 1))
    assert mean_pairwise_kl(same) == pytest.approx(0.0, abs=1e-12)
    assert mean_pairwise_kl(same[:1]) == 0.0
    # Three groups, two observations: the mean over the 6 ordered pairs and both observations.
    rng = np.random.default_rng(0)
    d = rng.dirichlet(np.ones(3), size=(3, 2))
    want = np.mean([np.sum(d[g, b] * np.log(d[g, b] / d[h, b])) for g in range(3) for h in range(3) if g != h
                    for b in range(2)])
    assert mean_pairwise_kl(d) == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="probs"):
        mean_pairwise_kl(np.ones((2, 3)))


def test_gaussian_mean_pairwise_kl_matches_torch() -> None:
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(3, 4, 2))
    var = rng.uniform(0.2, 2.0, size=(3, 4, 2))
    dist = [torch.distributions.Normal(torch.tensor(mu[g]), torch.tensor(np.sqrt(var[g]))) for g in range(3)]
    want = np.mean([torch.distributions.kl_divergence(dist[g], dist[h]).sum(-1).mean().item()
                    for g in range(3) for h in range(3) if g != h])
    assert gaussian_mean_pairwise_kl(mu, var) == pytest.approx(want, rel=1e-9)


def test_group_diversity_uses_averaged_member_distributions() -> None:
    torch.manual_seed(0)
    pol = PolicyGroupPolicy(2, 3, {"obs_dim": 4, "n_actions": 3})
    obs = torch.randn(7, 4)
    with torch.no_grad():
        for m in pol.members:
            m.pi_head.weight.normal_()
        groups = [torch.stack([torch.softmax(pol.member(g, m)._pi_out(obs), -1) for m in range(3)]).mean(0)
                  for g in range(2)]
    div = pol.diversity(obs)
    assert div["between"] == pytest.approx(mean_pairwise_kl(torch.stack(groups)), rel=1e-6)
    assert div["between"] > 0 and div["within"] > 0


# ------------------------------------------------------------------------------------- logging and acting


def test_logs_and_acting(tmp_path: pathlib.Path) -> None:
    tr = _trainer(tmp_path, seed=1)
    tr.train(4)
    with open(pathlib.Path(tr.run_dir or "") / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for key in ("groups/diversity_kl", "groups/within_kl", "groups/selected", "groups/perf_g2",
                "groups/select_prob_g0", "train/value_loss", "rollout/ep_rew_mean"):
        assert rows[-1][key] not in ("", None), key
    assert float(rows[-1]["groups/diversity_kl"]) >= 0
    assert sum(float(rows[-1][f"groups/select_prob_g{g}"]) for g in range(3)) == pytest.approx(1.0)
    assert [int(float(r["groups/selected"])) for r in rows[:3]] == [0, 1, 2]  # each group measured first
    obs = tr.recent_obs
    assert obs is not None
    a = tr.predict(obs[:5])
    best = tr.policy.best_group()
    with torch.no_grad():
        want = tr.policy.group_probs(best, torch.from_numpy(obs[:5])).argmax(-1).numpy()
    np.testing.assert_array_equal(a, want)
    assert tr.predict(obs[0]).shape == ()
    res = tr.evaluate(n_episodes=3)
    assert res["n_episodes"] == 3 and res["mean_reward"] > 0
    tr.policy.eval_mode = "mixture"
    with torch.no_grad():
        p = tr.policy.agent_probs(torch.from_numpy(obs[:5]))
    np.testing.assert_allclose(p.sum(-1).numpy(), 1.0, rtol=1e-6)
    tr.close()


def test_config_and_policy_checks(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="G: expected a multiple of group_size"):
        PolicyGroupConfig(**{**TINY, "G": 5}).validate()
    with pytest.raises(ValueError, match="temperature"):
        PolicyGroupConfig(**{**TINY, "temperature": 0.0}).validate()
    with pytest.raises(ValueError, match="eval_mode"):
        PolicyGroupConfig(**{**TINY, "eval_mode": "vote"}).validate()
    with pytest.raises(TypeError, match="policy: expected a PolicyGroupPolicy"):
        PolicyGroupTrainer(torch.nn.Linear(2, 2), PolicyGroupConfig(**TINY))
    with pytest.raises(ValueError, match="policy: has 2 groups"):
        PolicyGroupTrainer(PolicyGroupPolicy(2, 2, {"obs_dim": 4, "n_actions": 2}), PolicyGroupConfig(**TINY))
    with pytest.raises(ValueError, match="actor_kwargs"):
        PolicyGroupPolicy(2, 2, {"obs_dim": 3, "n_actions": 1, "continuous": True, "distribution": "beta",
                                 "action_low": [-1.0], "action_high": [1.0]})


# ------------------------------------------------------------------------------------- resume and the CLI


def test_resume_is_exact(tmp_path: pathlib.Path) -> None:
    a = _trainer(tmp_path / "a", seed=5)
    a.train(5)
    b = _trainer(tmp_path / "b", seed=5)
    b.train(3)
    path = b.save(str(tmp_path / "ck.pt"))
    b.close()
    c = PolicyGroupTrainer.load(path)
    assert isinstance(c, PolicyGroupTrainer) and c.iteration == 3
    c.train(2)
    sa, sc = a.policy.state_dict(), c.policy.state_dict()
    assert all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.num_timesteps == c.num_timesteps
    assert a.evaluate(n_episodes=2) == c.evaluate(n_episodes=2)
    # The generic loader (rltrain eval / robustness) rebuilds it from rltrain's class table.
    assert type(BaseTrainer.load(path, verbose=0)) is PolicyGroupTrainer
    a.close()
    c.close()


def test_cli_train_policy_groups(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rltrain.cli import main

    rc = main(["train", "policy-groups", "--env", "CartPole-v1", "--groups", "2", "--group-size", "2", "--G", "2",
               "--T", "40", "--iters", "3", "--eval-interval", "3", "--eval-episodes", "2", "--seed", "0",
               "--verbose", "0", "--log-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "final evaluation" in out
    assert list(tmp_path.glob("policy-groups_CartPole-v1_s0_*/final_model.pt"))
    rc = main(["train", "policy-groups", "--env", "CartPole-v1", "--groups", "2", "--group-size", "3", "--G", "4",
               "--iters", "1", "--verbose", "0", "--log-dir", str(tmp_path)])
    assert rc == 2
    assert "G: expected a multiple of group_size" in capsys.readouterr().err


def test_gaussian_groups_act_and_measure_diversity() -> None:
    torch.manual_seed(1)
    pol = PolicyGroupPolicy(2, 2, {"obs_dim": 3, "n_actions": 2, "continuous": True})
    obs = torch.randn(5, 3)
    with torch.no_grad():
        for m in pol.members:
            m.pi_head.weight.normal_()
    pol.record_performance(1, 5.0, 0.5)
    pol.record_performance(0, 1.0, 0.5)
    a, logp = pol.act(obs, deterministic=True)
    with torch.no_grad():
        want = (pol.member(1, 0)._pi_out(obs) + pol.member(1, 1)._pi_out(obs)) / 2  # the best group's mean action
        mix = torch.logsumexp(torch.stack([pol.member(1, m).log_prob(obs, a) for m in range(2)]), 0) - math.log(2)
    torch.testing.assert_close(a, want)
    torch.testing.assert_close(logp, mix)
    a2, _ = pol.act(obs)
    assert a2.shape == (5, 2) and not torch.equal(a2, a)
    lp, ent = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(lp, mix)
    # Between-group diversity: KL between the groups' moment-matched Gaussians.
    with torch.no_grad():
        mus = [pol.group_gaussian(g, obs) for g in range(2)]
    div = pol.diversity(obs)
    assert div["between"] == pytest.approx(gaussian_mean_pairwise_kl(torch.stack([m[0] for m in mus]),
                                                                      torch.stack([m[1] for m in mus])), rel=1e-6)
    assert div["between"] > 0 and div["within"] > 0
