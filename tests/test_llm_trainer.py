"""rltrain.llm (SPEC §7): GRPO on a causal language model. Tiny GPT-2 models and a character tokenizer are built
in-process (nothing downloaded) and trained for a few steps on CPU: masks, the loss against a hand computation,
learning on a trivial task, exact resume, logs, config and argument checks, the light package face."""

from __future__ import annotations

import copy
import csv
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("transformers", reason="rltrain.llm needs the [llm] extra")
pytest.importorskip("tokenizers", reason="rltrain.llm needs the [llm] extra")

import torch

from rltrain.llm import (
    LMGRPOConfig,
    LMGRPOTrainer,
    char_tokenizer,
    reward_scores,
    tiny_causal_lm,
    tiny_reward_model,
)
from rltrain.llm.ops import completion_mask, grpo_token_loss, pad_sequences, position_ids, token_logprobs
from rltrain.llm.trainer import Rollout

ALPHABET = "abcd"
PROMPTS = ["ab", "cd", "bca", "d", "abcd", "cc"]
METRICS = ("reward_mean", "reward_std", "kl", "entropy", "clip_frac", "completion_len", "gen_tokens_per_s",
           "update_tokens_per_s", "beta", "loss", "step")
TIMING = ("gen_tokens_per_s", "update_tokens_per_s", "gen_seconds", "update_seconds")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny models gain nothing from threads
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok() -> object:
    return char_tokenizer(ALPHABET)


def frac_a(prompts: list[str], completions: list[str]) -> list[float]:
    return [c.count("a") / max(len(c), 1) for c in completions]


def small_cfg(**kw: object) -> LMGRPOConfig:
    base: dict[str, object] = dict(num_generations=4, prompts_per_step=2, max_new_tokens=6, progress=False,
                                   device="cpu")
    base.update(kw)
    return LMGRPOConfig(**base)  # type: ignore[arg-type]


def model(tok: object, seed: int = 0) -> torch.nn.Module:
    return tiny_causal_lm(tok, n_layer=2, n_embd=32, n_head=4, n_positions=32, seed=seed)


def without_timing(h: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in h.items() if k not in TIMING}


# ------------------------------------------------------------------------------------------------ config


def test_config_defaults_are_the_contract() -> None:
    c = LMGRPOConfig()
    assert (c.num_generations, c.prompts_per_step, c.max_new_tokens, c.temperature, c.top_p) == (8, 4, 16, 1.0, 1.0)
    assert (c.lr, c.clip_eps, c.clip_eps_high, c.beta_kl, c.target_kl) == (1e-4, 0.2, None, 0.04, None)
    assert (c.kl_adjust_up, c.kl_adjust_down, c.ref_update_freq, c.num_iterations) == (1.5, 1 / 1.5, 0, 1)
    assert (c.minibatch_size, c.preset, c.scale_rewards, c.loss_agg, c.max_grad_norm) == (None, "trl", None,
                                                                                           "token-mean", 1.0)
    assert (c.seed, c.log_dir, c.loggers, c.device, c.bf16, c.progress) == (0, None, ("tensorboard", "csv"), "auto",
                                                                           False, True)
    assert LMGRPOConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c


@pytest.mark.parametrize(("field", "value", "exc"), [
    ("num_generations", 1, ValueError), ("num_generations", 2.0, TypeError), ("prompts_per_step", 0, ValueError),
    ("max_new_tokens", 0, ValueError), ("temperature", 0.0, ValueError), ("top_p", 1.5, ValueError),
    ("top_p", 0.0, ValueError), ("lr", -1.0, ValueError), ("clip_eps", "0.2", TypeError),
    ("clip_eps_high", -0.1, ValueError), ("beta_kl", -0.1, ValueError), ("target_kl", 0.0, ValueError),
    ("kl_adjust_up", 0.5, ValueError), ("kl_adjust_down", 2.0, ValueError), ("ref_update_freq", -1, ValueError),
    ("num_iterations", 0, ValueError), ("minibatch_size", 0, ValueError), ("preset", "nope", ValueError),
    ("scale_rewards", "seq", ValueError), ("loss_agg", "mean", ValueError), ("max_grad_norm", 0.0, ValueError),
    ("seed", -1, ValueError), ("log_dir", 3, TypeError), ("loggers", ("csv", "stdout"), ValueError),
    ("loggers", "csv", TypeError), ("device", "", TypeError), ("bf16", 1, TypeError), ("progress", None, TypeError),
])
def test_config_rejects_bad_fields(field: str, value: object, exc: type[Exception]) -> None:
    with pytest.raises(exc, match=field):
        LMGRPOConfig(**{field: value})  # type: ignore[arg-type]
    cfg = LMGRPOConfig()
    setattr(cfg, field, value)
    with pytest.raises(exc, match=field):
        cfg.validate()


