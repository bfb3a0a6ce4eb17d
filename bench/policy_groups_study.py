"""Is a policy-group agent more robust than one PPO agent, or than an ensemble of independently trained PPO agents,
at equal env steps? Robustness suite: every condition of ``rltrain.robustness`` at low/medium/high.

Agents (each trained for the same number of env steps per env):
- ``ppo``: one PPO agent (RL-Zoo's hyperparameters for the env, as ``python -m rltrain.bench learning``);
- ``ppo-ensemble``: K PPO agents with the same hyperparameters, each trained on steps / K with its own seed;
  the ensemble acts with the argmax of the members' averaged action probabilities;
- ``policy-groups``: ``PolicyGroupTrainer`` (groups x group_size), acting with its best group's averaged action
  probabilities (``eval_mode="best_group"``).

``ppo`` and ``policy-groups`` go through ``rltrain.pipeline.run_pipeline`` (train, evaluate, robustness suite,
plots, report.json in one run directory per agent); the ensemble reuses its ``train_to_steps`` and
``robustness_summary`` with ``rltrain.robustness.evaluate_robustness``. Robustness episode k of seed s starts from
env seed s + k for every agent (common random numbers). Per env, results go to
``bench/results/policy_groups_<env>.json``; ``--report`` redraws the PNG and prints the Markdown table from them.

    flock /tmp/rltrain-bench.lock python bench/policy_groups_study.py --env CartPole-v1 --steps 100000
    python bench/policy_groups_study.py --report
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
AGENTS = ("ppo", "ppo-ensemble", "policy-groups")

# RL-Zoo's PPO entries (as rltrain.bench.learning.ZOO), in PPOConfig's names.
PPO_CONFIGS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(G=8, T=32, minibatches=1, epochs=20, lam=0.8, gamma=0.98, ent_coef=0.0, lr=1e-3,
                        lr_schedule="linear", clip_eps=0.2, clip_schedule="linear", target_kl=None),
    "LunarLander-v3": dict(G=16, T=1024, minibatches=256, epochs=4, lam=0.98, gamma=0.999, ent_coef=0.01, lr=3e-4,
                           target_kl=None),
}
# Policy groups: the same discount, lambda and learning rate as the env's PPO entry; one episode per member per
# iteration (G = group_size), 4 epochs x 2 minibatches (PolicyGroupConfig's defaults).
PG_CONFIGS: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(T=500, epochs=4, minibatches=2, lam=0.8, gamma=0.98, ent_coef=0.0, lr=1e-3),
    "LunarLander-v3": dict(T=1000, epochs=4, minibatches=2, lam=0.98, gamma=0.999, ent_coef=0.01, lr=3e-4),
}


class Ensemble:
    """K trained trainers acting together: argmax (deterministic) of the averaged action probabilities for
    categorical actions, the average of their deterministic actions otherwise."""

    def __init__(self, trainers: list[Any]) -> None:
        self.trainers = trainers

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        import torch

        o = np.asarray(obs, dtype=np.float32)
        single = o.ndim == 1
        o = o[None] if single else o
        pols = [t.policy for t in self.trainers]
        if getattr(pols[0], "continuous", False):
            a = np.mean([t.predict(o, deterministic=True) for t in self.trainers], axis=0)
        else:
            with torch.no_grad():
                probs = torch.stack([torch.softmax(p._pi_out(torch.from_numpy(t._normalize_obs(o))), -1)
                                     for p, t in zip(pols, self.trainers)]).mean(0)
            a = probs.argmax(-1).numpy()
        return a[0] if single else a


def _slug(env: str) -> str:
    return env.replace("/", "-").replace("-v", "_v").lower()


def run_agent(env: str, agent: str, seed: int, steps: int, episodes: int, workdir: str, k: int, groups: int,
              group_size: int) -> dict[str, Any]:
    from rltrain.pipeline import robustness_summary, run_pipeline, train_to_steps
    from rltrain.robustness import evaluate_robustness

    common = {"loggers": ["csv"], "save_best": False}
    out = os.path.join(workdir, _slug(env), f"{agent}_s{seed}")
    if agent in ("ppo", "policy-groups"):
        if agent == "ppo":
            algo, cfg = "ppo", {**PPO_CONFIGS[env], **common}
        else:
            algo, cfg = "policy-groups", {**PG_CONFIGS[env], **common, "groups": groups, "group_size": group_size,
                                          "G": group_size}
        rep = run_pipeline(env, algo, steps=steps, out=out, seed=seed, config=cfg, eval_episodes=10,
                           robustness_episodes=episodes)
        rob, env_steps, cpu_s, wall_s = rep["robustness"], rep["env_steps"], rep["train_cpu_s"], rep["train_wall_s"]
    else:
        from rltrain import PPOConfig, PPOTrainer

        members = []
        env_steps, cpu_s, wall_s = 0, 0.0, 0.0
        for i in range(k):
            cfg_i = PPOConfig(env=env, seed=1000 * (seed + 1) + i, verbose=0, log_dir=os.path.join(out, "train"),
                              **{**PPO_CONFIGS[env], "loggers": ("csv",), "save_best": False})
            tr = PPOTrainer(None, cfg_i)
            c0, w0 = time.process_time(), time.perf_counter()
            train_to_steps(tr, steps // k)
            cpu_s += time.process_time() - c0
            wall_s += time.perf_counter() - w0
            env_steps += tr.num_timesteps
            tr.close()
            members.append(tr)
        res = evaluate_robustness(Ensemble(members), env, episodes=episodes, seed=seed)
        rob = robustness_summary(res)
    levels = {lv: float(np.mean([c[lv] for c in rob["by_condition"].values() if lv in c]))
              for lv in ("low", "medium", "high")}
    record = {"env": env, "agent": agent, "seed": seed, "env_steps": int(env_steps), "train_cpu_s": cpu_s,
              "train_wall_s": wall_s, "nominal": rob["nominal"], "level_means": levels,
              "all_mean": rob["mean_over_conditions"], "retention": rob["retention"],
              "by_condition": rob["by_condition"], "run_dir": out}
    if agent == "policy-groups":
        record["groups"] = selection_stats(out)
    return record


def selection_stats(run_dir: str) -> dict[str, Any] | None:
    """From a policy-group run's progress.csv: how often each group was drawn, the final tracked performances
    and selection probabilities, and the final between- / within-group KL diversity."""
    import csv

    found = glob.glob(os.path.join(run_dir, "train", "*", "progress.csv"))
    if not found:
        return None
    with open(found[0], newline="") as f:
        rows = list(csv.DictReader(f))
    last = rows[-1]
    n = sum(1 for k in last if k.startswith("groups/perf_g"))
    drawn = [int(float(r["groups/selected"])) for r in rows]
    return {"iterations": len(rows), "times_drawn": [drawn.count(g) for g in range(n)],
            "final_perf": [float(last[f"groups/perf_g{g}"]) for g in range(n)],
            "final_select_prob": [float(last[f"groups/select_prob_g{g}"]) for g in range(n)],
            "final_diversity_kl": float(last["groups/diversity_kl"]),
            "final_within_kl": float(last["groups/within_kl"])}


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max over seeds of each agent's figures."""
    out: dict[str, Any] = {}
    for agent in AGENTS:
        rs = [r for r in runs if r["agent"] == agent]
        if not rs:
            continue

        def stat(vals: list[float]) -> dict[str, float]:
            v = np.asarray(vals, dtype=np.float64)
            return {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max())}

        out[agent] = {"seeds": len(rs), "nominal": stat([r["nominal"] for r in rs]),
                      "all_mean": stat([r["all_mean"] for r in rs]),
                      "retention": stat([r["retention"] if r["retention"] is not None else float("nan") for r in rs]),
                      "drop": stat([r["all_mean"] - r["nominal"] for r in rs]),
                      **{f"level_{lv}": stat([r["level_means"][lv] for r in rs]) for lv in ("low", "medium", "high")},
                      "env_steps": stat([r["env_steps"] for r in rs]),
                      "train_cpu_s": stat([r["train_cpu_s"] for r in rs])}
    return out


