"""GRPO for causal language models (SPEC §7; extra ``[llm]`` = transformers + tokenizers).

``LMGRPOConfig`` / ``LMGRPOTrainer`` train any Hugging Face causal LM against a Python reward function or a
sequence-classification reward model; ``char_tokenizer``, ``tiny_causal_lm`` and ``tiny_reward_model`` build small
models in-process (nothing downloaded); ``reward_scores`` scores texts with a reward model exactly as the trainer
does (differentiable, so a reward model can be fitted with it). Names load lazily (PEP 562): ``import rltrain.llm``
costs nothing heavy, ``LMGRPOConfig`` costs NumPy, the trainer and ``reward_scores`` torch, the model builders
transformers.

Layout: ``config`` (the dataclass), ``trainer`` (generation, rewards, the GRPO update, logging, checkpoints),
``ops`` (padding, the completion mask, log-probabilities, reward scores, the token loss), ``models`` (the tiny
tokenizer and models).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rltrain.llm.config import LMGRPOConfig
    from rltrain.llm.models import char_tokenizer, tiny_causal_lm, tiny_reward_model
    from rltrain.llm.ops import reward_scores
    from rltrain.llm.trainer import LMGRPOTrainer

__all__ = ["LMGRPOConfig", "LMGRPOTrainer", "char_tokenizer", "reward_scores", "tiny_causal_lm", "tiny_reward_model"]

_LAZY = {
    "LMGRPOConfig": "rltrain.llm.config",
    "LMGRPOTrainer": "rltrain.llm.trainer",
    "char_tokenizer": "rltrain.llm.models",
    "tiny_causal_lm": "rltrain.llm.models",
    "tiny_reward_model": "rltrain.llm.models",
    "reward_scores": "rltrain.llm.ops",
}
"""Public name -> the module defining it."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
