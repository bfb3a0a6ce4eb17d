"""Steps/s of rltrain's ForkVectorEnv against gymnasium's SyncVectorEnv (and AsyncVectorEnv) on random actions."""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv

from rltrain.vec.fork import ForkVectorEnv


def _factory(env_id: str) -> Callable[[], gym.Env]:
    return lambda: gym.make(env_id)


def _backends(env_id: str, num_envs: int) -> dict[str, Callable[[], VectorEnv]]:
    fns = [_factory(env_id) for _ in range(num_envs)]
    same = AutoresetMode.SAME_STEP
    return {
        "gymnasium SyncVectorEnv": lambda: SyncVectorEnv(fns, autoreset_mode=same),
        "gymnasium AsyncVectorEnv": lambda: AsyncVectorEnv(fns, autoreset_mode=same, context="fork"),
        "rltrain ForkVectorEnv": lambda: ForkVectorEnv(fns),
    }


def _measure(make: Callable[[], VectorEnv], actions: np.ndarray, warmup: int) -> float:
    """Env steps per second (num_envs x vector steps / wall time) after `warmup` untimed vector steps."""
    env = make()
    try:
        env.reset(seed=0)
        for a in actions[:warmup]:
            env.step(a)
        start = time.perf_counter()
        for a in actions[warmup:]:
            env.step(a)
        elapsed = time.perf_counter() - start
    finally:
        env.close()
    return (len(actions) - warmup) * actions.shape[1] / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="LunarLander-v3")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000, help="timed vector steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; backends are interleaved, median reported")
    parser.add_argument("--no-async", action="store_true", help="skip gymnasium's AsyncVectorEnv")
    parser.add_argument("--output", default=None, help="append the markdown table to this file")
    args = parser.parse_args()

    backends = _backends(args.env, args.num_envs)
    if args.no_async:
        backends.pop("gymnasium AsyncVectorEnv")
    probe = gym.make(args.env)
    probe.action_space.seed(0)
    warmup = 100
    actions = np.stack(
        [np.stack([probe.action_space.sample() for _ in range(args.num_envs)]) for _ in range(args.steps + warmup)]
    )
    probe.close()

    results: dict[str, list[float]] = {name: [] for name in backends}
    for _ in range(args.rounds):
        for name, make in backends.items():
            results[name].append(_measure(make, actions, warmup))

    base = statistics.median(results["gymnasium SyncVectorEnv"])
    lines = [
        f"### {args.env}, {args.num_envs} envs, random actions",
        "",
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, gymnasium {gym.__version__}; median of {args.rounds} rounds x "
        f"{args.steps} vector steps",
        "",
        "| backend | env steps/s (median) | min | max | vs Sync |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in results.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med:,.0f} | {min(values):,.0f} | {max(values):,.0f} | {med / base:.2f}x |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.output:
        with open(args.output, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
