"""The native LunarLander is gymnasium's, bit for bit: observation, reward, terminated and truncated equal at every
step of 50 seeded episodes driven by gymnasium's heuristic pilot and 50 with random actions, discrete and
continuous, with and without wind (bench/lunar_parity.py, which also prints the table)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import warnings
from types import ModuleType

import gymnasium as gym
import pytest

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pybox2d's SWIG types
        from gymnasium.envs.box2d.lunar_lander import heuristic  # noqa: F401
    from rltrain import _box2d  # noqa: F401
except (ImportError, gym.error.DependencyNotInstalled) as exc:
    pytest.skip(f"needs rltrain._box2d and gymnasium[box2d]: {exc}", allow_module_level=True)

BENCH = pathlib.Path(__file__).resolve().parents[1] / "bench" / "lunar_parity.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lunar_parity", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("lunar_parity", module)
    spec.loader.exec_module(module)
    return module


CASES = [c for c in _bench().CASES if c[1] == "LunarLander-v3"]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["heuristic", "random"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_fifty_episodes_bit_identical(case: tuple[str, str, dict], policy: str) -> None:
    label, env_id, kwargs = case
    r = _bench().compare(label, env_id, kwargs, policy, episodes=50, seed=0)
    assert r.first_difference is None, r.first_difference
    assert r.steps == r.identical > 50 * 60  # every episode lasts at least 60 steps
    assert r.resets_identical == 50


def test_compare_reports_a_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    # The harness itself can fail: a native env with a hair less gravity differs from the first observation on.
    bench = _bench()
    make_vec = bench.rltrain.make_vec
    monkeypatch.setattr(bench.rltrain, "make_vec", lambda i, n, **kw: make_vec(i, n, **{**kw, "gravity": -9.99}))
    r = bench.compare("x", "LunarLander-v3", {}, "random", episodes=2, seed=0)
    assert r.identical == 0 and r.first_difference is not None and "obs[1]" in r.first_difference