def test_bf16_is_for_cuda_only(tok: object) -> None:
    with pytest.raises(ValueError, match="bf16"):
        LMGRPOConfig(bf16=True, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="bf16"):
            LMGRPOTrainer(model(tok), tok, small_cfg(bf16=True, device="auto"), PROMPTS, reward_fn=frac_a)


# ------------------------------------------------------------------------------------- tokenizer, models


def test_char_tokenizer(tok: object) -> None:
    t = tok
    assert (t.pad_token_id, t.bos_token_id, t.eos_token_id, t.unk_token_id) == (0, 1, 2, 3)  # type: ignore[attr-defined]
    assert t.padding_side == "left" and len(t) == 4 + len(ALPHABET)  # type: ignore[attr-defined, arg-type]
    ids = t("abz")["input_ids"]  # type: ignore[operator]
    assert ids == [4, 5, 3]
    assert t.decode([4, 5, 2, 0, 0], skip_special_tokens=True) == "ab"  # type: ignore[attr-defined]
    spaced = char_tokenizer("a b\n")
    assert spaced.decode(spaced("b a\n")["input_ids"]) == "b a\n"
    with pytest.raises(ValueError, match="alphabet"):
        char_tokenizer("")


def test_tiny_models_are_seeded_and_leave_the_global_rng(tok: object) -> None:
    state = torch.get_rng_state()
    a, b, c = model(tok, 0), model(tok, 0), model(tok, 1)
    assert torch.equal(torch.get_rng_state(), state)
    pa, pb, pc = (torch.nn.utils.parameters_to_vector(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
    assert a.config.vocab_size == len(tok) and a.config.eos_token_id == 2 and a.config.pad_token_id == 0  # type: ignore[arg-type]
    rm = tiny_reward_model(tok, n_layer=1, n_embd=16, n_head=2)
    assert rm.config.num_labels == 1 and rm.config.pad_token_id == 0
    with pytest.raises(ValueError, match="n_head"):
        tiny_causal_lm(tok, n_embd=30, n_head=4)


# --------------------------------------------------------------------------------------------- the ops


def test_completion_mask_cuts_after_the_first_eos() -> None:
    eos = 2
    tokens = torch.tensor([[5, 6, 2, 0, 0],    # EOS then generate's padding
                           [2, 5, 2, 7, 0],    # EOS first: only it is scored
                           [5, 6, 7, 8, 9],    # cut at max_new_tokens: kept whole
                           [5, 0, 6, 2, 4]])   # a generated pad token before EOS is a token like any other
    want = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 0]])
    assert torch.equal(completion_mask(tokens, eos), want)


