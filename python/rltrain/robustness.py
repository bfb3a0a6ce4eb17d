"""``rltrain robustness CHECKPOINT``: evaluates a trained agent nominally and under every perturbation preset of
:mod:`rltrain.envs.perturb`, with mean ± 95% CI (Student t) per condition, a JSON summary and a PNG bar chart.

The wrappers, presets and physical-parameter tables live in :mod:`rltrain.envs.perturb` (environment code) and
are re-exported here, so ``from rltrain.robustness import ObservationNoise`` keeps working. Confidence intervals
use ``scipy.stats.t`` (the optional extra ``pip install "rltrain[robustness]"``, or ``pip install scipy``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from rltrain._checks import integer, real
from rltrain.envs.perturb import (  # re-exported
    CONDITIONS,
    LEVELS,
    PRESETS,
    ActionNoise,
    DelayedReward,
    NonStationaryDynamics,
    NotApplicableError,
    ObservationMask,
    ObservationNoise,
    ResetResult,
    RewardNoise,
    RobustnessWrapper,
    StepResult,
    TransitionNoise,
    make_condition,
    physics_parameters,
    set_physics,
)

__all__ = [  # rltrain.envs.perturb's names, then this module's own
    "CONDITIONS",
    "LEVELS",
    "PRESETS",
    "ActionNoise",
    "DelayedReward",
    "NonStationaryDynamics",
    "NotApplicableError",
    "ObservationMask",
    "ObservationNoise",
    "RewardNoise",
    "RobustnessWrapper",
    "TransitionNoise",
    "evaluate_robustness",
    "main",
    "make_condition",
    "mean_ci",
    "physics_parameters",
    "set_physics",
    "t_quantile",
    "write_report",
]


# ----------------------------------------------------------------------------------------------- statistics


def t_quantile(q: float, dof: int) -> float:
    """The ``q`` quantile of Student's t distribution with ``dof`` degrees of freedom (``scipy.stats.t.ppf``;
    exactly antisymmetric: ``t_quantile(1 - q, dof) == -t_quantile(q, dof)``)."""
    q = real(q, "q", lo=0.0, hi=1.0, lo_open=True, hi_open=True, what="a probability")
    dof = integer(dof, "dof", lo=1)
    try:
        from scipy import stats
    except ImportError as exc:
        raise ImportError(
            "t_quantile: confidence intervals need scipy (pip install 'rltrain[robustness]' or pip install scipy)"
        ) from exc
    if q < 0.5:
        return -t_quantile(1.0 - q, dof)
    if q == 0.5:
        return 0.0
    return float(stats.t.ppf(q, dof))


def mean_ci(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> dict[str, Any]:
    """Mean, half-width of its ``confidence`` interval (Student t, n-1 dof), sample std and n.

    With fewer than two values the half-width and std are None.
    """
    c = real(confidence, "confidence", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("values: expected at least one value, got an empty sequence")
    n = int(x.size)
    if n < 2:
        return {"mean": float(x[0]), "ci": None, "std": None, "n": n}
    std = float(np.std(x, ddof=1))
    half_width = t_quantile(0.5 + c / 2, n - 1) * std / math.sqrt(n)
    return {"mean": float(x.mean()), "ci": half_width, "std": std, "n": n}


# ----------------------------------------------------------------------------------------------- evaluation


class _ReturnMeter(gym.Wrapper):
    """Innermost wrapper: the episode's true return and length, whatever the outer wrappers do to rewards."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.total = 0.0
        self.length = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        self.total, self.length = 0.0, 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> StepResult:
        out = self.env.step(action)
        self.total += float(out[1])
        self.length += 1
        return out


@dataclasses.dataclass
class _Slot:
    env: gym.Env
    meter: _ReturnMeter
    episode: int
    obs: Any
    observed: float = 0.0


def _run_episodes(trainer: Any, build: Callable[[], tuple[gym.Env, _ReturnMeter]], seeds: Sequence[int],
                  max_envs: int) -> tuple[list[float], list[float], list[int]]:
    """Runs one episode per seed on up to ``max_envs`` envs in lockstep, one batched predict per step."""
    n = len(seeds)
    true_r, observed_r, lengths = [0.0] * n, [0.0] * n, [0] * n
    pool = [build() for _ in range(min(max_envs, n))]
    active: list[_Slot] = []
    next_ep = 0
    try:
        for env, meter in pool:
            obs, _ = env.reset(seed=int(seeds[next_ep]))
            active.append(_Slot(env, meter, next_ep, obs))
            next_ep += 1
        while active:
            batch = np.stack([np.asarray(s.obs, dtype=np.float32) for s in active])
            actions = np.asarray(trainer.predict(batch, deterministic=True))
            still: list[_Slot] = []
            for s, a in zip(active, actions):
                s.obs, r, terminated, truncated, _ = s.env.step(a)
                s.observed += float(r)
                if not (terminated or truncated):
                    still.append(s)
                    continue
                true_r[s.episode], observed_r[s.episode] = s.meter.total, s.observed
                lengths[s.episode] = s.meter.length
                if next_ep < n:
                    s.obs, _ = s.env.reset(seed=int(seeds[next_ep]))
                    s.episode, s.observed = next_ep, 0.0
                    next_ep += 1
                    still.append(s)
            active = still
    finally:
        for env, _ in pool:
            env.close()
    return true_r, observed_r, lengths


