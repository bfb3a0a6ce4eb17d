"""Stable-Baselines3 benchmark: SB3's PPO on LunarLander-v3 with RL-Zoo's hyperparameters, stock versus on rltrain's
integration (:mod:`rltrain.integrations.sb3`: the native C++ LunarLander behind ``make_vec_env`` and the
``RolloutBuffer`` whose GAE runs on the compiled kernel). Same SB3, same policy, same harness; only the VecEnv and
the buffer class differ.

Per run: seconds in SB3's rollout-collection phase (``collect_rollouts``, which steps the envs, runs the policy and
ends with the buffer's GAE; timed by wrapping the method), seconds in the GAE alone, whole-run env steps/s, and the
env steps at which the mean return of the last 100 episodes (SB3's ``ep_info_buffer``, full) first reaches 200.
The stock envs are built as RL-Zoo's runs build them, without rendering (``make_vec_env`` of a factory: an id string
would turn on rgb_array rendering, which keeps LunarLander's particles alive and slows its steps). torch uses one
thread in both variants. ``--quick`` is a smoke run (n_steps=128, 4096 steps, one seed).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rltrain.bench._timing import fmt_table

ENV_ID = "LunarLander-v3"
THRESHOLD = 200.0
# rl-baselines3-zoo hyperparams/ppo.yml, LunarLander-v2 entry (applied to v3); learning rate and clip range are
# SB3's defaults there (3e-4, 0.2).
ZOO: dict[str, Any] = dict(n_envs=16, n_steps=1024, batch_size=64, n_epochs=4, gae_lambda=0.98, gamma=0.999,
                           ent_coef=0.01)
VARIANTS = ("sb3", "rltrain")
"""``sb3``: gymnasium envs in SB3's DummyVecEnv, SB3's RolloutBuffer; ``rltrain``: rltrain's VecEnv (native) and
RolloutBuffer."""


def run_one(variant: str, seed: int, n_timesteps: int, hyper: dict[str, Any] | None = None) -> dict[str, Any]:
    """One PPO run of ``n_timesteps`` env steps; returns its timings and the steps to a 100-episode mean of 200."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    from rltrain.integrations import sb3

    h = {**ZOO, **(hyper or {})}
    n_envs = h.pop("n_envs")
    if variant == "sb3":
        venv = sb3_make_vec_env(lambda: gym.make(ENV_ID), n_envs=n_envs, seed=seed)
        extra: dict[str, Any] = {}
    elif variant == "rltrain":
        venv = sb3.make_vec_env(ENV_ID, n_envs, seed=seed)
        extra = {"rollout_buffer_class": sb3.RolloutBuffer}
    else:
        raise ValueError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **h, **extra)

    timers = {"rollout_s": 0.0, "gae_s": 0.0}

    def timed(fn: Any, key: str) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timers[key] += time.perf_counter() - t0

        return wrapper

    # Instance attributes shadow the methods: learn() calls self.collect_rollouts, which calls
    # rollout_buffer.compute_returns_and_advantage at its end (so GAE time is part of the rollout phase).
    model.collect_rollouts = timed(model.collect_rollouts, "rollout_s")  # type: ignore[method-assign]
    buf = model.rollout_buffer
    buf.compute_returns_and_advantage = timed(buf.compute_returns_and_advantage, "gae_s")  # type: ignore[method-assign]

    class Threshold(BaseCallback):
        """Records the env steps at which the full 100-episode ep_info_buffer first averages THRESHOLD."""

        steps_to_threshold: int | None = None

        def _on_step(self) -> bool:
            eps = self.model.ep_info_buffer
            if (self.steps_to_threshold is None and self.locals["dones"].any() and eps is not None
                    and len(eps) == eps.maxlen and np.mean([e["r"] for e in eps]) >= THRESHOLD):
                self.steps_to_threshold = self.num_timesteps
            return True

    cb = Threshold()
    t0 = time.perf_counter()
    model.learn(total_timesteps=n_timesteps, callback=cb)
    wall = time.perf_counter() - t0
    venv.close()
    steps = model.num_timesteps
    eps: list[dict[str, Any]] = list(model.ep_info_buffer or [])
    return {
        "variant": variant, "seed": seed, "steps": steps, "wall_s": wall, "sps": steps / wall,
        "rollout_s": timers["rollout_s"], "rollout_sps": steps / timers["rollout_s"], "gae_s": timers["gae_s"],
        "update_s": wall - timers["rollout_s"], "steps_to_200": cb.steps_to_threshold,
        "last100_mean": float(np.mean([e["r"] for e in eps])) if eps else None, "episodes_in_buffer": len(eps),
    }


def run(quick: bool = False, seeds: int = 3, n_timesteps: int = 1_000_000,
        variants: tuple[str, ...] = VARIANTS) -> dict[str, Any]:
    """Both variants for each seed in ``range(seeds)``, ``n_timesteps`` env steps each (the full budget: no early
    stop, so that steps/s cover the same run). ``quick``: one seed, 4096 steps with n_steps=128."""
    try:
        import stable_baselines3  # noqa: F401
        import torch
    except ImportError:
        print("  stable-baselines3 not installed (pip install stable-baselines3): no sb3 section")
        return {"rows": [], "summary": {}, "skipped": "stable-baselines3 not installed"}
    torch.set_num_threads(1)
    hyper: dict[str, Any] = {}
    if quick:
        seeds, n_timesteps, hyper = 1, 4096, {"n_steps": 128}
    rows: list[dict[str, Any]] = []
    for s in range(seeds):
        for variant in variants:
            r = run_one(variant, s, n_timesteps, hyper)
            rows.append(r)
            reached = "not reached" if r["steps_to_200"] is None else f"at {r['steps_to_200']} steps"
            print(f"  {variant} seed {s}: {r['steps']} steps, {r['sps']:.0f} steps/s, rollout phase "
                  f"{r['rollout_s']:.1f} s (GAE {r['gae_s'] * 1e3:.0f} ms), update {r['update_s']:.1f} s; "
                  f"mean 100-episode return {THRESHOLD:g} {reached}", flush=True)
    cols = ["variant", "seed", "steps", "wall_s", "sps", "rollout_s", "rollout_sps", "gae_s", "update_s",
            "steps_to_200", "last100_mean"]
    print(fmt_table([{**{k: r[k] for k in cols}, "steps_to_200": r["steps_to_200"] or "not reached"} for r in rows],
                    cols))
    return {"config": {"env": ENV_ID, **ZOO, **hyper, "n_timesteps": n_timesteps, "torch_threads": 1,
                       "threshold": THRESHOLD},
            "rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean speedups of rltrain's variant over stock SB3 (rollout phase, whole run) and seeds reaching 200."""
    by = {v: [r for r in rows if r["variant"] == v] for v in VARIANTS}
    out: dict[str, float] = {}
    for v, rs in by.items():
        if rs:
            out[f"{v}_sps"] = float(np.mean([r["sps"] for r in rs]))
            out[f"{v}_rollout_s"] = float(np.mean([r["rollout_s"] for r in rs]))
            out[f"{v}_seeds_reaching_200"] = float(sum(r["steps_to_200"] is not None for r in rs))
    if by["sb3"] and by["rltrain"]:
        out["rollout_speedup"] = out["sb3_rollout_s"] / out["rltrain_rollout_s"]
        out["sps_speedup"] = out["rltrain_sps"] / out["sb3_sps"]
    return out
