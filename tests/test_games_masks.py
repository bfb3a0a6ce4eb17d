"""Masked categorical policies: illegal actions are never sampled nor chosen greedily, log-probabilities and
entropies are the masked distribution's, and PPO / GRPO train on envs that report ``info["action_mask"]``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain import GRPOConfig, PerEpAdvGRPOTrainer, PPOConfig, PPOTrainer
from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy

TTT = "rltrain/TicTacToe-v0"


def _biased_policy() -> ActorCriticPolicy:
    torch.manual_seed(0)
    pol = ActorCriticPolicy(9, 9)
    with torch.no_grad():
        pol.pi_head.bias.copy_(torch.arange(9, dtype=torch.float32) * 5.0)  # action 8 is overwhelmingly preferred
    return pol


def test_masked_actions_are_never_sampled_nor_chosen() -> None:
    pol = _biased_policy()
    obs = torch.zeros(4000, 9)
    mask = torch.rand(4000, 9, generator=torch.Generator().manual_seed(1)) < 0.4
    mask[:, 8] = False  # the favourite is illegal everywhere
    mask[mask.sum(1) == 0, 0] = True
    for det in (False, True):
        a, _, logp = pol.act(obs, deterministic=det, action_mask=mask)
        assert mask[torch.arange(4000), a].all()
        assert torch.isfinite(logp).all()
    a, _, _ = pol.act(obs, deterministic=True, action_mask=mask)
    legal_best = torch.where(mask, torch.arange(9).expand(4000, 9), -1).argmax(1)
    assert torch.equal(a, legal_best)  # greedy = the best legal action
    # Without a mask the favourite dominates: the mask is what keeps it out.
    assert (pol.act(obs[:100], deterministic=True)[0] == 8).all()
    gpol = SimpleGRPOPolicy(9, 9)
    ga, _ = gpol.act(obs, action_mask=mask)
    assert mask[torch.arange(4000), ga].all()


def test_masked_log_prob_and_entropy_match_torch_distributions() -> None:
    pol = _biased_policy()
    obs = torch.randn(64, 9, generator=torch.Generator().manual_seed(2))
    mask = torch.rand(64, 9, generator=torch.Generator().manual_seed(3)) < 0.5
    mask[:, 2] = True
    a, _, logp = pol.act(obs, action_mask=mask)
    logits = pol.pi_head(pol.pi_trunk(obs)).masked_fill(~mask, float("-inf"))
    ref = torch.distributions.Categorical(logits=logits)
    _, lp, ent = pol.evaluate_actions(obs, a, action_mask=mask)
    torch.testing.assert_close(lp, ref.log_prob(a))
    torch.testing.assert_close(logp, ref.log_prob(a))
    torch.testing.assert_close(ent, ref.entropy())
    (lp.sum() + ent.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in pol.parameters() if p.grad is not None)


def test_mask_errors() -> None:
    pol = ActorCriticPolicy(9, 9)
    with pytest.raises(ValueError, match="action_mask: expected shape"):
        pol.act(torch.zeros(2, 9), action_mask=torch.ones(2, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least one legal action"):
        pol.act(torch.zeros(2, 9), action_mask=torch.zeros(2, 9, dtype=torch.bool))
    cont = ActorCriticPolicy(3, 2, continuous=True)
    with pytest.raises(ValueError, match="categorical"):
        cont.act(torch.zeros(1, 3), action_mask=torch.ones(1, 2, dtype=torch.bool))


def _cfg(cls: type, tmp_path: object, **kw: object) -> object:
    return cls(env=TTT, seed=0, verbose=0, loggers=(), log_dir=str(tmp_path), **kw)


def test_ppo_stores_masks_and_updates_with_the_masked_distribution(tmp_path: object) -> None:
    # The env raises on any illegal action, so training at all shows the rollout never picked one.
    t = PPOTrainer(None, _cfg(PPOConfig, tmp_path, G=8, T=16, epochs=1, minibatches=1))
    assert t.fused is None  # the fused kernel knows no masks
    t.train(2)
    b = t._buffers
    assert b is not None and "masks" in b
    assert (b["masks"] == (b["obs"] == 0)).all()  # TicTacToe: legal = empty cells of the stored observation
    acts = b["actions"]
    assert np.take_along_axis(b["masks"], acts[..., None], -1).all()
    # Masking renormalises over the legal actions: a higher log-probability wherever some action is illegal.
    o = torch.from_numpy(b["obs"].reshape(-1, 9))
    a = torch.from_numpy(acts.reshape(-1))
    m = torch.from_numpy(b["masks"].reshape(-1, 9))
    _, lp_m, ent_m = t.policy.evaluate_actions(o, a, action_mask=m)
    _, lp_u, _ = t.policy.evaluate_actions(o, a)
    part = ~m.all(1)
    assert torch.isfinite(lp_m).all() and torch.isfinite(ent_m).all() and part.any()
    assert (lp_m[part] > lp_u[part]).all() and torch.allclose(lp_m[~part], lp_u[~part])
    # predict honours a mask
    obs = np.zeros(9, np.float32)
    assert t.predict(obs, action_mask=np.eye(9, dtype=bool)[5]) == 5
    assert (t.predict(np.zeros((3, 9)), action_mask=np.eye(9, dtype=bool)[[1, 2, 7]]) == [1, 2, 7]).all()


def test_ppo_first_epoch_ratio_is_one_under_masks(tmp_path: object) -> None:
    t = PPOTrainer(None, _cfg(PPOConfig, tmp_path, G=4, T=8, epochs=1, minibatches=1, lr=1e-12))
    t.train(1)
    b = t._buffers
    assert b is not None
    o, a = torch.from_numpy(b["obs"].reshape(-1, 9)), torch.from_numpy(b["actions"].reshape(-1))
    m = torch.from_numpy(b["masks"].reshape(-1, 9))
    _, lp, _ = t.policy.evaluate_actions(o, a, action_mask=m)
    torch.testing.assert_close(lp, torch.from_numpy(b["logp"].reshape(-1)), atol=1e-5, rtol=1e-5)


def test_grpo_trains_on_masked_env(tmp_path: object) -> None:
    g = PerEpAdvGRPOTrainer(None, _cfg(GRPOConfig, tmp_path, G=8, T=9, epochs=1, minibatches=1))
    g.train(2)
    assert g.last_batch is not None and "masks" in g.last_batch
    res = g.evaluate(8)
    assert res["n_episodes"] == 8
