"""Checkpoint size and load time against training length: PPO on CartPole-v1 (native, 32 envs x 256 steps per
iteration) saved after about 10k and 1M env steps; load = ``PPOTrainer.load`` plus the first ``train(iters=1)``
call's environment set-up (where a restored env state is applied). Median of 3 loads.

    python bench/checkpoint_size.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

from rltrain import PPOConfig, PPOTrainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    out = a.out or tempfile.mkdtemp(prefix="ckpt-size-")
    cfg = PPOConfig(env="CartPole-v1", G=32, T=256, minibatches=4, epochs=2, seed=0, verbose=0,
                    log_dir=os.path.join(out, "runs"), loggers=("csv",))
    trainer = PPOTrainer(None, cfg)
    per_iter = cfg.G * cfg.T
    print("| env steps | checkpoint bytes | load + env set-up, median of 3 (s) |")
    print("|---:|---:|---:|")
    done = 0
    for target in (10_000, 1_000_000):
        iters = -(-target // per_iter) - done
        trainer.train(iters=iters)
        done += iters
        path = trainer.save(os.path.join(out, f"ppo_{target}.pt"))
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            back = PPOTrainer.load(path)
            back._ensure_env()
            times.append(time.perf_counter() - t0)
            back.close()
        print(f"| {trainer.num_timesteps:,} | {os.path.getsize(path):,} | {statistics.median(times):.3f} |", flush=True)
    trainer.close()


if __name__ == "__main__":
    main()
