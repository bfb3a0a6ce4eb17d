"""Trainer configurations: plain dataclasses, one docstring per field; the CLI is generated from them.

Field names and defaults of the users' existing scripts are kept (shared/seed-configs.md); everything else
is an addition with a default that leaves the original behaviour unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from rltrain._checks import choice, integer, optional_integer, optional_real, probability, real

EnvSpec = str | Any | Callable[[], Any]


@dataclass
class CommonConfig:
    """Fields shared by every trainer."""

    env: EnvSpec = "LunarLander-v3"
    """Environment: a gymnasium id, a ``gym.Env`` instance (each worker gets its own copy) or a factory."""
    gamma: float = 0.99
    """Discount factor."""
    lr: float = 3e-4
    """Adam learning rate."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    max_grad_norm: float | None = 0.5
    """Global gradient-norm clip (None or <= 0 disables)."""
    G: int = 32
    """Parallel environments (PPO) / episodes per iteration (GRPO)."""
    T: int = 1024
    """Steps per environment per iteration (PPO) / max steps per episode (GRPO)."""
    epochs: int = 10
    """Optimisation epochs per batch."""
    minibatches: int = 32
    """Minibatches per epoch."""
    n_workers: int | None = None
    """Threads (native envs) or processes (fork backend) stepping the environments: passed to the vector env as
    its ``num_threads`` (``rltrain.make_vec(..., num_threads=n_workers)``); None: min(G, cpus)."""
    log_dir: str = "./runs"
    """Directory for TensorBoard events, the CSV log and checkpoints."""
    seed: int | None = None
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
    ent_schedule: str = "constant"
    """Entropy-coefficient schedule, same choices."""
    warmup_frac: float = 0.05
    """Fraction of the schedule horizon spent warming up linearly from 0 ("warmup_cosine")."""
    schedule_iters: int | None = None
    """Horizon of the schedules in iterations, counted from the first iteration; None: the iterations of the
    current ``train`` call (set it to make a stopped-and-resumed run follow the same schedule)."""
    optimizer: str = "adam"
    """Optimizer: "adam", "adamw" or "sgd"."""
    weight_decay: float | None = None
    """Weight decay; None: 0.01 for adamw (torch's default), 0 otherwise."""
    momentum: float = 0.9
    """SGD momentum (sgd only)."""
    adam_eps: float = 1e-5
    """Adam epsilon (SB3 uses 1e-5)."""
    checkpoint_interval: int | None = None
    """Every this many iterations, write ``<run_dir>/checkpoint.pt`` (atomically; the newest replaces the last) so
    a run killed at any moment resumes with ``load`` from there; None: only final/best models."""
    torch_threads: int | None = 1
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
    wandb_entity: str | None = None
    """Weights & Biases entity (team or user); None: the account's default."""
    save_best: bool = True
    """Save best_model.pt whenever a periodic evaluation improves on the best mean reward."""
    rollout_backend: str = "local"
    """Where rollouts run: "local" (this process's vector env) or "ray" (``num_rollout_workers`` Ray actors, each
    owning ``envs_per_worker`` of the G environments and a CPU copy of the policy; extra ``rltrain[ray]``)."""
    ray_address: str | None = None
    """Ray cluster to use with ``rollout_backend="ray"``: None starts (or joins) a local instance, "auto" or
    "host:port" joins a running cluster (``ray start --head``); an already initialised Ray is used as it is."""
    num_rollout_workers: int = 1
    """Ray rollout actors (``rollout_backend="ray"``); worker w steps envs ``w*E .. w*E+E-1``."""
    envs_per_worker: int | None = None
    """Environments per Ray worker (E); None: G / num_rollout_workers. ``num_rollout_workers * envs_per_worker``
    must equal G."""
    batch_invariant: bool | None = None
    """For policies other than rltrain's default MLPs: rollout forward passes compute every environment's row the
    same way whatever the batch size (one small matrix product per row), so how the envs are split among workers
    cannot change a result; None: on with the Ray backend, off locally (the batched matrix product is faster, but
    on CPU a row's rounding can depend on the batch size). rltrain's default MLP policies (``ActorCriticPolicy`` /
    ``SimpleGRPOPolicy``, categorical or Gaussian head, float32 on CPU) always roll out through the C++ forward
    (``rltrain.algos.fused_mlp.NativeRollout``), whose rows never depend on the batch size: with them a default
    local run ends bitwise where a Ray run with the same G does, whatever this says. For other policies set True
    on the local run to get that equality."""
    rollout_timeout: float = 600.0
    """Seconds the learner waits for a Ray worker's rollout before it treats the worker as hung: it is killed,
    restarted with re-seeded envs, and its share of the iteration is collected again."""
    max_worker_restarts: int = 3
    """Worker restarts allowed per iteration before the run fails (``rollout_backend="ray"``)."""

    def validate(self) -> None:
        """Checks every field before any work starts (``rltrain._checks``): a value of the wrong type raises
        TypeError, one out of range ValueError, naming the field."""
        from rltrain.policies import DISTRIBUTIONS
        from rltrain.schedules import SCHEDULES

        for f in ("G", "T", "epochs", "minibatches"):
            integer(getattr(self, f), f, lo=1)
        real(self.lr, "lr", lo=0.0, lo_open=True)
        real(self.adam_eps, "adam_eps", lo=0.0, lo_open=True)
        probability(self.gamma, "gamma")
        real(self.ent_coef, "ent_coef", lo=0.0)
        optional_real(self.max_grad_norm, "max_grad_norm", lo=0.0)
        optional_integer(self.n_workers, "n_workers", lo=1)
        choice(self.backend, "backend", ("auto", "native", "fork"))
        for name in self._schedule_fields:
            choice(getattr(self, name), name, SCHEDULES)
        real(self.warmup_frac, "warmup_frac", lo=0.0, hi=1.0, hi_open=True)
        choice(self.optimizer, "optimizer", ("adam", "adamw", "sgd"))
        optional_real(self.weight_decay, "weight_decay", lo=0.0)
        real(self.momentum, "momentum", lo=0.0, hi=1.0, hi_open=True)
        choice(self.amp, "amp", ("off", "bf16", "fp16"))
        choice(self.distribution, "distribution", DISTRIBUTIONS)
        if not ((isinstance(self.backbone, str) and self.backbone) or isinstance(self.backbone, type)):
            raise TypeError(f"backbone: expected 'mlp', 'transformer', 'cnn', an nn.Module class or 'module:Class', "
                            f"got {self.backbone!r}")
        optional_integer(self.schedule_iters, "schedule_iters", lo=1)
        optional_integer(self.checkpoint_interval, "checkpoint_interval", lo=1)
        bad = [x for x in self.loggers if x not in ("tensorboard", "csv", "wandb")]
        if bad:
            raise ValueError(f"loggers: unknown backend(s) {bad}; expected any of 'tensorboard', 'csv', 'wandb'")
        optional_integer(self.seed, "seed", lo=0)
        self._validate_rollout()

    def _validate_rollout(self) -> None:
        choice(self.rollout_backend, "rollout_backend", ("local", "ray"))
        if self.ray_address is not None and not (isinstance(self.ray_address, str) and self.ray_address):
            raise TypeError(f"ray_address: expected None, 'auto' or 'host:port', got {self.ray_address!r}")
        integer(self.num_rollout_workers, "num_rollout_workers", lo=1)
        optional_integer(self.envs_per_worker, "envs_per_worker", lo=1)
        if self.batch_invariant is not None and not isinstance(self.batch_invariant, bool):
            raise TypeError(f"batch_invariant: expected None, True or False, got {self.batch_invariant!r}")
        real(self.rollout_timeout, "rollout_timeout", lo=0.0, lo_open=True)
        integer(self.max_worker_restarts, "max_worker_restarts", lo=0)
        if self.rollout_backend != "ray":
            return
        k = self.num_rollout_workers
        e = self.envs_per_worker if self.envs_per_worker is not None else self.G // k
        if k * e != self.G:
            raise ValueError(f"num_rollout_workers: {k} workers x envs_per_worker {self.envs_per_worker} must equal "
                             f"G = {self.G} (envs_per_worker=None needs G divisible by num_rollout_workers)")
        for name in ("normalize_obs", "normalize_reward"):
            if getattr(self, name, False):
                raise ValueError(f"{name}: running normalisation statistics are updated every step over the whole "
                                 f"batch on the learner and are not reproduced by Ray workers; use "
                                 f"rollout_backend='local' or {name}=False")
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ImportError("rollout_backend: 'ray' needs Ray, which is not installed: pip install 'rltrain[ray]'")

    def rollout_split(self) -> tuple[int, int]:
        """(workers K, envs per worker E) of the rollout: (1, G) locally."""
        if self.rollout_backend != "ray":
            return 1, self.G
        k = self.num_rollout_workers
        return k, self.envs_per_worker if self.envs_per_worker is not None else self.G // k

    def batch_invariant_rollout(self) -> bool:
        """Whether rollout forward passes use the batch-invariant path (``batch_invariant``, resolved)."""
        if self.batch_invariant is None:
            return self.rollout_backend == "ray"
        return bool(self.batch_invariant)

    _schedule_fields: ClassVar[tuple[str, ...]] = ("lr_schedule", "ent_schedule")

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
class ClippedConfig(CommonConfig):
    """Fields of the clipped-surrogate trainers (PPO, GRPO)."""

    clip_eps: float = 0.2
    """Clip range of the probability ratio: the surrogate uses ``clamp(ratio, 1 - clip_eps, 1 + clip_eps)``."""
    clip_schedule: str = "constant"
    """Clip-range schedule: "constant", "linear" (to 0), "cosine" (to 0) or "warmup_cosine" (RL-Zoo's lin_0.2 is
    "linear")."""

    _schedule_fields = ("lr_schedule", "clip_schedule", "ent_schedule")

    def validate(self) -> None:
        super().validate()
        real(self.clip_eps, "clip_eps", lo=0.0)


