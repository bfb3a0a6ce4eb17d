"""rltrain's language-model kernels (SPEC §6) reproduce verl 0.9.1's conventions, held to a NumPy transcription of
verl's loops (tests/_verl_numpy.py) so that this runs wherever the test suite runs, verl installed or not.
tests/test_llm_parity_verl.py makes the same comparisons against verl's own functions and holds the
transcription to them.

Random float64 batches: ragged groups named by uid strings in any order, groups of one, a group of equal
rewards, masks with holes and fully masked rows. Tolerance 1e-6 (absolute and relative); the only differences are
summation order and verl's small constants (the 1e-8 in masked_mean's count), both far below it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import _verl_numpy as V
from rltrain import kernels as K

SEEDS = [0, 1, 2, 3]
TOL = dict(rtol=1e-6, atol=1e-6)


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def batch(request: pytest.FixtureRequest) -> V.Batch:
    return V.random_batch(request.param, batch=29 + 8 * request.param)


def _group_sizes(b: V.Batch) -> np.ndarray:
    return np.bincount(b.group_ids)[b.group_ids]


def test_batches_cover_the_awkward_cases(batch: V.Batch) -> None:
    sizes = _group_sizes(batch)
    assert (sizes == 1).any() and (sizes >= 2).any()
    assert (batch.mask.sum(axis=1) == 0).any()  # fully masked rows
    assert ((batch.mask[:, :-1] == 0) & (batch.mask[:, 1:] == 1)).any()  # a hole before a response token
    scores = batch.token_rewards.sum(axis=1)
    assert any(np.ptp(scores[batch.group_ids == g]) == 0 for g in np.unique(batch.group_ids[sizes >= 2]))


@pytest.mark.parametrize("by_std", [True, False], ids=["std", "no_std"])
def test_grpo_outcome_advantage(batch: V.Batch, by_std: bool) -> None:
    expected = V.grpo_outcome_advantage(batch.token_rewards, batch.mask, batch.uid, norm_adv_by_std_in_grpo=by_std)
    scores = K.group_advantages(batch.token_rewards.sum(axis=1), batch.group_ids, preset="verl",
                                scale="group" if by_std else "none")
    np.testing.assert_allclose(scores[:, None] * batch.mask, expected, **TOL)


def test_rloo_outcome_advantage(batch: V.Batch) -> None:
    expected = V.rloo_outcome_advantage(batch.token_rewards, batch.mask, batch.uid)
    ours = K.rloo_advantages(batch.token_rewards.sum(axis=1), batch.group_ids)[:, None] * batch.mask
    many = _group_sizes(batch) >= 2  # verl leaves a group of one its score; rltrain gives it 0 (SPEC §6)
    np.testing.assert_allclose(ours[many], expected[many], **TOL)
    assert (ours[~many] == 0).all()


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_reinforce_plus_plus(batch: V.Batch, gamma: float) -> None:
    adv, ret = V.reinforce_plus_plus_outcome_advantage(batch.token_rewards, batch.mask, gamma)
    ours_ret = K.token_returns(batch.token_rewards, batch.mask, gamma=gamma, masked="carry")
    np.testing.assert_allclose(ours_ret, ret, **TOL)
    np.testing.assert_allclose(K.masked_whiten(ours_ret, batch.mask) * batch.mask, adv, **TOL)
    np.testing.assert_allclose(K.masked_whiten(ours_ret, batch.mask, times_mask=True), adv, **TOL)


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)])
def test_gae(batch: V.Batch, gamma: float, lam: float) -> None:
    adv, ret = V.gae_advantage_return(batch.token_rewards, batch.values, batch.mask, gamma, lam)
    ours_adv, ours_ret = K.token_gae(batch.token_rewards, batch.values, batch.mask, gamma=gamma, lam=lam)
    np.testing.assert_allclose(ours_ret, ret, **TOL)
    np.testing.assert_allclose(K.masked_whiten(ours_adv, batch.mask), adv, **TOL)


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [0.5, 2.0, -1.0]], ids=["equal", "weighted"])
def test_gdpo(batch: V.Batch, weights: list[float]) -> None:
    cols = [np.pad(batch.columns[:, [k]], ((0, 0), (batch.mask.shape[1] - 1, 0))) for k in range(3)]
    expected = V.gdpo_outcome_advantage(cols, batch.mask, batch.uid, np.asarray(weights))
    # rltrain's normalize_then_sum ends with a batch normalisation; verl whitens over the mask instead. Whitening
    # is invariant to that affine map up to its 1e-8 (relative effect ~1e-8 here).
    combined = K.group_advantages(batch.columns, batch.group_ids, preset="verl", reward_weights=weights,
                                  combine="normalize_then_sum")
    ours = K.masked_whiten(combined[:, None] * batch.mask, batch.mask) * batch.mask
    np.testing.assert_allclose(ours, expected, **TOL)


@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten(batch: V.Batch, shift_mean: bool) -> None:
    x = batch.values * 3.0 + 1.5
    np.testing.assert_allclose(K.masked_whiten(x, batch.mask, shift_mean=shift_mean),
                               V.masked_whiten(x, batch.mask, shift_mean=shift_mean), **TOL)


@pytest.mark.parametrize("mode", V.LOSS_MODES)
def test_agg_loss(batch: V.Batch, mode: str) -> None:
    loss = batch.values
    ours = K.aggregate_loss(torch.from_numpy(loss), torch.from_numpy(batch.mask), mode=mode)
    expected = V.agg_loss(loss, batch.mask, mode)
    if mode == "seq-mean-token-sum-norm":
        # SPEC §6: sum(loss * mask) / norm_constant (default L); verl 0.9.1 also divides by the number of
        # sequences with at least one response token.
        expected *= float((batch.mask.sum(axis=1) > 0).sum())
    np.testing.assert_allclose(float(ours), expected, **TOL)


def test_agg_loss_norm_constant(batch: V.Batch) -> None:
    ours = K.aggregate_loss(torch.from_numpy(batch.values), torch.from_numpy(batch.mask),
                            mode="seq-mean-token-sum-norm", norm_constant=64.0)
    expected = V.agg_loss(batch.values, batch.mask, "seq-mean-token-sum-norm", loss_scale_factor=64.0)
    np.testing.assert_allclose(float(ours) / float((batch.mask.sum(axis=1) > 0).sum()), expected, **TOL)


@pytest.mark.parametrize("kind", V.VERL_KL_KINDS)
def test_kl_penalty(batch: V.Batch, kind: str) -> None:
    rng = np.random.default_rng(len(batch.uid))
    logp = -rng.exponential(2.0, batch.mask.shape)
    ref = logp + rng.standard_normal(batch.mask.shape) * 2.0
    ref[0, :3] = logp[0, :3] + np.array([25.0, -25.0, 3.0])  # outside verl's clamps: exp(20) and the 10 cap
    expected = V.kl_penalty_forward(logp, ref, kind)
    clamp = kind in ("k3", "low_var_kl")  # verl clamps its k3 only
    np.testing.assert_allclose(K.kl_estimate(logp, ref, kind=kind, clamp=clamp), expected, **TOL)
    np.testing.assert_allclose(K.kl_estimate(logp, ref, batch.mask, kind=kind, clamp=clamp),
                               np.where(batch.mask != 0, expected, 0.0), **TOL)
