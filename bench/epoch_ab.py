"""Per-iteration update time of PPO's C++ epoch (``FusedActorCritic.epoch``) as ``PPOTrainer._update`` runs it:
one ``torch.randperm`` gather per epoch, then one C++ call per epoch, for RL-Zoo's CartPole-v1 configuration
(8 envs x 32 steps, 20 epochs of one minibatch of 256) and LunarLander-v3's (16 x 1024, 4 epochs of 256
minibatches of 64), the default 64x64 tanh actor-critic, on synthetic rollout data of the right shapes.

Usage: ``python bench/epoch_ab.py --threads 1 --iters 15`` (``--threads 2``: two kernel threads and
``FusedActorCritic.epoch_threads = 2``) prints one JSON line per configuration with the median,
min and max milliseconds per iteration (the first iteration is a warm-up and not counted). Run it with
``PYTHONPATH`` pointing at the tree under test; A/B rounds alternate two trees (see bench/README.md, Floor).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

CONFIGS = {
    "cartpole": dict(obs=4, act=2, n=8 * 32, mb=256, epochs=20, normalize_adv=False),
    "lunarlander": dict(obs=8, act=4, n=16 * 1024, mb=64, epochs=4, normalize_adv=True),
}


def run(name: str, threads: int, iters: int) -> dict[str, float | str | int]:
    from rltrain import kernels
    from rltrain.algos.fused_mlp import FusedActorCritic
    from rltrain.policies import ActorCriticPolicy

    c = CONFIGS[name]
    torch.manual_seed(0)
    kernels.set_num_threads(threads)
    torch.set_num_threads(1)
    fused = FusedActorCritic(ActorCriticPolicy(int(c["obs"]), int(c["act"])), lr=3e-4, adam_eps=1e-5)
    assert fused.native_epoch
    if hasattr(fused, "epoch_threads"):  # trees before the two-thread epoch have no such setting
        fused.epoch_threads = min(threads, 2)
    n = int(c["n"])
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(n, int(c["obs"]), generator=g)
    actions = torch.randint(0, int(c["act"]), (n,), generator=g)
    old_logp = -torch.rand(n, generator=g) - 0.5
    adv, returns, old_values = (torch.randn(n, generator=g) for _ in range(3))
    data = (obs, actions, old_logp, adv, returns, old_values)
    times = []
    for _ in range(iters + 1):
        t0 = time.perf_counter()
        for _e in range(int(c["epochs"])):
            shuffled: tuple[torch.Tensor, ...] = data
            if int(c["mb"]) < n:
                perm = torch.randperm(n, generator=g)
                shuffled = tuple(x[perm] for x in data)
            fused.epoch(*shuffled, minibatch=int(c["mb"]), clip=0.2, clip_vf=None, ent_coef=0.01, vf_coef=0.5,
                        max_grad_norm=0.5, target_kl=None, normalize_adv=bool(c["normalize_adv"]))
        times.append(time.perf_counter() - t0)
    ms = [1e3 * t for t in times[1:]]
    return {"config": name, "threads": threads, "median_ms": statistics.median(ms), "min_ms": min(ms),
            "max_ms": max(ms), "load1": os.getloadavg()[0],
            "checksum": float(np.float64(fused.flat.double().sum().item()))}


def alternate_threads(name: str, pairs: int) -> dict[str, float | str | int]:
    """One process, one tree: iterations alternate the epoch's 1 and 2 threads (kernel pool of 2), so both see the
    same machine load; returns the medians and the per-pair speed-up of 2 threads over 1."""
    from rltrain import kernels
    from rltrain.algos.fused_mlp import FusedActorCritic
    from rltrain.policies import ActorCriticPolicy

    c = CONFIGS[name]
    torch.set_num_threads(1)
    kernels.set_num_threads(2)
    torch.manual_seed(0)
    fused = FusedActorCritic(ActorCriticPolicy(int(c["obs"]), int(c["act"])), lr=3e-4, adam_eps=1e-5)
    n, mb = int(c["n"]), int(c["mb"])
    g = torch.Generator().manual_seed(1)
    data = (torch.randn(n, int(c["obs"]), generator=g), torch.randint(0, int(c["act"]), (n,), generator=g),
            -torch.rand(n, generator=g) - 0.5, torch.randn(n, generator=g), torch.randn(n, generator=g),
            torch.randn(n, generator=g))
    ms: dict[int, list[float]] = {1: [], 2: []}
    for it in range(2 * pairs):
        fused.epoch_threads = 1 + it % 2
        t0 = time.perf_counter()
        for _e in range(int(c["epochs"])):
            fused.epoch(*data, minibatch=mb, clip=0.2, clip_vf=None, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5,
                        target_kl=None, normalize_adv=bool(c["normalize_adv"]))
        ms[fused.epoch_threads].append(1e3 * (time.perf_counter() - t0))
    speedup = [a / b for a, b in zip(ms[1], ms[2])]
    return {"config": name, "one_thread_ms": statistics.median(ms[1]), "two_threads_ms": statistics.median(ms[2]),
            "speedup_median": statistics.median(speedup), "speedup_min": min(speedup),
            "speedup_max": max(speedup), "load1": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=15)
    ap.add_argument("--configs", default="cartpole,lunarlander")
    ap.add_argument("--alternate-threads", action="store_true",
                    help="alternate 1 and 2 epoch threads per iteration in this process (see alternate_threads)")
    a = ap.parse_args()
    if a.alternate_threads:
        for name in a.configs.split(","):
            print(json.dumps(alternate_threads(name, a.iters if name == "cartpole" else max(3, a.iters // 3))),
                  flush=True)
        return
    for name in a.configs.split(","):
        print(json.dumps(run(name, a.threads, a.iters if name == "cartpole" else max(3, a.iters // 3))), flush=True)


if __name__ == "__main__":
    main()
