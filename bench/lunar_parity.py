"""Statistical parity of the native LunarLander (rltrain._box2d, Box2D 2.4) with gymnasium's LunarLander-v3
(pybox2d 2.3): gymnasium's own heuristic pilot and a uniform random policy, episode returns compared per variant.

Step-by-step parity is not expected (different Box2D versions, and a placeholder RNG until numpy_rng.hpp lands),
so the acceptance is distributional: heuristic means within 10% and above 200, random-policy returns agreeing
under a two-sample Kolmogorov-Smirnov test.

    python bench/lunar_parity.py [--heuristic-episodes 50] [--random-episodes 500]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats

from rltrain import _box2d
from rltrain.envs.lunar import DenseLunarLander  # imports pybox2d quietly and registers the rltrain/ ids

from gymnasium.envs.box2d.lunar_lander import heuristic  # noqa: E402  (after the quiet pybox2d import)


class _NativeAsEnv:
    """Just enough of a gymnasium env for heuristic(env, s), which reads env.unwrapped.continuous."""

    def __init__(self, native: _box2d.LunarLander) -> None:
        self.native = native
        self.continuous = native.continuous
        self.unwrapped = self


@dataclass
class Result:
    returns: np.ndarray
    lengths: np.ndarray
    steps_per_s: float


def run_native(kwargs: dict[str, Any], policy: str, episodes: int, seed0: int) -> Result:
    env = _box2d.LunarLander(**kwargs)
    shim = _NativeAsEnv(env)
    rng = np.random.default_rng(seed0 + 10_000)
    rets, lens, steps, t0 = [], [], 0, time.perf_counter()
    for ep in range(episodes):
        obs = env.reset(seed=seed0 + ep)
        total, n = 0.0, 0
        while True:
            a = heuristic(shim, obs) if policy == "heuristic" else _random_action(rng, env.continuous)
            obs, r, term, trunc = env.step(a)
            total += r
            n += 1
            if term or trunc:
                break
        rets.append(total)
        lens.append(n)
        steps += n
    return Result(np.array(rets), np.array(lens), steps / (time.perf_counter() - t0))


def run_gym(env_id: str, kwargs: dict[str, Any], policy: str, episodes: int, seed0: int) -> Result:
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(seed0 + 10_000)
    continuous = bool(env.unwrapped.continuous)
    rets, lens, steps, t0 = [], [], 0, time.perf_counter()
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed0 + ep)
        total, n = 0.0, 0
        while True:
            a = heuristic(env, obs) if policy == "heuristic" else _random_action(rng, continuous)
            obs, r, term, trunc, _ = env.step(a)
            total += float(r)
            n += 1
            if term or trunc:
                break
        rets.append(total)
        lens.append(n)
        steps += n
    env.close()
    return Result(np.array(rets), np.array(lens), steps / (time.perf_counter() - t0))


def _random_action(rng: np.random.Generator, continuous: bool) -> Any:
    return rng.uniform(-1.0, 1.0, size=2).astype(np.float32) if continuous else int(rng.integers(4))


CASES: list[tuple[str, str, dict[str, Any]]] = [
    # (label, gymnasium id, kwargs shared by both implementations)
    ("LunarLander-v3", "LunarLander-v3", {}),
    ("LunarLander-v3 continuous", "LunarLander-v3", {"continuous": True}),
    ("LunarLander-v3 wind", "LunarLander-v3", {"enable_wind": True}),
    ("DenseLunarLander angle+pos", "rltrain/DenseLunarLander-v0", {"randomize_angle": True, "randomize_pos": True}),
    ("SparseLunarLander", "rltrain/SparseLunarLander-v0", {}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heuristic-episodes", type=int, default=50)
    ap.add_argument("--random-episodes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    print(f"# LunarLander parity  {datetime.date.today()}  {platform.machine()} {platform.python_version()}")
    print(f"native Box2D {_box2d.BOX2D_VERSION} (placeholder RNG), gymnasium {gym.__version__} (pybox2d 2.3)\n")
    hdr = "| case | policy | episodes | native mean +- sd | gymnasium mean +- sd | rel. diff | KS p | len native / gym | steps/s native / gym |"
    print(hdr)
    print("|---" * (hdr.count("|") - 1) + "|")
    failures: list[str] = []
    for label, env_id, kwargs in CASES:
        native_kwargs = dict(kwargs)
        if env_id.startswith("rltrain/"):
            native_kwargs.update(_native_extras(env_id, kwargs))
        for policy, episodes in (("heuristic", args.heuristic_episodes), ("random", args.random_episodes)):
            nat = run_native(native_kwargs, policy, episodes, args.seed)
            ref = run_gym(env_id, kwargs, policy, episodes, args.seed)
            rel = (nat.returns.mean() - ref.returns.mean()) / abs(ref.returns.mean())
            ks = stats.ks_2samp(nat.returns, ref.returns).pvalue
            print(
                f"| {label} | {policy} | {episodes} | {nat.returns.mean():7.1f} +- {nat.returns.std():5.1f} "
                f"| {ref.returns.mean():7.1f} +- {ref.returns.std():5.1f} | {100 * rel:+5.1f}% | {ks:.3f} "
                f"| {nat.lengths.mean():.0f} / {ref.lengths.mean():.0f} "
                f"| {nat.steps_per_s:,.0f} / {ref.steps_per_s:,.0f} |",
                flush=True,
            )
            if policy == "heuristic" and label == "LunarLander-v3":
                if not (abs(rel) <= 0.10 and nat.returns.mean() > 200 and ref.returns.mean() > 200):
                    failures.append(f"{label} heuristic: means {nat.returns.mean():.1f} vs {ref.returns.mean():.1f}")
            if policy == "random" and label == "LunarLander-v3" and ks < 0.01:
                failures.append(f"{label} random: KS p = {ks:.4f}")
    print("\nacceptance:", "PASS" if not failures else "FAIL: " + "; ".join(failures))


def _native_extras(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    # The native kwargs of an rltrain/ id are exactly the gymnasium instance's native_config.
    env = gym.make(env_id, **kwargs)
    cfg = dict(env.unwrapped.native_config)  # type: ignore[attr-defined]
    env.close()
    assert isinstance(env.unwrapped, DenseLunarLander)
    return cfg


if __name__ == "__main__":
    main()