def test_pad_sequences_and_positions() -> None:
    ids, mask = pad_sequences([[4, 5, 6], [7]], 0, side="left")
    assert ids.tolist() == [[4, 5, 6], [0, 0, 7]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert position_ids(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    ids, mask = pad_sequences([[4, 5, 6], [7]], 0, side="right")
    assert ids.tolist() == [[4, 5, 6], [7, 0, 0]]


def test_logprobs_are_those_generate_sampled_from(tok: object) -> None:
    # Left padding shifts nothing: the training forward sees the positions generate gave the prompt.
    m = model(tok).eval()
    torch.manual_seed(0)
    ids, mask = pad_sequences([[4, 5, 6, 7], [5], [6, 4]], 0, side="left")
    out = m.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
                     max_new_tokens=5, pad_token_id=0, eos_token_id=2, output_scores=True,
                     return_dict_in_generate=True)
    comp = out.sequences[:, ids.shape[1]:]
    sampled = torch.stack(out.scores, 1).log_softmax(-1).gather(-1, comp[..., None])[..., 0]
    cmask = completion_mask(comp, 2)
    logp, ent = token_logprobs(m, out.sequences, torch.cat([mask, cmask], 1), comp.shape[1], temperature=0.7,
                               with_entropy=True)
    keep = cmask.bool()
    torch.testing.assert_close(logp[keep], sampled[keep], atol=1e-5, rtol=1e-5)
    assert ent is not None and ent.shape == logp.shape and bool((ent > 0).all())


def test_reward_scores_do_not_depend_on_the_batch(tok: object) -> None:
    rm = tiny_reward_model(tok, n_layer=1, n_embd=16, n_head=2).eval()
    texts = ["abcd", "a", "cab"]
    with torch.no_grad():
        together = reward_scores(rm, tok, texts)
        alone = torch.cat([reward_scores(rm, tok, [t]) for t in texts])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert reward_scores(rm, tok, texts).requires_grad  # usable to fit the reward model


def test_grpo_token_loss_by_hand() -> None:
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -1.2, -4.0]], requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.2, -2.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    adv = torch.tensor([0.7, -1.3])
    beta = 0.1
    loss, active = grpo_token_loss(logp, logp.detach(), ref, adv, mask, clip_eps=0.2, clip_eps_high=0.3, beta=beta)
    d = (ref - logp.detach()).double()
    k3 = torch.exp(d) - d - 1
    m = mask.double()
    want = (-(adv.double()[:, None] * m).sum() + beta * (k3 * m).sum()) / m.sum()  # ratio 1: -mean(A) + beta * kl
    assert math.isclose(float(loss.detach()), float(want), rel_tol=1e-6)
    assert not bool(active.any())
    loss.backward()
    assert logp.grad is not None and float(logp.grad[1, 2]) == 0.0  # the masked token gets no gradient

    # Ratios outside [1 - 0.2, 1 + 0.3]: the clip is active where it binds (r > 1.3 with A > 0, r < 0.8 with A < 0).
    old = torch.log(torch.tensor([[1.0, 2.0, 0.5], [1.0, 2.0, 0.5]]))
    lp = torch.zeros(2, 3, requires_grad=True)  # ratio = 1 / old = [[1, 0.5, 2], [1, 0.5, 2]]
    loss, active = grpo_token_loss(lp, old, lp.detach(), adv, torch.ones(2, 3), clip_eps=0.2, clip_eps_high=0.3,
                                   beta=0.0)
    assert active.tolist() == [[False, False, True], [False, True, False]]
    loss.backward()
    assert lp.grad is not None and float(lp.grad[0, 2]) == 0.0 and float(lp.grad[1, 1]) == 0.0
    assert float(lp.grad[0, 1]) != 0.0  # r < 0.8 with A > 0: the unclipped term is the minimum


# --------------------------------------------------------------------------------------------- the trainer


def crafted_rollout(tok: object, tail: int = 0, extra_pad: int = 0) -> tuple[Rollout, np.ndarray]:
    """Two groups of two: prompts of different lengths; EOS in the middle (then ``tail`` after it), at the start,
    none at all."""
    prompts = ["ab", "ab", "c", "c"]
    p_ids, p_mask = pad_sequences([[4, 5], [4, 5], [6], [6]], 0, side="left")
    if extra_pad:
        p_ids = torch.cat([torch.zeros(4, extra_pad, dtype=torch.long), p_ids], 1)
        p_mask = torch.cat([torch.zeros(4, extra_pad, dtype=torch.long), p_mask], 1)
    comp = torch.tensor([[4, 6, 2, tail, tail], [2, tail, tail, tail, tail], [5, 5, 5, 5, 5], [7, 2, tail, tail, tail]])
    cmask = completion_mask(comp, 2)
    roll = Rollout(prompts, p_ids, p_mask, comp, cmask, ["ac", "", "bbbbb", "d"])
    return roll, np.array([1.0, -1.0, 0.5, -0.5])


def test_update_loss_is_the_hand_computation(tok: object) -> None:
    beta = 0.3
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(beta_kl=beta), PROMPTS, reward_fn=frac_a)
    with torch.no_grad():  # a reference different from the policy, so the KL term is not zero
        for p in tr.ref_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    roll, adv = crafted_rollout(tok)
    ids = torch.cat([roll.prompt_ids, roll.completion_ids], 1)
    attn = torch.cat([roll.prompt_mask, roll.completion_mask], 1)
    with torch.no_grad():
        logp = token_logprobs(tr.model, ids, attn, 5)[0].double()
        ref = token_logprobs(tr.ref_model, ids, attn, 5)[0].double()
    m = roll.completion_mask.double()
    k3 = torch.exp(ref - logp) - (ref - logp) - 1
    kl = float((k3 * m).sum() / m.sum())
    want = -float((torch.tensor(adv)[:, None] * m).sum() / m.sum()) + beta * kl
    stats = tr._update(roll, adv)
    assert math.isclose(stats["loss"], want, rel_tol=1e-5, abs_tol=1e-6)
    assert math.isclose(stats["kl"], kl, rel_tol=1e-5) and kl > 0
    assert stats["clip_frac"] == 0.0 and stats["entropy"] > 0


