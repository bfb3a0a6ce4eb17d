"""Policies: every distribution's log-prob and entropy against torch.distributions (the tanh correction included),
sampling within bounds, backbones (MLP, Transformer, CNN, a user class), shared trunks, from_spaces, bad input and
checkpoint round trips."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import distributions as D
from torch import nn

from rltrain import PPOConfig, PPOTrainer
from rltrain.algos.base import BaseTrainer
from rltrain.algos.fused_mlp import fused_eligible
from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy, build_backbone

LOW = np.array([-2.0, 0.0, -0.5])
HIGH = np.array([2.0, 1.0, 3.0])


def _obs(n: int = 16, d: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _policy(**kw: object) -> ActorCriticPolicy:
    torch.manual_seed(0)
    pol = ActorCriticPolicy(5, 3, **kw).double()
    with torch.no_grad():  # move the heads away from their near-zero init so the test sees real distributions
        pol.pi_head.weight.normal_(0, 0.7)
        pol.pi_head.bias.normal_(0, 0.5)
        if hasattr(pol, "log_std"):
            pol.log_std.copy_(torch.tensor([-0.3, 0.2, -1.0]))
    return pol


def test_categorical_matches_torch() -> None:
    pol = _policy()
    obs = _obs()
    logits = pol._pi_out(obs)
    ref = D.Categorical(logits=logits)
    a = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(1))
    _, logp, ent = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(logp, ref.log_prob(a))
    torch.testing.assert_close(ent, ref.entropy())


def test_gaussian_matches_torch() -> None:
    pol = _policy(continuous=True)
    obs = _obs()
    mean = pol._pi_out(obs)
    ref = D.Independent(D.Normal(mean, pol.log_std.exp().expand_as(mean)), 1)
    a = ref.sample()
    _, logp, ent = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(logp, ref.log_prob(a))
    torch.testing.assert_close(ent, ref.entropy())


def test_tanh_squashed_gaussian_matches_torch_transformed() -> None:
    pol = _policy(continuous=True, squash=True, action_low=LOW, action_high=HIGH)
    obs = _obs()
    mean = pol._pi_out(obs)
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    base = D.Normal(mean, pol.log_std.exp().expand_as(mean))
    ref = D.Independent(D.TransformedDistribution(base, [D.TanhTransform(), D.AffineTransform(
        (low + high) / 2, (high - low) / 2)]), 1)
    a = ref.sample()
    _, logp, ent = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(logp, ref.log_prob(a), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ent, -logp)  # one-sample entropy estimate (no closed form)
    # The correction matters: the plain Gaussian density of atanh(a) is different.
    u = torch.atanh((a - (low + high) / 2) / ((high - low) / 2))
    assert not torch.allclose(logp, D.Independent(base, 1).log_prob(u))


def test_tanh_squash_without_bounds_is_in_unit_box() -> None:
    pol = _policy(continuous=True, squash=True)
    obs = _obs()
    mean = pol._pi_out(obs)
    ref = D.Independent(D.TransformedDistribution(D.Normal(mean, pol.log_std.exp().expand_as(mean)),
                                                  [D.TanhTransform()]), 1)
    a, _, logp = pol.act(obs)
    assert torch.all(a.abs() < 1)
    torch.testing.assert_close(logp, ref.log_prob(a), rtol=1e-6, atol=1e-6)


def test_beta_matches_torch() -> None:
    pol = _policy(distribution="beta", action_low=LOW, action_high=HIGH)
    obs = _obs()
    out = pol._pi_out(obs)
    alpha, beta = 1 + torch.nn.functional.softplus(out[:, :3]), 1 + torch.nn.functional.softplus(out[:, 3:])
    low, high = torch.as_tensor(LOW), torch.as_tensor(HIGH)
    ref = D.Independent(D.TransformedDistribution(D.Beta(alpha, beta), [D.AffineTransform(low, high - low)]), 1)
    a = ref.sample()
    _, logp, ent = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(logp, ref.log_prob(a))
    base_ent = D.Independent(D.Beta(alpha, beta), 1).entropy()
    torch.testing.assert_close(ent, base_ent + torch.log(high - low).sum())


@pytest.mark.parametrize("kw", [dict(distribution="beta"), dict(continuous=True, squash=True)])
def test_bounded_samples_stay_in_bounds_and_logp_is_consistent(kw: dict) -> None:
    pol = _policy(action_low=LOW, action_high=HIGH, **kw).float()
    obs = _obs(512).float()
    torch.manual_seed(1)
    a, _, logp = pol.act(obs)
    assert torch.all(a >= torch.as_tensor(LOW, dtype=torch.float32))
    assert torch.all(a <= torch.as_tensor(HIGH, dtype=torch.float32))
    assert torch.isfinite(logp).all()
    # The log-prob stored at collection equals the one the update recomputes (ratio 1 on the first epoch).
    _, logp2, _ = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(logp, logp2)
    ad, _, _ = pol.act(obs, deterministic=True)
    assert torch.all(ad >= torch.as_tensor(LOW, dtype=torch.float32))


def test_beta_sampling_matches_its_density() -> None:
    """Sample moments of the Beta policy equal the distribution's mean and variance."""
    pol = ActorCriticPolicy(1, 1, distribution="beta", action_low=[0.0], action_high=[1.0], hidden_sizes=())
    with torch.no_grad():
        pol.pi_head.weight.zero_()
        pol.pi_head.bias.copy_(torch.tensor([1.0, -0.5]))
    torch.manual_seed(0)
    a, _, _ = pol.act(torch.zeros(200_000, 1))
    alpha, beta = 1 + np.log1p(np.exp(1.0)), 1 + np.log1p(np.exp(-0.5))
    mean = alpha / (alpha + beta)
    var = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
    assert abs(float(a.mean()) - mean) < 3e-3
    assert abs(float(a.var()) - var) < 2e-3


