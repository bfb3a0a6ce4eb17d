"""rltrain's language-model kernels against verl 0.9.1's own functions (verl.trainer.ppo.core_algos and
verl.utils.torch_functional), called as verl's trainer calls them, on random float64 batches: ragged groups named
by uid strings in any order, groups of one, a group of equal rewards, masks with holes and fully masked rows.
Tolerance 1e-6 (absolute and relative) except where verl computes in float32 (GDPO's reward keys, below).

verl is not in the test extra (it pins transformers and needs ray and an inference stack): .ci/run installs it
without its dependencies in a stage of its own and sets RLTRAIN_REQUIRE_VERL=1, which turns the skip below into a
failure. Where verl is absent, tests/test_llm_conventions.py makes the same comparisons against a NumPy
transcription of these functions, and the tests at the end of this file hold that transcription to verl.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import _verl_numpy as V
from rltrain import kernels as K

try:
    import verl.utils.torch_functional as verl_F
    from verl.trainer.config import AlgoConfig
    from verl.trainer.ppo import core_algos
except ImportError as exc:
    if os.environ.get("RLTRAIN_REQUIRE_VERL") == "1":
        pytest.fail(f"RLTRAIN_REQUIRE_VERL=1 but verl does not import: {exc!r}", pytrace=False)
    pytest.skip(f"verl is not importable ({exc}); .ci/run's verl stage installs verl==0.9.1 --no-deps",
                allow_module_level=True)

SEEDS = [0, 1, 2]
TOL = dict(rtol=1e-6, atol=1e-6)


def test_the_verl_release_read() -> None:
    import verl

    assert verl.__version__ == "0.9.1", "these tests and tests/_verl_numpy.py transcribe verl 0.9.1"


@pytest.fixture(params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def batch(request: pytest.FixtureRequest) -> V.Batch:
    return V.random_batch(100 + request.param, batch=31 + 9 * request.param)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def _group_sizes(b: V.Batch) -> np.ndarray:
    return np.bincount(b.group_ids)[b.group_ids]


# ---- rltrain against verl ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("by_std", [True, False], ids=["std", "no_std"])
def test_grpo_outcome_advantage(batch: V.Batch, by_std: bool) -> None:
    adv, ret = core_algos.compute_grpo_outcome_advantage(
        token_level_rewards=_t(batch.token_rewards), response_mask=_t(batch.mask), index=batch.uid,
        norm_adv_by_std_in_grpo=by_std)
    assert adv.dtype == torch.float64
    scores = K.group_advantages(_t(batch.token_rewards).sum(-1), batch.group_ids, preset="verl",
                                scale="group" if by_std else "none")
    torch.testing.assert_close(scores[:, None] * _t(batch.mask), adv, **TOL)
    torch.testing.assert_close(ret, adv, rtol=0, atol=0)


def test_rloo_outcome_advantage(batch: V.Batch) -> None:
    adv, _ = core_algos.compute_rloo_outcome_advantage(
        token_level_rewards=_t(batch.token_rewards), response_mask=_t(batch.mask), index=batch.uid)
    ours = K.rloo_advantages(batch.token_rewards.sum(axis=1), batch.group_ids)[:, None] * batch.mask
    many = _group_sizes(batch) >= 2  # verl leaves a group of one its score; rltrain gives it 0 (SPEC §6)
    np.testing.assert_allclose(ours[many], adv.numpy()[many], **TOL)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_reinforce_plus_plus(batch: V.Batch, gamma: float) -> None:
    adv, ret = core_algos.compute_reinforce_plus_plus_outcome_advantage(
        token_level_rewards=_t(batch.token_rewards), response_mask=_t(batch.mask), config=AlgoConfig(gamma=gamma))
    ours_ret = K.token_returns(batch.token_rewards, batch.mask, gamma=gamma, masked="carry")
    np.testing.assert_allclose(ours_ret, ret.numpy(), **TOL)
    np.testing.assert_allclose(K.masked_whiten(ours_ret, batch.mask) * batch.mask, adv.numpy(), **TOL)


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.99, 0.95), (0.9, 0.0)])
def test_gae(batch: V.Batch, gamma: float, lam: float) -> None:
    adv, ret = core_algos.compute_gae_advantage_return(
        token_level_rewards=_t(batch.token_rewards), values=_t(batch.values), response_mask=_t(batch.mask),
        gamma=gamma, lam=lam)
    ours_adv, ours_ret = K.token_gae(batch.token_rewards, batch.values, batch.mask, gamma=gamma, lam=lam)
    np.testing.assert_allclose(ours_ret, ret.numpy(), **TOL)
    np.testing.assert_allclose(K.masked_whiten(ours_adv, batch.mask), adv.numpy(), **TOL)


def _ours_gdpo(batch: V.Batch, columns: np.ndarray, weights: list[float] | None) -> np.ndarray:
    # rltrain's normalize_then_sum ends with a batch normalisation, verl whitens over the mask: whitening is
    # invariant to that affine map up to its 1e-8.
    combined = K.group_advantages(columns, batch.group_ids, preset="verl", reward_weights=weights,
                                  combine="normalize_then_sum")
    return K.masked_whiten(combined[:, None] * batch.mask, batch.mask) * batch.mask


def test_gdpo_plain_call(batch: V.Batch) -> None:
    # Called without config/non_tensor_batch/batch, verl's GDPO has one reward column: token_level_rewards.
    adv, _ = core_algos.compute_gdpo_outcome_advantage(
        token_level_rewards=_t(batch.token_rewards), response_mask=_t(batch.mask), index=batch.uid)
    assert adv.dtype == torch.float64
    np.testing.assert_allclose(_ours_gdpo(batch, batch.token_rewards.sum(axis=1)[:, None], None), adv.numpy(), **TOL)


def test_gdpo_reward_keys(batch: V.Batch) -> None:
    # As verl's trainer calls it: the reward columns are non_tensor_batch entries named by
    # algorithm.gdpo_reward_keys. verl casts each column to float32 (np.asarray(..., dtype=np.float32) into a
    # float32 score tensor), so its per-column GRPO runs in float32, and the tolerance is float32's (differences
    # up to 4e-7 over 60 seeds). The columns lie on a 1/8 grid so that float32 sums are exact: otherwise verl's
    # float32 mean of a group of equal rewards can miss them by an ulp, which its epsilon of 1e-6 turns into an
    # advantage of ~0.02 where rltrain (float64 statistics) gives 0.
    columns = np.round(batch.columns * 8) / 8
    weights = [0.5, 2.0, -1.0]
    keys = ["accuracy", "format", "length"]
    n, length = batch.mask.shape
    prompt_len = 3
    adv, _ = core_algos.compute_gdpo_outcome_advantage(
        token_level_rewards=_t(batch.token_rewards), response_mask=_t(batch.mask), index=batch.uid,
        config=AlgoConfig(gdpo_reward_keys=keys, gdpo_reward_weights=weights),
        non_tensor_batch={k: columns[:, j] for j, k in enumerate(keys)} | {"uid": batch.uid},
        batch={"prompts": torch.zeros(n, prompt_len, dtype=torch.long),
               "attention_mask": torch.cat([torch.ones(n, prompt_len), _t(batch.mask)], dim=1).long()})
    np.testing.assert_allclose(_ours_gdpo(batch, columns, weights), adv.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten(batch: V.Batch, shift_mean: bool) -> None:
    x = batch.values * 3.0 + 1.5
    expected = verl_F.masked_whiten(_t(x), _t(batch.mask), shift_mean=shift_mean)
    np.testing.assert_allclose(K.masked_whiten(x, batch.mask, shift_mean=shift_mean), expected.numpy(), **TOL)


@pytest.mark.parametrize("mode", V.LOSS_MODES)
def test_agg_loss(batch: V.Batch, mode: str) -> None:
    mask = _t(batch.mask)
    ours_in = _t(batch.values).clone().requires_grad_(True)
    verl_in = _t(batch.values).clone().requires_grad_(True)
    ours = K.aggregate_loss(ours_in, mask, mode=mode)
    expected = core_algos.agg_loss(loss_mat=verl_in, loss_mask=mask, loss_agg_mode=mode)
    if mode == "seq-mean-token-sum-norm":
        # SPEC §6: sum(loss * mask) / norm_constant (default L); verl 0.9.1 also divides by the number of
        # sequences with at least one response token.
        ours = ours / float((batch.mask.sum(axis=1) > 0).sum())
    torch.testing.assert_close(ours, expected, **TOL)
    ours.backward()
    expected.backward()
    assert ours_in.grad is not None and verl_in.grad is not None
    torch.testing.assert_close(ours_in.grad, verl_in.grad, **TOL)


def test_agg_loss_norm_constant(batch: V.Batch) -> None:
    mask = _t(batch.mask)
    ours = K.aggregate_loss(_t(batch.values), mask, mode="seq-mean-token-sum-norm", norm_constant=64.0)
    expected = core_algos.agg_loss(loss_mat=_t(batch.values), loss_mask=mask, loss_agg_mode="seq-mean-token-sum-norm",
                                   loss_scale_factor=64)
    torch.testing.assert_close(ours / float((batch.mask.sum(axis=1) > 0).sum()), expected, **TOL)


@pytest.mark.parametrize("kind", V.VERL_KL_KINDS)
def test_kl_penalty_forward(batch: V.Batch, kind: str) -> None:
    rng = np.random.default_rng(len(batch.uid))
    logp = -rng.exponential(2.0, batch.mask.shape)
    ref = logp + rng.standard_normal(batch.mask.shape) * 2.0
    ref[0, :3] = logp[0, :3] + np.array([25.0, -25.0, 3.0])  # outside verl's clamps: exp(20) and the 10 cap
    expected = core_algos.kl_penalty_forward(_t(logp), _t(ref), kind).numpy()
    clamp = kind in ("k3", "low_var_kl")  # verl clamps its k3 only
    np.testing.assert_allclose(K.kl_estimate(logp, ref, kind=kind, clamp=clamp), expected, **TOL)
    np.testing.assert_allclose(K.kl_estimate(logp, ref, batch.mask, kind=kind, clamp=clamp),
                               np.where(batch.mask != 0, expected, 0.0), **TOL)


# ---- tests/_verl_numpy.py (what test_llm_conventions.py compares with) against verl ------------------------------


def test_transcription_grpo_rloo_gdpo(batch: V.Batch) -> None:
    r, m = _t(batch.token_rewards), _t(batch.mask)
    for by_std in (True, False):
        adv, _ = core_algos.compute_grpo_outcome_advantage(r, m, batch.uid, norm_adv_by_std_in_grpo=by_std)
        np.testing.assert_allclose(V.grpo_outcome_advantage(batch.token_rewards, batch.mask, batch.uid,
                                                            norm_adv_by_std_in_grpo=by_std), adv.numpy(), **TOL)
    adv, _ = core_algos.compute_rloo_outcome_advantage(r, m, batch.uid)
    np.testing.assert_allclose(V.rloo_outcome_advantage(batch.token_rewards, batch.mask, batch.uid), adv.numpy(),
                               **TOL)
    adv, _ = core_algos.compute_gdpo_outcome_advantage(r, m, batch.uid)
    np.testing.assert_allclose(V.gdpo_outcome_advantage([batch.token_rewards], batch.mask, batch.uid,
                                                        np.ones(1)), adv.numpy(), **TOL)


def test_transcription_token_recursions(batch: V.Batch) -> None:
    r, v, m = _t(batch.token_rewards), _t(batch.values), _t(batch.mask)
    for gamma, lam in [(1.0, 1.0), (0.99, 0.95)]:
        expected = core_algos.compute_gae_advantage_return(r, v, m, gamma, lam)
        for got, want in zip(V.gae_advantage_return(batch.token_rewards, batch.values, batch.mask, gamma, lam),
                             expected):
            np.testing.assert_allclose(got, want.numpy(), **TOL)
        expected = core_algos.compute_reinforce_plus_plus_outcome_advantage(r, m, config=AlgoConfig(gamma=gamma))
        for got, want in zip(V.reinforce_plus_plus_outcome_advantage(batch.token_rewards, batch.mask, gamma),
                             expected):
            np.testing.assert_allclose(got, want.numpy(), **TOL)
    for shift in (True, False):
        np.testing.assert_allclose(V.masked_whiten(batch.values, batch.mask, shift),
                                   verl_F.masked_whiten(v, m, shift).numpy(), **TOL)


def test_transcription_agg_loss_and_kl(batch: V.Batch) -> None:
    v, m = _t(batch.values), _t(batch.mask)
    for mode in [*V.LOSS_MODES, "token-sum"]:
        np.testing.assert_allclose(V.agg_loss(batch.values, batch.mask, mode),
                                   float(core_algos.agg_loss(v, m, mode)), **TOL)
    ref = batch.values + np.linspace(-30, 30, batch.values.size).reshape(batch.values.shape)
    for kind in V.VERL_KL_KINDS:
        np.testing.assert_allclose(V.kl_penalty_forward(batch.values, ref, kind),
                                   core_algos.kl_penalty_forward(v, _t(ref), kind).numpy(), **TOL)
