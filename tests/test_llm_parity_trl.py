"""rltrain's group advantages against TRL 1.16's own trainers: a tiny GRPOTrainer / RLOOTrainer is built in-process
(a 2-layer GPT-2 from a config, a character-level tokenizer, a few prompts: nothing is downloaded), its reward
functions return prescribed values, and the advantages that its ``_generate_and_score_completions`` computes for one
generation batch are compared with ``group_advantages(..., preset="trl")`` / ``rloo_advantages``.

Precision: the trainers run under ``torch.set_default_dtype(torch.float64)``, so TRL's reward tensor and all of its
advantage arithmetic are float64 (the advantages come back float64). TRL forces float32 in two places only: each
reward function's output (``torch.tensor(output, dtype=torch.float32)`` in ``_calculate_rewards``) and
``reward_weights`` (``torch.tensor(args.reward_weights, dtype=torch.float32)`` in ``__init__``). The rewards and
weights here are float32-exact, so those casts lose nothing and the comparison holds at 1e-6 (observed ~1e-15).
"""

from __future__ import annotations

import collections
import contextlib
import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("trl", reason="trl is not installed (it is in the test extra)")

import torch
from datasets import Dataset
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

from rltrain.kernels import group_advantages, rloo_advantages

# TRL 1.16 reads a transformers attribute that transformers 5 deprecates (trl/models/utils.py).
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

K = 4  # num_generations: the completions of a prompt are contiguous in TRL's generation batch
PROMPTS = ["abc", "hello", "xyz", "rl", "train"]
B = K * len(PROMPTS)
WEIGHTS = [0.75, -1.5]  # float32-exact
TOL = dict(rtol=1e-6, atol=1e-6)


@contextlib.contextmanager
def _float64() -> Iterator[None]:
    """float64 by default while TRL runs; the random states that TRL's Trainer reseeds (set_seed) and generation
    draws from are restored afterwards, so the rest of the suite is unaffected."""
    dtype, py_state, np_state = torch.get_default_dtype(), random.getstate(), np.random.get_state()
    torch.set_default_dtype(torch.float64)
    try:
        with torch.random.fork_rng():
            yield
    finally:
        torch.set_default_dtype(dtype)
        random.setstate(py_state)
        np.random.set_state(np_state)


@pytest.fixture(scope="module")
def rewards() -> np.ndarray:
    """[B, 2] float32-exact rewards; prompt 1's completions score equal in both columns, prompt 3's in column 0."""
    rng = np.random.default_rng(0)
    r = rng.standard_normal((B, 2)).astype(np.float32).astype(np.float64)
    r[K : 2 * K] = r[K]
    r[3 * K : 4 * K, 0] = r[3 * K, 0]
    return r


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("abcdefghijklmnopqrstuvwxyz ")}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")


class _Prescribed:
    """Reward functions that return the next prescribed column of rewards, one queue per function."""

    def __init__(self, n: int) -> None:
        self.queues: list[collections.deque[list[float]]] = [collections.deque() for _ in range(n)]
        self.funcs = [self._func(j) for j in range(n)]

    def _func(self, j: int) -> Callable[..., list[float]]:
        def reward(prompts: list[str], completions: list[str], **kwargs: Any) -> list[float]:
            values = self.queues[j].popleft()
            assert len(values) == len(completions)
            return values

        reward.__name__ = f"prescribed_{j}"
        return reward


@pytest.fixture(scope="module")
def build(tokenizer: PreTrainedTokenizerFast, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Any]:
    def make(trainer_cls: type, config_cls: type, n_funcs: int, **options: Any) -> tuple[Any, _Prescribed]:
        prescribed = _Prescribed(n_funcs)
        with _float64():
            torch.manual_seed(0)
            model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=16, n_layer=2,
                                               n_head=2, bos_token_id=1, eos_token_id=1, pad_token_id=0))
            args = config_cls(output_dir=str(tmp_path_factory.mktemp("trl")), per_device_train_batch_size=B,
                              num_generations=K, max_completion_length=3, report_to="none", use_cpu=True,
                              bf16=False, activation_checkpointing=False, seed=0, **options)
            trainer = trainer_cls(model=model, reward_funcs=prescribed.funcs, args=args,
                                  train_dataset=Dataset.from_dict({"prompt": PROMPTS}), processing_class=tokenizer)
        return trainer, prescribed

    return make


