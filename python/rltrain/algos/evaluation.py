"""Using a trained agent: ``predict`` (actions for observations), ``evaluate`` (deterministic returns over
episodes run in parallel) and ``record_video`` (mp4 files of the deterministic agent).

Each builds the environments it needs from the trainer's config (or the ``env`` given): ``evaluate`` its own
vector env, ``record_video`` one rendering env, ``predict`` only the spaces of one env when the trainer has none
yet. Observation normalisation statistics are applied frozen.
"""

from __future__ import annotations

import os
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch

from rltrain._checks import integer
from rltrain.config import CommonConfig
from rltrain.kernels import RunningMeanStd
from rltrain.policies import ActorAPI
from rltrain.vec import make_vec
from rltrain.vec.resolve import make_single, single_spaces

__all__ = ["Evaluating"]


class Evaluating:
    """``predict`` / ``evaluate`` / ``record_video`` for ``BaseTrainer`` (see the module docstring)."""

    # Set by BaseTrainer.
    algo: str
    cfg: CommonConfig
    seed: int
    iteration: int
    obs_rms: RunningMeanStd | None
    _rollout_policy: torch.nn.Module
    action_space: gym.Space[Any]
    observation_space: gym.Space[Any]

    def _clip_actions(self, actions: np.ndarray) -> np.ndarray:
        """Actions clipped into a Box action space (unsquashed Gaussian samples can leave it)."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            clipped: np.ndarray = np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
            return clipped
        return actions

    def _normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_rms is None:
            return obs
        normalized: np.ndarray = self.obs_rms.normalize(obs)
        return normalized

    @torch.no_grad()
    def _act_numpy(self, obs: np.ndarray, deterministic: bool, action_mask: Any = None) -> np.ndarray:
        o = torch.as_tensor(self._normalize_obs(np.asarray(obs, dtype=np.float32)))
        pol = cast(ActorAPI, self._rollout_policy)  # BaseTrainer checked act
        if action_mask is not None:
            m = torch.as_tensor(np.asarray(action_mask, dtype=np.bool_))
            out = pol.act(o, deterministic=deterministic, action_mask=m)  # type: ignore[call-arg]
        else:
            out = pol.act(o, deterministic=deterministic)
        actions: np.ndarray = out[0].numpy()
        return actions

    def _ensure_spaces(self) -> None:
        """The env's spaces when no vector env has provided them yet (native envs: no Python env is built)."""
        if not hasattr(self, "action_space"):
            self.observation_space, self.action_space = single_spaces(self.cfg.env)

    def predict(self, obs: Any, deterministic: bool = True, action_mask: Any = None) -> np.ndarray:
        """Actions for one observation (returns one action) or a batch ``[n, obs_dim]`` (returns ``[n]``).
        ``action_mask`` (bool ``[n_actions]`` or ``[n, n_actions]``, categorical policies): only legal actions are
        chosen, greedily or sampled."""
        self._ensure_spaces()
        o = np.asarray(obs, dtype=np.float32)
        shape = tuple(self.observation_space.shape or ())
        single = o.shape == shape
        if not single and o.shape[1:] != shape:
            raise ValueError(f"obs: expected shape {shape} or (n, *{shape}), got {o.shape}")
        m = None
        if action_mask is not None:
            m = np.asarray(action_mask, dtype=np.bool_)
            m = m[None] if single and m.ndim == 1 else m
            if m.shape[0] != (1 if single else o.shape[0]):
                raise ValueError(f"action_mask: expected one row per observation, got shape {m.shape}")
        a = self._clip_actions(self._act_numpy(o[None] if single else o, deterministic, m))
        return a[0] if single else a

    def evaluate(self, n_episodes: int = 10, deterministic: bool = True, env: Any = None,
                 num_envs: int | None = None, seed: int | None = None) -> dict[str, float]:
        """Mean/std of the episode return and mean length over ``n_episodes`` on ``env`` (default: the
        training env), run in parallel with episodes spread evenly over the environments (no bias towards short
        episodes). Normalisation statistics are frozen. Returns a dict with mean_reward, std_reward,
        mean_length, n_episodes."""
        n_episodes = integer(n_episodes, "n_episodes", lo=1)
        spec = self.cfg.env if env is None else env
        n_envs = num_envs or min(n_episodes, 16)
        # Seeded by the iteration, not by how many evaluations ran before: a run split into several train()
        # calls (each evaluating at its end) or resumed from a checkpoint evaluates on the same episodes.
        eval_seed = (self.seed + 1_000_003 * (self.iteration + 1)) % (2**31) if seed is None else seed
        venv = make_vec(spec, n_envs, backend=self.cfg.backend, seed=eval_seed)
        self.action_space, self.observation_space = venv.single_action_space, venv.single_observation_space
        targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
        counts = np.zeros(n_envs, int)
        rets, lens = [], []
        cur_r, cur_l = np.zeros(n_envs), np.zeros(n_envs, int)
        try:
            obs, infos = venv.reset(seed=eval_seed)
            while (counts < targets).any():
                a = self._clip_actions(self._act_numpy(obs, deterministic, infos.get("action_mask")))
                obs, r, term, trunc, infos = venv.step(a)
                cur_r += r
                cur_l += 1
                for i in np.flatnonzero(np.logical_or(term, trunc)):
                    if counts[i] < targets[i]:
                        rets.append(cur_r[i])
                        lens.append(cur_l[i])
                        counts[i] += 1
                    cur_r[i], cur_l[i] = 0.0, 0
        finally:
            venv.close()
        return {"mean_reward": float(np.mean(rets)), "std_reward": float(np.std(rets)),
                "mean_length": float(np.mean(lens)), "n_episodes": float(len(rets))}

    def record_video(self, video_dir: str, episodes: int = 10, env: Any = None, fps: int = 30) -> list[str]:
        """Writes one mp4 per episode of the deterministic agent (rgb_array rendering, imageio-ffmpeg)."""
        try:
            import imageio_ffmpeg
        except ImportError as exc:
            raise RuntimeError("video_dir: recording videos needs imageio-ffmpeg (pip install imageio-ffmpeg)") from exc
        os.makedirs(video_dir, exist_ok=True)
        spec = self.cfg.env if env is None else env
        paths = []
        e = make_single(spec, render_mode="rgb_array")
        try:
            for k in range(episodes):
                obs, _ = e.reset(seed=self.seed + 7919 * (k + 1))
                frames = [np.asarray(e.render())]
                done = False
                while not done:
                    a = self.predict(obs, deterministic=True)
                    obs, _, term, trunc, _ = e.step(a)
                    frames.append(np.asarray(e.render()))
                    done = bool(term or trunc)
                h, w = frames[0].shape[:2]
                path = os.path.join(video_dir, f"{self.algo}-episode-{k}.mp4")
                writer = imageio_ffmpeg.write_frames(path, (w, h), fps=fps, macro_block_size=1)
                writer.send(None)
                for fr in frames:
                    writer.send(np.ascontiguousarray(fr))
                writer.close()
                paths.append(path)
        finally:
            e.close()
        return paths
