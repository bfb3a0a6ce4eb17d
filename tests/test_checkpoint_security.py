"""Loading a checkpoint never imports or calls what the file names: crafted checkpoints naming subprocess.run,
os.system, builtins.eval, importlib.import_module or a module of their own are refused with a ValueError before
anything runs; the caller's own classes load only when passed in ``classes=``."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest
import torch
from torch import nn

from rltrain import PPOConfig, PPOTrainer
from rltrain.algos.base import BaseTrainer
from rltrain.cli import main as cli_main
from rltrain.policies import ActorCriticPolicy

EVIL_MODULE = """
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").write_text("the checkpoint imported me")
def Trunk(*a, **k):
    pathlib.Path(__file__).with_name("CALLED").write_text("the checkpoint called me")
"""


class UserTrunk(nn.Module):
    """A user backbone (``obs_shape`` positional, as build_backbone calls it)."""

    def __init__(self, obs_shape: tuple[int, ...], width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_shape[0], width), nn.Tanh())
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _train_and_save(tmp_path: pathlib.Path, policy: Any = None) -> pathlib.Path:
    cfg = PPOConfig(env="CartPole-v1", G=2, T=16, minibatches=1, epochs=1, seed=0, verbose=0,
                    log_dir=str(tmp_path / "runs"))
    trainer = PPOTrainer(policy, cfg)
    trainer.train(iters=1)
    path = tmp_path / "good.pt"
    trainer.save(str(path))
    trainer.close()
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return torch.load(_train_and_save(tmp_path_factory.mktemp("ckpt")), weights_only=True)


@pytest.fixture
def spies(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Records every call to the dangerous functions and every import of a non-rltrain module; puts a module on
    sys.path that leaves a file behind when imported or called."""
    (tmp_path / "evil_mod.py").write_text(EVIL_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    calls: dict[str, list[Any]] = {"run": [], "system": [], "import": []}
    real_import = importlib.import_module

    def record_import(name: str, *a: Any, **k: Any) -> Any:
        if not name.startswith("rltrain"):
            calls["import"].append(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: calls["run"].append(a))
    monkeypatch.setattr(os, "system", lambda *a, **k: calls["system"].append(a))
    monkeypatch.setattr(importlib, "import_module", record_import)
    return calls


def _craft(saved: dict[str, Any], tmp_path: pathlib.Path, **changes: Any) -> str:
    state = {**saved, "config": dict(saved["config"]), "policy_kwargs": dict(saved["policy_kwargs"])}
    for key, value in changes.items():
        if key.startswith("config_"):
            state["config"][key[len("config_"):]] = value
        elif key.startswith("kw_"):
            state["policy_kwargs"][key[len("kw_"):]] = value
        else:
            state[key] = value
    path = tmp_path / "crafted.pt"
    torch.save(state, path)
    return str(path)


CRAFTED = {
    "trainer-subprocess.run": {"trainer": "subprocess.run"},
    "trainer-import_module": {"trainer": "importlib.import_module"},
    "policy-os.system": {"policy_class": "os.system"},
    "policy-builtins.eval": {"policy_class": "builtins.eval"},
    "policy-evil-module": {"policy_class": "evil_mod.Trunk"},
    "env-class-subprocess.run": {"config_env": {"class": "subprocess.run", "kwargs": {"args": "touch /tmp/x"}}},
    "env-class-os.system": {"config_env": {"class": "os.system", "kwargs": {"command": "touch /tmp/x"}}},
    "env-id-naming-a-module": {"config_env": "evil_mod:Evil-v0"},
    "backbone-evil-module": {"kw_backbone": "evil_mod:Trunk"},
    "backbone-builtins.eval": {"kw_backbone": "builtins:eval"},
    "config-backbone-evil-module": {"config_backbone": "evil_mod:Trunk"},
    "kwargs-not-plain-data": {"kw_hidden_sizes": torch.zeros(2)},
}


@pytest.mark.parametrize("changes", list(CRAFTED.values()), ids=list(CRAFTED))
def test_crafted_checkpoint_is_refused_before_anything_runs(
    saved: dict[str, Any], tmp_path: pathlib.Path, spies: dict[str, list[Any]], changes: dict[str, Any]
) -> None:
    path = _craft(saved, tmp_path, **changes)
    for loader in (BaseTrainer.load, PPOTrainer.load):
        with pytest.raises(ValueError, match=r"trainer|policy|env|backbone|plain data"):
            loader(path)
    assert spies == {"run": [], "system": [], "import": []}
    assert not (tmp_path / "IMPORTED").exists() and not (tmp_path / "CALLED").exists()
    assert "evil_mod" not in sys.modules


def test_cli_eval_refuses_a_crafted_checkpoint(
    saved: dict[str, Any], tmp_path: pathlib.Path, spies: dict[str, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = _craft(saved, tmp_path, config_env={"class": "subprocess.run", "kwargs": {"args": "touch /tmp/x"}})
    assert cli_main(["eval", path, "--episodes", "1"]) == 2
    assert "subprocess.run" in capsys.readouterr().err
    assert spies["run"] == []


def test_untouched_checkpoint_loads(saved: dict[str, Any], tmp_path: pathlib.Path) -> None:
    trainer = PPOTrainer.load(_craft(saved, tmp_path))
    assert trainer.iteration == 1 and trainer.evaluate(n_episodes=1)["mean_length"] > 0
    trainer.close()


def test_user_backbone_loads_only_when_passed(tmp_path: pathlib.Path) -> None:
    policy = ActorCriticPolicy(4, 2, backbone=UserTrunk, backbone_kwargs={"width": 8})
    path = str(_train_and_save(tmp_path, policy))
    with pytest.raises(ValueError, match=r"classes=\[ThatClass\]"):
        PPOTrainer.load(path)
    trainer = PPOTrainer.load(path, classes=[UserTrunk])
    assert isinstance(trainer.policy.pi_trunk, UserTrunk)
    assert all(torch.equal(a, b) for a, b in zip(trainer.policy.state_dict().values(), policy.state_dict().values()))
    trainer.close()


def test_classes_must_be_classes(saved: dict[str, Any], tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match="classes"):
        PPOTrainer.load(_craft(saved, tmp_path), classes=[print])
