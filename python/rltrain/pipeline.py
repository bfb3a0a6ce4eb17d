"""``rltrain pipeline --env ID --algo ALGO [--steps N] [--out RUN_DIR]``: the whole study of one agent in one
command and one directory: train to an env-step budget, evaluate deterministically, run the robustness suite
(every condition at every level), draw the learning curves and write a JSON report.

It only strings together what exists: the trainers named by ``rltrain train`` (:data:`rltrain.cli.ALGOS`),
``trainer.evaluate``, :func:`rltrain.robustness.evaluate_robustness` / :func:`rltrain.robustness.write_report`
and :func:`rltrain.plot.plot_runs`. The run directory holds::

    RUN_DIR/model.pt                      final checkpoint (rltrain eval / rltrain robustness take it)
    RUN_DIR/train/<run>/progress.csv      training log (and TensorBoard events)
    RUN_DIR/learning_curves.png           episode return against env steps and wall-clock
    RUN_DIR/robustness-<env>.json, .png   the robustness suite's results and bar chart
    RUN_DIR/report.json                   everything above summarised (paths relative to RUN_DIR)
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from rltrain._checks import integer

__all__ = ["main", "robustness_summary", "run_pipeline", "train_to_steps"]


def _algos() -> dict[str, tuple[type, str]]:
    from rltrain.cli import ALGOS

    return ALGOS


def train_to_steps(trainer: Any, steps: int) -> None:
    """Trains until ``trainer.num_timesteps >= steps``: PPO (fixed G*T steps per iteration) in one ``train`` call
    of the exact iteration count; the episodic trainers (GRPO, REINFORCE, policy groups: variable steps per
    iteration) one iteration at a time."""
    steps = integer(steps, "steps", lo=1)
    cfg = trainer.cfg
    per_iter = getattr(trainer, "algo", "") == "ppo" and cfg.G * cfg.T
    if per_iter:
        remaining = max(0, steps - trainer.num_timesteps)
        trainer.train(iters=math.ceil(remaining / per_iter))
        return
    scheduled = [f for f in ("lr_schedule", "clip_schedule", "ent_schedule")
                 if getattr(cfg, f, "constant") != "constant"]
    if scheduled and cfg.schedule_iters is None:
        raise ValueError(f"schedule_iters: {trainer.algo} runs a variable number of steps per iteration; set "
                         f"schedule_iters for the non-constant schedule(s) {scheduled}")
    while trainer.num_timesteps < steps:
        trainer.train(iters=1)


def robustness_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Nominal return, the mean over every (condition, level) entry, that mean relative to nominal
    (``retention``), and the per-condition, per-level means."""
    rows = result["results"]
    nominal = float(rows[0]["mean"])
    perturbed = [float(r["mean"]) for r in rows if r["condition"] != "nominal"]
    by: dict[str, dict[str, float]] = {}
    for r in rows[1:]:
        by.setdefault(r["condition"], {})[r["level"]] = float(r["mean"])
    mean = float(sum(perturbed) / len(perturbed)) if perturbed else float("nan")
    return {"nominal": nominal, "mean_over_conditions": mean,
            "retention": (mean / nominal) if perturbed and nominal != 0 else None,
            "by_condition": by, "skipped": list(result.get("skipped", []))}


