"""The floor of SB3's rollout phase: ``collect_rollouts`` of SB3's PPO (LunarLander-v3 shapes, RL-Zoo settings:
16 envs x 1024 steps, MlpPolicy, torch on 1 thread) on a VecEnv whose step costs nothing (it hands back one
pre-built batch). What remains is SB3's own per-step work (obs to tensor, policy forward, sampling, buffer add,
callbacks, GAE), which no faster environment can remove; stock time / floor bounds the rollout-phase speed-up any
VecEnv can give SB3.

    python bench/sb3_rollout_floor.py --rollouts 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class FreeVecEnv(VecEnv):
    """LunarLander-v3's spaces; every step returns the same observations, rewards and no episode end."""

    def __init__(self, n: int) -> None:
        proto = gym.make("LunarLander-v3")
        super().__init__(n, proto.observation_space, proto.action_space)
        proto.close()
        self._obs = np.zeros((n, 8), np.float32)
        self._rew = np.zeros(n, np.float32)
        self._done = np.zeros(n, bool)
        self._infos: list[dict[str, Any]] = [{} for _ in range(n)]

    def reset(self) -> np.ndarray:
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        pass

    def step_wait(self) -> Any:
        return self._obs.copy(), self._rew.copy(), self._done.copy(), [{} for _ in range(self.num_envs)]

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [None] * self.num_envs

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        pass

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rollouts", type=int, default=4)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    torch.set_num_threads(1)
    model = PPO("MlpPolicy", FreeVecEnv(16), n_steps=1024, batch_size=64, n_epochs=4, gae_lambda=0.98,
                gamma=0.999, ent_coef=0.01, seed=0, device="cpu", verbose=0)
    times: list[float] = []
    inner = model.collect_rollouts

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t0)

    model.collect_rollouts = timed  # type: ignore[method-assign]
    model.learn(total_timesteps=16 * 1024 * a.rollouts)
    per = [t / (16 * 1024) * 1e6 for t in times]
    out = {"rollouts": len(times), "seconds_per_rollout": times, "median_us_per_env_step": statistics.median(per),
           "median_env_steps_per_s": 16 * 1024 / statistics.median(times)}
    print(json.dumps(out, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