def test_padding_and_tokens_after_eos_get_no_loss(tok: object) -> None:
    # Whatever follows EOS, and however much left padding the prompts carry, the update is the same.
    results = []
    for tail, pad in ((0, 0), (7, 0), (5, 3)):
        tr = LMGRPOTrainer(model(tok), tok, small_cfg(beta_kl=0.1), PROMPTS, reward_fn=frac_a)
        roll, adv = crafted_rollout(tok, tail=tail, extra_pad=pad)
        stats = tr._update(roll, adv)
        results.append((stats["loss"], torch.nn.utils.parameters_to_vector(tr.model.parameters()).detach()))
    for loss, params in results[1:]:
        assert math.isclose(loss, results[0][0], rel_tol=1e-5, abs_tol=1e-7)
        torch.testing.assert_close(params, results[0][1], atol=1e-6, rtol=0)


def test_generated_eos_ends_the_completion(tok: object) -> None:
    m = model(tok)
    with torch.no_grad():  # a model that ignores its input and says EOS with probability ~0.7 at every step
        u = torch.zeros(32)
        u[0] = 1.0
        m.transformer.ln_f.weight.zero_()
        m.transformer.ln_f.bias.copy_(u)
        m.transformer.wte.weight[:, 0] = 0.0
        m.transformer.wte.weight[2, 0] = 3.0  # tied head: the EOS logit is 3, every other one 0
    tr = LMGRPOTrainer(m, tok, small_cfg(num_generations=8, max_new_tokens=6), PROMPTS, reward_fn=frac_a)
    roll, _ = tr._rollout()
    comp, cmask = roll.completion_ids, roll.completion_mask
    lengths = cmask.sum(-1)
    ended = (comp == 2).any(-1)
    assert bool(ended.any()) and bool((lengths < comp.shape[1]).any())
    for row, n, text, done in zip(comp.tolist(), lengths.tolist(), roll.completions, ended.tolist()):
        if done:
            assert row[n - 1] == 2 and 2 not in row[: n - 1]
            assert all(t == 0 for t in row[n:])  # generate's padding, masked
        assert text == tok.decode(row[:n], skip_special_tokens=True)  # type: ignore[attr-defined]
        assert "<" not in text


def test_two_steps_with_a_reward_function(tok: object) -> None:
    seen: list[tuple[list[str], list[str]]] = []

    def reward(prompts: list[str], completions: list[str]) -> list[float]:
        seen.append((prompts, completions))
        return frac_a(prompts, completions)

    tr = LMGRPOTrainer(model(tok), tok, small_cfg(), PROMPTS, reward_fn=reward)
    hist = tr.train(2)
    assert tr.step == 2 and len(hist) == 2 and tr.history == hist
    for h in hist:
        assert set(METRICS) <= set(h) and all(math.isfinite(v) for v in h.values())
        assert 1 <= h["completion_len"] <= 6
    prompts, completions = seen[0]
    assert len(prompts) == len(completions) == 8
    assert all(prompts[i] == prompts[i - i % 4] for i in range(8)) and set(prompts) <= set(PROMPTS)
    assert hist[0]["kl"] == 0.0  # the sampling policy is the reference at the first step


def test_two_steps_with_a_reward_model(tok: object) -> None:
    rm = tiny_reward_model(tok, n_layer=1, n_embd=16, n_head=2, seed=3)
    before = [p.detach().clone() for p in rm.parameters()]
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(), PROMPTS, reward_model=rm)
    hist = tr.train(2)
    assert len(hist) == 2 and all(math.isfinite(h["reward_mean"]) and h["reward_std"] > 0 for h in hist)
    assert all(torch.equal(a, b) for a, b in zip(before, rm.parameters()))  # scored, never trained


