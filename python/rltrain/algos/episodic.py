"""Episode collection shared by the actor-only trainers (GRPO variants, REINFORCE).

Each iteration collects G episodes of at most T steps in parallel through ``make_vec`` (native when possible),
reset from a fresh seed derived from (master seed, iteration): all G from the same seed when the config's
``identical_G`` is set, else G consecutive seeds. An episode that ends stops contributing; the batch holds padded
``[G, T]`` arrays and the episode lengths. Because every iteration starts from freshly seeded episodes, exact
resume needs no environment snapshot.
"""

from __future__ import annotations

from typing import cast

import gymnasium as gym
import numpy as np
import torch

from rltrain.algos.base import BaseTrainer
from rltrain.policies import ActorAPI

__all__ = ["EpisodicTrainer", "valid_mask"]


def valid_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """``[G, T]`` boolean mask of the steps inside each episode."""
    return np.arange(T)[None] < np.asarray(lengths)[:, None]


class EpisodicTrainer(BaseTrainer):
    """A trainer whose iteration starts with ``_collect()``: G whole episodes (see the module docstring)."""

    needs_env_snapshot = False  # every iteration resets from a seed derived from (seed, iteration)

    def _identical_seeds(self) -> bool:
        return bool(getattr(self.cfg, "identical_G", False))

    def _iteration_seed(self) -> int:
        return int(np.random.SeedSequence([self.seed, self.iteration]).generate_state(1)[0] % (2**31 - self.cfg.G))

    @torch.no_grad()
    def _collect(self) -> dict[str, np.ndarray]:
        assert self.env is not None
        G, T = self.cfg.G, self.cfg.T
        obs, infos = self.env.reset(seed=self._iteration_seed())
        mask = infos.get("action_mask")
        obs = np.asarray(obs, np.float32)
        space = self.action_space
        a_shape = tuple(space.shape or ())
        a_dtype = np.int64 if isinstance(space, gym.spaces.Discrete) else np.float32
        b: dict[str, np.ndarray] = {
            "obs": np.zeros((G, T) + tuple(obs.shape[1:]), np.float32),
            "actions": np.zeros((G, T) + a_shape, a_dtype),
            "logp": np.zeros((G, T), np.float32),
            "rewards": np.zeros((G, T), np.float32),
        }
        if mask is not None:  # the env reports legal actions: the masked policy acts, and the update uses it too
            b["masks"] = np.zeros((G, T) + np.shape(mask)[1:], np.bool_)
        first_obs = obs.copy()
        lengths = np.zeros(G, np.int64)
        alive = np.ones(G, bool)
        pol = cast(ActorAPI, self._rollout_policy)  # BaseTrainer.__init__ checked act
        for t in range(T):
            if mask is not None:
                m = np.asarray(mask, dtype=np.bool_)
                b["masks"][:, t] = m
                out = pol.act(torch.from_numpy(self._normalize_obs(obs)),  # type: ignore[call-arg]
                              action_mask=torch.from_numpy(m))
            else:
                out = pol.act(torch.from_numpy(self._normalize_obs(obs)))
            a, logp = out[0].numpy(), out[-1].numpy()
            b["obs"][:, t] = obs
            b["actions"][:, t] = a
            b["logp"][:, t] = logp
            obs, rew, term, trunc, infos = self.env.step(self._clip_actions(a))
            mask = infos.get("action_mask") if mask is not None else None
            obs = np.asarray(obs, np.float32)
            b["rewards"][alive, t] = np.asarray(rew, np.float32)[alive]
            lengths[alive] += 1
            alive &= ~np.logical_or(term, trunc)
            if not alive.any():
                break
        b["lengths"] = lengths
        b["first_obs"] = first_obs
        for i in range(G):
            self.ep_info.append((float(b["rewards"][i, : lengths[i]].sum()), float(lengths[i])))
        self.num_timesteps += int(lengths.sum())
        return b
