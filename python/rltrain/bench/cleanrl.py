"""CleanRL-style PPO scripts (``examples/cleanrl_ppo*.py``) on both backends at equal steps and seeds: rltrain
(``make_vec`` + ``kernels.gae``) against gymnasium (``SyncVectorEnv`` with same-step autoreset + a NumPy GAE loop).

Each run is the script in a fresh interpreter (``--json``), one after another so that runs never share the cores.
Reported per script and backend over the seeds: steps/s of the whole run (median, min to max), steps/s of the rollout
phase alone (env steps and policy forward passes, where the backends differ), and the final return: the mean of
the episodic returns finished in the last 10% of the run's steps, as mean (min to max) over the seeds.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rltrain.bench._timing import fmt_table

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
"""The repository's examples folder (absent from an installed wheel)."""

RUNS: dict[str, dict[str, Any]] = {
    "cleanrl_ppo.py": {"env": "CartPole-v1", "steps": 100_000},
    "cleanrl_ppo_continuous.py": {"env": "Pendulum-v1", "steps": 200_000},
}
BACKENDS = ("rltrain", "gymnasium")


def _one(script: str, backend: str, seed: int, steps: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "run.json")
        cmd = [sys.executable, str(EXAMPLES / script), "--backend", backend, "--seed", str(seed),
               "--total-timesteps", str(steps), "--json", out]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
        with open(out) as f:
            result: dict[str, Any] = json.load(f)
    tail = [e["return"] for e in result["episodes"] if e["step"] > 0.9 * result["steps"]]
    tail = tail or [e["return"] for e in result["episodes"][-1:]]
    return {"script": script, "backend": backend, "seed": seed, "steps": result["steps"], "sps": result["sps"],
            "rollout_sps": result["rollout_sps"], "final_return": statistics.fmean(tail) if tail else float("nan")}


def _spread(xs: list[float], center: str) -> str:
    mid = statistics.median(xs) if center == "median" else statistics.fmean(xs)
    digits = 0 if abs(mid) >= 100 else 1
    return f"{mid:.{digits}f} ({min(xs):.{digits}f} to {max(xs):.{digits}f})"


def run(quick: bool = False, seeds: int = 3) -> dict[str, Any]:
    if not EXAMPLES.is_dir():
        raise RuntimeError(f"the cleanrl section runs the repository's examples, not found at {EXAMPLES}")
    runs = {k: dict(v) for k, v in RUNS.items()}
    if quick:
        seeds = 1
        for v in runs.values():
            v["steps"] = 4096
    rows = []
    for script, spec in runs.items():
        for seed in range(1, seeds + 1):
            for backend in BACKENDS:
                r = _one(script, backend, seed, spec["steps"])
                rows.append(r)
                print(f"  {script} {spec['env']} {backend} seed {seed}: {r['sps']:.0f} steps/s "
                      f"(rollout {r['rollout_sps']:.0f}), final return {r['final_return']:.1f}", flush=True)
    table, summary = [], {}
    for script, spec in runs.items():
        for backend in BACKENDS:
            mine = [r for r in rows if r["script"] == script and r["backend"] == backend]
            table.append({"script": script, "env": spec["env"], "backend": backend, "steps": spec["steps"],
                          "seeds": len(mine),
                          "steps/s median (min to max)": _spread([r["sps"] for r in mine], "median"),
                          "rollout steps/s median (min to max)": _spread([r["rollout_sps"] for r in mine], "median"),
                          "final return mean (min to max)": _spread([r["final_return"] for r in mine], "mean")})
            key = f"{spec['env'].split('-')[0].lower()}_{backend}"
            summary[f"{key}_sps"] = statistics.median(r["sps"] for r in mine)
            summary[f"{key}_final_return"] = statistics.fmean(r["final_return"] for r in mine)
    print(fmt_table(table, list(table[0])))
    return {"rows": rows, "table": table, "summary": summary}
