"""GRPO benchmark: PerEp GRPO on CartPole-v1 (3 seeds, until the deterministic evaluation reaches 475); the three
GRPO variants and PPO on DenseLunarLander (randomised spawn) and SparseLunarLander with the same env-step budget
(final evaluation, env steps, wall-clock, a PNG of the learning curves); and collection speed: the same G episodes
gathered by rltrain versus a ``multiprocessing.Pool`` (fork) collector that ships the policy to its workers every
iteration and gets whole episodes back, measured in the same run.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from rltrain.bench._timing import fmt_table

if TYPE_CHECKING:
    import gymnasium as gym

    from rltrain.algos.base import BaseTrainer

Curves = dict[tuple[str, str, int], list[tuple[int, float]]]
"""Learning curves (env steps, deterministic eval return) by (env, algo, seed)."""

# --------------------------------------------------------------------------------- Pool-based collector

_WORKER: dict[str, Any] = {}


def _pool_episode(args: tuple[dict[str, Any], int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs one whole episode in a worker with the policy weights it was sent."""
    import gymnasium as gym
    import torch

    from rltrain.policies import SimpleGRPOPolicy

    state, seed, T = args
    if "env" not in _WORKER:
        torch.set_num_threads(1)
        _WORKER["env"] = gym.make("LunarLander-v3")
        _WORKER["pol"] = SimpleGRPOPolicy(8, 4)
    env, pol = _WORKER["env"], _WORKER["pol"]
    pol.load_state_dict(state)
    obs, _ = env.reset(seed=seed)
    observations, actions, logps, rewards = [], [], [], []
    with torch.no_grad():
        for _ in range(T):
            a, lp = pol.act(torch.as_tensor(obs, dtype=torch.float32)[None])
            observations.append(obs)
            actions.append(int(a[0]))
            logps.append(float(lp[0]))
            obs, r, term, trunc, _ = env.step(int(a[0]))
            rewards.append(r)
            if term or trunc:
                break
    return (np.array(observations, np.float32), np.array(actions), np.array(logps, np.float32),
            np.array(rewards, np.float32))


def collection_speed(G: int = 32, T: int = 1000, iters: int = 5) -> list[dict[str, Any]]:
    import torch

    from rltrain import GRPOConfig, PerEpAdvGRPOTrainer
    from rltrain.policies import SimpleGRPOPolicy

    torch.manual_seed(0)
    pol = SimpleGRPOPolicy(8, 4)
    tr = PerEpAdvGRPOTrainer(pol, GRPOConfig(env="LunarLander-v3", G=G, T=T, seed=0, verbose=0,
                                             log_dir="/tmp/rltrain-bench-runs", loggers=("csv",)))
    torch.set_num_threads(1)
    tr._ensure_env()
    tr._collect()
    t0 = time.perf_counter()
    steps = 0
    for k in range(iters):
        tr.iteration = k
        steps += int(tr._collect()["lengths"].sum())
    ours = time.perf_counter() - t0
    tr.close()
    ctx = mp.get_context("fork")
    with ctx.Pool(os.cpu_count() or 2) as pool:
        state = {k: v.clone() for k, v in pol.state_dict().items()}
        pool.map(_pool_episode, [(state, s, T) for s in range(G)])
        t0 = time.perf_counter()
        psteps = 0
        for k in range(iters):
            state = {kk: v.clone() for kk, v in pol.state_dict().items()}
            eps = pool.map(_pool_episode, [(state, 1000 * k + s, T) for s in range(G)])
            psteps += sum(len(e[3]) for e in eps)
        theirs = time.perf_counter() - t0
    return [
        {"collector": "rltrain (native batcher)", "episodes": G * iters, "env_steps": steps, "seconds": ours,
         "steps_per_s": steps / ours},
        {"collector": "multiprocessing.Pool (fork)", "episodes": G * iters, "env_steps": psteps, "seconds": theirs,
         "steps_per_s": psteps / theirs},
    ]


# ------------------------------------------------------------------------------------------- learning


def _trainer(algo: str, env: Any, seed: int) -> BaseTrainer:
    import torch

    from rltrain import (
        GRPOConfig,
        HybridAdvGRPOTrainer,
        PerEpAdvGRPOTrainer,
        PerStepAdvGRPOTrainer,
        PPOConfig,
        PPOTrainer,
    )
    from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy

    torch.manual_seed(seed)
    common: dict[str, Any] = dict(env=env, seed=seed, verbose=0, log_dir="/tmp/rltrain-bench-runs", loggers=("csv",),
                                  save_best=False)
    if algo == "ppo":
        ppo_cfg = PPOConfig(G=16, T=1024, minibatches=256, epochs=4, lam=0.98, gamma=0.999, ent_coef=0.01,
                            target_kl=None, **common)
        return PPOTrainer(ActorCriticPolicy(8, 4), ppo_cfg)
    cls = {"grpo-step": PerStepAdvGRPOTrainer, "grpo-episode": PerEpAdvGRPOTrainer,
           "grpo-hybrid": HybridAdvGRPOTrainer}[algo]
    cfg = GRPOConfig(G=32, T=1000, identical_G=algo == "grpo-step", **common)
    return cls(SimpleGRPOPolicy(8, 4), cfg)


