"""``rltrain llm-demo --task {reverse,sort,add}``: GRPO on a language model trained from scratch on CPU, offline.

1. A tiny character-level GPT-2 is fitted by teacher forcing on (prompt, answer + EOS) pairs only until its held-out
   exact-match accuracy (greedy decoding) first lands in a mediocre band (default 15-40%), so GRPO has signal.
2. GRPO (:class:`rltrain.llm.LMGRPOTrainer`) then optimises the exact programmatic reward (the true score of
   :mod:`rltrain.llm.demo_tasks`) until held-out accuracy reaches the target or a step/time budget runs out.
3. With ``--reward-model``, a tiny reward model (initialised from the warmed-up policy's body) is first fitted with the
   Bradley-Terry loss ``-log sigmoid(r_chosen - r_rejected)`` (Ouyang et al. 2022, eq. 1) to pairs of the policy's own
   samples labelled by a hidden rule, and GRPO optimises that learned reward instead; every evaluation also records
   the hidden true score and the accuracy, so reward hacking would show as a learned score rising while they fall.

The report (JSON) and a plot (PNG) hold the before/after numbers and the curve of every evaluation.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from rltrain.llm.demo_tasks import ALPHABET, TASKS, Task, exact_reward, preference_pairs, split_prompts, true_score

__all__ = ["TASK_SETTINGS", "DemoConfig", "bradley_terry_loss", "demo_config", "main", "plot_report", "run_demo"]

Log = Callable[[str], None]


@dataclasses.dataclass
class DemoConfig:
    """Everything one demo run does; :func:`demo_config` holds the tuned defaults of each task."""

    task: str = "reverse"
    """reverse, sort or add (see :data:`rltrain.llm.demo_tasks.TASKS`)."""
    reward_model: bool = False
    """Optimise a learned Bradley-Terry reward model instead of the programmatic reward."""
    seed: int = 0
    """Seeds the prompts, the models and the trainer."""
    threads: int = 1
    """torch CPU threads. One: these models are too small to gain from a second, which only waits on the first
    (and on a busy 2-core machine made a GRPO step 4x slower)."""
    n_train: int = 20000
    """Training prompts (supervised warm-up, preference pairs and GRPO draw from these)."""
    n_eval: int = 256
    """Held-out prompts, disjoint from the training ones; every accuracy is measured on them."""
    n_layer: int = 2
    """Transformer blocks of the policy (and of the reward model)."""
    n_embd: int = 64
    """Width."""
    n_head: int = 4
    """Attention heads."""
    sl_batch: int = 64
    """Supervised warm-up: sequences per step."""
    sl_lr: float = 1e-3
    """Supervised warm-up: AdamW learning rate."""
    sl_eval_every: int = 5
    """Supervised warm-up: steps between held-out checks; it stops at the first check inside the band."""
    sl_max_steps: int = 4000
    """Supervised warm-up: give up on reaching the band after this many steps."""
    band_low: float = 0.25
    """The mediocre band's lower end (held-out exact-match accuracy)."""
    band_high: float = 0.40
    """The mediocre band's upper end."""
    rm_prompts: int = 4000
    """Reward model: training prompts whose samples are paired."""
    rm_samples: int = 4
    """Reward model: samples of the warmed-up policy per prompt."""
    rm_temperature: float = 1.0
    """Reward model: sampling temperature of those samples."""
    rm_steps: int = 1500
    """Reward model: Bradley-Terry steps."""
    rm_batch: int = 64
    """Reward model: pairs per step."""
    rm_lr: float = 1e-3
    """Reward model: AdamW learning rate."""
    pref_noise: float = 0.05
    """Probability that the simulated human's label is flipped."""
    num_generations: int = 8
    """GRPO: completions per prompt (K)."""
    prompts_per_step: int = 32
    """GRPO: prompts per step."""
    lr: float = 5e-4
    """GRPO: learning rate."""
    temperature: float = 0.3
    """GRPO: sampling temperature. Low: a mediocre policy's samples at 1.0 are far worse than its greedy answers,
    and GRPO then spends its steps sharpening; near-greedy samples differ where the policy is unsure."""
    beta_kl: float = 0.0
    """GRPO: KL coefficient toward the warmed-up policy (k3; the initial value when ``target_kl`` is set)."""
    target_kl: float | None = None
    """GRPO: None keeps ``beta_kl`` fixed; otherwise beta adapts toward this KL (``LMGRPOConfig.target_kl``)."""
    num_iterations: int = 1
    """GRPO: updates per generated batch."""
    max_steps: int = 3000
    """GRPO: step budget."""
    max_minutes: float = 10.0
    """GRPO: wall-clock budget (training and evaluations)."""
    eval_every: int = 25
    """GRPO: steps between held-out evaluations."""
    target_accuracy: float = 0.9
    """GRPO stops at the first evaluation at or above this held-out accuracy."""


