"""Parity of the native LunarLander (rltrain.make_vec on rltrain._box2d, Box2D 2.4) with gymnasium's
LunarLander-v3 (pybox2d 2.3), from the same seeds.

The native env draws numpy.random.default_rng's stream, so episode k runs from the same seed on both
sides (native: make_vec(..., seed=first) gives env i the seed first + i; gymnasium: env.reset(seed=first + k))
with the same terrain and initial push. Policies: gymnasium's own `heuristic` pilot (reads each side's
observation) and a uniform random policy (episode k's actions come from default_rng(10_000 + seed), identical
on both sides).

Per case and policy it reports both return distributions (mean +- sd, relative difference of the means,
two-sample Kolmogorov-Smirnov p-value) and the paired per-episode agreement: the share of episodes whose
returns differ by less than 1 point, whose outcome (landed / crashed / timed out) and length agree, and the
mean paired difference. Physics agree to float32 rounding until contacts, where Box2D 2.3 and 2.4 collide
edges slightly differently, so a few episodes diverge.

Acceptance: LunarLander-v3 (discrete) heuristic means within 10% of each other and both above 200; the
discrete random-policy KS p-value above 0.01.

    python bench/lunar_parity.py [--heuristic-episodes 50] [--random-episodes 500] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from scipy import stats

import rltrain
from rltrain import _box2d

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # pybox2d's SWIG types
    from gymnasium.envs.box2d.lunar_lander import heuristic

CASES: list[tuple[str, str, dict[str, Any]]] = [
    # (label, gymnasium id, keyword arguments)
    ("LunarLander-v3", "LunarLander-v3", {}),
    ("LunarLander-v3 continuous", "LunarLander-v3", {"continuous": True}),
    ("LunarLander-v3 wind", "LunarLander-v3", {"enable_wind": True}),
    ("Dense angle+pos", "rltrain/DenseLunarLander-v0", {"randomize_angle": True, "randomize_pos": True}),
    ("Sparse", "rltrain/SparseLunarLander-v0", {}),
]
CHUNK = 100  # native envs per make_vec batch


class _Pilot:
    """Just enough of an env for heuristic(env, s), which reads env.unwrapped.continuous."""

    def __init__(self, continuous: bool) -> None:
        self.continuous = continuous
        self.unwrapped = self


def _action(kind: str, pilot: _Pilot, obs: np.ndarray, rng: np.random.Generator) -> Any:
    if kind == "heuristic":
        # Continuous: float32, the action space's dtype, which the native env takes (gymnasium would use the
        # heuristic's float64 as is); both sides get the same rounded action.
        a = heuristic(pilot, obs)
        return np.asarray(a, dtype=np.float32) if pilot.continuous else a
    if pilot.continuous:
        return rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    return int(rng.integers(4))


def _outcome(reward: float, terminated: bool, sparse: bool) -> str:
    if not terminated:
        return "timeout"
    if sparse:  # the last reward is the episode's sum, not the +-100 landing/crash bonus
        return "ended"
    return "landed" if reward > 0 else "crashed"


def run_gym(env_id: str, kwargs: dict[str, Any], kind: str, seeds: range) -> list[tuple[float, int, str]]:
    """(return, length, outcome) of one gymnasium episode per seed."""
    env = gym.make(env_id, **kwargs)
    sparse = bool(getattr(env.unwrapped, "sparse", False))
    pilot = _Pilot(bool(kwargs.get("continuous")))
    out = []
    for seed in seeds:
        rng = np.random.default_rng(10_000 + seed)
        obs, _ = env.reset(seed=seed)
        total, n = 0.0, 0
        while True:
            obs, r, term, trunc, _ = env.step(_action(kind, pilot, obs, rng))
            total += float(r)
            n += 1
            if term or trunc:
                out.append((total, n, _outcome(float(r), term, sparse)))
                break
    env.close()
    return out


def run_native(env_id: str, kwargs: dict[str, Any], kind: str, seeds: range) -> list[tuple[float, int, str]]:
    """The same episodes through make_vec: env i of a batch is seeded first + i; each env's first episode
    counts.
    The env is built the way a trainer builds it: make_vec(inst.native_id, n, **inst.native_config)."""
    inst = gym.make(env_id, **kwargs).unwrapped
    native_id, native_kwargs = (
        (inst.native_id, inst.native_config) if hasattr(inst, "native_config") else (env_id, kwargs)
    )
    continuous = bool(kwargs.get("continuous"))
    sparse = bool(getattr(inst, "sparse", False))
    pilot = _Pilot(continuous)
    out: list[tuple[float, int, str]] = []
    for start in range(seeds.start, seeds.stop, CHUNK):
        n = min(CHUNK, seeds.stop - start)
        with rltrain.make_vec(native_id, n, seed=start, **native_kwargs) as venv:
            rngs = [np.random.default_rng(10_000 + start + i) for i in range(n)]
            obs, _ = venv.reset()
            done = np.zeros(n, dtype=bool)
            ret, length = np.zeros(n), np.zeros(n, dtype=np.int64)
            result: list[tuple[float, int, str] | None] = [None] * n
            idle = np.zeros(2, np.float32) if continuous else 0  # for envs whose counted episode is over
            while not done.all():
                acts = [idle if done[i] else _action(kind, pilot, obs[i], rngs[i]) for i in range(n)]
                obs, rew, term, trunc, _ = venv.step(np.array(acts))
                for i in np.flatnonzero(~done):
                    ret[i] += rew[i]
                    length[i] += 1
                    if term[i] or trunc[i]:
                        done[i] = True
                        outcome = _outcome(float(rew[i]), bool(term[i]), sparse)
                        result[i] = (float(ret[i]), int(length[i]), outcome)
            out += [r for r in result if r is not None]
    return out


def compare(
    label: str, env_id: str, kwargs: dict[str, Any], kind: str, episodes: int, seed: int
) -> dict[str, Any]:
    seeds = range(seed, seed + episodes)
    nat, ref = run_native(env_id, kwargs, kind, seeds), run_gym(env_id, kwargs, kind, seeds)
    n, g = np.array([e[0] for e in nat]), np.array([e[0] for e in ref])
    d = n - g
    return {
        "label": label,
        "kind": kind,
        "episodes": episodes,
        "nat_mean": n.mean(),
        "nat_sd": n.std(),
        "gym_mean": g.mean(),
        "gym_sd": g.std(),
        "rel": (n.mean() - g.mean()) / abs(g.mean()),
        "ks": stats.ks_2samp(n, g).pvalue,
        "close": np.mean(np.abs(d) < 1.0),
        "same_outcome": np.mean([a[2] == b[2] and a[1] == b[1] for a, b in zip(nat, ref)]),
        "mean_diff": d.mean(),
        "landed": None
        if any(e[2] == "ended" for e in nat + ref)
        else (np.mean([e[2] == "landed" for e in nat]), np.mean([e[2] == "landed" for e in ref])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heuristic-episodes", type=int, default=50)
    ap.add_argument("--random-episodes", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="first seed; episode k uses seed + k on both sides")
    args = ap.parse_args()
    t0 = time.perf_counter()

    print(
        f"# LunarLander parity  {datetime.date.today()}  {platform.machine()}  {os.cpu_count()} cores  "
        f"Python {platform.python_version()}"
    )
    print(
        f"native: rltrain.make_vec on Box2D {_box2d.BOX2D_VERSION} + 2.3 revolute solver, numpy default_rng"
    )
    print(f"reference: gymnasium {gym.__version__} on pybox2d 2.3; seeds {args.seed}.. on both sides\n")
    header = [
        "case",
        "policy",
        "episodes",
        "native mean +- sd",
        "gymnasium mean +- sd",
        "rel. diff",
        "KS p",
        "paired |diff| < 1",
        "same outcome+length",
        "mean paired diff",
        "landed nat / gym",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    failures: list[str] = []
    for label, env_id, kwargs in CASES:
        for kind, episodes in (("heuristic", args.heuristic_episodes), ("random", args.random_episodes)):
            r = compare(label, env_id, kwargs, kind, episodes, args.seed)
            landed = r["landed"]
            cells = [
                label,
                kind,
                str(episodes),
                f"{r['nat_mean']:7.1f} +- {r['nat_sd']:5.1f}",
                f"{r['gym_mean']:7.1f} +- {r['gym_sd']:5.1f}",
                f"{100 * r['rel']:+5.1f}%",
                f"{r['ks']:.3f}",
                f"{100 * r['close']:5.1f}%",
                f"{100 * r['same_outcome']:5.1f}%",
                f"{r['mean_diff']:+6.2f}",
                f"{100 * landed[0]:.0f}% / {100 * landed[1]:.0f}%" if landed else "n/a (sparse)",
            ]
            print("| " + " | ".join(cells) + " |", flush=True)
            if label == "LunarLander-v3" and kind == "heuristic":
                ok = abs(r["rel"]) <= 0.10 and min(r["nat_mean"], r["gym_mean"]) > 200
                if not ok:
                    failures.append(f"heuristic means {r['nat_mean']:.1f} vs {r['gym_mean']:.1f}")
            if label == "LunarLander-v3" and kind == "random" and r["ks"] < 0.01:
                failures.append(f"random-policy KS p = {r['ks']:.3f}")

    print(f"\nacceptance: {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
