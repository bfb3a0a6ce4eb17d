"""Steps/s of rltrain's ForkVectorEnv against gymnasium's SyncVectorEnv (and AsyncVectorEnv) on random actions.

The development machines are shared, so every round also records how much CPU *other* processes used while it
ran (from /proc/stat minus this process tree); the table reports the median over quiet rounds (foreign load
below --quiet cores) next to the median over all rounds.
"""

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
        "rltrain ForkVectorEnv(spin=False)": lambda: ForkVectorEnv(fns, spin=False),
    }


def _busy_jiffies() -> int:
    """CPU time (clock ticks) all cores spent outside idle/iowait since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


def _tree_jiffies() -> int:
    """CPU time (clock ticks) used so far by this process and its live descendants (the workers)."""
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry)] = int(rest[1])
        ticks[int(entry)] = int(rest[11]) + int(rest[12])
    mine = {os.getpid()}
    grew = True
    while grew:
        extra = {pid for pid, ppid in parent.items() if ppid in mine and pid not in mine}
        mine |= extra
        grew = bool(extra)
    return sum(ticks.get(pid, 0) for pid in mine)


def _measure(make: Callable[[], VectorEnv], actions: np.ndarray, warmup: int) -> tuple[float, float]:
    """(env steps per second, CPU cores used by other processes meanwhile) after `warmup` untimed steps."""
    env = make()
    try:
        env.reset(seed=0)
        for a in actions[:warmup]:
            env.step(a)
        busy, tree = _busy_jiffies(), _tree_jiffies()
        start = time.perf_counter()
        for a in actions[warmup:]:
            env.step(a)
        elapsed = time.perf_counter() - start
        foreign = (_busy_jiffies() - busy) - (_tree_jiffies() - tree)
    finally:
        env.close()
    hz = os.sysconf("SC_CLK_TCK")
    return (len(actions) - warmup) * actions.shape[1] / elapsed, max(0.0, foreign / hz / elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="LunarLander-v3")
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1000, help="timed vector steps per round")
    parser.add_argument("--rounds", type=int, default=10, help="rounds; backends are interleaved")
    parser.add_argument("--quiet", type=float, default=0.1, help="max foreign load (cores) of a quiet round")
    parser.add_argument("--with-async", action="store_true", help="include gymnasium's AsyncVectorEnv (slow)")
    parser.add_argument("--output", default=None, help="append the markdown table to this file")
    args = parser.parse_args()

    backends = _backends(args.env, args.num_envs)
    if not args.with_async:
        backends.pop("gymnasium AsyncVectorEnv")
    probe = gym.make(args.env)
    probe.action_space.seed(0)
    warmup = 100
    actions = np.stack(
        [np.stack([probe.action_space.sample() for _ in range(args.num_envs)]) for _ in range(args.steps + warmup)]
    )
    probe.close()

    rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in backends}
    for _ in range(args.rounds):
        for name, make in backends.items():
            rounds[name].append(_measure(make, actions, warmup))

    def quiet(name: str) -> list[float]:
        return [rate for rate, foreign in rounds[name] if foreign < args.quiet]

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    base_quiet = median(quiet("gymnasium SyncVectorEnv"))
    base_all = median([rate for rate, _ in rounds["gymnasium SyncVectorEnv"]])
    lines = [
        f"### {args.env}, {args.num_envs} envs, random actions",
        "",
        (
            f"{datetime.date.today()}, {platform.machine()}, {os.cpu_count()} cores (shared machine), "
            f"Python {platform.python_version()}, gymnasium {gym.__version__}; {args.rounds} interleaved rounds x "
            f"{args.steps} vector steps; quiet = other processes used < {args.quiet} cores during the round"
        ),
        "",
        (
            "| backend | steps/s, quiet rounds (median) | quiet rounds | vs Sync (quiet) "
            "| steps/s, all rounds (median) | vs Sync (all) |"
        ),
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in backends:
        q = quiet(name)
        rates = [rate for rate, _ in rounds[name]]
        lines.append(
            f"| {name} | {median(q):,.0f} | {len(q)}/{len(rates)} | {median(q) / base_quiet:.2f}x "
            f"| {median(rates):,.0f} | {median(rates) / base_all:.2f}x |"
        )
    table = "\n".join(lines) + "\n"
    print(table)
    for name in backends:
        print(name, "rounds (steps/s, foreign cores):", [(round(r), round(f, 2)) for r, f in rounds[name]])
    if args.output:
        with open(args.output, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