def _entry(condition: str, level: str | None, settings: dict[str, Any], true_r: list[float],
           observed_r: list[float], lengths: list[int]) -> dict[str, Any]:
    stats = mean_ci(true_r)
    return {
        "condition": condition,
        "level": level,
        "settings": settings,
        "mean": stats["mean"],
        "ci95": stats["ci"],
        "std": stats["std"],
        "n": stats["n"],
        "returns": [float(r) for r in true_r],
        "observed_mean": float(np.mean(observed_r)),
        "observed_returns": [float(r) for r in observed_r],
        "mean_length": float(np.mean(lengths)),
    }


def evaluate_robustness(trainer: Any, env_id: Any, conditions: Sequence[str] | None = None,
                        levels: Sequence[str] = LEVELS, episodes: int = 20, seed: int = 0,
                        max_envs: int = 32) -> dict[str, Any]:
    """Evaluates ``trainer`` (anything with ``predict(obs_batch, deterministic=True)``) on ``env_id`` (an id,
    an instance or a factory) nominally and under every condition x level.

    Episode k of every condition is reset with seed ``seed + k`` (common random numbers across conditions).
    The reported ``mean``/``ci95``/``std``/``returns`` are true environment returns (measured below the
    perturbation); ``observed_mean``/``observed_returns`` are what the perturbed reward signal summed to,
    which differs only under reward_noise (delayed_reward preserves the total). Conditions that do not apply
    to the env are listed under ``skipped`` with the reason. Returns a JSON-friendly dict.
    """
    from rltrain.vec.resolve import env_id_of, make_single

    names = list(PRESETS) if conditions is None else list(conditions)
    bad = [c for c in names if c not in PRESETS]
    if bad:
        raise ValueError(f"conditions: expected names among {sorted(PRESETS)}, got {bad}")
    lv = list(levels)
    bad = [x for x in lv if x not in LEVELS]
    if bad or not lv:
        raise ValueError(f"levels: expected a non-empty subset of {list(LEVELS)}, got {lv}")
    episodes = integer(episodes, "episodes", lo=1)
    seed = integer(seed, "seed", lo=0)
    max_envs = integer(max_envs, "max_envs", lo=1)
    seeds = [seed + k for k in range(episodes)]

    def base() -> tuple[gym.Env, _ReturnMeter]:
        meter = _ReturnMeter(make_single(env_id))
        return meter, meter

    results = [_entry("nominal", None, {}, *_run_episodes(trainer, base, seeds, max_envs))]
    skipped: list[dict[str, str]] = []
    for name in names:
        probe = make_single(env_id)
        try:
            make_condition(probe, name, lv[0])
        except NotApplicableError as exc:
            skipped.append({"condition": name, "reason": str(exc)})
            continue
        finally:
            probe.close()
        for level in lv:
            settings: dict[str, Any] = {}

            def build(name: str = name, level: str = level,
                      settings: dict[str, Any] = settings) -> tuple[gym.Env, _ReturnMeter]:
                meter = _ReturnMeter(make_single(env_id))
                wrapped = make_condition(meter, name, level)
                settings.update(wrapped.settings)
                return wrapped, meter

            runs = _run_episodes(trainer, build, seeds, max_envs)
            results.append(_entry(name, level, settings, *runs))
    nominal = results[0]["mean"]
    for r in results:
        r["delta"] = r["mean"] - nominal
    return {
        "env": env_id_of(env_id),
        "episodes": episodes,
        "seed": seed,
        "levels": lv,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "metric": "true episode return (mean, 95% CI of the mean: Student t, n-1 dof)",
        "results": results,
        "skipped": skipped,
    }