def test_log_std_init_and_grpo_policy_share_distributions() -> None:
    pol = SimpleGRPOPolicy(3, 2, continuous=True)
    torch.testing.assert_close(pol.log_std.detach(), torch.full((2,), -0.5))
    beta = SimpleGRPOPolicy(3, 2, distribution="beta", action_low=-1, action_high=1)
    logp, ent = beta.evaluate_actions(torch.zeros(4, 3), torch.zeros(4, 2))
    assert logp.shape == ent.shape == (4,)


class TinyNet(nn.Module):
    """A user backbone: any nn.Module taking the observation shape."""

    def __init__(self, obs_shape: tuple[int, ...], width: int = 8) -> None:
        super().__init__()
        self.lin = nn.Linear(int(np.prod(obs_shape)), width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.lin(x.flatten(1)))


@pytest.mark.parametrize("backbone,kwargs,obs_shape", [
    ("mlp", {}, (5,)),
    ("mlp", {}, (2, 3)),
    ("transformer", {"d_model": 16, "n_heads": 2, "n_layers": 1, "dim_feedforward": 32}, (5,)),
    ("cnn", {}, (3, 12, 10)),
    ("cnn", {"features": 64}, (40, 40, 1)),
    (TinyNet, {"width": 6}, (5,)),
    (f"{__name__}:TinyNet", {}, (5,)),
])
@pytest.mark.parametrize("share", [False, True])
def test_backbones_forward_and_backward(backbone: object, kwargs: dict, obs_shape: tuple, share: bool) -> None:
    pol = ActorCriticPolicy(obs_shape if len(obs_shape) > 1 else obs_shape[0], 3, backbone=backbone,
                            backbone_kwargs=kwargs, share_trunk=share)
    obs = torch.rand((7,) + obs_shape)
    a, v, logp = pol.act(obs)
    assert a.shape == (7,) and v.shape == (7,) and logp.shape == (7,)
    values, logp2, ent = pol.evaluate_actions(obs, a)
    torch.testing.assert_close(logp, logp2)
    (values.sum() + logp2.sum() + ent.sum()).backward()
    assert all(p.grad is not None for p in pol.parameters())
    assert (pol.vf_trunk is None) == share
    n_trunk = len(list(pol.pi_trunk.parameters()))
    assert len(pol.critic_parameters()) == (2 if share else 2 + n_trunk)


def test_cnn_detects_channels_last_and_scales_uint8_images() -> None:
    space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
    pol = ActorCriticPolicy.from_spaces(space, gym.spaces.Discrete(4), backbone="cnn")
    assert pol.pi_trunk.channels_last and pol.pi_trunk.scale == pytest.approx(1 / 255)
    a, _, _ = pol.act(torch.full((2, 16, 16, 3), 255.0))
    assert a.shape == (2,)


def test_transformer_features_are_tokens() -> None:
    """Permuting the input features changes the output (tokens carry their identity)."""
    m, d = build_backbone("transformer", (4,), backbone_kwargs={"d_model": 8, "n_heads": 2, "n_layers": 1,
                                                                 "dim_feedforward": 16})
    x = torch.randn(3, 4)
    assert d == 8 and m(x).shape == (3, 8)
    assert not torch.allclose(m(x), m(x[:, [1, 0, 2, 3]]))


