"""The loop every trainer shares: the rollout environments, seeding, optimizer, schedules, logging and periodic
evaluation around the algorithm's ``_iteration()``.

Subclasses implement ``_iteration()`` (collect + update, returning the metrics to log) and may add state to
checkpoints through ``_extra_state()`` / ``_load_extra_state()``. Rollouts act with a CPU copy of the policy,
refreshed after each update; the update runs on ``device``. The vector env is built once (``_make_env``); a
policy built from the config takes its spaces from it. Checkpoints (``save``, ``load``, exact resume) are in
:mod:`rltrain.algos.checkpoint`; ``predict``, ``evaluate`` and ``record_video`` in :mod:`rltrain.algos.evaluation`.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltrain._checks import integer
from rltrain.algos.checkpoint import Checkpointing
from rltrain.algos.evaluation import Evaluating
from rltrain.config import CommonConfig
from rltrain.kernels import RunningMeanStd
from rltrain.logger import Logger
from rltrain.schedules import schedule_value
from rltrain.vec import make_vec
from rltrain.vec.resolve import env_id_of

__all__ = ["BaseTrainer", "resolve_device"]


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


class BaseTrainer(Checkpointing, Evaluating):
    """Common trainer machinery; see the module docstring."""

    algo: str = "base"
    config_class: type = CommonConfig
    cfg: CommonConfig  # subclasses narrow it to their config_class
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
        cfg.validate()
        self.cfg = cfg
        self.device = resolve_device(device)
        if cfg.seed is not None:
            self.seed = int(cfg.seed)
        else:
            entropy = np.random.SeedSequence().entropy  # a fresh SeedSequence draws an int
            assert isinstance(entropy, int)
            self.seed = int(entropy % (2**31))
        self.env: gym.vector.VectorEnv | None = None
        self._ray: Any = None  # rltrain.distributed.ray_rollouts.RayRollouts with rollout_backend="ray"
        if policy is None:
            from rltrain.policies import policy_from_config

            if cfg.seed is not None:
                torch.manual_seed(int(cfg.seed))  # the same initial weights for the same seed
            env = self._make_env()
            try:
                policy = policy_from_config(cfg, env.single_observation_space, env.single_action_space,
                                            actor_critic=self.actor_critic)
            except BaseException:
                env.close()
                raise
        if not isinstance(policy, torch.nn.Module):
            raise TypeError(f"policy: expected a torch.nn.Module, got {type(policy).__name__}")
        needed = ("act", "evaluate_actions", "value") if self.actor_critic else ("act", "evaluate_actions")
        missing = [f".{n}()" for n in needed if not callable(getattr(policy, n, None))]
        if missing:
            example = "ActorCriticPolicy" if self.actor_critic else "SimpleGRPOPolicy"
            raise TypeError(f"policy: {self.algo} needs a policy with {', '.join(missing)} "
                            f"(e.g. rltrain.policies.{example})")
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
        self._obs: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        """Legal-action mask of ``_obs`` when the env reports ``info["action_mask"]`` (board games), else None."""
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

    def _resolve_amp(self) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
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
            self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
            self.scaler.unscale_(opt)
        else:
            loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        params = [p for g in opt.param_groups for p in g["params"]]
        if getattr(self, "_ddp", None) is not None:  # data-parallel learner: the global minibatch's gradient
            from rltrain.distributed.ddp import allreduce_grads

            allreduce_grads(params)
        mgn = self.cfg.max_grad_norm
        if mgn is not None and mgn > 0:
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

    def _make_env(self) -> gym.vector.VectorEnv:
        """The rollout vector env, built once; the trainer's spaces are its single-env spaces. With the Ray backend
        the envs live in the workers: a one-env probe, closed at once, gives the spaces."""
        if self.cfg.rollout_backend == "ray":
            probe = make_vec(self.cfg.env, 1, backend=self.cfg.backend, seed=self.seed, num_threads=1)
            probe.close()
            self.action_space = probe.single_action_space
            self.observation_space = probe.single_observation_space
            return probe
        if self.env is None:
            self.env = make_vec(self.cfg.env, self._num_envs(), backend=self.cfg.backend, seed=self.seed,
                                    identical_seeds=self._identical_seeds(), num_threads=self.cfg.n_workers)
            self.action_space = self.env.single_action_space
            self.observation_space = self.env.single_observation_space
        return self.env

    def _ensure_env(self) -> None:
        """Resets the rollout environments once (building them if needed) and applies a restored environment
        snapshot if there is one."""
        if self._obs is not None:
            return
        if self.cfg.rollout_backend == "ray":
            self._ensure_ray()
            return
        env = self._make_env()
        obs, infos = env.reset(seed=self.seed)
        mask = infos.get("action_mask")
        restore, self._restore_env = self._restore_env, None
        if restore is not None and restore["kind"] == "ray":
            warnings.warn("checkpoint: its environment snapshot comes from Ray workers and does not fit a local "
                          "vector env; the run resumes from fresh resets and is not bitwise identical to an "
                          "uninterrupted one", stacklevel=3)
        elif restore is not None:
            env.set_state(restore["state"] if restore["kind"] == "native" else restore["envs"])  # type: ignore[attr-defined]
            obs = restore["obs"]
            mask = restore.get("action_mask", mask)
        self._obs = np.array(obs, dtype=np.float32, copy=True)
        self._mask = None if mask is None else np.array(mask, dtype=np.bool_, copy=True)

    def _ensure_ray(self) -> None:
        """Starts the Ray rollout workers, then resets their envs (as a local ``reset(seed=seed)``) or applies the
        checkpoint's per-worker snapshot."""
        from rltrain.distributed.ray_rollouts import RayRollouts
        from rltrain.policies import _Actor

        self._make_env()
        pol = self._rollout_policy
        if isinstance(pol, _Actor) and pol.distribution == "beta":
            raise ValueError("rollout_backend: 'ray' needs pre-drawn sampling noise, which the Beta distribution "
                             "has not (it samples by rejection); use distribution='gaussian' or the local backend")
        k, e = self.cfg.rollout_split()
        if self._ray is None:
            self._ray = RayRollouts(self.cfg.env, k, e, backend=self.cfg.backend, seed=self.seed,
                                    identical_seeds=self._identical_seeds(), num_threads=self.cfg.n_workers,
                                    policy=copy.deepcopy(pol).cpu(), batch_invariant=self.cfg.batch_invariant_rollout(),
                                    torch_threads=self.cfg.torch_threads, timeout=self.cfg.rollout_timeout,
                                    max_restarts=self.cfg.max_worker_restarts, address=self.cfg.ray_address,
                                    verbose=self.cfg.verbose)
        restore, self._restore_env = self._restore_env, None
        if restore is not None and restore["kind"] == "ray" and len(restore["workers"]) == k:
            self._ray.set_state([(w["state"] if w["kind"] == "native" else w["envs"], w["obs"])
                                 for w in restore["workers"]])
            self._obs = np.array(restore["obs"], dtype=np.float32, copy=True)
            return
        if restore is not None:
            warnings.warn(f"checkpoint: its environment snapshot ({restore['kind']!r}"
                          + (f", {len(restore['workers'])} workers" if restore["kind"] == "ray" else "")
                          + f") does not fit {k} Ray workers; the run resumes from fresh resets and is not bitwise "
                          "identical to an uninterrupted one", stacklevel=3)
        self._obs = np.array(self._ray.reset(self.seed), dtype=np.float32, copy=True)

    def _rollout_noise(self, shape: tuple[int, ...]) -> torch.Tensor | None:
        """The iteration's sampling noise for ``shape`` = (steps, envs), drawn up front from torch's global
        generator (``policy.rollout_noise``) so env i's actions are the same wherever env i runs; None for a
        policy that samples by itself (a user policy, or the Beta distribution locally)."""
        from rltrain.policies import _Actor

        pol = self._rollout_policy
        if isinstance(pol, _Actor) and pol.distribution != "beta":
            return pol.rollout_noise(shape)
        return None

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

    def _ent_at(self, progress: float) -> float:
        return schedule_value(self.cfg.ent_schedule, self.cfg.ent_coef, progress, self.cfg.warmup_frac)

    # ----------------------------------------------------------------------------------------- the loop

    def _iteration(self, progress: float) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def train(self, iters: int = 300, eval_env: Any = None, eval_interval: int = 30, eval_episodes: int = 100,
              video_dir: str | None = None, video_episodes: int = 10) -> BaseTrainer:
        """Runs ``iters`` further iterations with periodic deterministic evaluation, then records videos of the
        final agent when ``video_dir`` is given. Returns the trainer."""
        integer(iters, "iters", lo=0)
        integer(eval_interval, "eval_interval", lo=1)
        integer(eval_episodes, "eval_episodes", lo=1)
        if self.cfg.torch_threads is not None:
            torch.set_num_threads(int(self.cfg.torch_threads))
        self._ensure_env()
        self._ensure_logger()
        run_dir = self.run_dir
        assert run_dir is not None  # set by _ensure_logger
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
                if self._ray is not None:
                    metrics.update({"rollout/worker_restarts": float(self._ray.restarts),
                                    "time/ray_collect_s": self._ray.timing["collect_s"],
                                    "time/ray_wait_s": self._ray.timing["wall_s"]})
                dt = time.perf_counter() - t0
                self.train_time += dt
                self.iteration += 1
                self._log_iteration(metrics, lr, (self.num_timesteps - steps0) / max(dt, 1e-9))
                interval = self.cfg.checkpoint_interval
                if interval is not None and self.iteration % interval == 0:
                    self.save(os.path.join(run_dir, "checkpoint.pt"))
                if k == iters - 1 and (eval_env is not None or video_dir is not None):
                    # The trained model is on disk before the last evaluation and the videos: a failure there
                    # never loses the training.
                    self.save(os.path.join(run_dir, "final_model.pt"))
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

    def close(self) -> None:
        """Closes the rollout environments (a later ``train`` builds and resets new ones) and the logger."""
        if self.env is not None:
            self.env.close()
            self.env = None
            self._obs = None
        if self._ray is not None:
            self._ray.close()
            self._ray = None
            self._obs = None
        self._mask = None
        if self.logger is not None:
            self.logger.close()