@dataclass
class PPOConfig(ClippedConfig):
    """Proximal Policy Optimization (Schulman et al. 2017) with Stable-Baselines3's semantics."""

    lam: float = 0.95
    """GAE lambda."""
    clip_range_vf: float | None = None
    """Value-function clipping around the old values, as in SB3 (None disables)."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    target_kl: float | None = 0.03
    """KL stop threshold: the epoch loop stops before the minibatch step whose approximate KL to the rollout
    policy exceeds 1.5 * target_kl (Stable-Baselines3's placement); None disables the stop."""
    vf_lr: float | None = None
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
        real(self.lam, "lam", lo=0.0, hi=1.0)
        for name in ("clip_range_vf", "target_kl", "vf_lr"):
            optional_real(getattr(self, name), name, lo=0.0, lo_open=True)
        real(self.vf_coef, "vf_coef", lo=0.0)
        batch = self.G * self.T
        if batch % self.minibatches != 0:
            raise ValueError(f"minibatches: expected a divisor of the batch G*T = {self.G}*{self.T} = {batch}, "
                             f"got {self.minibatches}")


@dataclass
class GRPOConfig(ClippedConfig):
    """Group Relative Policy Optimization (Shao et al. 2024) for control: actor only, group advantages."""

    identical_G: bool = False
    """True: all G episodes of an iteration start from the same seed (process supervision)."""
    epochs: int = 8
    """Optimisation epochs per batch."""
    minibatches: int = 16
    """Minibatches per epoch."""
    target_kl: float = 0.015
    """KL target of the adaptive penalty: after each update beta_kl is multiplied by kl_adjust_up when the KL to
    the reference policy exceeds target_kl and by kl_adjust_down when it is below; never stops training."""
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
    hybrid_clip: float | None = 10.0
    """Clip of the hybrid magnitude before the final normalisation (None: no clip)."""
    normalize: str = "timestep"
    """Per-step normalisation: "timestep" (episodes alive at t) or "pooled" (DeepSeekMath)."""
    scale: str = "group"
    """Episodic advantage scale: "group" (divide by the group std) or "none" (Dr. GRPO)."""
    ddof: int = 0
    """Delta degrees of freedom of the group std (TRL uses 1)."""
    clip_eps_high: float | None = None
    """Upper clip range (clip-higher, DAPO); None uses clip_eps."""
    log_dir: str = "./runs/GRPO"
    """Directory for TensorBoard events, the CSV log and checkpoints."""

    def validate(self) -> None:
        super().validate()
        choice(self.normalize, "normalize", ("timestep", "pooled"))
        choice(self.scale, "scale", ("group", "none"))
        integer(self.ref_update_freq, "ref_update_freq", lo=1)
        for name in ("target_kl", "beta_kl", "kl_adjust_up", "kl_adjust_down", "hybrid_alpha", "hybrid_beta"):
            real(getattr(self, name), name, lo=0.0)
        optional_real(self.hybrid_clip, "hybrid_clip", lo=0.0)
        optional_real(self.clip_eps_high, "clip_eps_high", lo=0.0)
        integer(self.ddof, "ddof", lo=0)


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
    max_grad_norm: float | None = None
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
        choice(self.baseline, "baseline", ("mean", "none"))


@dataclass
class PolicyGroupConfig(ClippedConfig):
    """Policy groups: ``groups`` groups of ``group_size`` actor policies, each group with its own value function.
    Every iteration one group is drawn by performance-weighted sampling and its members act in parallel
    environments; see :class:`rltrain.algos.policy_groups.PolicyGroupTrainer` for the sampling rule and the
    group-relative advantage."""

    groups: int = 4
    """Number of policy groups."""
    group_size: int = 8
    """Policies (members) per group; they act side by side in one iteration and are compared with each other."""
    G: int = 16
    """Parallel environments per iteration, a multiple of ``group_size``: each member plays ``G / group_size``
    episodes, episode e of every member starting from the same seed (common starts make the members comparable)."""
    T: int = 1000
    """Maximum steps per episode in an iteration (an episode cut here bootstraps from the critic)."""
    epochs: int = 4
    """Optimisation epochs over the selected group's batch."""
    minibatches: int = 2
    """Minibatches per epoch: each member's steps are split into this many shuffled chunks, and the members and
    the group's critic take one optimizer step together per chunk."""
    lam: float = 0.95
    """GAE lambda of the critic term of the advantage."""
    vf_coef: float = 0.5
    """Weight of the value-function loss of the selected group's critic."""
    gae_weight: float = 1.0
    """Weight of the critic (GAE) term in the advantage; 0 leaves only the group-relative episodic term (pure
    GRPO outcome advantages; the critic is still trained)."""
    temperature: float = 1.0
    """Softmax temperature of group selection, applied to the groups' standardised performance
    ``z_g = (perf_g - mean) / (std + 1e-8)``: small values pick the best group almost always, large ones
    approach uniform sampling."""
    selection_floor: float = 0.05
    """Share of uniform sampling mixed into the selection probabilities, ``p = (1 - floor) * softmax + floor / G``,
    so no group starves."""
    perf_ema: float = 0.3
    """Weight of the newest mean episode return in a group's tracked performance (exponential moving average),
    ``perf <- (1 - perf_ema) * perf + perf_ema * mean_return``; the first measurement initialises it."""
    eval_mode: str = "best_group"
    """How the trained agent acts (``predict``, ``evaluate``, robustness): "best_group" (the averaged action
    probabilities of the members of the group with the highest tracked performance) or "mixture" (all groups'
    members, each group weighted by its current selection probability)."""
    diversity_obs: int = 256
    """Observations (from the latest rollout) on which the between-group KL diversity is measured and logged."""
    log_dir: str = "./runs/PolicyGroups"
    """Directory for TensorBoard events, the CSV log and checkpoints."""

    def validate(self) -> None:
        super().validate()
        integer(self.groups, "groups", lo=1)
        integer(self.group_size, "group_size", lo=1)
        if self.G % self.group_size != 0:
            raise ValueError(f"G: expected a multiple of group_size={self.group_size} (each member plays "
                             f"G / group_size episodes), got {self.G}")
        real(self.lam, "lam", lo=0.0, hi=1.0)
        real(self.vf_coef, "vf_coef", lo=0.0)
        real(self.gae_weight, "gae_weight", lo=0.0)
        real(self.temperature, "temperature", lo=0.0, lo_open=True)
        real(self.selection_floor, "selection_floor", lo=0.0, hi=1.0)
        real(self.perf_ema, "perf_ema", lo=0.0, hi=1.0, lo_open=True)
        choice(self.eval_mode, "eval_mode", ("best_group", "mixture"))
        integer(self.diversity_obs, "diversity_obs", lo=1)
        if self.amp != "off":
            raise ValueError(f"amp: policy groups train in full precision, got {self.amp!r}")


@dataclass
class SelfPlayConfig(PPOConfig):
    """Self-play on a two-player board game: PPO (actor-critic, masked categorical policy) against a league of
    frozen past versions of itself (the latest plus a sample of older ones), random starting player. Defaults are
    tuned for ``rltrain/TicTacToe-v0`` (bench/README.md, "Games")."""

    env: EnvSpec = "rltrain/TicTacToe-v0"
    """The game: ``"rltrain/TicTacToe-v0"`` or ``"rltrain/ConnectFour-v0"``."""
    G: int = 32
    """Parallel games."""
    T: int = 32
    """Agent moves per game slot per iteration."""
    epochs: int = 10
    """Optimisation epochs per batch (many: the positions a perfect opponent punishes are rare in the batch)."""
    minibatches: int = 8
    """Minibatches per epoch."""
    lr: float = 1e-3
    """Adam learning rate."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    lr_schedule: str = "linear"
    """Learning-rate schedule (see :class:`CommonConfig`): linear to 0 over the ``train`` call (or
    ``schedule_iters``), so the last iterations settle the greedy policy instead of moving it."""
    ent_schedule: str = "linear"
    """Entropy-coefficient schedule, same choices: linear to 0, so the policy sharpens as training ends."""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """Hidden layer widths of the MLP policy."""
    target_kl: float | None = None
    """KL stop threshold (None disables the stop)."""
    agent_player: str = "random"
    """The learner's side in each game: "X", "O" or "random" (the starting player is drawn per game)."""
    snapshot_interval: int = 5
    """Every this many iterations, a frozen copy of the current policy joins the league."""
    league_size: int = 20
    """Frozen versions kept (the oldest but the first leaves when a new one joins)."""
    latest_prob: float = 0.5
    """Probability that a game's opponent is the latest frozen version; otherwise (but for the two below) one of
    the older versions, uniformly."""
    random_opponent_prob: float = 0.1
    """Probability that a game's opponent plays uniformly random legal moves (keeps punishing weak play)."""
    search_opponent_prob: float = 0.5
    """Probability that a game's opponent is the game's built-in search (``search_opponent``): a sparring partner
    that punishes every mistake at once (0: the league and the random player only)."""
    search_opponent_prob_second: float | None = 0.7
    """Probability of the search opponent in the games where the learner moves second (it plays O, the search opens);
    None: ``search_opponent_prob``. The first player's opening is where a mixed pool pays the learner to gamble:
    a reply that wins often against the random player and the league can lose every game against perfect play, and
    the learner cannot tell its opponents apart. Weighting the search more heavily in these games makes the safe
    reply the better bet without changing the mix the learner sees as the first player."""
    search_epsilon: float | None = None
    """Probability that the search opponent plays a uniformly random legal move instead of its search move, move by
    move (an epsilon-greedy sparring partner): its games then also hold the positions a mistake leaves (a threat
    not blocked, a win on offer), which otherwise only the rare games against the random player show, while it
    still punishes most mistakes of the learner's. None: 0.2 for TicTacToe (bench/README.md, "Games"), 0 for
    ConnectFour (not measured there)."""
    search_opponent: str | None = None
    """That search: None for the game's own ("minimax" for TicTacToe, "alphabeta:2" for ConnectFour), an opponent
    string such as "alphabeta:4", or a comma-separated list ("alphabeta:1,alphabeta:2,alphabeta:4": one drawn per
    game)."""
    opponent_greedy: bool = False
    """League versions play their greedy move (True) or sample their masked policy (False)."""
    keep_best: bool | None = None
    """Model selection during training (as Stable-Baselines3's ``EvalCallback`` keeps its best model): every
    ``keep_best_interval`` iterations, and at the end of the schedule, the current greedy policy is scored exactly
    against the game's built-in opponents (:func:`rltrain.games.exact_tictactoe_scores`: every game perfect play
    and the random player can make); at the end of the schedule (the last iteration of the ``train`` call, or
    iteration ``schedule_iters``) the learner's weights become those of the best snapshot scored. Best: fewest
    losses against perfect play (as X plus as O), then the highest expected score against the random player
    (wins minus losses, as X plus as O); ties go to the later snapshot. The scoring runs inside ``train`` and
    counts as training time. None: on for the games with an exact scorer (TicTacToe), off for the others; True
    on a game without one is a ValueError."""
    keep_best_interval: int = 5
    """Iterations between the scorings of ``keep_best``."""
    log_dir: str = "./runs/SelfPlay"
    """Directory for TensorBoard events, the CSV log and checkpoints."""

    def validate(self) -> None:
        super().validate()
        from rltrain.vec.games import agent_side, game_info, is_game, native_opponent

        if not isinstance(self.env, str) or not is_game(self.env):
            raise ValueError(f"env: self-play needs a board game id ('rltrain/TicTacToe-v0', "
                             f"'rltrain/ConnectFour-v0'), got {self.env!r}")
        agent_side(self.agent_player)
        if self.keep_best is not None and not isinstance(self.keep_best, bool):
            raise TypeError(f"keep_best: expected True, False or None, got {type(self.keep_best).__name__}")
        if self.keep_best and game_info(str(self.env)).search != "minimax":
            raise ValueError(f"keep_best: needs a game with an exact scorer ('rltrain/TicTacToe-v0'), got env "
                             f"{self.env!r}")
        integer(self.keep_best_interval, "keep_best_interval", lo=1)
        integer(self.snapshot_interval, "snapshot_interval", lo=1)
        integer(self.league_size, "league_size", lo=1)
        for name in ("latest_prob", "random_opponent_prob", "search_opponent_prob"):
            probability(getattr(self, name), name)
        if self.random_opponent_prob + self.search_opponent_prob > 1:
            raise ValueError("search_opponent_prob: random_opponent_prob + search_opponent_prob must be <= 1")
        if self.search_opponent_prob_second is not None:
            probability(self.search_opponent_prob_second, "search_opponent_prob_second")
            if self.random_opponent_prob + self.search_opponent_prob_second > 1:
                raise ValueError("search_opponent_prob_second: random_opponent_prob + search_opponent_prob_second "
                                 "must be <= 1")
        if self.search_epsilon is not None:
            probability(self.search_epsilon, "search_epsilon")
        names = self.search_opponent.split(",") if isinstance(self.search_opponent, str) else []

        def is_search(name: str) -> bool:
            try:
                return native_opponent(str(self.env), name.strip()) not in (None, (0, 1))
            except ValueError:
                return False

        if self.search_opponent is not None and (not names or not all(is_search(s) for s in names)):
            raise ValueError(f"search_opponent: expected the game's search ('minimax' or 'alphabeta:DEPTH', or a "
                             f"comma-separated list of them), got {self.search_opponent!r}")


__all__ = ["ClippedConfig", "CommonConfig", "GRPOConfig", "PPOConfig", "PolicyGroupConfig", "ReinforceConfig",
           "SelfPlayConfig"]