def run_pipeline(env: str, algo: str, *, steps: int = 100_000, out: str | None = None, seed: int = 0,
                 config: dict[str, Any] | None = None, eval_episodes: int = 20, robustness_episodes: int = 20,
                 conditions: Sequence[str] | None = None, levels: Sequence[str] | None = None,
                 device: str = "cpu", verbose: int = 0) -> dict[str, Any]:
    """Trains ``algo`` on ``env`` for ``steps`` env steps (config defaults, then ``config`` overrides), evaluates
    it, runs the robustness suite and writes the run directory (module docstring). Returns the report."""
    from rltrain.plot import plot_runs
    from rltrain.robustness import LEVELS, evaluate_robustness, write_report

    algos = _algos()
    if algo not in algos:
        raise ValueError(f"algo: expected one of {sorted(algos)}, got {algo!r}")
    if not isinstance(env, str) or not env:
        raise TypeError(f"env: expected an environment id, got {env!r}")
    steps = integer(steps, "steps", lo=1)
    seed = integer(seed, "seed", lo=0)
    eval_episodes = integer(eval_episodes, "eval_episodes", lo=1)
    robustness_episodes = integer(robustness_episodes, "robustness_episodes", lo=1)
    from rltrain._checks import class_from_path

    trainer_cls: Any = class_from_path(algos[algo][1], "algo", allow_import=True)  # one of ALGOS' fixed paths
    config_cls = trainer_cls.config_class
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overrides = dict(config or {})
    bad = sorted(set(overrides) - fields)
    if bad:
        raise ValueError(f"config: unknown field(s) {bad} for {config_cls.__name__}")
    if out is None:
        out = os.path.join("runs", "pipeline", f"{algo}_{env.replace('/', '-')}_s{seed}")
    os.makedirs(out, exist_ok=True)
    kwargs = {"env": env, "seed": seed, "verbose": verbose, "log_dir": os.path.join(out, "train"), **overrides}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()}
    cfg = config_cls(**kwargs)
    trainer = trainer_cls(None, cfg, device=device)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        train_to_steps(trainer, steps)
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
        model = trainer.save(os.path.join(out, "model.pt"))
        evaluation = trainer.evaluate(n_episodes=eval_episodes)
        rob = evaluate_robustness(trainer, env, conditions=conditions, levels=tuple(levels or LEVELS),
                                  episodes=robustness_episodes, seed=seed)
        rob = {"checkpoint": os.path.abspath(model), "algo": trainer.algo,
               "trained_timesteps": int(trainer.num_timesteps), **rob}
        rob_json, rob_png = write_report(rob, out)
        run_dir = trainer.run_dir
    finally:
        trainer.close()
    files: dict[str, str | None] = {"checkpoint": model, "robustness_json": rob_json, "robustness_png": rob_png}
    assert run_dir is not None
    files["progress_csv"] = os.path.join(run_dir, "progress.csv")
    curves_error = None
    try:
        files["learning_curves"] = plot_runs([run_dir], os.path.join(out, "learning_curves.png"),
                                             label=f"{algo} seed {seed}")
    except ValueError as exc:  # no finished episode logged (a budget shorter than one episode)
        files["learning_curves"], curves_error = None, str(exc)
    report_path = os.path.join(out, "report.json")
    files["report"] = report_path
    report = {
        "env": env, "algo": algo, "seed": seed, "date": started, "run_dir": os.path.abspath(out),
        "steps_requested": steps,
        "env_steps": int(trainer.num_timesteps), "iterations": int(trainer.iteration),
        "train_wall_s": wall_s, "train_cpu_s": cpu_s, "config": cfg.to_dict(),
        "evaluation": evaluation, "robustness": robustness_summary(rob),
        "files": {k: (None if v is None else os.path.relpath(v, out)) for k, v in files.items()},
    }
    if curves_error is not None:
        report["learning_curves_error"] = curves_error
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2, allow_nan=False, default=float)
        f.write("\n")
    return report


def _config_arg(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    raw = text
    if os.path.isfile(text):
        with open(text) as f:
            raw = f.read()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--config: expected a JSON object or a file holding one, got {text!r} ({exc})") from exc
    if not isinstance(value, dict):
        raise ValueError(f"--config: expected a JSON object of config fields, got {type(value).__name__}")
    return value


def main(argv: list[str] | None = None) -> int:
    """``rltrain pipeline --env ID --algo ALGO [--steps N] [--out RUN_DIR] ...``."""
    algos = sorted(_algos())
    p = argparse.ArgumentParser(prog="rltrain pipeline", description="Train, evaluate, run the robustness suite, "
                                "plot and write report.json into one run directory.")
    p.add_argument("--env", required=True, help="environment id, e.g. CartPole-v1")
    p.add_argument("--algo", required=True, choices=algos, help="trainer, as for 'rltrain train'")
    p.add_argument("--steps", type=int, default=100_000, help="env-step budget of the training (default 100000)")
    p.add_argument("--out", default=None, help="run directory (default runs/pipeline/<algo>_<env>_s<seed>)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--config", default=None, help='config field overrides: a JSON object or a file, e.g. '
                   '\'{"lr": 1e-3, "G": 8}\'')
    p.add_argument("--eval-episodes", type=int, default=20, help="deterministic evaluation episodes (default 20)")
    p.add_argument("--episodes", type=int, default=20,
                   help="robustness episodes per condition and level (default 20)")
    p.add_argument("--conditions", default=None, help="comma-separated robustness conditions (default all)")
    p.add_argument("--levels", default="low,medium,high", help="comma-separated levels (default all three)")
    p.add_argument("--device", default="cpu", help="device of the update (default cpu)")
    p.add_argument("--verbose", type=int, default=1, help="trainer verbosity (default 1)")
    try:
        a = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        conditions = None if a.conditions is None else [c.strip() for c in a.conditions.split(",") if c.strip()]
        levels = [x.strip() for x in a.levels.split(",") if x.strip()]
        report = run_pipeline(a.env, a.algo, steps=a.steps, out=a.out, seed=a.seed, config=_config_arg(a.config),
                              eval_episodes=a.eval_episodes, robustness_episodes=a.episodes, conditions=conditions,
                              levels=levels, device=a.device, verbose=a.verbose)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"rltrain pipeline: error: {exc}", file=sys.stderr)
        return 2
    ev, rb = report["evaluation"], report["robustness"]
    print(f"{a.algo} on {a.env}: {report['env_steps']} env steps in {report['train_wall_s']:.1f} s "
          f"({report['train_cpu_s']:.1f} CPU s); evaluation {ev['mean_reward']:.2f} +/- {ev['std_reward']:.2f}")
    print(f"robustness: nominal {rb['nominal']:.2f}, mean over conditions x levels "
          f"{rb['mean_over_conditions']:.2f}")
    print(f"wrote {', '.join(v for v in report['files'].values() if v)} in {report['run_dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
