"""Compiled kernels: GAE, discounted returns, group (GRPO) advantages, running statistics, the PPO loss, the group
(GRPO, RLOO) and per-token kernels of language-model RL (token returns and GAE, masked whitening, KL estimates, loss
aggregation).

Each function validates its arguments (raising ValueError/TypeError that name the argument and the expected
versus actual shape or dtype), converts torch tensors and non-contiguous arrays, and calls the C++ core with
the GIL released. ``rltrain.reference`` holds the NumPy specification of every function here.

torch in -> torch out on the same device: CUDA inputs are computed on the host and copied back, except that the
language-model kernels run their torch implementation (``_torch_paths``) on the device where ``CUDA_PATH`` says that
measured faster; the checks are the same either way. CPU inputs that are already C-contiguous with a supported dtype
are read without copying; ``out=`` avoids allocation.
Importing this package costs NumPy and ``rltrain._core`` only (torch is imported when a tensor is passed in).

Layout: ``advantages`` (GAE, returns, group advantages), ``llm_group`` (LLM group and RLOO advantages),
``llm_token`` (per-token LLM kernels), ``llm_loss`` (``aggregate_loss``, torch), ``running_stats``, ``loss``
(PPO), ``_threads`` (pool size) and ``_convert`` (NumPy/torch in and out, ``out=``, aliasing, the fast-path test).
"""

from __future__ import annotations

from rltrain.kernels._threads import get_num_threads, set_num_threads
from rltrain.kernels.advantages import (
    discounted_returns,
    episodic_advantages,
    gae,
    group_normalize,
    hybrid_advantages,
    per_step_advantages,
)
from rltrain.kernels.llm_group import group_advantages, rloo_advantages
from rltrain.kernels.llm_loss import aggregate_loss
from rltrain.kernels.llm_token import kl_estimate, masked_whiten, token_gae, token_returns
from rltrain.kernels.loss import ppo_loss_grad
from rltrain.kernels.running_stats import RewardNormalizer, RunningMeanStd

__all__ = [
    "RewardNormalizer",
    "RunningMeanStd",
    "aggregate_loss",
    "discounted_returns",
    "episodic_advantages",
    "gae",
    "get_num_threads",
    "group_advantages",
    "group_normalize",
    "hybrid_advantages",
    "kl_estimate",
    "masked_whiten",
    "per_step_advantages",
    "ppo_loss_grad",
    "rloo_advantages",
    "set_num_threads",
    "token_gae",
    "token_returns",
]