def cartpole(seeds: int = 3, max_iters: int = 60) -> list[dict[str, Any]]:
    import torch

    from rltrain import GRPOConfig, PerEpAdvGRPOTrainer
    from rltrain.policies import SimpleGRPOPolicy

    rows = []
    for s in range(seeds):
        torch.manual_seed(s)
        cfg = GRPOConfig(env="CartPole-v1", G=32, T=500, seed=s, verbose=0, log_dir="/tmp/rltrain-bench-runs",
                         loggers=("csv",))
        tr = PerEpAdvGRPOTrainer(SimpleGRPOPolicy(4, 2), cfg)
        solved, ev = None, float("nan")
        while tr.iteration < max_iters:
            tr.train(iters=5)
            ev = tr.evaluate(n_episodes=10, seed=10_000 + s)["mean_reward"]
            if ev >= 475:
                solved = (tr.num_timesteps, tr.train_time)
                break
        tr.close()
        rows.append({"env": "CartPole-v1", "algo": "grpo-episode", "seed": s, "solved": solved is not None,
                     "final_eval": ev, "env_steps": tr.num_timesteps, "train_s": tr.train_time})
        print(f"  CartPole PerEp GRPO seed {s}: eval {ev:.1f} after {tr.num_timesteps} steps, {tr.train_time:.1f} s",
              flush=True)
    return rows


def lunar(steps_budget: int, seeds: int = 3, eval_every: int = 50_000) -> tuple[list[dict[str, Any]], Curves]:
    from rltrain.envs import DenseLunarLander, SparseLunarLander

    envs: dict[str, Callable[[], gym.Env[Any, Any]]] = {
        "DenseLunarLander(angle,pos)": lambda: DenseLunarLander(randomize_angle=True, randomize_pos=True),
        "SparseLunarLander": lambda: SparseLunarLander(),
    }
    rows: list[dict[str, Any]] = []
    curves: Curves = {}
    for env_name, make in envs.items():
        for algo in ("grpo-step", "grpo-episode", "grpo-hybrid", "ppo"):
            for s in range(seeds):
                tr = _trainer(algo, make(), s)
                nxt = eval_every
                curve: list[tuple[int, float]] = []
                while tr.num_timesteps < steps_budget:
                    tr.train(iters=1)
                    if tr.num_timesteps >= nxt:
                        nxt += eval_every
                        curve.append((tr.num_timesteps, tr.evaluate(n_episodes=10, seed=777 + s)["mean_reward"]))
                res = tr.evaluate(n_episodes=20, seed=999 + s)
                curve.append((tr.num_timesteps, res["mean_reward"]))
                tr.close()
                curves[(env_name, algo, s)] = curve
                rows.append({"env": env_name, "algo": algo, "seed": s, "final_eval": res["mean_reward"],
                             "final_eval_std": res["std_reward"], "env_steps": tr.num_timesteps,
                             "train_s": tr.train_time})
                print(f"  {env_name} {algo} seed {s}: {res['mean_reward']:.1f} +/- {res['std_reward']:.1f} after "
                      f"{tr.num_timesteps} steps, {tr.train_time:.1f} s", flush=True)
    return rows, curves


def plot(curves: Curves, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({k[0] for k in curves})
    fig, axes = plt.subplots(1, len(envs), figsize=(6 * len(envs), 4), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for algo in sorted({k[1] for k in curves if k[0] == env}):
            runs = [curves[k] for k in curves if k[0] == env and k[1] == algo]
            n = min(len(r) for r in runs)
            x = np.array([r[i][0] for r in runs for i in range(n)]).reshape(len(runs), n).mean(0)
            y = np.array([r[i][1] for r in runs for i in range(n)]).reshape(len(runs), n)
            ax.plot(x, y.mean(0), label=algo)
            ax.fill_between(x, y.min(0), y.max(0), alpha=0.2)
        ax.set_title(env)
        ax.set_xlabel("env steps")
        ax.set_ylabel("deterministic eval return")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(quick: bool = False, steps_budget: int | None = None,
        png: str = "grpo_learning_curves.png") -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    speed = collection_speed(iters=2 if quick else 5)
    print("collection: G=32 episodes of LunarLander-v3 (T<=1000) per iteration, random-init policy")
    print(fmt_table(speed, ["collector", "episodes", "env_steps", "seconds", "steps_per_s"]))
    out["collection"] = speed
    cp = cartpole(seeds=1 if quick else 3, max_iters=10 if quick else 60)
    out["cartpole"] = cp
    budget = steps_budget or (20_000 if quick else int(os.environ.get("RLTRAIN_GRPO_BENCH_STEPS", 300_000)))
    rows, curves = lunar(budget, seeds=1 if quick else 3, eval_every=max(budget // 6, 1))
    cols = ["env", "algo", "seed", "final_eval", "final_eval_std", "env_steps", "train_s"]
    print(fmt_table(cp, ["env", "algo", "seed", "solved", "final_eval", "env_steps", "train_s"]))
    print(fmt_table(rows, cols))
    agg = []
    for env in sorted({r["env"] for r in rows}):
        for algo in ("grpo-step", "grpo-episode", "grpo-hybrid", "ppo"):
            rs = [r for r in rows if r["env"] == env and r["algo"] == algo]
            if rs:
                ev = np.array([r["final_eval"] for r in rs])
                agg.append({"env": env, "algo": algo, "seeds": len(rs), "eval_mean": float(ev.mean()),
                            "eval_std_over_seeds": float(ev.std()),
                            "env_steps": float(np.mean([r["env_steps"] for r in rs])),
                            "train_s": float(np.mean([r["train_s"] for r in rs]))})
    print(fmt_table(agg, ["env", "algo", "seeds", "eval_mean", "eval_std_over_seeds", "env_steps", "train_s"]))
    plot(curves, png)
    print(f"learning curves: {png}")
    out.update(lunar=rows, lunar_summary=agg, png=png, budget=budget)
    out["summary"] = {"cartpole_solved_seeds": float(sum(r["solved"] for r in cp)),
                      "collection_speedup_vs_pool": speed[0]["steps_per_s"] / speed[1]["steps_per_s"]}
    return out
