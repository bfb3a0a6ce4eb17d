"""The C++ rollout forward of rltrain's default MLP policies (``NativeRollout``, ``_core.kernels.mlp_act``): the
same actions and random stream as ``policy.act``, values and log-probabilities to float rounding, and rows that do
not depend on the batch size (what makes a Ray run equal the local one, tests/test_ray_rollouts.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from rltrain import _core
from rltrain.algos.fused_mlp import FusedActorCritic, NativeRollout, native_rollout_eligible
from rltrain.algos.rollout import make_act, make_value, native_for
from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy

CASES = [
    (ActorCriticPolicy, {}),
    (ActorCriticPolicy, {"continuous": True}),
    (ActorCriticPolicy, {"activation": "relu", "hidden_sizes": (32, 16, 8)}),
    (SimpleGRPOPolicy, {}),
    (SimpleGRPOPolicy, {"continuous": True, "hidden_sizes": (24,)}),
]


def _policy(cls: type, kw: dict[str, Any]) -> Any:
    torch.manual_seed(0)
    pol = cls(6, 3, **kw)
    with torch.no_grad():  # a trained-looking policy: heads far from their near-zero initialisation
        for p in pol.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return pol


@pytest.mark.parametrize(("cls", "kw"), CASES)
def test_matches_policy_act_and_draws_the_same_stream(cls: type, kw: dict[str, Any]) -> None:
    pol = _policy(cls, kw)
    nat = NativeRollout(pol)
    obs = torch.randn(257, 6) * 2
    for det in (False, True):
        torch.manual_seed(3)
        got = nat.act(obs, deterministic=det)
        after = torch.rand(2)
        torch.manual_seed(3)
        want = pol.act(obs, deterministic=det)
        assert torch.equal(after, torch.rand(2))  # both consumed the same draws
        assert len(got) == len(want) == (3 if cls is ActorCriticPolicy else 2)
        for g, w in zip(got, want):
            if g.dtype == torch.int64:
                assert torch.equal(g, w)
            else:
                torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("cls", "kw"), CASES)
def test_rows_do_not_depend_on_the_batch(cls: type, kw: dict[str, Any]) -> None:
    pol = _policy(cls, kw)
    nat = NativeRollout(pol)
    obs = torch.randn(100, 6)
    noise = pol.rollout_noise((100,))
    full = nat.act(obs, noise=noise)
    for cuts in ((0, 1, 100), (0, 37, 38, 64, 100), tuple(range(101))):
        parts = [nat.act(obs[i:j], noise=noise[i:j]) for i, j in zip(cuts[:-1], cuts[1:])]
        for k, whole in enumerate(full):
            assert torch.equal(whole, torch.cat([p[k] for p in parts]))
    if cls is ActorCriticPolicy:
        assert torch.equal(nat.value(obs), full[1])


@pytest.mark.parametrize("gaussian", [False, True])
def test_vector_widths_agree_bitwise(gaussian: bool) -> None:
    pol = _policy(ActorCriticPolicy, {"continuous": gaussian})
    nat = NativeRollout(pol)
    obs = np.random.default_rng(0).normal(size=(61, 6)).astype(np.float32)
    u = pol.rollout_noise((61,)).numpy().reshape((61, 3) if gaussian else (61,))
    outs = []
    for vec in (True, False):
        a = np.zeros((61, 3), np.float32) if gaussian else np.zeros(61, np.int64)
        v, lp = np.zeros(61, np.float32), np.zeros(61, np.float32)
        _core.kernels.mlp_act(nat.flat.numpy(), nat.sizes, 3, nat.act_name, obs, u, a, v, lp, vectorized=vec,
                              gaussian=gaussian)
        outs.append((a, v, lp))
    for x, y in zip(*outs):
        np.testing.assert_array_equal(x, y)


def test_refresh_follows_the_policy_and_shared_flat_tracks_the_fused_update() -> None:
    pol = _policy(ActorCriticPolicy, {})
    nat = NativeRollout(pol)
    obs = torch.randn(8, 6)
    before = nat.value(obs)
    with torch.no_grad():
        pol.vf_head.bias.add_(1.0)
    assert torch.equal(nat.value(obs), before)  # a packed copy until refresh
    nat.refresh()
    torch.testing.assert_close(nat.value(obs), before + 1.0)
    fused = FusedActorCritic(pol, lr=1e-3, adam_eps=1e-5)
    assert fused.native is not None and fused.native.flat is fused.flat
    with torch.no_grad():
        pol.vf_head.bias.add_(1.0)  # a view of the fused flat buffer
    torch.testing.assert_close(fused.native.value(obs), before + 2.0)


def test_make_act_uses_it_for_default_policies_only() -> None:
    pol = _policy(ActorCriticPolicy, {})
    nat = native_for(pol)
    assert isinstance(nat, NativeRollout)
    obs, noise = torch.randn(5, 6), pol.rollout_noise((5,))
    act, value = make_act(pol, False, nat), make_value(pol, False, nat)
    assert all(torch.equal(x, y) for x, y in zip(act(obs, noise, None), nat.act(obs, noise=noise)))
    assert torch.equal(value(obs), nat.value(obs))
    shared = ActorCriticPolicy(6, 3, share_trunk=True)
    squashed = ActorCriticPolicy(6, 2, continuous=True, squash=True)
    beta = ActorCriticPolicy(6, 2, continuous=True, distribution="beta", action_low=-1.0, action_high=1.0)
    for p in (shared, squashed, beta, ActorCriticPolicy(6, 3).double(), ActorCriticPolicy(6, 3, hidden_sizes=())):
        assert not native_rollout_eligible(p) and native_for(p) is None
        with pytest.raises(TypeError, match="policy"):
            NativeRollout(p)


def test_bad_input_names_the_argument() -> None:
    pol = _policy(SimpleGRPOPolicy, {})
    nat = NativeRollout(pol)
    with pytest.raises(ValueError, match="flat"):
        NativeRollout(pol, flat=torch.zeros(3))
    with pytest.raises(TypeError, match="value"):
        nat.value(torch.zeros(2, 6))
    k = _core.kernels
    obs = np.zeros((4, 6), np.float32)
    a, lp = np.zeros(4, np.int64), np.zeros(4, np.float32)
    with pytest.raises(ValueError, match="values"):
        k.mlp_act(nat.flat.numpy(), nat.sizes, 3, "tanh", obs, None, a, np.zeros(4, np.float32), lp, critic=False)
    with pytest.raises(ValueError, match="params"):
        k.mlp_act(nat.flat.numpy(), nat.sizes, 3, "tanh", obs, None, a, np.zeros(4, np.float32), lp)
    with pytest.raises(ValueError, match="u"):
        k.mlp_act(nat.flat.numpy(), nat.sizes, 3, "tanh", obs, np.zeros(3, np.float32), a, None, lp, critic=False)
    with pytest.raises(TypeError, match="actions"):
        k.mlp_act(nat.flat.numpy(), nat.sizes, 3, "tanh", obs, None, np.zeros(4, np.float32), None, lp, critic=False,
                  gaussian=False)
    with pytest.raises(ValueError, match="u"):
        k.mlp_act(np.zeros(nat.flat.numel() + 3, np.float32), nat.sizes, 3, "tanh", obs,
                  np.zeros(4, np.float32), np.zeros((4, 3), np.float32), None, lp, critic=False, gaussian=True)
