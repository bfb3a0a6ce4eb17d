"""``LMGRPOConfig``: the settings of GRPO for causal language models (SPEC §7), plain data checked on construction.

Plain data only (numbers, strings, bools, None, tuples of strings): a checkpoint stores ``to_dict()`` and ``load``
rebuilds the config from it. Importing this module costs NumPy and the compiled core, never torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from rltrain._checks import choice, integer, optional_integer, optional_real, probability, real
from rltrain.kernels.llm_group import PRESETS
from rltrain.kernels.llm_loss import AGGREGATE_MODES

__all__ = ["LMGRPOConfig"]

_LOGGERS = ("tensorboard", "csv", "wandb")


@dataclass
class LMGRPOConfig:
    """Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", sec. 4) for a causal language model:
    K sampled completions per prompt, group-relative advantages, a clipped ratio and a k3 KL penalty to a
    reference model. Validated on construction (and by ``validate()`` after a change): ``TypeError`` for a value of
    the wrong kind, ``ValueError`` for one out of range, each naming the field."""

    num_generations: int = 8
    """K: completions sampled per prompt (one group); >= 2, since a group of one has no relative advantage."""
    prompts_per_step: int = 4
    """Prompts drawn per step (without replacement when the prompt list is at least this long); the batch holds
    ``prompts_per_step * num_generations`` completions."""
    max_new_tokens: int = 16
    """Most tokens generated per completion (generation stops earlier once every completion has produced EOS)."""
    temperature: float = 1.0
    """Sampling temperature (> 0); the log-probabilities of the loss use the same temperature (as TRL)."""
    top_p: float = 1.0
    """Nucleus-sampling mass in (0, 1]; 1 samples from the whole (tempered) distribution. No top-k filtering."""
    lr: float = 1e-4
    """Adam learning rate (``torch.optim.Adam``, no weight decay)."""
    clip_eps: float = 0.2
    """Lower clip range of the ratio: the surrogate clamps it to ``[1 - clip_eps, 1 + clip_eps_high]``."""
    clip_eps_high: float | None = None
    """Upper clip range (clip-higher, DAPO, Yu et al. 2025); None uses ``clip_eps``."""
    beta_kl: float = 0.04
    """Weight of the k3 KL penalty ``exp(ref - logp) - (ref - logp) - 1`` per token (the initial weight when
    ``target_kl`` is set); 0 disables the penalty (the KL is still measured and logged)."""
    target_kl: float | None = None
    """None: beta stays ``beta_kl``. Otherwise, after each step beta is multiplied by ``kl_adjust_up`` when the
    measured KL (token mean of k3 between the sampling policy and the reference) exceeds target_kl and by
    ``kl_adjust_down`` when it is below, as the control GRPO trainer does."""
    kl_adjust_up: float = 1.5
    """Multiplier of beta when the measured KL exceeds ``target_kl``."""
    kl_adjust_down: float = 1 / 1.5
    """Multiplier of beta when the measured KL is below ``target_kl``."""
    ref_update_freq: int = 0
    """Steps between copies of the policy into the reference model; 0: the reference stays the initial model."""
    num_iterations: int = 1
    """Optimisation passes over each generated batch (TRL's ``num_iterations``, GRPO's mu); above 1 (or with
    minibatches) the ratio is taken to the log-probabilities of the policy that sampled the batch."""
    minibatch_size: int | None = None
    """Completions per optimizer step (a divisor of the batch is not required: the last minibatch may be
    smaller); None: the whole batch in one step. Minibatches are drawn in a fresh seeded order every pass."""
    preset: str = "trl"
    """Group-advantage convention of ``rltrain.kernels.group_advantages``: "trl", "verl", "dr_grpo", "rltrain"."""
    scale_rewards: str | None = None
    """Advantage scale, overriding the preset's: "group" (group std), "batch" (batch std), "none" (mean only)."""
    loss_agg: str = "token-mean"
    """Loss aggregation of ``rltrain.kernels.aggregate_loss``: "token-mean", "token-sum", "seq-mean-token-sum",
    "seq-mean-token-mean", "seq-mean-token-sum-norm" (normalised by ``max_new_tokens``, Dr. GRPO)."""
    max_grad_norm: float | None = 1.0
    """Global gradient-norm clip; None disables it."""
    seed: int = 0
    """Seeds the prompt sampling, the minibatch order (a NumPy Generator) and torch's global RNG, which
    ``model.generate`` samples from; all are saved in checkpoints."""
    log_dir: str | None = None
    """Directory of the TensorBoard events and ``progress.csv`` (written directly into it); None: no files."""
    loggers: tuple[str, ...] = ("tensorboard", "csv")
    """Backends of ``rltrain.logger.Logger``: "tensorboard", "csv", "wandb"."""
    device: str = "auto"
    """Torch device of the policy, the reference and the reward model: "auto" (CUDA when available, else CPU),
    "cpu", "cuda", "cuda:1", ..."""
    bf16: bool = False
    """bfloat16 autocast for generation and the forward passes (CUDA only: a CPU device raises ``ValueError``,
    since CPU autocast would only slow a small model down and change its numbers)."""
    progress: bool = True
    """A progress bar on stderr during ``train`` (tqdm when installed, else one rewritten line)."""

    def __post_init__(self) -> None:
        if isinstance(self.loggers, list):
            self.loggers = tuple(self.loggers)
        self.validate()

    def validate(self) -> None:
        """Checks every field; raises ``TypeError``/``ValueError`` naming the first bad one."""
        integer(self.num_generations, "num_generations", lo=2)
        integer(self.prompts_per_step, "prompts_per_step", lo=1)
        integer(self.max_new_tokens, "max_new_tokens", lo=1)
        real(self.temperature, "temperature", lo=0.0, lo_open=True)
        real(self.top_p, "top_p", lo=0.0, hi=1.0, lo_open=True)
        real(self.lr, "lr", lo=0.0)
        real(self.clip_eps, "clip_eps", lo=0.0)
        optional_real(self.clip_eps_high, "clip_eps_high", lo=0.0)
        real(self.beta_kl, "beta_kl", lo=0.0)
        optional_real(self.target_kl, "target_kl", lo=0.0, lo_open=True)
        real(self.kl_adjust_up, "kl_adjust_up", lo=1.0)
        probability(self.kl_adjust_down, "kl_adjust_down")
        integer(self.ref_update_freq, "ref_update_freq", lo=0)
        integer(self.num_iterations, "num_iterations", lo=1)
        optional_integer(self.minibatch_size, "minibatch_size", lo=1)
        choice(self.preset, "preset", tuple(PRESETS))
        if self.scale_rewards is not None:
            choice(self.scale_rewards, "scale_rewards", ("group", "batch", "none"))
        choice(self.loss_agg, "loss_agg", AGGREGATE_MODES)
        optional_real(self.max_grad_norm, "max_grad_norm", lo=0.0, lo_open=True)
        integer(self.seed, "seed", lo=0, hi=2**63 - 1)
        if self.log_dir is not None and not isinstance(self.log_dir, str):
            raise TypeError(f"log_dir: expected None or a str, got {type(self.log_dir).__name__} {self.log_dir!r}")
        if not isinstance(self.loggers, tuple):
            raise TypeError(f"loggers: expected a tuple of str, got {type(self.loggers).__name__}")
        for name in self.loggers:
            choice(name, "loggers", _LOGGERS)
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device: expected a device name such as 'auto', 'cpu' or 'cuda', got {self.device!r}")
        for name in ("bf16", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name}: expected a bool, got {type(getattr(self, name)).__name__}")
        if self.bf16 and self.device.split(":")[0] not in ("auto", "cuda"):
            raise ValueError(f"bf16: bfloat16 autocast is for CUDA devices only, got device={self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (tuples become lists), as a checkpoint stores them."""
        return {f.name: (list(v) if isinstance(v, tuple) else v)
                for f in dataclasses.fields(self) for v in [getattr(self, f.name)]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LMGRPOConfig:
        """The config ``to_dict`` wrote; unknown keys raise ``ValueError`` (lists become tuples)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"config: unknown fields {unknown}")
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()}
        return cls(**kwargs)