# -------------------------------------------------------------------------------------------------- report


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def write_report(result: dict[str, Any], out_dir: str) -> tuple[str, str]:
    """Writes ``robustness-<env>.json`` and a bar chart ``robustness-<env>.png`` (one bar per condition x
    level, 95% CI error bars, dashed line at the nominal mean) into ``out_dir``; returns both paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            "rltrain robustness needs matplotlib for its chart (pip install matplotlib)") from exc
    if not isinstance(result, dict) or "results" not in result or not result["results"]:
        raise ValueError("result: expected the dict returned by evaluate_robustness, got "
                         f"{type(result).__name__} without results")
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"robustness-{_slug(str(result.get('env', 'env')))}")
    json_path, png_path = stem + ".json", stem + ".png"
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2, allow_nan=False)
        f.write("\n")

    rows = result["results"]
    colors = {"low": "#9ecae1", "medium": "#4292c6", "high": "#08519c", None: "#969696"}
    labels = [r["condition"] if r["level"] is None else f"{r['condition']}/{r['level']}" for r in rows]
    means = [r["mean"] for r in rows]
    errs = [0.0 if r["ci95"] is None else r["ci95"] for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2.0), 4.5))
    x = np.arange(len(rows))
    ax.bar(x, means, yerr=errs, capsize=3, color=[colors.get(r["level"], "#4292c6") for r in rows])
    ax.axhline(rows[0]["mean"], color="black", linestyle="--", linewidth=1, label="nominal mean")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("episode return (mean ± 95% CI)")
    title = f"{result.get('env', '')}: robustness over {result.get('episodes', '?')} episodes per condition"
    if result.get("skipped"):
        title += f"\n(not applicable: {', '.join(s['condition'] for s in result['skipped'])})"
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return json_path, png_path


def _format_table(result: dict[str, Any]) -> str:
    lines = [f"{'condition':<18}{'level':<8}{'mean ± ci95':>24}{'n':>5}{'delta':>11}"]
    for r in result["results"]:
        ci = "n/a" if r["ci95"] is None else f"{r['ci95']:.2f}"
        cell = f"{r['mean']:.2f} ± {ci}"
        lines.append(f"{r['condition']:<18}{r['level'] or '-':<8}{cell:>24}{r['n']:>5}{r['delta']:>+11.2f}")
    for s in result["skipped"]:
        lines.append(f"{s['condition']:<18}skipped: {s['reason']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``rltrain robustness CHECKPOINT [--env ID] ...``: evaluates, prints a table, writes JSON + PNG."""
    p = argparse.ArgumentParser(
        prog="rltrain robustness",
        description="Evaluate a checkpoint under observation/action/transition/reward perturbations at "
                    "low/medium/high presets.")
    p.add_argument("checkpoint", help="checkpoint written by a trainer's save()")
    p.add_argument("--env", default=None, help="environment id (default: the checkpoint's env)")
    p.add_argument("--episodes", type=int, default=20, help="episodes per condition and level (default 20)")
    p.add_argument("--conditions", default=None,
                   help=f"comma-separated subset of {','.join(PRESETS)} (default all)")
    p.add_argument("--levels", default=",".join(LEVELS), help="comma-separated subset of low,medium,high")
    p.add_argument("--seed", type=int, default=0,
                   help="episode k of every condition uses seed SEED+k (default 0)")
    p.add_argument("--out", default=None, help="output directory (default: <checkpoint dir>/robustness)")
    p.add_argument("--device", default="cpu", help="device to load the policy on (default cpu)")
    try:
        a = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2

    def fail(msg: str) -> int:
        print(f"rltrain robustness: error: {msg}", file=sys.stderr)
        return 2

    if not os.path.isfile(a.checkpoint):
        return fail(f"checkpoint: no such file {a.checkpoint!r}")
    conditions = None if a.conditions is None else [c.strip() for c in a.conditions.split(",") if c.strip()]
    levels = [x.strip() for x in a.levels.split(",") if x.strip()]
    try:
        if conditions is not None and (not conditions or any(c not in PRESETS for c in conditions)):
            raise ValueError(f"--conditions: expected a comma-separated subset of {','.join(PRESETS)}, "
                             f"got {a.conditions!r}")
        if not levels or any(x not in LEVELS for x in levels):
            raise ValueError(
                f"--levels: expected a comma-separated subset of {','.join(LEVELS)}, got {a.levels!r}")
        integer(a.episodes, "--episodes", lo=1)
        integer(a.seed, "--seed", lo=0)
        from rltrain.algos.base import BaseTrainer

        try:
            trainer = BaseTrainer.load(a.checkpoint, device=a.device, env=a.env, verbose=0)
        except (ValueError, TypeError):
            raise
        except Exception as exc:  # torch.load on a corrupt or foreign file raises many kinds of error
            raise ValueError(
                f"checkpoint: cannot load {a.checkpoint!r}: {type(exc).__name__}: {exc}") from exc
        env = a.env if a.env is not None else trainer.cfg.env
        result = evaluate_robustness(trainer, env, conditions=conditions, levels=levels, episodes=a.episodes,
                                     seed=a.seed)
        result = {"checkpoint": os.path.abspath(a.checkpoint), "algo": trainer.algo,
                  "trained_timesteps": int(trainer.num_timesteps), **result}
        out = a.out if a.out is not None else os.path.join(os.path.dirname(os.path.abspath(a.checkpoint)),
                                                           "robustness")
        json_path, png_path = write_report(result, out)
    except (ValueError, TypeError, RuntimeError) as exc:
        return fail(str(exc))
    print(_format_table(result))
    print(f"wrote {json_path}\nwrote {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
