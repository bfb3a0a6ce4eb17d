"""The loop every trainer shares: environments, seeding, logging, evaluation, video, checkpoints, predict.

Subclasses implement ``_iteration()`` (collect + update, returning the metrics to log) and may add state to
checkpoints through ``_extra_state()`` / ``_load_extra_state()``. Rollouts act with a CPU copy of the policy,
refreshed after each update; the update runs on ``device``.

Exact resume: a checkpoint holds a snapshot of the rollout environments, mid-episode included: native envs
export their complete state (physics, counters, RNG) in O(num_envs); Python envs on the fork backend are
pickled in their workers (restored only with ``load(..., trust_pickled_envs=True)``, since unpickling runs code).
``load`` + ``train`` continues exactly where the saved run stood. Envs without a snapshot (pybox2d's cannot be
pickled) resume from fresh resets, as Stable-Baselines3 does, with a warning that this resume is not bitwise.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Iterable
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from rltrain.algos.checkpoint import check_plain_data, resolve_class, trusted_classes
from rltrain.config import CommonConfig
from rltrain.vec.resolve import env_id_of, make_single, make_vec_for
from rltrain.kernels import RunningMeanStd
from rltrain.logger import Logger
from rltrain.policies import BACKBONES
from rltrain.schedules import schedule_value

__all__ = ["BaseTrainer", "resolve_device"]

CHECKPOINT_FORMAT = "rltrain-checkpoint-2"  # 2: environment snapshots instead of the action stream


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda when available, else cpu; anything else as torch understands it."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if d.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device: 'cuda' was requested but torch.cuda.is_available() is False")
    return d


def _tensors_to_numpy(state: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}


def _numpy_to_tensors(state: dict[str, Any]) -> dict[str, Any]:
    return {k: (torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _atomic_torch_save(obj: Any, path: str) -> None:
    """Writes ``path`` through a temporary file in the same directory and an atomic rename: a crash leaves
    either the old file or the new one, never a truncated checkpoint."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class BaseTrainer:
    """Common trainer machinery; see the module docstring."""

    algo: str = "base"
    config_class: type = CommonConfig
    actor_critic: bool = False
    """Whether the policy built from the config (``policy=None``) needs a value head."""
    needs_env_snapshot: bool = True
    """Whether exact resume needs the rollout environments' state (False when every iteration starts from
    freshly seeded episodes)."""

    def __init__(self, policy: torch.nn.Module | None, cfg: CommonConfig, device: str | torch.device = "cpu") -> None:
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"cfg: expected a {self.config_class.__name__}, got {type(cfg).__name__}")
        if cfg.torch_threads is not None:
            # Before anything is computed: torch's results (initialisation included) depend on its thread
            # count, so a trainer built after another one's train() must start from the same numbers.
            torch.set_num_threads(int(cfg.torch_threads))
        if policy is None:
            from rltrain.policies import policy_from_config

            cfg.validate()
            if cfg.seed is not None:
                torch.manual_seed(int(cfg.seed))  # the same initial weights for the same seed
            policy = policy_from_config(cfg, actor_critic=self.actor_critic)
        if not isinstance(policy, torch.nn.Module):
            raise TypeError(f"policy: expected a torch.nn.Module, got {type(policy).__name__}")
        needed = ("act", "evaluate_actions", "value") if self.actor_critic else ("act", "evaluate_actions")
        missing = [f".{n}()" for n in needed if not callable(getattr(policy, n, None))]
        if missing:
            example = "ActorCriticPolicy" if self.actor_critic else "SimpleGRPOPolicy"
            raise TypeError(f"policy: {self.algo} needs a policy with {', '.join(missing)} "
                            f"(e.g. rltrain.policies.{example})")
        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(device)
        self.seed = int(cfg.seed) if cfg.seed is not None else int(np.random.SeedSequence().entropy % (2**31))
        torch.manual_seed(self.seed)
        self._gen = torch.Generator().manual_seed(self.seed)  # minibatch shuffling
        self.policy = policy.to(self.device)
        self._rollout_policy = self.policy if self.device.type == "cpu" else copy.deepcopy(self.policy).cpu()
        self._amp_dtype, self.scaler = self._resolve_amp()
        self.optimizer = self._make_optimizer()
        self.iteration = 0
        self.num_timesteps = 0
        self.ep_info: deque[tuple[float, float]] = deque(maxlen=100)
        self.obs_rms: RunningMeanStd | None = None
        self.best_mean_reward = -math.inf
        self.env: gym.vector.VectorEnv | None = None
        self._obs: np.ndarray | None = None
        self._restore_env: dict[str, Any] | None = None  # a checkpoint's env snapshot, applied by _ensure_env
        self.logger: Logger | None = None
        self.run_dir: str | None = None
        self.train_time = 0.0
        self.eval_history: list[dict[str, float]] = []

    # ----------------------------------------------------------------------------------------- plumbing

    def _param_groups(self) -> list[dict[str, Any]]:
        """One group per learning rate; ``lr_scale`` multiplies the scheduled lr (a separate critic lr)."""
        params = [p for p in self.policy.parameters() if p.requires_grad]
        vf_lr = getattr(self.cfg, "vf_lr", None)
        critic = getattr(self.policy, "critic_parameters", None)
        if vf_lr is None or not callable(critic):
            return [{"params": params, "lr_scale": 1.0}]
        ids = {id(p) for p in critic()}
        return [{"params": [p for p in params if id(p) not in ids], "lr_scale": 1.0},
                {"params": [p for p in params if id(p) in ids], "lr_scale": float(vf_lr) / float(self.cfg.lr)}]

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.cfg
        groups = [dict(g, lr=c.lr * g["lr_scale"]) for g in self._param_groups() if g["params"]]
        if c.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay or 0.0)
        if c.optimizer == "adamw":
            wd = 0.01 if c.weight_decay is None else c.weight_decay
            return torch.optim.AdamW(groups, lr=c.lr, eps=c.adam_eps, weight_decay=wd)
        return torch.optim.Adam(groups, lr=c.lr, eps=c.adam_eps, weight_decay=c.weight_decay or 0.0)

    def _resolve_amp(self) -> tuple[torch.dtype | None, Any]:
        """(autocast dtype, GradScaler) for ``cfg.amp`` on this device; CPU falls back to full precision."""
        mode = self.cfg.amp
        if mode == "off":
            return None, None
        if self.device.type != "cuda":
            warnings.warn(f"amp: mixed precision ({mode!r}) needs a CUDA device; training in full precision on "
                          f"{self.device.type}", RuntimeWarning, stacklevel=3)
            return None, None
        if mode == "bf16":
            return torch.bfloat16, None
        return torch.float16, torch.amp.GradScaler("cuda")

    def _autocast(self) -> Any:
        if self._amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._amp_dtype)

    def _optimizer_step(self, loss: torch.Tensor) -> None:
        """Backward, optional loss scaling (fp16), global gradient-norm clipping and the optimizer step."""
        opt = self.optimizer
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        mgn = self.cfg.max_grad_norm
        if mgn is not None and mgn > 0:
            params = [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, mgn)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()

    def _num_envs(self) -> int:
        return self.cfg.G

    def _identical_seeds(self) -> bool:
        return False

    def _ensure_env(self) -> None:
        """Creates the rollout environments (once) and applies a restored environment snapshot if there is one."""
        if self.env is not None:
            return
        self.env = make_vec_for(self.cfg.env, self._num_envs(), backend=self.cfg.backend, seed=self.seed,
                               identical_seeds=self._identical_seeds(), num_workers=self.cfg.n_workers)
        self.action_space = self.env.single_action_space
        self.observation_space = self.env.single_observation_space
        obs, _ = self.env.reset(seed=self.seed)
        restore, self._restore_env = self._restore_env, None
        if restore is not None:
            if restore["kind"] == "native":
                self.env.set_state(restore["state"])
            else:
                self.env.set_state(restore["envs"])
            obs = restore["obs"]
        self._obs = np.array(obs, dtype=np.float32, copy=True)

    def _restore_env_record(self) -> dict[str, Any] | None:
        """A restored snapshot not applied yet (saved again before training resumed), in checkpoint form."""
        r = self._restore_env
        assert r is not None
        as_tensor = lambda b: torch.frombuffer(bytearray(b), dtype=torch.uint8)  # noqa: E731
        obs = torch.from_numpy(np.array(r["obs"], copy=True))
        if r["kind"] == "native":
            return {"kind": "native", "state": as_tensor(r["state"]), "obs": obs}
        return {"kind": "pickled", "envs": [as_tensor(b) for b in r["envs"]], "obs": obs}

    def _env_snapshot(self) -> dict[str, Any] | None:
        """The rollout environments' state for a checkpoint (see the module docstring); None, with a warning
        once, when they cannot provide one."""
        if not self.needs_env_snapshot or self.env is None or self._obs is None:
            return None  # not needed, or not started: a resumed run starts from the same fresh resets
        get_state = getattr(self.env, "get_state", None)
        try:
            if get_state is None:
                raise TypeError(f"{type(self.env).__name__} has no get_state()")
            state = get_state()
        except Exception as exc:  # an env that does not pickle (WorkerError from the worker), or no snapshot
            if not getattr(self, "_warned_snapshot", False):
                self._warned_snapshot = True
                warnings.warn(f"checkpoint: the environments cannot be snapshotted ({str(exc).splitlines()[0]}); "
                              "a run resumed from this file starts from fresh resets (as Stable-Baselines3 does) "
                              "and is not bitwise identical to an uninterrupted one", stacklevel=3)
            return None
        obs = torch.from_numpy(np.array(self._obs, copy=True))
        if isinstance(state, bytes):
            return {"kind": "native", "state": torch.frombuffer(bytearray(state), dtype=torch.uint8), "obs": obs}
        return {"kind": "pickled", "envs": [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in state],
                "obs": obs}

    def _ensure_logger(self) -> None:
        if self.logger is not None:
            return
        base = self.cfg.log_dir
        name = f"{self.algo}_{env_id_of(self.cfg.env).replace('/', '-')}_s{self.seed}"
        os.makedirs(base, exist_ok=True)
        k = 1
        while True:  # mkdir is atomic: of two runs racing for one name, one gets it and the other the next
            try:
                os.mkdir(os.path.join(base, f"{name}_{k}"))
                break
            except FileExistsError:
                k += 1
        self.run_dir = os.path.join(base, f"{name}_{k}")
        wandb = {"project": self.cfg.wandb_project, "entity": self.cfg.wandb_entity, "name": f"{name}_{k}",
                 "config": {**self.cfg.to_dict(), "algo": self.algo, "seed": self.seed}}
        self.logger = Logger(self.run_dir, self.cfg.loggers, wandb=wandb)

    def _clip_actions(self, actions: np.ndarray) -> np.ndarray:
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            return np.clip(actions, space.low, space.high).astype(space.dtype, copy=False)
        return actions

    def _normalize_obs(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_rms is None:
            return obs
        return self.obs_rms.normalize(obs)

    def _sync_rollout_policy(self) -> None:
        if self._rollout_policy is not self.policy:
            self._rollout_policy.load_state_dict(self.policy.state_dict())

    def _record_episodes(self, infos: dict[str, Any]) -> None:
        ep = infos.get("episode")
        if ep is None:
            return
        mask = ep.get("_r", None)
        if mask is None:
            return
        for i in np.flatnonzero(mask):
            self.ep_info.append((float(ep["r"][i]), float(ep["l"][i])))

    def _progress(self, it_in_call: int, iters: int) -> float:
        """Fraction of the schedule horizon done once this iteration's rollout is in: SB3 updates
        ``progress_remaining`` after collecting, so its update of iteration k uses 1 - (k + 1) / n."""
        if self.cfg.schedule_iters is not None:
            return min(1.0, (self.iteration + 1) / self.cfg.schedule_iters)
        return (it_in_call + 1) / max(iters, 1)

    def _lr_at(self, progress: float) -> float:
        return schedule_value(self.cfg.lr_schedule, self.cfg.lr, progress, self.cfg.warmup_frac)

    def _clip_at(self, progress: float) -> float:
        return schedule_value(self.cfg.clip_schedule, self.cfg.clip_eps, progress, self.cfg.warmup_frac)

    def _ent_at(self, progress: float) -> float:
        return schedule_value(self.cfg.ent_schedule, self.cfg.ent_coef, progress, self.cfg.warmup_frac)

    # ----------------------------------------------------------------------------------------- the loop

    def _iteration(self, progress: float) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, iters: int = 300, eval_env: Any = None, eval_interval: int = 30, eval_episodes: int = 100,
              video_dir: str | None = None, video_episodes: int = 10) -> BaseTrainer:
        """Runs ``iters`` further iterations with periodic deterministic evaluation, then records videos of the
        final agent when ``video_dir`` is given. Returns the trainer."""
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
            raise ValueError(f"iters: expected an integer >= 0, got {iters!r}")
        if isinstance(eval_interval, bool) or not isinstance(eval_interval, int) or eval_interval < 1:
            raise ValueError(f"eval_interval: expected an integer >= 1, got {eval_interval!r}")
        if isinstance(eval_episodes, bool) or not isinstance(eval_episodes, int) or eval_episodes < 1:
            raise ValueError(f"eval_episodes: expected an integer >= 1, got {eval_episodes!r}")
        if self.cfg.torch_threads is not None:
            torch.set_num_threads(int(self.cfg.torch_threads))
        self._ensure_env()
        self._ensure_logger()
        bar = None
        if self.cfg.verbose >= 1:
            from tqdm.auto import tqdm

            bar = tqdm(total=iters, desc=f"{self.algo} {env_id_of(self.cfg.env)}", unit="it", leave=True)
        try:
            for k in range(iters):
                progress = self._progress(k, iters)
                lr = self._lr_at(progress)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                t0 = time.perf_counter()
                steps0 = self.num_timesteps
                metrics = self._iteration(progress=progress)
                dt = time.perf_counter() - t0
                self.train_time += dt
                self.iteration += 1
                self._log_iteration(metrics, lr, (self.num_timesteps - steps0) / max(dt, 1e-9))
                interval = self.cfg.checkpoint_interval
                if interval is not None and self.iteration % interval == 0:
                    self.save(os.path.join(self.run_dir, "checkpoint.pt"))
                if k == iters - 1 and (eval_env is not None or video_dir is not None):
                    # The trained model is on disk before the last evaluation and the videos: a failure there
                    # never loses the training.
                    self.save(os.path.join(self.run_dir, "final_model.pt"))
                if eval_env is not None and (self.iteration % eval_interval == 0 or k == iters - 1):
                    self._periodic_eval(eval_env, eval_episodes)
                if bar is not None:
                    bar.update(1)
                    post = {"steps/s": f"{(self.num_timesteps - steps0) / max(dt, 1e-9):.0f}"}
                    if self.ep_info:
                        post["return"] = f"{np.mean([r for r, _ in self.ep_info]):.1f}"
                    bar.set_postfix(post)
        finally:
            if bar is not None:
                bar.close()
        if video_dir is not None:
            self.record_video(video_dir, episodes=video_episodes, env=eval_env)
        return self

    def _log_iteration(self, metrics: dict[str, float], lr: float, fps: float) -> None:
        assert self.logger is not None
        lg = self.logger
        if self.ep_info:
            lg.record("rollout/ep_rew_mean", np.mean([r for r, _ in self.ep_info]))
            lg.record("rollout/ep_len_mean", np.mean([n for _, n in self.ep_info]))
        for k, v in metrics.items():
            lg.record(k, v)
        lg.record("train/learning_rate", lr)
        lg.record("time/fps", fps)
        lg.record("time/iterations", self.iteration)
        lg.record("time/total_timesteps", self.num_timesteps)
        lg.record("time/time_elapsed", self.train_time)
        vals = lg.dump(self.num_timesteps)
        if self.cfg.verbose >= 2:
            keys = ("rollout/ep_rew_mean", "train/approx_kl", "train/value_loss", "time/fps")
            print(f"[{self.algo}] it {self.iteration} steps {self.num_timesteps} "
                  + " ".join(f"{k.split('/')[-1]}={vals[k]:.4g}" for k in keys if k in vals))

    def _periodic_eval(self, eval_env: Any, episodes: int) -> None:
        res = self.evaluate(n_episodes=episodes, env=eval_env)
        res.update(iteration=self.iteration, timesteps=self.num_timesteps, train_time=self.train_time)
        self.eval_history.append(res)
        assert self.logger is not None and self.run_dir is not None
        self.logger.record("eval/mean_reward", res["mean_reward"])
        self.logger.record("eval/std_reward", res["std_reward"])
        self.logger.record("eval/mean_ep_length", res["mean_length"])
        self.logger.dump(self.num_timesteps)
        if self.cfg.verbose >= 1:
            print(f"[{self.algo}] eval at {self.num_timesteps} steps: "
                  f"{res['mean_reward']:.2f} +/- {res['std_reward']:.2f} over {episodes} episodes")
        if self.cfg.save_best and res["mean_reward"] > self.best_mean_reward:
            self.best_mean_reward = res["mean_reward"]
            self.save(os.path.join(self.run_dir, "best_model.pt"))

    # ------------------------------------------------------------------------------------ using the agent

    @torch.no_grad()
    def _act_numpy(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        o = torch.as_tensor(self._normalize_obs(np.asarray(obs, dtype=np.float32)))
        out = self._rollout_policy.act(o, deterministic=deterministic)
        return out[0].numpy()

    def predict(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for one observation (returns one action) or a batch ``[n, obs_dim]`` (returns ``[n]``)."""
        self._ensure_spaces()
        o = np.asarray(obs, dtype=np.float32)
        shape = self.observation_space.shape
        single = o.shape == tuple(shape)
        if not single and o.shape[1:] != tuple(shape):
            raise ValueError(f"obs: expected shape {tuple(shape)} or (n, *{tuple(shape)}), got {o.shape}")
        a = self._clip_actions(self._act_numpy(o[None] if single else o, deterministic))
        return a[0] if single else a

    def _ensure_spaces(self) -> None:
        if not hasattr(self, "action_space"):
            env = make_single(self.cfg.env)
            self.action_space, self.observation_space = env.action_space, env.observation_space
            env.close()

    def evaluate(self, n_episodes: int = 10, deterministic: bool = True, env: Any = None,
                 num_envs: int | None = None, seed: int | None = None) -> dict[str, float]:
        """Mean/std of the episode return and mean length over ``n_episodes`` on ``env`` (default: the
        training env), run in parallel with episodes spread evenly over the environments (no bias towards short
        episodes). Normalisation statistics are frozen. Returns a dict with mean_reward, std_reward,
        mean_length, n_episodes."""
        if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
            raise ValueError(f"n_episodes: expected an integer >= 1, got {n_episodes!r}")
        spec = self.cfg.env if env is None else env
        n_envs = num_envs or min(n_episodes, 16)
        # Seeded by the iteration, not by how many evaluations ran before: a run split into several train()
        # calls (each evaluating at its end) or resumed from a checkpoint evaluates on the same episodes.
        eval_seed = (self.seed + 1_000_003 * (self.iteration + 1)) % (2**31) if seed is None else seed
        venv = make_vec_for(spec, n_envs, backend=self.cfg.backend, seed=eval_seed)
        self.action_space, self.observation_space = venv.single_action_space, venv.single_observation_space
        targets = np.array([(n_episodes + i) // n_envs for i in range(n_envs)])
        counts = np.zeros(n_envs, int)
        rets, lens = [], []
        cur_r, cur_l = np.zeros(n_envs), np.zeros(n_envs, int)
        try:
            obs, _ = venv.reset(seed=eval_seed)
            while (counts < targets).any():
                a = self._clip_actions(self._act_numpy(obs, deterministic))
                obs, r, term, trunc, _ = venv.step(a)
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
                frames = [e.render()]
                done = False
                while not done:
                    a = self.predict(obs, deterministic=True)
                    obs, _, term, trunc, _ = e.step(a)
                    frames.append(e.render())
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

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
        if self.logger is not None:
            self.logger.close()

    # ------------------------------------------------------------------------------------- checkpoints

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _env_record(self) -> Any:
        env = self.cfg.env
        if isinstance(env, str):
            return env
        cfg = getattr(env, "native_config", None)
        if isinstance(env, gym.Env) and isinstance(cfg, dict):
            return {"class": f"{type(env).__module__}.{type(env).__qualname__}", "kwargs": dict(cfg)}
        return None

    def save(self, path: str) -> str:
        """Writes one checkpoint file atomically (temp file + rename): policy, optimizer, normaliser
        statistics, RNG states, counters, the config and the environment snapshot needed for exact resume."""
        pol = self.policy
        cfg = self.cfg.to_dict()
        cfg["env"] = self._env_record()
        env_state = self._env_snapshot() if self._restore_env is None else self._restore_env_record()
        state = {
            "format": CHECKPOINT_FORMAT,
            "algo": self.algo,
            "trainer": f"{type(self).__module__}.{type(self).__qualname__}",
            "policy_class": f"{type(pol).__module__}.{type(pol).__qualname__}",
            "policy_kwargs": dict(getattr(pol, "init_kwargs", {})),
            "policy": {k: v.detach().cpu() for k, v in pol.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "config": cfg,
            "seed": self.seed,
            "iteration": self.iteration,
            "num_timesteps": self.num_timesteps,
            "train_time": self.train_time,
            "best_mean_reward": self.best_mean_reward,
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self._gen.get_state(),
            "ep_info": [list(x) for x in self.ep_info],
            "eval_history": [dict(x) for x in self.eval_history],  # evaluation seeds count on it
            "obs_rms": None if self.obs_rms is None else _numpy_to_tensors(self.obs_rms.state_dict()),
            "env_state": env_state,
            "extra": self._extra_state(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }
        _atomic_torch_save(state, path)
        return path

    @classmethod
    def load(
        cls,
        path: str,
        device: str | torch.device = "cpu",
        env: Any = None,
        *,
        classes: Iterable[type] = (),
        trust_pickled_envs: bool = False,
        **overrides: Any,
    ) -> BaseTrainer:
        """Restores a trainer saved by ``save`` (``torch.load(..., weights_only=True)``). ``env`` replaces the
        saved environment (needed when it was a factory or an arbitrary instance); ``overrides`` set config fields.

        What it trusts (:mod:`rltrain.algos.checkpoint`): the checkpoint's trainer, policy, backbone and
        environment classes must be rltrain's own or among ``classes`` (your own trunk or env class, if you trust
        the file); their stored arguments must be plain data. Anything else raises ``ValueError`` before any class
        is looked up or called; nothing named in the file is ever imported. Python environments snapshotted by
        pickling (fork backend) are restored only with ``trust_pickled_envs=True`` (unpickling runs code);
        otherwise the run resumes from fresh resets, with a warning."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, "rltrain-checkpoint-1"):
            raise ValueError(f"path: {path!r} is not an rltrain checkpoint")
        # Every name and argument is checked before anything is built.
        table = trusted_classes(classes)
        trainer_cls = resolve_class(state.get("trainer"), "trainer", table)
        if not issubclass(trainer_cls, BaseTrainer):
            raise ValueError(f"trainer: {state['trainer']!r} is not a trainer class")
        if cls is not BaseTrainer and not issubclass(trainer_cls, cls):
            raise ValueError(f"path: checkpoint holds a {trainer_cls.__name__}, not a {cls.__name__}")
        policy_cls = resolve_class(state.get("policy_class"), "policy_class", table)
        if not issubclass(policy_cls, torch.nn.Module):
            raise ValueError(f"policy_class: {state['policy_class']!r} is not a torch module")
        policy_kwargs, cfg_dict = state.get("policy_kwargs"), state.get("config")
        if not isinstance(policy_kwargs, dict) or not isinstance(cfg_dict, dict):
            raise ValueError(f"path: {path!r} lacks policy_kwargs or config")
        check_plain_data(policy_kwargs, "policy_kwargs")
        check_plain_data(cfg_dict, "config")
        policy_kwargs, cfg_dict = dict(policy_kwargs), dict(cfg_dict)
        for where, record in (("policy_kwargs", policy_kwargs), ("config", cfg_dict)):
            if isinstance(record.get("backbone"), str) and record["backbone"] not in BACKBONES:
                record["backbone"] = resolve_class(record["backbone"], f"{where}['backbone']", table)
        env_rec = cfg_dict.get("env")
        if env is not None:
            cfg_dict["env"] = env
        elif isinstance(env_rec, dict):
            env_cls = resolve_class(env_rec.get("class"), "config['env']['class']", table)
            if not isinstance(env_rec.get("kwargs"), dict):
                raise ValueError("config['env']['kwargs']: expected a dict of plain data")
            cfg_dict["env"] = (env_cls, env_rec["kwargs"])
        elif isinstance(env_rec, str):
            if ":" in env_rec:  # gymnasium.make would import the module the id names
                raise ValueError(
                    f"config['env']: {env_rec!r} names a module to import; pass env=... if you trust it"
                )
        else:
            raise ValueError("env: the checkpoint's environment was a factory or custom instance; pass env=...")
        if isinstance(cfg_dict["env"], tuple):
            env_cls, env_kwargs = cfg_dict["env"]
            cfg_dict["env"] = env_cls(**env_kwargs)
        names = {f.name for f in dataclasses.fields(trainer_cls.config_class)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg_dict.items() if k in names}
        kwargs.update(overrides)
        cfg = trainer_cls.config_class(**kwargs)
        cfg.seed = state["seed"]
        policy = policy_cls(**policy_kwargs)
        policy.load_state_dict(state["policy"])
        trainer = trainer_cls(policy, cfg, device=device)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.iteration = int(state["iteration"])
        trainer.num_timesteps = int(state["num_timesteps"])
        trainer.train_time = float(state["train_time"])
        trainer.best_mean_reward = float(state["best_mean_reward"])
        torch.set_rng_state(state["torch_rng"])
        trainer._gen.set_state(state["shuffle_rng"])
        trainer.ep_info.extend(tuple(x) for x in state["ep_info"])
        trainer.eval_history = [dict(x) for x in state.get("eval_history", [])]
        if state["obs_rms"] is not None:
            trainer._init_obs_rms_from(state["obs_rms"])
        if trainer.needs_env_snapshot:
            trainer._restore_env = _pending_restore(state, trust_pickled_envs)
        trainer._load_extra_state(state["extra"])
        if trainer.scaler is not None and state.get("scaler"):
            trainer.scaler.load_state_dict(state["scaler"])
        trainer._sync_rollout_policy()
        return trainer

    def _init_obs_rms_from(self, st: dict[str, Any]) -> None:
        rms = RunningMeanStd(shape=tuple(np.asarray(st["mean"]).shape))
        rms.load_state_dict(_tensors_to_numpy(st))
        self.obs_rms = rms


def _pending_restore(state: dict[str, Any], trust_pickled_envs: bool) -> dict[str, Any] | None:
    """The env snapshot of a loaded checkpoint, as _ensure_env applies it; None (with a warning when the saved
    run had started) when there is none to apply."""
    snap = state.get("env_state")
    started = int(state.get("iteration", 0)) > 0
    why = None
    if snap is None:
        why = "it holds no environment snapshot" if state.get("format") == CHECKPOINT_FORMAT else \
            "it is of the older format (an action stream)"
    elif snap.get("kind") == "native":
        return {"kind": "native", "state": snap["state"].numpy().tobytes(), "obs": snap["obs"].numpy()}
    elif snap.get("kind") == "pickled":
        if trust_pickled_envs:
            return {"kind": "pickled", "envs": [t.numpy().tobytes() for t in snap["envs"]],
                    "obs": snap["obs"].numpy()}
        why = "its environments were pickled and unpickling runs code: pass trust_pickled_envs=True if you trust it"
    else:
        raise ValueError(f"env_state: unknown snapshot kind {snap.get('kind')!r}")
    if started:
        warnings.warn(f"checkpoint: {why}; the run resumes from fresh resets (as Stable-Baselines3 does) and is "
                      "not bitwise identical to an uninterrupted one", stacklevel=3)
    return None