def test_from_spaces() -> None:
    box = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
    bounded = gym.spaces.Box(np.array([-2.0, 0.0], np.float32), np.array([2.0, 5.0], np.float32))
    pol = ActorCriticPolicy.from_spaces(box, bounded,
                                        distribution="beta")
    assert pol.distribution == "beta" and pol.init_kwargs["action_high"] == [2.0, 5.0]
    disc = ActorCriticPolicy.from_spaces(box, gym.spaces.Discrete(5))
    assert disc.distribution == "categorical" and disc.n_actions == 5
    with pytest.raises(ValueError, match="distribution"):
        ActorCriticPolicy.from_spaces(box, gym.spaces.Discrete(5), distribution="beta")
    with pytest.raises(ValueError, match="action_space"):
        ActorCriticPolicy.from_spaces(box, gym.spaces.MultiBinary(3))


@pytest.mark.parametrize("kwargs,name", [
    (dict(obs_dim=0, n_actions=2), "obs_dim"),
    (dict(obs_dim=(3, -1), n_actions=2), "obs_dim"),
    (dict(obs_dim=3, n_actions=0), "n_actions"),
    (dict(obs_dim=3, n_actions=2, distribution="poisson"), "distribution"),
    (dict(obs_dim=3, n_actions=2, distribution="beta"), "action_low"),
    (dict(obs_dim=3, n_actions=2, continuous=True, action_low=[0, 0]), "action_low/action_high"),
    (dict(obs_dim=3, n_actions=2, continuous=True, action_low=[0, 1], action_high=[1, 1]), "action_high"),
    (dict(obs_dim=3, n_actions=2, continuous=True, action_low=[0, 0, 0], action_high=[1, 1, 1]), "action_low"),
    (dict(obs_dim=3, n_actions=2, squash=True), "squash"),
    (dict(obs_dim=3, n_actions=2, backbone="resnet"), "backbone"),
    (dict(obs_dim=3, n_actions=2, backbone="no_such_module:Net"), "backbone"),
    (dict(obs_dim=3, n_actions=2, backbone="cnn"), "obs_dim"),
    (dict(obs_dim=3, n_actions=2, backbone="transformer", backbone_kwargs={"d_model": 10, "n_heads": 3}),
     "n_heads"),
    (dict(obs_dim=3, n_actions=2, activation="swish"), "activation"),
])
def test_bad_policy_arguments(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ActorCriticPolicy(**kwargs)


def test_fused_update_only_for_plain_mlp() -> None:
    assert fused_eligible(ActorCriticPolicy(4, 2))
    assert fused_eligible(ActorCriticPolicy(4, 2, continuous=True))
    assert not fused_eligible(ActorCriticPolicy(4, 2, share_trunk=True))
    assert not fused_eligible(ActorCriticPolicy(4, 2, distribution="beta", action_low=-1, action_high=1))
    assert not fused_eligible(ActorCriticPolicy(4, 2, continuous=True, squash=True))
    assert not fused_eligible(ActorCriticPolicy(4, 2, backbone="transformer"))


@pytest.mark.parametrize("kw", [
    dict(distribution="beta"),
    dict(squash=True, log_std_init=0.0),
    dict(backbone="transformer", backbone_kwargs={"d_model": 8, "n_heads": 2, "n_layers": 1, "dim_feedforward": 16}),
    dict(backbone=TinyNet, share_trunk=True),
])
def test_trainer_checkpoint_round_trip(tmp_path, kw: dict) -> None:
    env = gym.make("Pendulum-v1")
    pol = ActorCriticPolicy.from_spaces(env.observation_space, env.action_space, **kw)
    cfg = PPOConfig(env="Pendulum-v1", G=2, T=16, minibatches=2, epochs=1, seed=0, verbose=0,
                    log_dir=str(tmp_path), loggers=("csv",))
    tr = PPOTrainer(pol, cfg)
    tr.train(1)
    path = tr.save(str(tmp_path / "ck.pt"))
    back = BaseTrainer.load(path, classes=[TinyNet])  # a user backbone loads only when the caller names it
    assert type(back.policy) is ActorCriticPolicy and back.policy.init_kwargs == pol.init_kwargs
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(obs), tr.predict(obs))
    a = back.predict(obs[0])
    assert a.shape == (1,) and -2.0 <= a[0] <= 2.0
