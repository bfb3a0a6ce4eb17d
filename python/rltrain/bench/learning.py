"""Learning benchmark: PPO with RL-Zoo's hyperparameters on CartPole-v1 and LunarLander-v3, rltrain and (when
installed) Stable-Baselines3 in the same run. Reports env steps/s over training and the env steps and training
wall-clock until the deterministic evaluation mean (10 episodes) first reaches the threshold; evaluation time is
excluded from both. SB3 is configured at its fastest: ``make_vec_env`` gets a factory (an id string would turn on
rgb_array rendering, which keeps LunarLander's particles alive and slows its steps), torch uses one thread for both.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from rltrain.bench._timing import fmt_table

if TYPE_CHECKING:
    from rltrain.algos.base import BaseTrainer

# rl-baselines3-zoo hyperparams/ppo.yml (LunarLander-v2 entry applied to v3).
ZOO: dict[str, dict[str, Any]] = {
    "CartPole-v1": dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                        learning_rate=1e-3, lin_lr=True, clip_range=0.2, lin_clip=True, n_timesteps=100_000,
                        threshold=475.0, eval_every=2048),
    "LunarLander-v3": dict(n_envs=16, n_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999, n_epochs=4,
                           ent_coef=0.01, learning_rate=3e-4, lin_lr=False, clip_range=0.2, lin_clip=False,
                           n_timesteps=1_000_000, threshold=200.0, eval_every=10240),
}


def train_with_evals(tr: BaseTrainer, max_iters: int, max_steps: int | None, eval_every: int, threshold: float,
                     seed: int, stop_at_solve: bool) -> tuple[tuple[int, float] | None, list[tuple[int, float, float]]]:
    """Trains one iteration at a time, evaluating 10 deterministic episodes (fixed seed) every ``eval_every`` env
    steps (evaluation time is not training time). Returns (env steps, train seconds) of the first evaluation at or
    above ``threshold`` (None if none) and the curve of (steps, train seconds, eval mean)."""
    next_eval = eval_every
    solved_at: tuple[int, float] | None = None
    curve: list[tuple[int, float, float]] = []
    for _ in range(max_iters):
        tr.train(iters=1)
        while tr.num_timesteps >= next_eval:
            next_eval += eval_every
            res = tr.evaluate(n_episodes=10, num_envs=10, seed=seed + 12345)
            curve.append((tr.num_timesteps, tr.train_time, res["mean_reward"]))
            if solved_at is None and res["mean_reward"] >= threshold:
                solved_at = (tr.num_timesteps, tr.train_time)
        if (solved_at is not None and stop_at_solve) or (max_steps is not None and tr.num_timesteps >= max_steps):
            break
    return solved_at, curve


def _rltrain_run(env_id: str, seed: int, stop_at_solve: bool) -> dict[str, Any]:
    import torch

    from rltrain import PPOConfig, PPOTrainer
    from rltrain.policies import ActorCriticPolicy

    z = ZOO[env_id]
    batch = z["n_envs"] * z["n_steps"]
    iters = math.ceil(z["n_timesteps"] / batch)
    cfg = PPOConfig(env=env_id, G=z["n_envs"], T=z["n_steps"], minibatches=batch // z["batch_size"],
                    epochs=z["n_epochs"], lam=z["gae_lambda"], gamma=z["gamma"], ent_coef=z["ent_coef"],
                    lr=z["learning_rate"], lr_schedule="linear" if z["lin_lr"] else "constant",
                    clip_eps=z["clip_range"], clip_schedule="linear" if z["lin_clip"] else "constant",
                    schedule_iters=iters, target_kl=None, seed=seed, verbose=0, log_dir="/tmp/rltrain-bench-runs",
                    loggers=("csv",), save_best=False)
    torch.manual_seed(seed)
    probe = __import__("gymnasium").make(env_id)
    obs_dim, n_act = probe.observation_space.shape[0], probe.action_space.n
    probe.close()
    tr = PPOTrainer(ActorCriticPolicy(obs_dim, n_act), cfg)
    solved_at, curve = train_with_evals(tr, iters, None, z["eval_every"], z["threshold"], seed, stop_at_solve)
    tr.close()
    return {"lib": "rltrain", "env": env_id, "seed": seed, "steps": tr.num_timesteps, "train_s": tr.train_time,
            "sps": tr.num_timesteps / tr.train_time, "solved": solved_at is not None,
            "steps_to_solve": solved_at[0] if solved_at else None,
            "time_to_solve_s": solved_at[1] if solved_at else None, "final_eval": curve[-1][2] if curve else None,
            "curve": curve}


def _sb3_run(env_id: str, seed: int, stop_at_solve: bool) -> dict[str, Any] | None:
    try:
        import gymnasium as gym
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.evaluation import evaluate_policy
    except ImportError:
        return None
    z = ZOO[env_id]

    def lin(v: float) -> Any:
        return lambda progress_remaining: progress_remaining * v

    venv = make_vec_env(lambda: gym.make(env_id), n_envs=z["n_envs"], seed=seed)
    eval_env = make_vec_env(lambda: gym.make(env_id), n_envs=1, seed=seed + 12345)
    model = PPO("MlpPolicy", venv, n_steps=z["n_steps"], batch_size=z["batch_size"], gae_lambda=z["gae_lambda"],
                gamma=z["gamma"], n_epochs=z["n_epochs"], ent_coef=z["ent_coef"],
                learning_rate=lin(z["learning_rate"]) if z["lin_lr"] else z["learning_rate"],
                clip_range=lin(z["clip_range"]) if z["lin_clip"] else z["clip_range"], seed=seed, device="cpu",
                verbose=0)

    class EvalTimer(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_eval: int = z["eval_every"]
            self.eval_s = 0.0
            self.solved_at: tuple[int, float] | None = None
            self.curve: list[tuple[int, float, float]] = []
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            if self.num_timesteps < self.next_eval:
                return True
            self.next_eval += z["eval_every"]
            t = time.perf_counter()
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10, deterministic=True)
            assert isinstance(mean, float)  # a float (np.float64) without return_episode_rewards
            self.eval_s += time.perf_counter() - t
            train_s = time.perf_counter() - self.t0 - self.eval_s
            self.curve.append((self.num_timesteps, train_s, float(mean)))
            if self.solved_at is None and mean >= z["threshold"]:
                self.solved_at = (self.num_timesteps, train_s)
                return not stop_at_solve
            return True

    cb = EvalTimer()
    model.learn(total_timesteps=z["n_timesteps"], callback=cb)
    train_s = time.perf_counter() - cb.t0 - cb.eval_s
    venv.close()
    eval_env.close()
    steps = model.num_timesteps
    return {"lib": "sb3", "env": env_id, "seed": seed, "steps": steps, "train_s": train_s, "sps": steps / train_s,
            "solved": cb.solved_at is not None, "steps_to_solve": cb.solved_at[0] if cb.solved_at else None,
            "time_to_solve_s": cb.solved_at[1] if cb.solved_at else None,
            "final_eval": cb.curve[-1][2] if cb.curve else None, "curve": cb.curve}


def run(quick: bool = False, seeds: int = 3, sb3_seeds: dict[str, int] | None = None,
        envs: tuple[str, ...] = ("CartPole-v1", "LunarLander-v3"), stop_at_solve: bool = True) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    sb3_seeds = sb3_seeds or {"CartPole-v1": 1, "LunarLander-v3": 1}
    if quick:
        envs, seeds, sb3_seeds = ("CartPole-v1",), 1, {"CartPole-v1": 1}
    rows: list[dict[str, Any]] = []
    for env_id in envs:
        for s in range(seeds):
            r = _rltrain_run(env_id, s, stop_at_solve)
            rows.append(r)
            print(f"  rltrain {env_id} seed {s}: {_brief(r)}", flush=True)
        for s in range(sb3_seeds.get(env_id, 0)):
            r2 = _sb3_run(env_id, s, stop_at_solve)
            if r2 is None:
                print("  stable-baselines3 not installed: no SB3 rows")
                break
            rows.append(r2)
            print(f"  sb3 {env_id} seed {s}: {_brief(r2)}", flush=True)
    cols = ["env", "lib", "seed", "solved", "steps_to_solve", "time_to_solve_s", "steps", "train_s", "sps"]
    print(fmt_table([{k: r[k] for k in cols} for r in rows], cols))
    summary = summarize(rows)
    return {"rows": rows, "summary": summary}


def _brief(r: dict[str, Any]) -> str:
    solved = (f"solved at {r['steps_to_solve']} steps after {r['time_to_solve_s']:.1f} s" if r["solved"]
              else "not solved")
    return f"{solved}; {r['steps']} steps at {r['sps']:.0f} steps/s"


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for env_id in ZOO:
        ours = [r for r in rows if r["env"] == env_id and r["lib"] == "rltrain"]
        sb3 = [r for r in rows if r["env"] == env_id and r["lib"] == "sb3"]
        if not ours:
            continue
        key = env_id.split("-")[0].lower()
        out[f"{key}_solved_seeds"] = float(sum(r["solved"] for r in ours))
        out[f"{key}_sps"] = float(np.mean([r["sps"] for r in ours]))
        if sb3:
            out[f"{key}_sps_vs_sb3"] = out[f"{key}_sps"] / float(np.mean([r["sps"] for r in sb3]))
            t_ours = [r["time_to_solve_s"] for r in ours if r["solved"]]
            t_sb3 = [r["time_to_solve_s"] for r in sb3 if r["solved"]]
            if t_ours and t_sb3:
                out[f"{key}_time_to_solve_ratio"] = float(np.mean(t_ours) / np.mean(t_sb3))
    return out
