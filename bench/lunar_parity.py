"""Bit-for-bit parity of the native LunarLander (rltrain.make_vec on rltrain._box2d) with gymnasium's
LunarLander-v3, from the same seeds and actions.

Both sides run Box2D 2.3: gymnasium through pybox2d, rltrain through the same C++ sources (the box2d-py 2.3.8
sdist) compiled into rltrain._box2d. Episode k is seeded ``seed + k`` on both sides (native: env i of a
make_vec batch of 50 gets ``first + i``; gymnasium: ``env.reset(seed=seed + k)``), so terrain and initial push
are drawn from the same numpy stream. Policies: gymnasium's own ``heuristic`` pilot (each side reads its own
observation) and a uniform random policy (episode k's actions come from ``default_rng(10_000 + seed + k)``).

Compared at every step of every episode: the observation (all 8 float32 values, as bytes), the reward (float64),
terminated and truncated; at the episode's end the true final observation (``info["final_obs"]``), and then the
first observation of the next, unseeded episode (the same-step autoreset on the native side, ``env.reset()``
on gymnasium's), which also checks that both sides consumed the same number of random draws.

    python bench/lunar_parity.py [--episodes 50] [--seed 0] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

import rltrain
from rltrain import _box2d

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # pybox2d's SWIG types
    from gymnasium.envs.box2d.lunar_lander import heuristic

CASES: list[tuple[str, str, dict[str, Any]]] = [
    # (label, gymnasium id, keyword arguments)
    ("discrete", "LunarLander-v3", {}),
    ("continuous", "LunarLander-v3", {"continuous": True}),
    ("discrete, wind", "LunarLander-v3", {"enable_wind": True}),
    ("continuous, wind", "LunarLander-v3", {"continuous": True, "enable_wind": True, "turbulence_power": 2.0}),
    ("Dense angle+pos", "rltrain/DenseLunarLander-v0", {"randomize_angle": True, "randomize_pos": True}),
    ("Sparse", "rltrain/SparseLunarLander-v0", {}),
]
POLICIES = ("heuristic", "random")
CHUNK = 50  # native envs per make_vec batch


@dataclass
class Parity:
    case: str
    policy: str
    episodes: int
    steps: int = 0
    identical: int = 0
    resets_identical: int = 0
    first_difference: str | None = None

    def note(self, episode: int, step: int, what: str) -> None:
        if self.first_difference is None:
            self.first_difference = f"episode {episode} (seed offset), step {step}: {what}"


class _Pilot:
    """Just enough of an env for heuristic(env, s), which reads env.unwrapped.continuous."""

    def __init__(self, continuous: bool) -> None:
        self.continuous = continuous
        self.unwrapped = self


def _action(policy: str, pilot: _Pilot, obs: np.ndarray, rng: np.random.Generator) -> Any:
    if policy == "heuristic":
        # float32, the action space's dtype: both sides get the same rounded action.
        a = heuristic(pilot, obs)
        return np.asarray(a, dtype=np.float32) if pilot.continuous else int(a)
    if pilot.continuous:
        return rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    return int(rng.integers(4))


def _diff(o_nat: np.ndarray, o_ref: np.ndarray, r_nat: float, r_ref: float, flags_nat: Any, flags_ref: Any) -> str:
    parts = []
    if o_nat.tobytes() != np.asarray(o_ref, dtype=np.float32).tobytes():
        k = int(np.flatnonzero(o_nat != o_ref)[0]) if (o_nat != o_ref).any() else -1
        parts.append(f"obs[{k}] {o_nat[k]!r} vs {o_ref[k]!r}")
    if r_nat != r_ref:
        parts.append(f"reward {r_nat!r} vs {r_ref!r}")
    if tuple(flags_nat) != tuple(flags_ref):
        parts.append(f"terminated/truncated {tuple(flags_nat)} vs {tuple(flags_ref)}")
    return "; ".join(parts)


def compare(label: str, env_id: str, kwargs: dict[str, Any], policy: str, episodes: int, seed: int) -> Parity:
    """Runs ``episodes`` episodes on both sides and counts the bit-identical steps."""
    ref = gym.make(env_id, **kwargs)
    inst = ref.unwrapped
    native_id, native_kwargs = (
        (inst.native_id, inst.native_config) if hasattr(inst, "native_config") else (env_id, kwargs)
    )
    continuous = bool(kwargs.get("continuous"))
    pilot = _Pilot(continuous)
    out = Parity(label, policy, episodes)
    idle = np.zeros(2, np.float32) if continuous else 0  # actions for envs whose compared episode is over
    for start in range(seed, seed + episodes, CHUNK):
        n = min(CHUNK, seed + episodes - start)
        # The gymnasium side of every episode in this batch, one after another, recorded step by step.
        refs: list[dict[str, list[Any]]] = []
        for i in range(n):
            rng = np.random.default_rng(10_000 + start + i)
            obs, _ = ref.reset(seed=start + i)
            rec: dict[str, list[Any]] = {"obs": [obs], "rew": [], "flags": []}
            while True:
                obs, r, term, trunc, _ = ref.step(_action(policy, pilot, obs, rng))
                rec["obs"].append(obs)
                rec["rew"].append(float(r))
                rec["flags"].append((bool(term), bool(trunc)))
                if term or trunc:
                    break
            rec["next"] = [ref.reset()[0]]  # unseeded: continues the episode's random stream
            refs.append(rec)
        with rltrain.make_vec(native_id, n, seed=start, **native_kwargs) as venv:
            rngs = [np.random.default_rng(10_000 + start + i) for i in range(n)]
            obs, _ = venv.reset()
            for i in range(n):
                if obs[i].tobytes() != refs[i]["obs"][0].tobytes():
                    out.note(start - seed + i, 0, "reset " + _diff(obs[i], refs[i]["obs"][0], 0, 0, (), ()))
            t = np.zeros(n, dtype=np.int64)
            done = np.zeros(n, dtype=bool)
            while not done.all():
                acts = [idle if done[i] else _action(policy, pilot, obs[i], rngs[i]) for i in range(n)]
                obs, rew, term, trunc, info = venv.step(np.array(acts))
                for i in np.flatnonzero(~done):
                    rec, k = refs[i], t[i]
                    ended = bool(term[i] or trunc[i])
                    seen = info["final_obs"][i] if ended else obs[i]
                    exp_obs = rec["obs"][k + 1] if k + 1 < len(rec["obs"]) else np.full(8, np.nan, np.float32)
                    exp_rew, exp_flags = (rec["rew"][k], rec["flags"][k]) if k < len(rec["rew"]) else (np.nan, ())
                    why = _diff(seen, exp_obs, float(rew[i]), exp_rew, (bool(term[i]), bool(trunc[i])), exp_flags)
                    out.steps += 1
                    if why:
                        out.note(start - seed + i, int(k) + 1, why)
                    else:
                        out.identical += 1
                    t[i] += 1
                    if ended or k + 1 >= len(rec["rew"]):
                        done[i] = True
                        if ended and obs[i].tobytes() == rec["next"][0].tobytes():
                            out.resets_identical += 1
                        elif ended:
                            diff = _diff(obs[i], rec["next"][0], 0, 0, (), ())
                            out.note(start - seed + i, int(k) + 1, "next reset " + diff)
    ref.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=50, help="episodes per case and policy")
    ap.add_argument("--seed", type=int, default=0, help="first seed; episode k uses seed + k on both sides")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    print(
        f"# LunarLander bit parity  {datetime.date.today()}  {platform.machine()}  {os.cpu_count()} cores  "
        f"Python {platform.python_version()}"
    )
    print(f"native: rltrain.make_vec on rltrain._box2d (Box2D {_box2d.BOX2D_VERSION}, box2d-py 2.3.8 sources)")
    print(f"reference: gymnasium {gym.__version__} on pybox2d; seeds {args.seed}.. on both sides\n")
    header = ["case", "policy", "episodes", "steps compared", "steps bit-identical", "next resets identical",
              "first differing step"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    rows = []
    for label, env_id, kwargs in CASES:
        for policy in POLICIES:
            r = compare(label, env_id, kwargs, policy, args.episodes, args.seed)
            rows.append(asdict(r))
            cells = [label, policy, str(r.episodes), str(r.steps), str(r.identical),
                     f"{r.resets_identical} / {r.episodes}", r.first_difference or "none"]
            print("| " + " | ".join(cells) + " |", flush=True)
    same = all(r["steps"] == r["identical"] and r["resets_identical"] == r["episodes"] for r in rows)
    print(f"\nbit-identical everywhere: {'yes' if same else 'NO'}  ({time.perf_counter() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"date": str(datetime.date.today()), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
