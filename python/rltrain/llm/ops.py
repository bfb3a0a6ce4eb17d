"""The tensor operations of one language-model GRPO step, free of trainer state: padding, the completion mask,
per-token log-probabilities, reward-model scores and the clipped-ratio + k3 token loss (Shao et al. 2024, eq. 3;
the KL estimator of Schulman 2020). Each is a plain function so tests can check it against a hand computation.

Positions are taken from the attention mask (``cumsum - 1``), as ``generate`` does for left-padded prompts, so a
sequence gets the same log-probabilities and scores whatever padding shares its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from rltrain import kernels

__all__ = ["completion_mask", "grpo_token_loss", "pad_sequences", "position_ids", "reward_scores", "token_logprobs"]


def pad_sequences(seqs: Sequence[Sequence[int]], pad_id: int, *, side: str = "left",
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id lists padded with ``pad_id`` on ``side`` to the longest: ``(input_ids, attention_mask)``, both
    int64 ``[B, L]``; the mask is 1 on real tokens."""
    if side not in ("left", "right"):
        raise ValueError(f"side: expected 'left' or 'right', got {side!r}")
    length = max((len(s) for s in seqs), default=0)
    ids = torch.full((len(seqs), length), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            sl = slice(length - len(s), length) if side == "left" else slice(0, len(s))
            ids[i, sl] = torch.as_tensor(list(s), dtype=torch.long)
            mask[i, sl] = 1
    return ids.to(device), mask.to(device)


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over the real tokens only (0 at the first one; padding gets 0): what ``generate``
    gives a left-padded prompt."""
    return (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)


def completion_mask(tokens: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 on the generated tokens up to and including the first ``eos_token_id`` of each row, 0 after it (the
    padding ``generate`` appends to finished rows, or anything else there). A row without EOS (cut at
    ``max_new_tokens``) is kept whole. ``tokens``: int ``[B, L]``; returns int64 ``[B, L]``."""
    is_eos = (tokens == eos_token_id).long()
    eos_before = is_eos.cumsum(-1) - is_eos  # EOS tokens strictly before each position
    return (eos_before == 0).long()


def token_logprobs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_completion: int, *,
                   temperature: float = 1.0, with_entropy: bool = False,
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities ``[B, n_completion]`` (float32) of the last ``n_completion`` tokens of ``input_ids``
    under ``model`` with its logits divided by ``temperature`` (the distribution they were sampled from), from one
    forward pass over prompt + completion; with ``with_entropy`` also the entropy of that distribution at each of
    those positions (no gradient)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                use_cache=False)
    # The logit at position t predicts token t + 1.
    logits = out.logits[:, -n_completion - 1:-1].float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, input_ids[:, -n_completion:, None]).squeeze(-1)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy


def reward_scores(reward_model: Any, tokenizer: Any, texts: Sequence[str], *,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Scores ``[B]`` (float32) of ``texts`` by a sequence-classification reward model: ``logits[:, 0]`` at each
    text's last token. Texts are tokenised by ``tokenizer`` and padded on its ``padding_side`` with positions from
    the attention mask, so a text's score does not depend on the batch. Differentiable (wrap it in
    ``torch.no_grad()`` to score; call it as it is to fit a reward model with the same scores)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("reward_tokenizer: expected a pad or eos token")
    seqs = tokenizer(list(texts))["input_ids"]
    if any(len(s) == 0 for s in seqs):
        raise ValueError("texts: a text encodes to no tokens; the reward model cannot score it")
    ids, mask = pad_sequences(seqs, pad, side=getattr(tokenizer, "padding_side", "right") or "right", device=device)
    out = reward_model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask), use_cache=False)
    scores: torch.Tensor = out.logits[:, 0].float()
    return scores


def grpo_token_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, *, clip_eps: float, clip_eps_high: float, beta: float,
                    loss_agg: str = "token-mean", norm_constant: float | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRPO loss of a batch and, per token, whether the clip was active (bool ``[B, L]``).

    Per token: ``-min(r * A, clip(r, 1 - clip_eps, 1 + clip_eps_high) * A) + beta * k3`` with the ratio
    ``r = exp(logp - old_logp)``, ``A`` the sequence's advantage and ``k3 = exp(ref - logp) - (ref - logp) - 1``
    (differentiable in ``logp``); reduced over ``mask`` by ``rltrain.kernels.aggregate_loss(mode=loss_agg)``.
    The clip is active where the clipped term is the smaller one: ``r < 1 - clip_eps`` with ``A < 0``, or
    ``r > 1 + clip_eps_high`` with ``A > 0`` (TRL's ``clip_ratio``)."""
    adv = advantages[:, None].to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    clipped_ratio = torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps_high)
    per_token = -torch.min(ratio * adv, clipped_ratio * adv)
    if beta != 0.0:
        d = ref_logp - logp
        per_token = per_token + beta * (torch.exp(d) - d - 1.0)
    kwargs = {"norm_constant": norm_constant} if loss_agg == "seq-mean-token-sum-norm" else {}
    loss = kernels.aggregate_loss(per_token, mask, mode=loss_agg, **kwargs)
    with torch.no_grad():
        active = ((ratio < 1.0 - clip_eps) & (adv < 0)) | ((ratio > 1.0 + clip_eps_high) & (adv > 0))
        active &= mask.bool()
    return loss, active
