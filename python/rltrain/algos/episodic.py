"""Episode collection shared by the actor-only trainers (GRPO variants, REINFORCE).

Each iteration collects G episodes of at most T steps in parallel through ``make_vec`` (native when possible),
reset from a fresh seed derived from (master seed, iteration): all G from the same seed when the config's
``identical_G`` is set, else G consecutive seeds. An episode that ends stops contributing; the batch holds padded
``[G, T]`` arrays and the episode lengths. Because every iteration starts from freshly seeded episodes, exact
resume needs no environment snapshot.
"""

from __future__ import annotations

import numpy as np
import torch

from rltrain.algos.base import BaseTrainer
from rltrain.algos.rollout import collect_episodes, make_act, native_for, reports_action_mask

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
        G, T = self.cfg.G, self.cfg.T
        seed = self._iteration_seed()
        noise = self._rollout_noise((T, G))
        b: dict[str, np.ndarray]
        if self._ray is not None:
            if reports_action_mask(self.cfg.env):
                raise ValueError("rollout_backend: the env reports info['action_mask'] and masked rollouts run "
                                 "locally only; use rollout_backend='local'")
            b = self._ray.collect_episodes(self._rollout_policy, seed, T, noise)
        else:
            assert self.env is not None
            pol = self._rollout_policy
            act = make_act(pol, self.cfg.batch_invariant_rollout(), native_for(pol))
            b = collect_episodes(self.env, act, seed, T, noise, self._clip_actions, self.action_space,
                                 None if self.obs_rms is None else self._normalize_obs)
        lengths = b["lengths"]
        for i in range(G):
            self.ep_info.append((float(b["rewards"][i, : lengths[i]].sum()), float(lengths[i])))
        self.num_timesteps += int(lengths.sum())
        return b