def test_grpo_raises_the_reward_on_a_learnable_task(tok: object) -> None:
    cfg = small_cfg(num_generations=8, prompts_per_step=4, max_new_tokens=8, lr=3e-3, beta_kl=0.0, seed=1)
    tr = LMGRPOTrainer(model(tok), tok, cfg, PROMPTS, reward_fn=frac_a)
    hist = tr.train(30)
    first = np.mean([h["reward_mean"] for h in hist[:5]])
    last = np.mean([h["reward_mean"] for h in hist[-5:]])
    assert first < 0.45 and last > 0.8, (first, last)
    greedy = tr.generate(["ab", "cd"], greedy=True)
    assert all(g.count("a") >= len(g) // 2 for g in greedy), greedy


def test_same_seed_same_run(tok: object) -> None:
    runs = []
    for _ in range(2):
        tr = LMGRPOTrainer(model(tok), tok, small_cfg(num_iterations=2, minibatch_size=3), PROMPTS,
                           reward_fn=frac_a)
        runs.append([without_timing(h) for h in tr.train(2)])
    assert runs[0] == runs[1]


def test_save_and_load_continue_exactly(tok: object, tmp_path: pathlib.Path) -> None:
    # Several passes, shuffled minibatches, an adaptive beta and a reference refreshed at step 3: every piece of
    # state a resumed run needs.
    cfg = small_cfg(num_iterations=2, minibatch_size=3, target_kl=1e-4, ref_update_freq=3, lr=1e-3)
    tr = LMGRPOTrainer(model(tok), tok, cfg, PROMPTS, reward_fn=frac_a)
    tr.train(2)
    path = tr.save(str(tmp_path / "ckpt.pt"))
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt"]  # no temporary file left behind
    straight = [without_timing(h) for h in tr.train(2)]

    fresh = model(tok, seed=7)  # other weights, overwritten by the checkpoint's
    resumed = LMGRPOTrainer.load(path, fresh, tok, PROMPTS, reward_fn=frac_a)
    assert resumed.step == 2 and len(resumed.history) == 2 and resumed.model is fresh
    again = [without_timing(h) for h in resumed.train(2)]
    assert again == straight
    assert resumed.beta == tr.beta and resumed.step == tr.step == 4
    for a, b in zip(tr.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(tr.ref_model.state_dict().values(), resumed.ref_model.state_dict().values()):
        assert torch.equal(a, b)


def test_load_refuses_other_files(tok: object, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"format": "rltrain-checkpoint-2"}, path)
    with pytest.raises(ValueError, match="not an rltrain language-model checkpoint"):
        LMGRPOTrainer.load(str(path), model(tok), tok, PROMPTS, reward_fn=frac_a)
    torch.save({"format": "rltrain-lm-checkpoint-1", "config": {"lr": {"a": torch.zeros(1)}}}, path)
    with pytest.raises(ValueError, match="plain data"):
        LMGRPOTrainer.load(str(path), model(tok), tok, PROMPTS, reward_fn=frac_a)


def test_reference_refresh_and_adaptive_beta(tok: object) -> None:
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(ref_update_freq=1, lr=1e-3), PROMPTS, reward_fn=frac_a)
    tr.train(1)
    after_one = copy.deepcopy(tr.model.state_dict())
    tr.train(1)
    assert all(torch.equal(a, b) for a, b in zip(tr.ref_model.state_dict().values(), after_one.values()))

    tr = LMGRPOTrainer(model(tok), tok, small_cfg(lr=1e-3), PROMPTS, reward_fn=frac_a)
    initial = copy.deepcopy(tr.ref_model.state_dict())
    tr.train(2)
    assert all(torch.equal(a, b) for a, b in zip(tr.ref_model.state_dict().values(), initial.values()))

    tr = LMGRPOTrainer(model(tok), tok, small_cfg(beta_kl=0.1, target_kl=1e-9, lr=1e-3), PROMPTS, reward_fn=frac_a)
    h = tr.train(2)
    # Step 1 samples from the reference (KL 0 < target: beta down); step 2 from an updated policy (KL > target).
    assert h[0]["beta"] == 0.1 and math.isclose(h[1]["beta"], 0.1 / 1.5) and math.isclose(tr.beta, 0.1)


def test_logs_are_written_and_resumed(tok: object, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("tensorboard")
    log_dir = tmp_path / "run"
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(log_dir=str(log_dir)), PROMPTS, reward_fn=frac_a)
    tr.train(2)
    path = tr.save(str(tmp_path / "ckpt.pt"))
    tr.close()
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(log_dir))
    resumed = LMGRPOTrainer.load(path, model(tok), tok, PROMPTS, reward_fn=frac_a)
    resumed.train(1)
    resumed.close()
    with open(log_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert set(METRICS) <= set(rows[0])
    assert [int(float(r["step"])) for r in rows] == [1, 2, 3]


def test_progress_bar(tok: object, capsys: pytest.CaptureFixture[str]) -> None:
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(progress=True), PROMPTS, reward_fn=frac_a)
    tr.train(1)
    err = capsys.readouterr().err
    assert "lm-grpo" in err and "reward" in err


