"""Scale-out configuration (SPEC section 8) and the two ingredients of backend-independent rollouts: pre-drawn
sampling noise and batch-invariant forward passes. No Ray instance is started here."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from typing import Any

import pytest
import torch

from rltrain import PPOConfig
from rltrain.config import GRPOConfig, ReinforceConfig
from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy


@pytest.mark.parametrize("cls", [PPOConfig, GRPOConfig, ReinforceConfig])
def test_every_config_has_the_fields(cls: type) -> None:
    cfg = cls()
    assert (cfg.rollout_backend, cfg.ray_address, cfg.num_rollout_workers, cfg.envs_per_worker) == \
        ("local", None, 1, None)
    cfg = cls(G=8, rollout_backend="ray", num_rollout_workers=4)
    cfg.validate()
    assert cfg.rollout_split() == (4, 2) and cfg.batch_invariant_rollout()


@pytest.mark.parametrize("kw, match", [
    ({"rollout_backend": "spark"}, "rollout_backend"),
    ({"rollout_backend": "ray", "G": 6, "num_rollout_workers": 4}, "num_rollout_workers"),
    ({"rollout_backend": "ray", "G": 8, "num_rollout_workers": 2, "envs_per_worker": 3}, "num_rollout_workers"),
    ({"num_rollout_workers": 0}, "num_rollout_workers"),
    ({"envs_per_worker": 0}, "envs_per_worker"),
    ({"rollout_timeout": 0.0}, "rollout_timeout"),
    ({"max_worker_restarts": -1}, "max_worker_restarts"),
    ({"rollout_backend": "ray", "normalize_obs": True}, "normalize_obs"),
    ({"rollout_backend": "ray", "normalize_reward": True}, "normalize_reward"),
])
def test_bad_values_raise_value_error_naming_the_field(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PPOConfig(**kw).validate()


def test_bad_types_raise_type_error() -> None:
    with pytest.raises(TypeError, match="ray_address"):
        PPOConfig(ray_address=5).validate()  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="batch_invariant"):
        PPOConfig(batch_invariant="yes").validate()  # type: ignore[arg-type]


def test_missing_ray_is_a_clear_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ImportError, match=r"rltrain\[ray\]"):
        PPOConfig(rollout_backend="ray").validate()


def test_cli_takes_the_fields_and_python_dash_m_works() -> None:
    import tyro

    from rltrain.cli import PPOCommand

    cmd = tyro.cli(PPOCommand, args=["--rollout-backend", "ray", "--num-rollout-workers", "2",
                                     "--envs-per-worker", "16", "--ray-address", "auto"])
    assert (cmd.rollout_backend, cmd.num_rollout_workers, cmd.envs_per_worker, cmd.ray_address) == \
        ("ray", 2, 16, "auto")
    out = subprocess.run([sys.executable, "-m", "rltrain", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "rltrain train ALGO" in out.stdout


POLICIES = [
    (ActorCriticPolicy, {"obs_dim": 8, "n_actions": 4}),
    (SimpleGRPOPolicy, {"obs_dim": 4, "n_actions": 2}),
    (ActorCriticPolicy, {"obs_dim": 8, "n_actions": 2, "continuous": True}),
    (SimpleGRPOPolicy, {"obs_dim": 3, "n_actions": 1, "continuous": True, "squash": True,
                        "action_low": -2.0, "action_high": 2.0}),
]


@pytest.mark.parametrize("cls, kw", POLICIES)
def test_batch_invariant_rows_do_not_depend_on_the_batch(cls: type, kw: dict[str, Any]) -> None:
    torch.manual_seed(0)
    pol = cls(**kw)
    x = torch.randn(150, kw["obs_dim"]) * 2
    noise = pol.rollout_noise((150,))
    full = pol.act(x, noise=noise, batch_invariant=True)
    for start, size in [(0, 1), (3, 2), (5, 16), (17, 33), (40, 64), (64, 86)]:
        part = pol.act(x[start:start + size], noise=noise[start:start + size], batch_invariant=True)
        for f, p in zip(full, part):
            assert torch.equal(f[start:start + size], p)
    # Same numbers as the ordinary path up to rounding, and the noise decides the sample.
    plain = pol.act(x, noise=noise)
    assert torch.allclose(plain[-1], full[-1], atol=1e-5)
    assert torch.equal(plain[0], full[0]) if not kw.get("continuous") else torch.allclose(plain[0], full[0], atol=1e-5)


def test_pre_drawn_categorical_noise_is_the_stream_act_would_draw() -> None:
    """Drawing a whole iteration's uniforms at once consumes torch's generator exactly as T per-step draws did,
    so discrete-action runs keep their numbers."""
    torch.manual_seed(0)
    pol = ActorCriticPolicy(4, 2)
    x = torch.randn(8, 4)
    torch.manual_seed(5)
    stepwise = [pol.act(x)[0] for _ in range(3)]
    torch.manual_seed(5)
    noise = pol.rollout_noise((3, 8))
    assert all(torch.equal(stepwise[t], pol.act(x, noise=noise[t])[0]) for t in range(3))


def test_beta_has_no_pre_drawn_noise() -> None:
    pol = ActorCriticPolicy(3, 1, distribution="beta", action_low=-1.0, action_high=1.0)
    with pytest.raises(ValueError, match="Beta"):
        pol.rollout_noise((2, 2))
