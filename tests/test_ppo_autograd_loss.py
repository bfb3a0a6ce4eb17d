"""PPOTrainer's autograd loss (``rltrain.algos.ppo.ppo_loss`` on an ``ActorCriticPolicy``'s densities, the path
for GPUs and non-MLP policies) == ``rltrain.reference.ppo_loss_grad`` == ``rltrain.kernels.ppo_loss_grad``: loss
statistics and gradients w.r.t. the head outputs, the values and the log-std, on random minibatches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain import kernels as K
from rltrain import reference as R
from rltrain.algos.ppo import ppo_loss
from rltrain.policies import ActorCriticPolicy


def _probe_policy(A: int, continuous: bool) -> ActorCriticPolicy:
    """A policy whose observation is ``[head outputs | value]``: no hidden layer, heads that copy their part, so
    the gradient w.r.t. the observation is the gradient w.r.t. the head outputs and the values."""
    pol = ActorCriticPolicy(A + 1, A, hidden_sizes=(), continuous=continuous).double()
    with torch.no_grad():
        pol.pi_head.weight.copy_(torch.cat([torch.eye(A), torch.zeros(A, 1)], 1))
        pol.pi_head.bias.zero_()
        pol.vf_head.weight.copy_(torch.cat([torch.zeros(1, A), torch.ones(1, 1)], 1))
        pol.vf_head.bias.zero_()
    return pol


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("clip_vf", [None, 0.3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_autograd_loss_matches_reference_and_kernel(continuous: bool, clip_vf: float | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    B, A = 48, 3
    head = rng.normal(size=(B, A))
    values = rng.normal(size=B)
    actions = rng.normal(size=(B, A)) if continuous else rng.integers(0, A, B).astype(np.int64)
    old_logp, adv, returns, old_values = (rng.normal(size=B) for _ in range(4))
    old_logp = old_logp - 1.5
    clip, ent_coef, vf_coef = 0.2, 0.01, 0.5
    pol = _probe_policy(A, continuous)
    if continuous:
        with torch.no_grad():
            pol.log_std.copy_(torch.from_numpy(rng.normal(scale=0.3, size=A)))

    obs = torch.tensor(np.concatenate([head, values[:, None]], 1), requires_grad=True)
    v, logp, ent = pol.evaluate_actions(obs, torch.from_numpy(actions))
    t = lambda x: torch.from_numpy(np.asarray(x))
    loss, st = ppo_loss(v, logp, ent, t(old_logp), t(adv), t(returns), t(old_values), clip=clip, clip_vf=clip_vf,
                        ent_coef=ent_coef, vf_coef=vf_coef)
    loss.backward()
    got_stats = np.array([float(st[k]) for k in ("pg", "vf", "ent", "kl", "clipfrac")])
    log_std = pol.log_std.detach().numpy() if continuous else None

    for impl in (R, K):
        dh, dv = np.empty((B, A)), np.empty(B)
        dls = np.empty(A) if continuous else None
        pg, vl, entropy, kl, cf = impl.ppo_loss_grad(head, actions, old_logp, adv, returns, values, old_values,
                                                     clip=clip, clip_vf=clip_vf, ent_coef=ent_coef, vf_coef=vf_coef,
                                                     dhead=dh, dvalues=dv, log_std=log_std, dlog_std=dls)
        np.testing.assert_allclose(got_stats[:4], [pg, vl, -entropy, kl], rtol=1e-9, atol=1e-12)
        assert got_stats[4] == pytest.approx(cf, rel=1e-6)  # a fraction of B, averaged in float32
        np.testing.assert_allclose(loss.item(), pg - ent_coef * entropy + vf_coef * vl, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(obs.grad[:, :A].numpy(), dh, rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(obs.grad[:, A].numpy(), dv, rtol=1e-8, atol=1e-12)
        if continuous:
            np.testing.assert_allclose(pol.log_std.grad.numpy(), dls, rtol=1e-8, atol=1e-12)