def test_generate_is_batched_and_greedy_is_deterministic(tok: object) -> None:
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(), PROMPTS, reward_fn=frac_a)
    a = tr.generate(PROMPTS * 20, greedy=True, max_new_tokens=4)
    b = [tr.generate([p], greedy=True, max_new_tokens=4)[0] for p in PROMPTS]
    assert len(a) == 120 and a[: len(PROMPTS)] == b
    assert all(len(s) <= 4 for s in a)


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({}, ValueError, "exactly one"),
    ({"reward_fn": frac_a, "reward_model": "rm"}, ValueError, "exactly one"),
    ({"reward_fn": 3}, TypeError, "reward_fn"),
    ({"reward_fn": frac_a, "reward_tokenizer": "t"}, ValueError, "reward_tokenizer"),
])
def test_trainer_checks_its_arguments(tok: object, kwargs: dict[str, object], exc: type[Exception],
                                      match: str) -> None:
    with pytest.raises(exc, match=match):
        LMGRPOTrainer(model(tok), tok, small_cfg(), PROMPTS, **kwargs)  # type: ignore[arg-type]


def test_trainer_checks_prompts_and_lengths(tok: object) -> None:
    with pytest.raises(TypeError, match="prompts"):
        LMGRPOTrainer(model(tok), tok, small_cfg(), "abc", reward_fn=frac_a)
    with pytest.raises(ValueError, match="prompts"):
        LMGRPOTrainer(model(tok), tok, small_cfg(), ["ab", ""], reward_fn=frac_a)
    with pytest.raises(ValueError, match="max_new_tokens"):  # 32 positions
        LMGRPOTrainer(model(tok), tok, small_cfg(max_new_tokens=30), ["abcd"], reward_fn=frac_a)
    with pytest.raises(TypeError, match="cfg"):
        LMGRPOTrainer(model(tok), tok, dataclasses.asdict(small_cfg()), PROMPTS, reward_fn=frac_a)  # type: ignore[arg-type]
    tr = LMGRPOTrainer(model(tok), tok, small_cfg(), PROMPTS, reward_fn=lambda p, c: [1.0])
    with pytest.raises(ValueError, match="rewards"):
        tr.train(1)


def test_light_import(tmp_path: pathlib.Path) -> None:
    # `import rltrain` and the config cost neither torch nor transformers; the trainer costs torch only.
    code = (
        "import json, sys\n"
        "import rltrain, rltrain.llm\n"
        "from rltrain.llm import LMGRPOConfig\n"
        "a = sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules)\n"
        "from rltrain.llm import LMGRPOTrainer\n"
        "b = sorted(m for m in ('torch', 'transformers', 'tokenizers') if m in sys.modules)\n"
        "print(json.dumps([a, b]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env=dict(os.environ), check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [[], ["torch"]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_cuda_steps_and_resume(tok: object, tmp_path: pathlib.Path, bf16: bool) -> None:
    cfg = small_cfg(device="auto", bf16=bf16, num_iterations=2, minibatch_size=3, target_kl=1e-3)
    tr = LMGRPOTrainer(model(tok), tok, cfg, PROMPTS, reward_fn=frac_a)
    assert tr.device.type == "cuda" and next(tr.model.parameters()).is_cuda
    tr.train(2)
    path = tr.save(str(tmp_path / "ckpt.pt"))
    straight = [without_timing(h) for h in tr.train(2)]
    resumed = LMGRPOTrainer.load(path, model(tok, seed=5), tok, PROMPTS, reward_fn=frac_a)
    again = [without_timing(h) for h in resumed.train(2)]
    assert all(math.isfinite(v) for h in straight for v in h.values())
    # The first resumed step samples the same completions (same weights, CUDA RNG state restored); later steps may
    # drift by GPU atomics (embedding backward), so only that one is compared exactly.
    a, b = straight[0], again[0]
    assert a["reward_mean"] == b["reward_mean"] and a["completion_len"] == b["completion_len"]
    assert math.isclose(a["loss"], b["loss"], rel_tol=1e-3, abs_tol=1e-4)
    assert all(math.isfinite(v) for h in again for v in h.values())
    cpu = LMGRPOTrainer.load(path, model(tok), tok, PROMPTS, reward_fn=frac_a, device="cpu") if not bf16 else None
    if cpu is not None:
        assert cpu.device.type == "cpu" and cpu.step == 2
