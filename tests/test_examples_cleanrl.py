"""The CleanRL-style examples (``examples/cleanrl_ppo*.py``): each runs a short budget on both backends and writes
its JSON, and its advantage estimate bootstraps truncated episodes from the true final observation exactly as
``rltrain.reference.gae`` defines it."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest

import rltrain.reference

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {"cleanrl_ppo.py": 2048, "cleanrl_ppo_continuous.py": 2048}
"""Script -> steps of the smoke run (4 rollouts of CartPole's 4 x 128, 1 of Pendulum's 8 x 256)."""
BACKENDS = ("rltrain", "gymnasium")


@functools.cache
def _load(script: str) -> ModuleType:
    """The script as a module (its ``main`` does not run); registered in sys.modules, where dataclasses look up
    the annotations of ``Args``."""
    name = "examples_" + script.removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    """Every script on every backend, run at once in subprocesses (each is mostly interpreter start-up)."""
    tmp = tmp_path_factory.mktemp("cleanrl")
    procs = {}
    for script, steps in SCRIPTS.items():
        for backend in BACKENDS:
            out = tmp / f"{script}-{backend}.json"
            cmd = [sys.executable, "-W", "error", str(EXAMPLES / script), "--backend", backend, "--seed", "3",
                   "--total-timesteps", str(steps), "--json", str(out)]
            procs[script, backend] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                       text=True, env=dict(os.environ)), out)
    results = {}
    for key, (proc, out) in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{key}: {err[-3000:]}"
        results[key] = json.loads(out.read_text())
    return results


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_script_runs_and_writes_json(runs: dict[tuple[str, str], dict[str, Any]], script: str, backend: str) -> None:
    r = runs[script, backend]
    assert r["args"]["backend"] == backend
    assert r["steps"] == SCRIPTS[script]
    assert r["sps"] > 0 and r["rollout_sps"] > 0
    assert len(r["episodes"]) > 0
    steps = [e["step"] for e in r["episodes"]]
    assert steps == sorted(steps) and steps[0] > 0 and steps[-1] <= r["steps"]
    assert all(math.isfinite(e["return"]) for e in r["episodes"])


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_backends_see_the_same_episodes(runs: dict[tuple[str, str], dict[str, Any]], script: str) -> None:
    """Native envs reproduce gymnasium's: with one seed, the first rollout's episodes match (later ones can drift
    apart with the float rounding of the two GAE implementations, which changes the updates)."""
    first = SCRIPTS[script] // 4 if script == "cleanrl_ppo.py" else SCRIPTS[script]
    ours, theirs = ([(e["step"], e["return"]) for e in runs[script, b]["episodes"] if e["step"] <= first]
                    for b in BACKENDS)
    assert ours and len(ours) == len(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def _truncation_case() -> dict[str, Any]:
    """T=6, N=3: env 0 truncated at t=2 (and again at t=5, the last step), env 1 terminated at t=1, env 2 both
    terminated and truncated at t=3 (terminated wins), with a final value written where it must be ignored."""
    rng = np.random.default_rng(0)
    T, N = 6, 3
    dones, terminated = np.zeros((T, N), bool), np.zeros((T, N), bool)
    dones[2, 0] = dones[5, 0] = dones[1, 1] = dones[3, 2] = True
    terminated[1, 1] = terminated[3, 2] = True
    final_values = np.zeros((T, N), np.float32)
    final_values[2, 0], final_values[5, 0], final_values[3, 2] = 7.0, -3.0, 100.0
    return dict(rewards=rng.standard_normal((T, N)).astype(np.float32),
                values=rng.standard_normal((T, N)).astype(np.float32), dones=dones, terminated=terminated,
                final_values=final_values, last_values=rng.standard_normal(N).astype(np.float32))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_advantages_bootstrap_truncations(script: str, backend: str) -> None:
    c = _truncation_case()
    gamma, lam = 0.9, 0.8
    adv, ret = _load(script).compute_advantages(backend, c["rewards"], c["values"], c["dones"], c["terminated"],
                                                c["final_values"], c["last_values"], gamma, lam)
    ref_adv, ref_ret = rltrain.reference.gae(c["rewards"], c["values"], c["dones"], c["last_values"], gamma=gamma,
                                             lam=lam, terminated=c["terminated"], final_values=c["final_values"])
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ref_ret, rtol=1e-5, atol=1e-5)
    # By hand: at the truncation the TD error bootstraps V(final obs), and the trace is cut there.
    r, v = c["rewards"], c["values"]
    assert adv[2, 0] == pytest.approx(r[2, 0] + gamma * 7.0 - v[2, 0], abs=1e-5)
    assert adv[5, 0] == pytest.approx(r[5, 0] + gamma * -3.0 - v[5, 0], abs=1e-5)
    assert adv[3, 2] == pytest.approx(r[3, 2] - v[3, 2], abs=1e-5)  # terminated: the final value is ignored
    # Treating the truncation as a termination gives another answer.
    as_terminal, _ = rltrain.reference.gae(r, v, c["dones"], c["last_values"], gamma=gamma, lam=lam)
    assert not np.allclose(adv[:3, 0], as_terminal[:3, 0])


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_final_values_only_where_truncated(script: str) -> None:
    """V(final_obs) is evaluated for truncated envs; a terminated env with a final observation gets 0."""
    import torch

    module = _load(script)
    torch.manual_seed(0)
    obs_dim = 3
    agent = module.Agent(obs_dim, 2)
    final = np.full(3, None, dtype=object)
    final[0], final[1] = np.ones(obs_dim, np.float32), np.full(obs_dim, 2.0, np.float32)
    infos = {"final_obs": final, "_final_obs": np.array([True, True, False])}
    truncated = np.array([True, False, False])
    got = module.final_observation_values(agent, infos, truncated)
    with torch.no_grad():
        expected = agent.get_value(torch.ones(1, obs_dim)).item()
    np.testing.assert_allclose(got, [expected, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(module.final_observation_values(agent, {}, truncated), [0.0, 0.0, 0.0])