TASK_SETTINGS: dict[str, dict[str, Any]] = {
    "reverse": {},
    "sort": {"temperature": 0.6},
    "add": {"temperature": 0.6},
}
"""Each task's departures from the :class:`DemoConfig` defaults."""


def demo_config(task: str, *, reward_model: bool = False, seed: int = 0, quick: bool = False) -> DemoConfig:
    """The tuned configuration of ``task``; ``quick`` shrinks everything to a seconds-long smoke run."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {sorted(TASKS)}, got {task!r}")
    cfg = dataclasses.replace(DemoConfig(task=task, reward_model=reward_model, seed=seed), **TASK_SETTINGS[task])
    if quick:
        cfg = dataclasses.replace(
            cfg, n_train=400, n_eval=16, n_layer=1, n_embd=32, sl_batch=16, sl_eval_every=4, sl_max_steps=8,
            rm_prompts=8, rm_samples=3, rm_steps=4, rm_batch=8, num_generations=4, prompts_per_step=2, max_steps=4,
            eval_every=2, max_minutes=2.0)
    return cfg


# ------------------------------------------------------------------------------------------------ model helpers


def _cut_at_eos(ids: Sequence[int], eos: int) -> list[int]:
    ids = list(ids)
    return ids[:ids.index(eos)] if eos in ids else ids


@torch.no_grad()
def _complete(model: Any, tok: Any, prompts: Sequence[str], max_new_tokens: int, *, temperature: float = 0.0,
              num_return_sequences: int = 1, batch: int = 256) -> list[str]:
    """Completions of ``prompts`` (greedy at temperature 0, else sampled), decoded up to EOS;
    ``num_return_sequences`` consecutive entries per prompt."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    for i in range(0, len(prompts), batch):
        enc = tok(list(prompts[i:i + batch]), return_tensors="pt", padding=True).to(device)
        sampling: dict[str, Any] = {"do_sample": False} if temperature == 0.0 else {
            "do_sample": True, "temperature": temperature, "top_k": 0}
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, num_return_sequences=num_return_sequences,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **sampling)
        new = gen[:, enc["input_ids"].shape[1]:].tolist()
        out.extend(tok.decode(_cut_at_eos(r, tok.eos_token_id), skip_special_tokens=True) for r in new)
    model.train(was_training)
    return out


