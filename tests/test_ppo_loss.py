"""rltrain.kernels.ppo_loss_grad == rltrain.reference.ppo_loss_grad, and both == autograd on the torch loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain import kernels as K
from rltrain import reference as R


def _batch(rng: np.random.Generator, B: int, A: int, continuous: bool, dtype=np.float64):
    head = rng.normal(size=(B, A)).astype(dtype)
    actions = rng.normal(size=(B, A)).astype(dtype) if continuous else rng.integers(0, A, B).astype(np.int64)
    vecs = [rng.normal(size=B).astype(dtype) for _ in range(5)]
    vecs[0] = vecs[0] - 1.0  # old log-probabilities
    log_std = rng.normal(scale=0.3, size=A).astype(dtype) if continuous else None
    return head, actions, vecs, log_std


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("clip_vf", [None, 0.3])
@pytest.mark.parametrize("normalize_adv", [False, True])
@pytest.mark.parametrize("B", [1, 7, 64])
def test_kernel_matches_reference(continuous: bool, clip_vf, normalize_adv: bool, B: int) -> None:
    rng = np.random.default_rng(B)
    head, actions, vecs, log_std = _batch(rng, B, 3, continuous)
    outs = []
    for impl in (K, R):
        dh, dv = np.empty_like(head), np.empty(B)
        dls = np.empty(3) if continuous else None
        stats = impl.ppo_loss_grad(head, actions, *vecs, clip=0.2, clip_vf=clip_vf, ent_coef=0.01, vf_coef=0.5,
                                   dhead=dh, dvalues=dv, log_std=log_std, dlog_std=dls, normalize_adv=normalize_adv)
        outs.append((np.array(stats), dh, dv, dls))
    for a, b in zip(outs[0], outs[1]):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("continuous", [False, True])
def test_gradient_equals_autograd(continuous: bool) -> None:
    rng = np.random.default_rng(0)
    B, A = 32, 4
    head, actions, (old_logp, adv, ret, values, old_values), log_std = _batch(rng, B, A, continuous)
    h = torch.tensor(head, requires_grad=True)
    v = torch.tensor(values, requires_grad=True)
    ls = torch.tensor(log_std, requires_grad=True) if continuous else None
    if continuous:
        d = torch.tensor(actions) - h
        logp = (-0.5 * d * d * torch.exp(-2 * ls) - ls).sum(-1) - 0.5 * np.log(2 * np.pi) * A
        ent = (0.5 + 0.5 * np.log(2 * np.pi) + ls).sum().expand(B)
    else:
        lp_all = torch.log_softmax(h, -1)
        logp = lp_all.gather(-1, torch.tensor(actions).unsqueeze(-1)).squeeze(-1)
        ent = -(lp_all.exp() * lp_all).sum(-1)
    ratio = torch.exp(logp - torch.tensor(old_logp))
    a_t = torch.tensor(adv)
    pg = -torch.min(a_t * ratio, a_t * torch.clamp(ratio, 0.8, 1.2)).mean()
    ov = torch.tensor(old_values)
    vpred = ov + torch.clamp(v - ov, -0.3, 0.3)
    loss = pg + 0.01 * (-ent.mean()) + 0.5 * torch.nn.functional.mse_loss(torch.tensor(ret), vpred)
    loss.backward()
    dh, dv = np.empty_like(head), np.empty(B)
    dls = np.empty(A) if continuous else None
    K.ppo_loss_grad(head, actions, old_logp, adv, ret, values, old_values, clip=0.2, clip_vf=0.3, ent_coef=0.01,
                    vf_coef=0.5, dhead=dh, dvalues=dv, log_std=log_std, dlog_std=dls)
    np.testing.assert_allclose(dh, h.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dv, v.grad.numpy(), rtol=1e-9, atol=1e-12)
    if continuous:
        np.testing.assert_allclose(dls, ls.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_bad_input_names_the_argument() -> None:
    rng = np.random.default_rng(1)
    head, actions, vecs, _ = _batch(rng, 8, 3, False)
    dh, dv = np.empty_like(head), np.empty(8)
    bad = actions.copy()
    bad[2] = 3
    with pytest.raises(ValueError, match="actions"):
        K.ppo_loss_grad(head, bad, *vecs, clip=0.2, clip_vf=None, ent_coef=0.0, vf_coef=0.5, dhead=dh, dvalues=dv)
    with pytest.raises(ValueError, match="adv"):
        K.ppo_loss_grad(head, actions, vecs[0], vecs[1][:5], *vecs[2:], clip=0.2, clip_vf=None, ent_coef=0.0,
                        vf_coef=0.5, dhead=dh, dvalues=dv)
    with pytest.raises(TypeError, match="head"):
        K.ppo_loss_grad(head.astype(np.int64), actions, *vecs, clip=0.2, clip_vf=None, ent_coef=0.0, vf_coef=0.5,
                        dhead=dh, dvalues=dv)
