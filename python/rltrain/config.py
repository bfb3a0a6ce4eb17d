"""Trainer configurations: plain dataclasses, one docstring per field; the CLI is generated from them.

Field names and defaults of the users' existing scripts are kept (shared/seed-configs.md); everything else
is an addition with a default that leaves the original behaviour unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

EnvSpec = Union[str, Any, Callable[[], Any]]


@dataclass
class CommonConfig:
    """Fields shared by every trainer."""

    env: EnvSpec = "LunarLander-v3"
    """Environment: a gymnasium id, a ``gym.Env`` instance (each worker gets its own copy) or a factory."""
    gamma: float = 0.99
    """Discount factor."""
    lr: float = 3e-4
    """Adam learning rate."""
    clip_eps: float = 0.2
    """PPO clip range of the probability ratio."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip (None or <= 0 disables)."""
    G: int = 32
    """Parallel environments (PPO) / episodes per iteration (GRPO)."""
    T: int = 1024
    """Steps per environment per iteration (PPO) / max steps per episode (GRPO)."""
    epochs: int = 10
    """Optimisation epochs per batch."""
    minibatches: int = 32
    """Minibatches per epoch."""
    n_workers: Optional[int] = None
    """Threads (native envs) or processes (fork backend) stepping the environments; default min(G, cpus)."""
    log_dir: str = "./runs"
    """Directory for TensorBoard events, the CSV log and checkpoints."""
    seed: Optional[int] = None
    """Master seed (torch, numpy and environment seeds derive from it)."""
    verbose: int = 1
    """0: silent; 1: progress bar and summaries; 2: a line per iteration."""
    backend: str = "auto"
    """Rollout backend for make_vec: "auto" (native when the env is native, else fork), "native", "fork"."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the MLP policy built from the config (the CLI, or a trainer given ``policy=None``;
    a policy passed to the trainer is used as it is)."""
    activation: str = "tanh"
    """Activation of the MLP trunk built from the config: tanh, relu, elu, gelu."""
    backbone: str = "mlp"
    """Trunk of the policy built from the config (the CLI, or a trainer given ``policy=None``): "mlp",
    "transformer" (observation features as tokens), "cnn" (image observations), an ``nn.Module`` class or its
    import path ("pkg.module:Class")."""
    distribution: str = "auto"
    """Action distribution of the policy built from the config: "auto" (categorical for discrete spaces, Gaussian for
    continuous ones), "gaussian", "beta" (bounded spaces)."""
    squash: bool = False
    """Squash Gaussian actions with tanh into the action space's bounds (with the log-prob correction)."""
    log_std_init: float = -0.5
    """Initial log-std of the Gaussian policy built from the config."""
    lr_schedule: str = "constant"
    """Learning-rate schedule: "constant", "linear" (to 0), "cosine" (to 0) or "warmup_cosine"."""
    clip_schedule: str = "constant"
    """Clip-range schedule, same choices (RL-Zoo's lin_0.2 is "linear")."""
    ent_schedule: str = "constant"
    """Entropy-coefficient schedule, same choices."""
    warmup_frac: float = 0.05
    """Fraction of the schedule horizon spent warming up linearly from 0 ("warmup_cosine")."""
    schedule_iters: Optional[int] = None
    """Horizon of the schedules in iterations, counted from the first iteration; None: the iterations of the
    current ``train`` call (set it to make a stopped-and-resumed run follow the same schedule)."""
    optimizer: str = "adam"
    """Optimizer: "adam", "adamw" or "sgd"."""
    weight_decay: Optional[float] = None
    """Weight decay; None: 0.01 for adamw (torch's default), 0 otherwise."""
    momentum: float = 0.9
    """SGD momentum (sgd only)."""
    adam_eps: float = 1e-5
    """Adam epsilon (SB3 uses 1e-5)."""
    checkpoint_interval: Optional[int] = None
    """Every this many iterations, write ``<run_dir>/checkpoint.pt`` (atomically; the newest replaces the last) so
    a run killed at any moment resumes with ``load`` from there; None: only final/best models."""
    torch_threads: Optional[int] = 1
    """torch CPU threads set when training starts (``torch.set_num_threads``). Small networks run fastest on one
    thread, and more would compete with the environment threads; None leaves torch's setting alone."""
    amp: str = "off"
    """Mixed precision of the update on CUDA: "off", "bf16" or "fp16" (with a GradScaler). On CPU a warning is
    issued and training stays in full precision."""
    loggers: tuple[str, ...] = ("tensorboard", "csv")
    """Logging backends: any of "tensorboard", "csv", "wandb" (Weights & Biases, optional extra
    ``rltrain[wandb]``; honours ``WANDB_MODE=offline``)."""
    wandb_project: str = "rltrain"
    """Weights & Biases project (with the "wandb" logger)."""
    wandb_entity: Optional[str] = None
    """Weights & Biases entity (team or user); None: the account's default."""
    save_best: bool = True
    """Save best_model.pt whenever a periodic evaluation improves on the best mean reward."""

    def validate(self) -> None:
        """Raises ValueError naming the first field with a bad value, before any work starts."""
        def pos(name: str, integer: bool = False) -> None:
            v = getattr(self, name)
            if integer and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name}: expected a positive number, got {v!r}")

        def unit(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"{name}: expected a number in [0, 1], got {v!r}")

        def nonneg(name: str) -> None:
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name}: expected a number >= 0, got {v!r}")

        for f in ("G", "T", "epochs", "minibatches"):
            pos(f, integer=True)
        pos("lr")
        pos("adam_eps")
        unit("gamma")
        nonneg("clip_eps")
        nonneg("ent_coef")
        if self.max_grad_norm is not None:
            nonneg("max_grad_norm")
        if self.n_workers is not None:
            pos("n_workers", integer=True)
        if self.backend not in ("auto", "native", "fork"):
            raise ValueError(f"backend: expected 'auto', 'native' or 'fork', got {self.backend!r}")
        from rltrain.policies import DISTRIBUTIONS
        from rltrain.schedules import SCHEDULES

        for name in ("lr_schedule", "clip_schedule", "ent_schedule"):
            if getattr(self, name) not in SCHEDULES:
                raise ValueError(f"{name}: expected one of {SCHEDULES}, got {getattr(self, name)!r}")
        if not isinstance(self.warmup_frac, (int, float)) or not 0.0 <= self.warmup_frac < 1.0:
            raise ValueError(f"warmup_frac: expected a number in [0, 1), got {self.warmup_frac!r}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer: expected 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.weight_decay is not None:
            nonneg("weight_decay")
        if not isinstance(self.momentum, (int, float)) or not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        if self.amp not in ("off", "bf16", "fp16"):
            raise ValueError(f"amp: expected 'off', 'bf16' or 'fp16', got {self.amp!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution: expected one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if not ((isinstance(self.backbone, str) and self.backbone) or isinstance(self.backbone, type)):
            raise ValueError(f"backbone: expected 'mlp', 'transformer', 'cnn', an nn.Module class or 'module:Class', "
                             f"got {self.backbone!r}")
        if self.schedule_iters is not None and (isinstance(self.schedule_iters, bool) or not isinstance(
                self.schedule_iters, int) or self.schedule_iters < 1):
            raise ValueError(f"schedule_iters: expected a positive integer or None, got {self.schedule_iters!r}")
        if self.checkpoint_interval is not None and (isinstance(self.checkpoint_interval, bool) or not isinstance(
                self.checkpoint_interval, int) or self.checkpoint_interval < 1):
            raise ValueError(f"checkpoint_interval: expected a positive integer or None, "
                             f"got {self.checkpoint_interval!r}")
        bad = [x for x in self.loggers if x not in ("tensorboard", "csv", "wandb")]
        if bad:
            raise ValueError(f"loggers: unknown backend(s) {bad}; expected any of 'tensorboard', 'csv', 'wandb'")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed: expected a non-negative integer or None, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON/checkpoint-friendly view (the env becomes its id or its class name)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "env" and not isinstance(v, str):
                v = getattr(getattr(v, "spec", None), "id", None) or type(v).__name__
            if f.name == "backbone" and isinstance(v, type):
                v = f"{v.__module__}:{v.__qualname__}"
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out


@dataclass
class PPOConfig(CommonConfig):
    """Proximal Policy Optimization (Schulman et al. 2017) with Stable-Baselines3's semantics."""

    lam: float = 0.95
    """GAE lambda."""
    clip_range_vf: Optional[float] = None
    """Value-function clipping around the old values, as in SB3 (None disables)."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    target_kl: Optional[float] = 0.03
    """Stop the epoch loop once the approximate KL exceeds 1.5 * target_kl (SB3 placement); None disables."""
    vf_lr: Optional[float] = None
    """Learning rate of the critic's own parameters (value trunk and head); None: ``lr``. Follows ``lr_schedule``
    (the ratio vf_lr / lr is kept)."""
    share_trunk: bool = False
    """Policy built from the config: one trunk for actor and critic (True) or separate trunks (SB3's default)."""
    normalize_advantage: bool = True
    """Normalise advantages per minibatch."""
    normalize_obs: bool = False
    """Normalise observations with running statistics (clip 10), frozen for evaluation, saved in checkpoints."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return (clip 10)."""
    fused_update: bool = True
    """Use the fused minibatch step (hand-written backward + flat Adam, same gradients) when the policy is an
    unmodified MLP ``ActorCriticPolicy`` (separate trunks, categorical or plain Gaussian head), the optimizer is
    adam, ``vf_lr`` is None and AMP is off; False always uses autograd and the torch optimizer."""
    log_dir: str = "./runs/PPO"
    """Directory for TensorBoard events, the CSV log and checkpoints."""

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lam: expected a number in [0, 1], got {self.lam!r}")
        if self.clip_range_vf is not None and not self.clip_range_vf > 0:
            raise ValueError(f"clip_range_vf: expected a positive number or None, got {self.clip_range_vf!r}")
        if self.target_kl is not None and not self.target_kl > 0:
            raise ValueError(f"target_kl: expected a positive number or None, got {self.target_kl!r}")
        if self.vf_lr is not None and not (isinstance(self.vf_lr, (int, float)) and math.isfinite(self.vf_lr)
                                           and self.vf_lr > 0):
            raise ValueError(f"vf_lr: expected a positive number or None, got {self.vf_lr!r}")
        if not self.vf_coef >= 0:
            raise ValueError(f"vf_coef: expected a number >= 0, got {self.vf_coef!r}")
        batch = self.G * self.T
        if batch % self.minibatches != 0:
            raise ValueError(
                f"minibatches: expected a divisor of the batch G*T = {self.G}*{self.T} = {batch}, got {self.minibatches}"
            )


@dataclass
class GRPOConfig(CommonConfig):
    """Group Relative Policy Optimization (Shao et al. 2024) for control: actor only, group advantages."""

    identical_G: bool = False
    """True: all G episodes of an iteration start from the same seed (process supervision)."""
    epochs: int = 8
    """Optimisation epochs per batch."""
    minibatches: int = 16
    """Minibatches per epoch."""
    target_kl: float = 0.015
    """Target of the adaptive KL coefficient."""
    beta_kl: float = 0.02
    """Initial coefficient of the KL penalty to the reference policy."""
    kl_adjust_up: float = 1.5
    """Multiplier of beta when the measured KL exceeds target_kl."""
    kl_adjust_down: float = 1 / 1.5
    """Multiplier of beta when the measured KL is below target_kl."""
    ref_update_freq: int = 1
    """Iterations between copies of the policy into the reference policy."""
    hybrid_alpha: float = 1.0
    """Exponent of the episodic term (hybrid)."""
    hybrid_beta: float = 1.0
    """Exponent of the per-step term (hybrid)."""
    hybrid_clip: Optional[float] = 10.0
    """Clip of the hybrid magnitude before the final normalisation (None: no clip)."""
    normalize: str = "timestep"
    """Per-step normalisation: "timestep" (episodes alive at t) or "pooled" (DeepSeekMath)."""
    scale: str = "group"
    """Episodic advantage scale: "group" (divide by the group std) or "none" (Dr. GRPO)."""
    ddof: int = 0
    """Delta degrees of freedom of the group std (TRL uses 1)."""
    clip_eps_high: Optional[float] = None
    """Upper clip range (clip-higher, DAPO); None uses clip_eps."""
    log_dir: str = "./runs/GRPO"
    """Directory for TensorBoard events, the CSV log and checkpoints."""

    def validate(self) -> None:
        super().validate()
        if self.normalize not in ("timestep", "pooled"):
            raise ValueError(f"normalize: expected 'timestep' or 'pooled', got {self.normalize!r}")
        if self.scale not in ("group", "none"):
            raise ValueError(f"scale: expected 'group' or 'none', got {self.scale!r}")
        if self.ref_update_freq < 1:
            raise ValueError(f"ref_update_freq: expected an integer >= 1, got {self.ref_update_freq!r}")
        for name in ("target_kl", "beta_kl", "kl_adjust_up", "kl_adjust_down", "hybrid_alpha", "hybrid_beta"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)!r}")
        if self.ddof < 0:
            raise ValueError(f"ddof: expected an integer >= 0, got {self.ddof!r}")


@dataclass
class ReinforceConfig(CommonConfig):
    """REINFORCE (Williams 1992): Monte-Carlo policy gradient on discounted returns, actor only."""

    G: int = 16
    """Episodes per iteration."""
    T: int = 1000
    """Max steps per episode."""
    lr: float = 3e-3
    """Learning rate (1e-2 also solves CartPole but then oscillated on one of three seeds)."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    max_grad_norm: Optional[float] = None
    """Global gradient-norm clip (None or <= 0 disables)."""
    epochs: int = 1
    """Gradient passes over each batch (1 is the on-policy estimator; more reuse the data off-policy)."""
    minibatches: int = 1
    """Minibatches per epoch."""
    baseline: str = "mean"
    """Baseline subtracted from the return-to-go: "mean" (mean over the batch's steps) or "none"."""
    normalize_returns: bool = True
    """Divide the (baselined) returns by their standard deviation over the batch."""
    log_dir: str = "./runs/REINFORCE"
    """Directory for TensorBoard events, the CSV log and checkpoints."""

    def validate(self) -> None:
        super().validate()
        if self.baseline not in ("mean", "none"):
            raise ValueError(f"baseline: expected 'mean' or 'none', got {self.baseline!r}")


__all__ = ["CommonConfig", "PPOConfig", "GRPOConfig", "ReinforceConfig"]