def _rm_scores(rm: Any, tok: Any, prompts: Sequence[str], completions: Sequence[str]) -> torch.Tensor:
    """The reward model's scores of ``prompt + completion``, read exactly as the trainer reads them."""
    from rltrain.llm import reward_scores

    texts = [p + c for p, c in zip(prompts, completions, strict=True)]
    return reward_scores(rm, tok, texts, device=next(rm.parameters()).device)


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """``mean(-log sigmoid(r_chosen - r_rejected))``: the negative log-likelihood of the labels under the
    Bradley-Terry model P(chosen > rejected) = sigmoid(r_chosen - r_rejected)."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def _evaluate(model: Any, tok: Any, task: Task, prompts: Sequence[str], rm: Any = None) -> dict[str, float]:
    """Held-out greedy accuracy and true score (and the reward model's mean score of the same completions)."""
    comps = _complete(model, tok, prompts, task.max_answer_len + 1)
    scores = [true_score(task.solve(p), c) for p, c in zip(prompts, comps)]
    out = {"accuracy": sum(s == 1.0 for s in scores) / len(scores), "true_score": sum(scores) / len(scores)}
    if rm is not None:
        was_training = rm.training
        rm.eval()
        with torch.no_grad():
            out["learned_score"] = float(_rm_scores(rm, tok, prompts, comps).mean())
        rm.train(was_training)
    return out


# ------------------------------------------------------------------------------------------------ the three phases


def _supervised_warmup(model: Any, tok: Any, task: Task, train: list[str], held_out: list[str], cfg: DemoConfig,
                       log: Log) -> dict[str, Any]:
    """Teacher forcing on (prompt, answer + EOS), loss on the answer tokens only, until the first held-out check
    inside [band_low, band_high] (or above it, or ``sl_max_steps``)."""
    rng = random.Random(cfg.seed + 1)
    prompt_ids = tok(train)["input_ids"]
    answer_ids = tok([task.solve(p) for p in train], add_special_tokens=False)["input_ids"]
    rows = [(p, a + [tok.eos_token_id]) for p, a in zip(prompt_ids, answer_ids)]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.sl_lr, weight_decay=0.0)
    device = next(model.parameters()).device
    model.train()
    curve: list[dict[str, float]] = []
    t0 = time.perf_counter()
    stopped = "max_steps"
    step = 0
    while step < cfg.sl_max_steps:
        batch = [rows[rng.randrange(len(rows))] for _ in range(cfg.sl_batch)]
        width = max(len(p) + len(a) for p, a in batch)
        ids = torch.full((len(batch), width), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for i, (p, a) in enumerate(batch):  # right padding: positions start at 0 as in left-padded generation
            ids[i, :len(p) + len(a)] = torch.tensor(p + a)
            mask[i, :len(p) + len(a)] = 1
            labels[i, len(p):len(p) + len(a)] = torch.tensor(a)
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % cfg.sl_eval_every == 0 or step == cfg.sl_max_steps:
            ev = _evaluate(model, tok, task, held_out)
            curve.append({"step": step, "loss": loss.item(), **ev})
            log(f"supervised step {step}: loss {loss.item():.3f}, held-out accuracy {ev['accuracy']:.3f}, "
                f"true score {ev['true_score']:.3f}")
            if ev["accuracy"] >= cfg.band_low:
                stopped = "band" if ev["accuracy"] <= cfg.band_high else "above_band"
                break
    return {"steps": step, "seconds": time.perf_counter() - t0, "stopped": stopped, "curve": curve}


def _fit_reward_model(rm: Any, tok: Any, pairs: list[tuple[str, str, str]], held_out_pairs: list[tuple[str, str, str]],
                      cfg: DemoConfig, log: Log) -> dict[str, Any]:
    """Bradley-Terry fit on ``pairs``; reports the loss curve and the agreement with held-out labels."""
    rng = random.Random(cfg.seed + 2)
    opt = torch.optim.AdamW(rm.parameters(), lr=cfg.rm_lr, weight_decay=0.0)
    rm.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(1, cfg.rm_steps + 1):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(cfg.rm_batch)]
        prompts = [b[0] for b in batch]
        r = _rm_scores(rm, tok, prompts + prompts, [b[1] for b in batch] + [b[2] for b in batch])
        loss = bradley_terry_loss(r[:len(batch)], r[len(batch):])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
        opt.step()
        losses.append(loss.item())
        if step % max(1, cfg.rm_steps // 6) == 0 or step == cfg.rm_steps:
            log(f"reward model step {step}: Bradley-Terry loss {sum(losses[-20:]) / len(losses[-20:]):.3f}")
    rm.eval()
    agree = float("nan")
    if held_out_pairs:
        with torch.no_grad():
            p = [h[0] for h in held_out_pairs]
            r = _rm_scores(rm, tok, p + p, [h[1] for h in held_out_pairs] + [h[2] for h in held_out_pairs])
        agree = float((r[:len(p)] > r[len(p):]).float().mean())
    return {"pairs": len(pairs), "steps": cfg.rm_steps, "seconds": time.perf_counter() - t0,
            "loss_first": losses[0], "loss_last": sum(losses[-20:]) / len(losses[-20:]),
            "held_out_pairs": len(held_out_pairs), "held_out_agreement": agree}


def _mean(rows: Sequence[dict[str, float]], key: str) -> float:
    vals = [float(r[key]) for r in rows if key in r and r[key] is not None and math.isfinite(float(r[key]))]
    return sum(vals) / len(vals) if vals else float("nan")


def run_demo(cfg: DemoConfig, log: Log | None = None) -> dict[str, Any]:
    """Runs the three phases and returns the report (see the module docstring)."""
    from rltrain.llm import LMGRPOConfig, LMGRPOTrainer, char_tokenizer, tiny_causal_lm, tiny_reward_model

    say: Log = log if log is not None else (lambda s: print(s, file=sys.stderr, flush=True))
    task = TASKS[cfg.task]
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    train, held_out = split_prompts(task, cfg.n_train, cfg.n_eval, cfg.seed)
    tok = char_tokenizer(ALPHABET)
    sizes = {"n_layer": cfg.n_layer, "n_embd": cfg.n_embd, "n_head": cfg.n_head, "n_positions": 32}
    model = tiny_causal_lm(tok, seed=cfg.seed, **sizes)
    sl = _supervised_warmup(model, tok, task, train, held_out, cfg, say)

    rm = None
    rm_report: dict[str, Any] | None = None
    if cfg.reward_model:
        rng = random.Random(cfg.seed + 3)
        n_new = task.max_answer_len + 1
        pref_prompts = rng.sample(train, min(cfg.rm_prompts, len(train)))
        flat = _complete(model, tok, pref_prompts, n_new, temperature=cfg.rm_temperature,
                         num_return_sequences=cfg.rm_samples)
        samples = [flat[i * cfg.rm_samples:(i + 1) * cfg.rm_samples] for i in range(len(pref_prompts))]
        pairs = preference_pairs(task, pref_prompts, samples, rng, noise=cfg.pref_noise)
        ho_prompts = held_out[:max(1, len(held_out) // 2)]
        flat = _complete(model, tok, ho_prompts, n_new, temperature=cfg.rm_temperature,
                         num_return_sequences=cfg.rm_samples)
        ho_pairs = preference_pairs(task, ho_prompts, [flat[i * cfg.rm_samples:(i + 1) * cfg.rm_samples]
                                                       for i in range(len(ho_prompts))], rng, noise=0.0)
        if not pairs:
            raise RuntimeError("reward model: the warmed-up policy's samples gave no pair the hidden rule can order")
        rm = tiny_reward_model(tok, seed=cfg.seed, **sizes)
        rm.transformer.load_state_dict(model.transformer.state_dict())  # start from the policy's body, as RLHF does
        rm_report = _fit_reward_model(rm, tok, pairs, ho_pairs, cfg, say)
        for p in rm.parameters():
            p.requires_grad_(False)

    before = _evaluate(model, tok, task, held_out, rm)
    shown = held_out[:8]
    shown_before = _complete(model, tok, shown, task.max_answer_len + 1)
    say(f"before GRPO: held-out accuracy {before['accuracy']:.3f}, true score {before['true_score']:.3f}")
    gcfg = LMGRPOConfig(num_generations=cfg.num_generations, prompts_per_step=cfg.prompts_per_step,
                        max_new_tokens=task.max_answer_len + 1, temperature=cfg.temperature, lr=cfg.lr,
                        beta_kl=cfg.beta_kl, target_kl=cfg.target_kl, num_iterations=cfg.num_iterations,
                        seed=cfg.seed, device="cpu",
                        progress=False)
    if rm is None:
        trainer = LMGRPOTrainer(model, tok, gcfg, train, reward_fn=exact_reward(task))
    else:
        trainer = LMGRPOTrainer(model, tok, gcfg, train, reward_model=rm, reward_tokenizer=tok)
    curve: list[dict[str, Any]] = [{"step": 0, "seconds": 0.0, "reward": before.get("learned_score",
                                                                                    before["true_score"]),
                                    "train_reward": None, "kl": 0.0, **before}]
    t0, cpu0 = time.perf_counter(), time.process_time()
    history: list[dict[str, float]] = []
    after = before
    while (trainer.step < cfg.max_steps and time.perf_counter() - t0 < 60.0 * cfg.max_minutes
           and after["accuracy"] < cfg.target_accuracy):
        rows = trainer.train(min(cfg.eval_every, cfg.max_steps - trainer.step))
        history.extend(rows)
        after = _evaluate(trainer.model, tok, task, held_out, rm)
        point = {"step": trainer.step, "seconds": time.perf_counter() - t0,
                 "reward": after.get("learned_score", after["true_score"]), "train_reward": _mean(rows, "reward_mean"),
                 "kl": _mean(rows, "kl"), "beta": float(rows[-1]["beta"]), **after}
        curve.append(point)
        say(f"GRPO step {trainer.step}: held-out accuracy {after['accuracy']:.3f}, true score "
            f"{after['true_score']:.3f}" + (f", learned score {after['learned_score']:.3f}" if rm is not None else "")
            + f", sampled reward {point['train_reward']:.3f}, KL {point['kl']:.4f} ({point['seconds']:.0f} s)")
    grpo_seconds, grpo_cpu = time.perf_counter() - t0, time.process_time() - cpu0
    examples = [{"prompt": p, "answer": task.solve(p), "before": b, "after": a} for p, b, a in
                zip(shown, shown_before, _complete(trainer.model, tok, shown, task.max_answer_len + 1))]
    report: dict[str, Any] = {
        "task": cfg.task, "reward_model": cfg.reward_model, "seed": cfg.seed,
        "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
        "true_score_before": before["true_score"], "true_score_after": after["true_score"],
        "steps": trainer.step, "seconds": grpo_seconds, "cpu_seconds": grpo_cpu,
        "tokens_per_s": _mean(history, "gen_tokens_per_s"),
        "update_tokens_per_s": _mean(history, "update_tokens_per_s"),
        "reached_target": after["accuracy"] >= cfg.target_accuracy,
        "supervised": sl, "curve": curve, "examples": examples,
        "total_seconds": time.perf_counter() - t_start, "total_cpu_seconds": time.process_time() - cpu_start,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": cfg.threads,
                    "torch": torch.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
        "config": dataclasses.asdict(cfg),
    }
    if rm_report is not None:
        report["reward_model_fit"] = rm_report
        report["learned_score_before"] = before["learned_score"]
        report["learned_score_after"] = after["learned_score"]
    return report


# ------------------------------------------------------------------------------------------------ report and CLI


def plot_report(report: dict[str, Any], path: str) -> str:
    """Reward, true score (and accuracy) and KL against GRPO steps, one panel each."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError("the llm-demo plot needs matplotlib (pip install matplotlib)") from exc
    curve = report["curve"]
    steps = [c["step"] for c in curve]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    learned = "learned reward-model score" if report["reward_model"] else "programmatic reward"
    axes[0].plot(steps, [c["reward"] for c in curve], marker=".", label=f"{learned} (held-out, greedy)")
    tr = [(c["step"], c["train_reward"]) for c in curve if c["train_reward"] is not None]
    if tr:
        axes[0].plot(*zip(*tr), marker=".", label="mean reward of the sampled groups")
    axes[0].set_title("reward")
    axes[1].plot(steps, [c["true_score"] for c in curve], marker=".",
                 label="hidden true score" if report["reward_model"] else "true score (the reward)")
    axes[1].plot(steps, [c["accuracy"] for c in curve], marker=".", label="exact-match accuracy")
    axes[1].set_ylim(0.0, 1.02)
    axes[1].set_title("held-out (greedy)")
    axes[2].plot(steps, [c["kl"] for c in curve], marker=".", color="C3", label="KL to the reference (k3)")
    axes[2].set_title("KL")
    for ax in axes:
        ax.set_xlabel("GRPO step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"llm-demo {report['task']}" + (" (reward model)" if report["reward_model"] else ""))
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """``rltrain llm-demo --task TASK [--reward-model] [--json PATH] [--png PATH] [--seed N] [--beta-kl B]
    [--target-kl K] [--quick]``."""
    p = argparse.ArgumentParser(prog="rltrain llm-demo", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), default="reverse", help="synthetic task (default reverse)")
    p.add_argument("--reward-model", action="store_true",
                   help="optimise a reward model fitted to synthetic preferences instead of the exact reward")
    p.add_argument("--json", metavar="PATH", help="write the report here")
    p.add_argument("--png", metavar="PATH", help="plot reward, true score and KL against steps here")
    p.add_argument("--seed", type=int, default=0, help="seed of prompts, models and trainer (default 0)")
    p.add_argument("--beta-kl", type=float, default=None, metavar="BETA",
                   help="KL coefficient toward the warmed-up policy (default: the task's setting, 0)")
    p.add_argument("--target-kl", type=float, default=None, metavar="KL",
                   help="adapt beta toward this KL (default: beta stays fixed)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and a few steps: a smoke run of seconds")
    try:
        a = p.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if a.seed < 0:
        print(f"rltrain llm-demo: error: --seed: expected >= 0, got {a.seed}", file=sys.stderr)
        return 2
    for name, value in (("--beta-kl", a.beta_kl), ("--target-kl", a.target_kl)):
        if value is not None and not (math.isfinite(value) and value >= 0.0 and (name == "--beta-kl" or value > 0)):
            print(f"rltrain llm-demo: error: {name}: expected a finite number "
                  f"{'>= 0' if name == '--beta-kl' else '> 0'}, got {value}", file=sys.stderr)
            return 2
    cfg = demo_config(a.task, reward_model=a.reward_model, seed=a.seed, quick=a.quick)
    if a.beta_kl is not None or a.target_kl is not None:
        cfg = dataclasses.replace(cfg, beta_kl=cfg.beta_kl if a.beta_kl is None else a.beta_kl,
                                  target_kl=a.target_kl)
    report = run_demo(cfg)
    print(f"{a.task}{' (reward model)' if a.reward_model else ''}: held-out accuracy "
          f"{report['accuracy_before']:.3f} -> {report['accuracy_after']:.3f}, true score "
          f"{report['true_score_before']:.3f} -> {report['true_score_after']:.3f} in {report['steps']} GRPO steps, "
          f"{report['seconds'] / 60:.1f} min ({report['tokens_per_s']:.0f} generated tokens/s)")
    if a.json:
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(_jsonable(report), f, indent=1, allow_nan=False)
        os.replace(tmp, a.json)
        print(f"wrote {a.json}")
    if a.png:
        print(f"wrote {plot_report(report, a.png)}")
    return 0


def _jsonable(x: Any) -> Any:
    """The report with every non-finite float as null (strict JSON)."""
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
