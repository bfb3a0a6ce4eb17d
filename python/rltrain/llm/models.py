"""Tiny language models built in-process, nothing downloaded: a character-level tokenizer made with the
``tokenizers`` library, a GPT-2 causal LM and a GPT-2 reward model (sequence classification, one logit) from a
``GPT2Config`` with random weights. For tests, demos and CI machines that reach no model hub.

transformers and tokenizers are imported inside the functions (extra ``[llm]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rltrain._checks import integer

if TYPE_CHECKING:
    from transformers import GPT2ForSequenceClassification, GPT2LMHeadModel, PreTrainedTokenizerFast

__all__ = ["SPECIAL_TOKENS", "char_tokenizer", "tiny_causal_lm", "tiny_reward_model"]

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")
"""The special tokens of ``char_tokenizer``, with ids 0, 1, 2, 3 in this order."""


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A character-level tokenizer: each character of ``alphabet`` (duplicates ignored, any character, spaces
    and newlines included) is one token, after the special tokens ``<pad>`` (id 0), ``<bos>`` (1), ``<eos>`` (2)
    and ``<unk>`` (3); any other character encodes as ``<unk>``. A ``tokenizers`` WordLevel model over single
    characters, wrapped in ``PreTrainedTokenizerFast`` with pad/bos/eos/unk set and ``padding_side="left"``
    (decoder-only generation). Encoding adds no special tokens (append ``tokenizer.eos_token`` yourself where a
    text should end); decoding joins the characters without separators."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    fast: Any = PreTrainedTokenizerFast  # partly annotated: its constructor is not
    if not isinstance(alphabet, str):
        raise TypeError(f"alphabet: expected a str, got {type(alphabet).__name__}")
    if not alphabet:
        raise ValueError("alphabet: expected at least one character, got ''")
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for ch in alphabet:
        vocab.setdefault(ch, len(vocab))
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # every character alone
    tk.decoder = decoders.Fuse()
    pad, bos, eos, unk = SPECIAL_TOKENS
    tokenizer: PreTrainedTokenizerFast = fast(tokenizer_object=tk, pad_token=pad, bos_token=bos, eos_token=eos,
                                              unk_token=unk, padding_side="left")
    return tokenizer


def _gpt2_config(tokenizer: Any, n_layer: int, n_embd: int, n_head: int, n_positions: int, **extra: Any) -> Any:
    from transformers import GPT2Config

    integer(n_layer, "n_layer", lo=1)
    integer(n_embd, "n_embd", lo=1)
    integer(n_head, "n_head", lo=1)
    integer(n_positions, "n_positions", lo=1)
    if n_embd % n_head:
        raise ValueError(f"n_head: expected a divisor of n_embd = {n_embd}, got {n_head}")
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("tokenizer: expected pad and eos tokens (char_tokenizer sets them)")
    # No dropout: RL ratios compare two forward passes of the same weights, which dropout would make differ.
    return GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                      n_head=n_head, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                      summary_first_dropout=0.0, **extra)


def _seeded(seed: int, build: Any) -> Any:
    """``build()`` under ``torch.manual_seed(seed)``, leaving the caller's global torch RNG as it was."""
    import torch

    integer(seed, "seed", lo=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def tiny_causal_lm(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 64,
                   seed: int = 0) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 causal LM (``GPT2LMHeadModel``) for ``tokenizer``: vocabulary ``len(tokenizer)``,
    pad/bos/eos ids from the tokenizer, no dropout, weights drawn from ``seed`` (the global torch RNG is left
    untouched). ``n_positions`` bounds prompt plus completion length."""
    from transformers import GPT2LMHeadModel

    cfg = _gpt2_config(tokenizer, n_layer, n_embd, n_head, n_positions)
    model: GPT2LMHeadModel = _seeded(seed, lambda: GPT2LMHeadModel(cfg))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def tiny_reward_model(tokenizer: Any, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_positions: int = 64,
                      seed: int = 0) -> GPT2ForSequenceClassification:
    """A randomly initialised GPT-2 reward model (``GPT2ForSequenceClassification``, ``num_labels=1``: the score
    is ``logits[:, 0]`` at the last non-pad token, left or right padding alike), built as ``tiny_causal_lm``."""
    from transformers import GPT2ForSequenceClassification

    cfg = _gpt2_config(tokenizer, n_layer, n_embd, n_head, n_positions, num_labels=1)
    model: GPT2ForSequenceClassification = _seeded(seed, lambda: GPT2ForSequenceClassification(cfg))
    return model
