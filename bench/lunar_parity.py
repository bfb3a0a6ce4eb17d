"""Parity of the native LunarLander (rltrain._box2d, Box2D 2.4) with gymnasium's LunarLander-v3 (pybox2d 2.3).

Two views, each for gymnasium's own heuristic pilot and for a uniform random policy, over every variant:

1. Independent seeds (the acceptance test): return distributions compared -- means, relative difference,
   two-sample Kolmogorov-Smirnov p-value. Heuristic means must agree within 10% and exceed 200. The two sides
   draw different random streams (until numpy_rng.hpp lands), so this compares two independent samples: with
   ~7% crash landings the heuristic's sd is ~100 and 50 episodes give a 2-sigma band of about +-15%; use 200+.
2. Identical random draws: ReplayLunarLander and gymnasium (rltrain.envs.testing.ReplayGenerator) consume the
   same uniforms and the same actions; reports how often the two episodes' returns agree within 1 point and the
   largest observation difference over the first 30 steps.

    python bench/lunar_parity.py [--heuristic-episodes 200] [--random-episodes 500] [--replay-episodes 200]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d.lunar_lander import heuristic
from rltrain import _box2d
from rltrain.envs.testing import replay_reset
from scipy import stats

CASES: list[tuple[str, str, dict[str, Any]]] = [
    # (label, gymnasium id, keyword arguments shared by both implementations)
    ("LunarLander-v3", "LunarLander-v3", {}),
    ("LunarLander-v3 continuous", "LunarLander-v3", {"continuous": True}),
    ("LunarLander-v3 wind", "LunarLander-v3", {"enable_wind": True}),
    ("Dense angle+pos", "rltrain/DenseLunarLander-v0", {"randomize_angle": True, "randomize_pos": True}),
    ("Sparse", "rltrain/SparseLunarLander-v0", {}),
]


class _Pilot:
    """Just enough of an env for heuristic(env, s), which reads env.unwrapped.continuous."""

    def __init__(self, continuous: bool) -> None:
        self.continuous = continuous
        self.unwrapped = self


def _native_kwargs(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    # The native configuration of a gymnasium-side environment is its native_config (rltrain ids) or its kwargs.
    env = gym.make(env_id, **kwargs)
    cfg = dict(getattr(env.unwrapped, "native_config", kwargs))
    env.close()
    return cfg


def _policy(kind: str, continuous: bool, rng: np.random.Generator) -> Any:
    pilot = _Pilot(continuous)
    if kind == "heuristic":
        return lambda s: heuristic(pilot, s)
    if continuous:
        return lambda s: rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    return lambda s: int(rng.integers(4))


def _episode(obs: np.ndarray, step: Any, policy: Any) -> tuple[float, int]:
    total, n = 0.0, 0
    while True:
        obs, r, term, trunc = step(policy(obs))[:4]
        total += float(r)
        n += 1
        if term or trunc:
            return total, n


def independent(env_id: str, kwargs: dict[str, Any], kind: str, episodes: int, seed: int) -> list[str]:
    continuous = bool(kwargs.get("continuous"))
    nat = _box2d.LunarLander(**_native_kwargs(env_id, kwargs))
    ref = gym.make(env_id, **kwargs)
    out: dict[str, np.ndarray] = {}
    for name, reset, step in (
        ("native", lambda s: nat.reset(seed=s), nat.step),
        ("gym", lambda s: ref.reset(seed=s)[0], ref.step),
    ):
        policy = _policy(kind, continuous, np.random.default_rng(seed + 10_000))
        out[name] = np.array([_episode(reset(seed + ep), step, policy) for ep in range(episodes)])
    n, g = out["native"][:, 0], out["gym"][:, 0]
    rel = (n.mean() - g.mean()) / abs(g.mean())
    ks = stats.ks_2samp(n, g).pvalue
    return [
        f"{n.mean():7.1f} +- {n.std():5.1f}",
        f"{g.mean():7.1f} +- {g.std():5.1f}",
        f"{100 * rel:+5.1f}%",
        f"{ks:.3f}",
        f"{out['native'][:, 1].mean():.0f} / {out['gym'][:, 1].mean():.0f}",
    ]


def replayed(env_id: str, kwargs: dict[str, Any], kind: str, episodes: int, seed: int) -> list[str]:
    continuous = bool(kwargs.get("continuous"))
    nat = _box2d.ReplayLunarLander(**_native_kwargs(env_id, kwargs))
    ref = gym.make(env_id, **kwargs)
    pilot = _Pilot(continuous)
    rng = np.random.default_rng(seed)
    diffs, early = [], []
    for _ in range(episodes):
        u = rng.random(2200)
        acts = rng.uniform(-1, 1, (1000, 2)).astype(np.float32) if continuous else rng.integers(4, size=1000)
        nat.set_uniforms(u)
        o_nat = nat.reset()
        o_ref, _ = replay_reset(ref, u)
        worst = float(np.abs(o_nat - o_ref).max())
        ret = {"nat": 0.0, "ref": 0.0}
        done = {"nat": False, "ref": False}
        for t in range(1000):
            # Each side's heuristic reads its own observation; random actions are shared.
            for side in ("nat", "ref"):
                if done[side]:
                    continue
                o = o_nat if side == "nat" else o_ref
                a = heuristic(pilot, o) if kind == "heuristic" else (acts[t] if continuous else int(acts[t]))
                if side == "nat":
                    o_nat, r, term, trunc = nat.step(a)
                else:
                    o_ref, r, term, trunc, _ = ref.step(a)
                ret[side] += float(r)
                done[side] = term or trunc
            if t < 30 and not (done["nat"] or done["ref"]):
                worst = max(worst, float(np.abs(o_nat - o_ref).max()))
            if done["nat"] and done["ref"]:
                break
        diffs.append(ret["nat"] - ret["ref"])
        early.append(worst)
    d = np.abs(np.array(diffs))
    return [f"{100 * (d < 1.0).mean():5.1f}%", f"{np.mean(diffs):+6.2f}", f"{max(early):.1e}"]


def _table(header: list[str]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heuristic-episodes", type=int, default=200)
    ap.add_argument("--random-episodes", type=int, default=500)
    ap.add_argument("--replay-episodes", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()

    print(
        f"# LunarLander parity  {datetime.date.today()}  {platform.machine()}  Python {platform.python_version()}"
    )
    print(
        f"native: Box2D {_box2d.BOX2D_VERSION} + 2.3 revolute solver, placeholder RNG (not numpy's streams)"
    )
    print(f"reference: gymnasium {gym.__version__} on pybox2d 2.3\n")

    print(f"## Independent seeds (seeds {args.seed}.., same policy RNG on both sides)\n")
    _table(
        [
            "case",
            "policy",
            "episodes",
            "native mean +- sd",
            "gymnasium mean +- sd",
            "rel. diff",
            "KS p",
            "length",
        ]
    )
    failures: list[str] = []
    for label, env_id, kwargs in CASES:
        for kind, episodes in (("heuristic", args.heuristic_episodes), ("random", args.random_episodes)):
            cells = independent(env_id, kwargs, kind, episodes, args.seed)
            print(f"| {label} | {kind} | {episodes} | " + " | ".join(cells) + " |", flush=True)
            if label == "LunarLander-v3" and kind == "heuristic":
                nat_mean, ref_mean = float(cells[0].split()[0]), float(cells[1].split()[0])
                if not (abs(nat_mean - ref_mean) <= 0.10 * abs(ref_mean) and min(nat_mean, ref_mean) > 200):
                    failures.append(f"heuristic means {nat_mean} vs {ref_mean}")
            if label == "LunarLander-v3" and kind == "random" and float(cells[3]) < 0.01:
                failures.append(f"random-policy KS p = {cells[3]}")

    print(f"\n## Identical random draws ({args.replay_episodes} episodes per row)\n")
    _table(
        [
            "case",
            "policy",
            "episodes with |return diff| < 1",
            "mean return diff",
            "max |obs diff|, steps 0-30",
        ]
    )
    for label, env_id, kwargs in CASES:
        for kind in ("heuristic", "random"):
            cells = replayed(env_id, kwargs, kind, args.replay_episodes, args.seed)
            print(f"| {label} | {kind} | " + " | ".join(cells) + " |", flush=True)

    print(f"\nacceptance: {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