def _label(agent: str, d: dict[str, Any]) -> str:
    return agent if agent != "policy-groups" else f"policy-groups {d['groups']}x{d['group_size']}"


def report() -> None:
    """Prints the Markdown tables and draws one panel per env (a tagged variant joins its env's panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_env: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(glob.glob(os.path.join(RESULTS, "policy_groups_*.json"))):
        with open(path) as f:
            d = json.load(f)
        by_env.setdefault(d["env"], []).append(d)
    if not by_env:
        print("no results", file=sys.stderr)
        return
    for ds in by_env.values():
        ds.sort(key=lambda d: bool(d.get("tag")))  # the full study first, then its variants
    fig, axes = plt.subplots(1, len(by_env), figsize=(7.0 * len(by_env), 4.8), squeeze=False)
    cols = ("nominal", "level_low", "level_medium", "level_high", "all_mean")
    print("| env | steps | agent | seeds | nominal | low | medium | high | all conditions x levels | all - nominal | "
          "train CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for ax, (env, ds) in zip(axes[0], by_env.items()):
        rows = [(_label(agent, d), a, [r for r in d["runs"] if r["agent"] == agent], d)
                for d in ds for agent, a in d["aggregate"].items()]
        x = np.arange(len(cols))
        w = 0.8 / max(len(rows), 1)
        for i, (label, a, runs, d) in enumerate(rows):
            med = [a[c]["median"] for c in cols]
            lo = [a[c]["median"] - a[c]["min"] for c in cols]
            hi = [a[c]["max"] - a[c]["median"] for c in cols]
            ax.bar(x + (i - (len(rows) - 1) / 2) * w, med, w, yerr=[lo, hi], capsize=3, label=label)

            def cell(c: str, a: dict[str, Any] = a) -> str:
                s = a[c]
                return f"{s['median']:.1f} ({s['min']:.1f} to {s['max']:.1f})"

            drops = [r["all_mean"] - r["nominal"] for r in runs]
            drop = f"{np.median(drops):+.1f} ({min(drops):+.1f} to {max(drops):+.1f})"
            print(f"| {env} | {d['steps']} | {label} | {a['seeds']} | {cell('nominal')} | {cell('level_low')} | "
                  f"{cell('level_medium')} | {cell('level_high')} | {cell('all_mean')} | {drop} | "
                  f"{a['train_cpu_s']['median']:.0f} |")
        ax.set_xticks(x)
        ax.set_xticklabels(["nominal", "low", "medium", "high", "all"])
        ax.set_ylabel("true episode return (median over 3 seeds, min-max bars)")
        ax.set_title(f"{env}, {ds[0]['steps']} env steps per agent, {ds[0]['episodes']} episodes per condition",
                     fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=4)
    for env, ds in by_env.items():
        conds = list(ds[0]["runs"][0]["by_condition"])
        print(f"\n{env}, level high, median over seeds per condition:\n")
        print("| agent | " + " | ".join(conds) + " |")
        print("|---|" + "---|" * len(conds))
        for d in ds:
            for agent in d["aggregate"]:
                rs = [r for r in d["runs"] if r["agent"] == agent]
                cells = [f"{np.median([r['by_condition'][c]['high'] for r in rs]):.1f}" for c in conds]
                print(f"| {_label(agent, d)} | " + " | ".join(cells) + " |")
        print()
        for d in ds:
            for r in d["runs"]:
                g = r.get("groups")
                if g:
                    print(f"{env} {_label('policy-groups', d)} seed {r['seed']}: {g['iterations']} iterations, "
                          f"groups drawn {g['times_drawn']}, final perf {[round(x, 1) for x in g['final_perf']]}, "
                          f"selection {[round(x, 2) for x in g['final_select_prob']]}, diversity KL between "
                          f"{g['final_diversity_kl']:.3f} / within {g['final_within_kl']:.3f}")
    fig.tight_layout()
    png = os.path.join(RESULTS, "policy_groups_robustness.png")
    fig.savefig(png, dpi=100)
    print(f"\nwrote {png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1", choices=sorted(PPO_CONFIGS))
    p.add_argument("--steps", type=int, default=100_000, help="env steps per agent (the ensemble splits them)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--episodes", type=int, default=20, help="robustness episodes per condition and level")
    p.add_argument("--ensemble", type=int, default=4, help="PPO agents in the ensemble")
    p.add_argument("--groups", type=int, default=4)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--agents", default=",".join(AGENTS))
    p.add_argument("--workdir", default="/tmp/rltrain-pg-study")
    p.add_argument("--tag", default="", help="suffix of the results file (a variant of the default study)")
    p.add_argument("--report", action="store_true", help="only redraw the PNG and print the table")
    p.add_argument("--add-group-stats", action="store_true",
                   help="fill in the policy-group runs' selection statistics of --env's JSON from their run dirs")
    a = p.parse_args()
    if a.add_group_stats:
        path = os.path.join(RESULTS, f"policy_groups_{_slug(a.env)}{'_' + a.tag if a.tag else ''}.json")
        with open(path) as f:
            d = json.load(f)
        for r in d["runs"]:
            if r["agent"] == "policy-groups" and r.get("groups") is None:
                r["groups"] = selection_stats(r["run_dir"])
        with open(path, "w") as f:
            json.dump(d, f, indent=2, allow_nan=True)
            f.write("\n")
        return
    if a.report:
        report()
        return
    agents = [x for x in a.agents.split(",") if x]
    runs = []
    t0 = time.perf_counter()
    for seed in range(a.seeds):
        for agent in agents:
            r = run_agent(a.env, agent, seed, a.steps, a.episodes, os.path.join(a.workdir, a.tag), a.ensemble,
                          a.groups, a.group_size)
            runs.append(r)
            print(f"{a.env} {agent} seed {seed}: nominal {r['nominal']:.1f}, all {r['all_mean']:.1f}, "
                  f"low/med/high {r['level_means']['low']:.1f}/{r['level_means']['medium']:.1f}/"
                  f"{r['level_means']['high']:.1f}, steps {r['env_steps']}, cpu {r['train_cpu_s']:.1f} s "
                  f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    out = {"env": a.env, "tag": a.tag, "steps": a.steps, "seeds": a.seeds, "episodes": a.episodes,
           "ensemble": a.ensemble,
           "groups": a.groups, "group_size": a.group_size,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": "2 cores (shared)", "command": " ".join(["python", *sys.argv]),
           "ppo_config": PPO_CONFIGS[a.env], "policy_groups_config": PG_CONFIGS[a.env],
           "metric": "true episode return under the robustness suite (rltrain.robustness), per seed: mean over "
                     "the conditions at a level; all = mean over every condition x level",
           "aggregate": aggregate(runs), "runs": runs}
    path = os.path.join(RESULTS, f"policy_groups_{_slug(a.env)}{'_' + a.tag if a.tag else ''}.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2, allow_nan=True)
        f.write("\n")
    print(f"wrote {path} [{time.perf_counter() - t0:.0f} s]")


if __name__ == "__main__":
    main()
