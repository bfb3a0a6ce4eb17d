"""``rltrain plot RUN_DIR ... [--out PNG]``: learning curves from runs' ``progress.csv`` (episode return against
env steps and against training wall-clock; with several runs, their mean and min-max spread)."""

from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

__all__ = ["find_runs", "load_run", "main", "plot_runs"]


def load_run(run_dir: str, key: str = "rollout/ep_rew_mean") -> dict[str, np.ndarray]:
    """Steps, training seconds and ``key`` from ``RUN_DIR/progress.csv`` (rows without the key are skipped)."""
    path = run_dir if run_dir.endswith(".csv") else os.path.join(run_dir, "progress.csv")
    if not os.path.isfile(path):
        raise ValueError(f"run_dir: no progress.csv in {run_dir!r}")
    steps, secs, vals = [], [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get(key) in (None, "") or row.get("time/time_elapsed") in (None, ""):
                continue
            steps.append(float(row["time/total_timesteps"]))
            secs.append(float(row["time/time_elapsed"]))
            vals.append(float(row[key]))
    if not vals:
        raise ValueError(f"run_dir: {path!r} has no rows with {key!r}")
    return {"steps": np.array(steps), "seconds": np.array(secs), "value": np.array(vals)}


def find_runs(paths: list[str]) -> list[str]:
    """The runs under ``paths``: a progress.csv file, a run directory holding one, or a directory of runs searched
    recursively (as ``tensorboard --logdir`` takes it), in sorted order."""
    found: list[str] = []
    for p in paths:
        if p.endswith(".csv") or os.path.isfile(os.path.join(p, "progress.csv")):
            found.append(p)
        elif os.path.isdir(p):
            below = sorted(root for root, _, files in os.walk(p) if "progress.csv" in files)
            if not below:
                raise ValueError(f"run_dir: no progress.csv in or below {p!r}")
            found.extend(below)
        else:
            raise ValueError(f"run_dir: no progress.csv in {p!r}")
    return found


def _band(runs: list[dict[str, np.ndarray]], x: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    hi = min(r[x][-1] for r in runs)
    lo = max(r[x][0] for r in runs)
    grid = np.linspace(lo, hi, 100) if hi > lo else np.array([lo])
    ys = np.stack([np.interp(grid, r[x], r["value"]) for r in runs])
    return grid, ys.mean(0), ys.min(0), ys.max(0)


def plot_runs(run_dirs: list[str], out: str, key: str = "rollout/ep_rew_mean", label: str | None = None) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("rltrain plot needs matplotlib (pip install matplotlib)") from exc
    runs = [load_run(d, key) for d in find_runs(run_dirs)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, x, xlabel in ((axes[0], "steps", "env steps"), (axes[1], "seconds", "training wall-clock (s)")):
        grid, mean, lo, hi = _band(runs, x)
        ax.plot(grid, mean, label=label or f"mean of {len(runs)} run(s)")
        if len(runs) > 1:
            ax.fill_between(grid, lo, hi, alpha=0.25, label="min-max over runs")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rltrain plot", description=__doc__)
    p.add_argument("run_dirs", nargs="+",
                   help="run directories, progress.csv files, or directories holding runs (searched recursively)")
    p.add_argument("--out", default="learning_curves.png", help="PNG to write (default learning_curves.png)")
    p.add_argument("--key", default="rollout/ep_rew_mean", help="CSV column to plot (e.g. eval/mean_reward)")
    a = p.parse_args(argv)
    try:
        path = plot_runs(a.run_dirs, a.out, a.key)
    except (ValueError, RuntimeError) as exc:
        print(f"rltrain plot: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