def _trl_advantages(trainer: Any, prescribed: _Prescribed, rewards: np.ndarray) -> np.ndarray:
    """TRL's advantages for one generation batch (each prompt K times, as its RepeatSampler yields them)."""
    for j, queue in enumerate(prescribed.queues):
        queue.append(rewards[:, j].tolist())
    with _float64():
        out = trainer._generate_and_score_completions([{"prompt": p} for p in PROMPTS for _ in range(K)])
    assert all(not q for q in prescribed.queues), "TRL did not call every reward function once"
    advantages = out["advantages"]
    assert advantages.dtype == torch.float64 and advantages.shape == (B,)
    return advantages.numpy()


@pytest.mark.parametrize("n_funcs", [1, 2], ids=["one_reward", "two_weighted_rewards"])
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_sum_then_normalize(build: Callable[..., Any], rewards: np.ndarray, scale: str, n_funcs: int) -> None:
    weights = WEIGHTS if n_funcs == 2 else None
    trainer, prescribed = build(GRPOTrainer, GRPOConfig, n_funcs, scale_rewards=scale, reward_weights=weights)
    got = _trl_advantages(trainer, prescribed, rewards[:, :n_funcs])
    ours = group_advantages(rewards[:, :n_funcs] if n_funcs == 2 else rewards[:, 0], group_size=K, preset="trl",
                            scale=scale, reward_weights=weights)
    np.testing.assert_allclose(ours, got, **TOL)
    assert (got[K : 2 * K] == 0).all() and (ours[K : 2 * K] == 0).all()  # the group of equal rewards


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_normalize_then_sum(build: Callable[..., Any], rewards: np.ndarray, scale: str) -> None:
    # TRL's normalize_then_sum normalises each reward column per group whatever scale_rewards says, then
    # whitens the weighted sum over the batch: rltrain's combine="normalize_then_sum" with the preset's scale.
    trainer, prescribed = build(GRPOTrainer, GRPOConfig, 2, scale_rewards=scale, reward_weights=WEIGHTS,
                                multi_objective_aggregation="normalize_then_sum")
    got = _trl_advantages(trainer, prescribed, rewards)
    ours = group_advantages(rewards, group_size=K, preset="trl", reward_weights=WEIGHTS, combine="normalize_then_sum")
    np.testing.assert_allclose(ours, got, **TOL)


def test_grpo_all_rewards_equal(build: Callable[..., Any]) -> None:
    trainer, prescribed = build(GRPOTrainer, GRPOConfig, 1, scale_rewards="batch")
    equal = np.full((B, 1), 0.5)
    got = _trl_advantages(trainer, prescribed, equal)
    np.testing.assert_allclose(group_advantages(equal[:, 0], group_size=K, preset="trl", scale="batch"), got, **TOL)
    assert (got == 0).all()


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "normalize_advantages"])
def test_rloo(build: Callable[..., Any], rewards: np.ndarray, normalize: bool) -> None:
    trainer, prescribed = build(RLOOTrainer, RLOOConfig, 2, reward_weights=WEIGHTS, beta=0.0,
                                normalize_advantages=normalize)
    got = _trl_advantages(trainer, prescribed, rewards)
    ours = rloo_advantages(rewards @ np.asarray(WEIGHTS), group_size=K)
    if normalize:  # TRL: (a - nanmean(a)) / (nanstd(a) + 1e-4), nanstd with Bessel's correction
        ours = (ours - ours.mean()) / (ours.std(ddof=1) + 1e-4)
    np.testing.assert_allclose(ours, got, **TOL)
    if not normalize:
        assert (got[K : 2 * K] == 0).all()
