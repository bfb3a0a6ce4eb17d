"""``LMGRPOTrainer``: GRPO (Shao et al. 2024, "DeepSeekMath", sec. 4) for a Hugging Face causal language model.

One step: draw ``prompts_per_step`` prompts -> ``model.generate`` K completions each (left-padded prompts, KV
cache, sampling at ``temperature``/``top_p``) -> mask each completion after its first EOS -> rewards from a Python
function or a reward model -> ``kernels.group_advantages`` per group of K -> log-probabilities of the completions
under the policy, the sampling policy and the frozen reference -> clipped-ratio + ``beta * k3`` token loss reduced
by ``kernels.aggregate_loss`` -> Adam, ``num_iterations`` passes. Beta adapts toward ``target_kl`` as in the
control GRPO trainer; the reference is refreshed every ``ref_update_freq`` steps.

The policy runs in eval mode throughout (no dropout: the ratio compares two passes of the same weights, as TRL's
``disable_dropout``); gradients flow regardless. Checkpoints hold tensors and plain data only and are read with
``torch.load(weights_only=True)``; the model class is the caller's, never one a file names.
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch

from rltrain import kernels
from rltrain._checks import integer
from rltrain.algos.checkpoint import atomic_torch_save, check_plain_data
from rltrain.llm.config import LMGRPOConfig
from rltrain.llm.ops import completion_mask, grpo_token_loss, pad_sequences, reward_scores, token_logprobs
from rltrain.logger import Logger

__all__ = ["CHECKPOINT_FORMAT", "LMGRPOTrainer", "RewardFn"]

CHECKPOINT_FORMAT = "rltrain-lm-checkpoint-1"

RewardFn = Callable[[list[str], list[str]], Sequence[float]]
"""``(prompts, completions) -> rewards``: one float per completion; ``prompts[i]`` is the prompt of
``completions[i]`` (each prompt repeated K times, consecutively)."""

_T = TypeVar("_T", bound="LMGRPOTrainer")


@dataclass
class Rollout:
    """One generated batch of B = prompts x K completions (token tensors on the trainer's device)."""

    prompts: list[str]
    """The prompt of each completion."""
    prompt_ids: torch.Tensor
    """Left-padded prompt ids [B, Lp]."""
    prompt_mask: torch.Tensor
    """1 on prompt tokens [B, Lp]."""
    completion_ids: torch.Tensor
    """Generated ids [B, Lc] (``generate``'s padding after EOS included)."""
    completion_mask: torch.Tensor
    """1 on scored tokens [B, Lc]: up to and including the first EOS."""
    completions: list[str]
    """The completions decoded without special tokens, cut at EOS."""


class LMGRPOTrainer:
    """GRPO on ``model`` (a Hugging Face causal LM) with ``tokenizer``, sampling from ``prompts`` (strings).

    Rewards come from exactly one of ``reward_fn(prompts, completions) -> list[float]`` or ``reward_model`` (a
    sequence-classification model scoring ``prompt + completion`` through ``reward_tokenizer``, default
    ``tokenizer``; ``logits[:, 0]``, no gradient, never trained). The model (and the reward model) are moved to
    ``cfg.device`` and put in eval mode (no dropout); the model is trained in place, ``ref_model`` is a frozen deep
    copy of it. Constructing a trainer seeds torch's global RNG with ``cfg.seed`` (``generate`` samples from it)."""

    def __init__(self, model: Any, tokenizer: Any, cfg: LMGRPOConfig, prompts: Sequence[str], *,
                 reward_fn: RewardFn | None = None, reward_model: Any = None, reward_tokenizer: Any = None) -> None:
        if not isinstance(cfg, LMGRPOConfig):
            raise TypeError(f"cfg: expected an LMGRPOConfig, got {type(cfg).__name__}")
        cfg.validate()
        if isinstance(prompts, str) or not isinstance(prompts, Sequence) or not prompts:
            raise TypeError("prompts: expected a non-empty list of strings")
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts: expected a non-empty list of strings")
        if (reward_fn is None) == (reward_model is None):
            raise ValueError("reward_fn, reward_model: pass exactly one of them")
        if reward_fn is not None and not callable(reward_fn):
            raise TypeError(f"reward_fn: expected a callable (prompts, completions) -> rewards, got {reward_fn!r}")
        if reward_tokenizer is not None and reward_model is None:
            raise ValueError("reward_tokenizer: only used with reward_model")
        if not isinstance(model, torch.nn.Module) or not hasattr(model, "generate"):
            raise TypeError(f"model: expected a Hugging Face causal LM (a torch module with generate), "
                            f"got {type(model).__name__}")
        self.cfg = cfg
        self.device = _resolve_device(cfg.device)
        if cfg.bf16 and self.device.type != "cuda":
            raise ValueError(f"bf16: bfloat16 autocast is for CUDA devices only, the device is {self.device}")
        self.tokenizer = tokenizer
        self.eos_id = _token_id(tokenizer, "eos_token_id")
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = self.eos_id if pad is None else int(pad)
        self.prompts = list(prompts)
        self._prompt_tokens: list[list[int]] = [list(s) for s in tokenizer(self.prompts)["input_ids"]]
        for i, s in enumerate(self._prompt_tokens):
            if not s:
                raise ValueError(f"prompts[{i}]: encodes to no tokens")
        limit = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        longest = max(len(s) for s in self._prompt_tokens)
        if isinstance(limit, int) and longest + cfg.max_new_tokens > limit:
            raise ValueError(f"max_new_tokens: the longest prompt ({longest} tokens) plus max_new_tokens "
                             f"({cfg.max_new_tokens}) exceeds the model's {limit} positions")
        self.model: Any = model.to(self.device).eval()
        self.ref_model: Any = copy.deepcopy(self.model).requires_grad_(False).eval()
        self.reward_fn = reward_fn
        self.reward_model = None if reward_model is None else reward_model.to(self.device).eval()
        self.reward_tokenizer = tokenizer if reward_tokenizer is None else reward_tokenizer
        torch.manual_seed(cfg.seed)
        self._rng = np.random.default_rng(cfg.seed)
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=cfg.lr)
        self.step = 0
        self.beta = float(cfg.beta_kl)
        self.history: list[dict[str, float]] = []
        self.logger: Logger | None = None

    # ---------------------------------------------------------------------------------------------- generation

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.cfg.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _generate_ids(self, token_lists: Sequence[Sequence[int]], *, greedy: bool, max_new_tokens: int,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``generate`` on left-padded prompts: ``(prompt_ids, prompt_mask, completion_ids, completion_mask)``."""
        ids, mask = pad_sequences(token_lists, self.pad_id, side="left", device=self.device)
        c = self.cfg
        sampling: dict[str, Any] = {"do_sample": False} if greedy else {
            "do_sample": True, "temperature": c.temperature, "top_p": c.top_p, "top_k": 0}
        with torch.no_grad(), self._autocast():
            seqs = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                       use_cache=True, pad_token_id=self.pad_id, eos_token_id=self.eos_id,
                                       **sampling)
        comp = seqs[:, ids.shape[1]:]
        return ids, mask, comp, completion_mask(comp, self.eos_id)

    def _decode(self, comp: torch.Tensor, cmask: torch.Tensor) -> list[str]:
        lengths = cmask.sum(-1).tolist()
        rows = comp.tolist()
        return [self.tokenizer.decode(r[:n], skip_special_tokens=True) for r, n in zip(rows, lengths)]

    def generate(self, prompts: list[str], *, greedy: bool = False, max_new_tokens: int | None = None) -> list[str]:
        """One completion per prompt (sampled as in training, or greedy), decoded without special tokens and cut
        at EOS; batched with a KV cache. Sampling draws from torch's global RNG."""
        n_new = self.cfg.max_new_tokens if max_new_tokens is None else integer(max_new_tokens, "max_new_tokens", lo=1)
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompts: expected a list of strings")
        out: list[str] = []
        chunk = max(64, self.cfg.prompts_per_step * self.cfg.num_generations)
        for start in range(0, len(prompts), chunk):
            toks = [list(s) for s in self.tokenizer(list(prompts[start:start + chunk]))["input_ids"]]
            if any(not s for s in toks):
                raise ValueError("prompts: a prompt encodes to no tokens")
            _, _, comp, cmask = self._generate_ids(toks, greedy=greedy, max_new_tokens=n_new)
            out += self._decode(comp, cmask)
        return out

    def _rollout(self) -> tuple[Rollout, float]:
        """Draws the step's prompts and generates K completions each; returns the batch and generation seconds."""
        c, n = self.cfg, len(self.prompts)
        idx = self._rng.choice(n, size=c.prompts_per_step, replace=n < c.prompts_per_step)
        rows = [int(i) for i in idx for _ in range(c.num_generations)]
        t0 = self._clock()
        ids, mask, comp, cmask = self._generate_ids([self._prompt_tokens[i] for i in rows], greedy=False,
                                                    max_new_tokens=c.max_new_tokens)
        seconds = self._clock() - t0
        prompts = [self.prompts[i] for i in rows]
        return Rollout(prompts, ids, mask, comp, cmask, self._decode(comp, cmask)), seconds

    def _clock(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    # ------------------------------------------------------------------------------------------------- rewards

    def _rewards(self, roll: Rollout) -> np.ndarray:
        if self.reward_fn is not None:
            raw = self.reward_fn(list(roll.prompts), list(roll.completions))
            try:
                r = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"reward_fn: expected a list of floats, got {type(raw).__name__}") from exc
        else:
            texts = [p + q for p, q in zip(roll.prompts, roll.completions)]
            with torch.no_grad(), self._autocast():
                scores = reward_scores(self.reward_model, self.reward_tokenizer, texts, device=self.device)
            r = scores.cpu().double().numpy()
        if r.shape != (len(roll.completions),):
            raise ValueError(f"reward_fn: expected {len(roll.completions)} rewards, got shape {r.shape}")
        if not np.isfinite(r).all():
            raise ValueError("rewards: expected finite values, got NaN or inf")
        return r

    # -------------------------------------------------------------------------------------------------- update

    def _logprobs(self, model: Any, ids: torch.Tensor, mask: torch.Tensor, n: int, entropy: bool = False,
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        with self._autocast():
            return token_logprobs(model, ids, mask, n, temperature=self.cfg.temperature, with_entropy=entropy)

    def _update(self, roll: Rollout, advantages: np.ndarray) -> dict[str, float]:
        """``num_iterations`` passes of Adam over the batch; the step's loss statistics."""
        c = self.cfg
        B, Lc = roll.completion_ids.shape
        ids = torch.cat([roll.prompt_ids, roll.completion_ids], dim=1)
        attn = torch.cat([roll.prompt_mask, roll.completion_mask], dim=1)
        tmask = roll.completion_mask.float()
        adv = torch.as_tensor(advantages, dtype=torch.float32, device=self.device)
        mb = B if c.minibatch_size is None else min(c.minibatch_size, B)
        several = c.num_iterations > 1 or mb < B
        with torch.no_grad():
            ref_logp = self._logprobs(self.ref_model, ids, attn, Lc)[0]
            old_logp = self._logprobs(self.model, ids, attn, Lc)[0] if several else None
        clip_high = c.clip_eps if c.clip_eps_high is None else c.clip_eps_high
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        losses: list[float] = []
        clipped = 0.0
        ent_sum = 0.0
        sample_logp = old_logp
        for it in range(c.num_iterations):
            order = torch.from_numpy(self._rng.permutation(B)) if mb < B else torch.arange(B)
            for start in range(0, B, mb):
                sel = order[start:start + mb].to(self.device)
                logp, ent = self._logprobs(self.model, ids[sel], attn[sel], Lc, entropy=it == 0)
                old = logp.detach() if old_logp is None else old_logp[sel]
                if old_logp is None:
                    sample_logp = logp.detach()  # one pass over the whole batch: the sampling policy itself
                loss, active = grpo_token_loss(logp, old, ref_logp[sel], adv[sel], tmask[sel], clip_eps=c.clip_eps,
                                               clip_eps_high=clip_high, beta=self.beta, loss_agg=c.loss_agg,
                                               norm_constant=float(c.max_new_tokens))
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
                if c.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm)
                self.optimizer.step()
                losses.append(float(loss.detach()))
                clipped += float(active.sum())
                if ent is not None:
                    ent_sum += float((ent * tmask[sel]).sum())
        assert sample_logp is not None
        n_tok = float(tmask.sum())
        kl_tok = kernels.kl_estimate(sample_logp, ref_logp, roll.completion_mask, kind="k3")
        return {"loss": float(np.mean(losses)), "kl": float(kl_tok.sum()) / max(n_tok, 1.0),
                "entropy": ent_sum / max(n_tok, 1.0), "clip_frac": clipped / max(n_tok * c.num_iterations, 1.0)}

    def _step(self) -> dict[str, float]:
        c = self.cfg
        if c.ref_update_freq > 0 and self.step > 0 and self.step % c.ref_update_freq == 0:
            self.ref_model.load_state_dict(self.model.state_dict())
        roll, gen_s = self._rollout()
        rewards = self._rewards(roll)
        adv = kernels.group_advantages(rewards, group_size=c.num_generations, preset=c.preset,
                                       scale=c.scale_rewards)
        t0 = self._clock()
        stats = self._update(roll, np.asarray(adv))
        upd_s = self._clock() - t0
        lengths = roll.completion_mask.sum(-1).double()
        n_tok = float(lengths.sum())
        eos = (roll.completion_ids == self.eos_id).any(-1)
        beta_used = self.beta
        if c.target_kl is not None:
            if stats["kl"] > c.target_kl:
                self.beta *= c.kl_adjust_up
            elif stats["kl"] < c.target_kl:
                self.beta *= c.kl_adjust_down
        return {"reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()), **stats,
                "completion_len": float(lengths.mean()), "eos_frac": float(eos.double().mean()),
                "gen_tokens_per_s": n_tok / max(gen_s, 1e-9),
                "update_tokens_per_s": n_tok * c.num_iterations / max(upd_s, 1e-9),
                "gen_seconds": gen_s, "update_seconds": upd_s, "beta": beta_used}

    # ----------------------------------------------------------------------------------------------- the loop

    def train(self, steps: int) -> list[dict[str, float]]:
        """Runs ``steps`` further GRPO steps (continuing from ``step``); returns their metrics, also appended to
        ``history`` and logged to ``cfg.log_dir`` when set."""
        integer(steps, "steps", lo=0)
        if self.cfg.log_dir is not None and self.logger is None and steps > 0:
            self.logger = Logger(self.cfg.log_dir, self.cfg.loggers, append=self.step > 0)
        bar = _ProgressBar(steps, self.step) if self.cfg.progress and steps > 0 else None
        out: list[dict[str, float]] = []
        try:
            for _ in range(steps):
                metrics = self._step()
                self.step += 1
                metrics["step"] = float(self.step)
                self.history.append(metrics)
                out.append(metrics)
                if self.logger is not None:
                    for k, v in metrics.items():
                        if k != "step":
                            self.logger.record(k, v)
                    self.logger.dump(self.step)
                if bar is not None:
                    bar.update(metrics)
        finally:
            if bar is not None:
                bar.close()
        return out

    def close(self) -> None:
        """Closes the log files (a later ``train`` reopens them, appending)."""
        if self.logger is not None:
            self.logger.close()
            self.logger = None

    # --------------------------------------------------------------------------------------------- checkpoints

    def save(self, path: str) -> str:
        """Writes a checkpoint atomically (temporary file + rename): model and reference weights, optimizer,
        step, beta, the NumPy and torch RNG states, the config and the history. Returns ``path``."""
        cfg = self.cfg.to_dict()
        history = [dict(h) for h in self.history]
        check_plain_data(cfg, "config")
        check_plain_data(history, "history")
        state = {
            "format": CHECKPOINT_FORMAT,
            "config": cfg,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "ref_model": {k: v.detach().cpu() for k, v in self.ref_model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "beta": self.beta,
            "numpy_rng": json.dumps(self._rng.bit_generator.state),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "history": history,
        }
        atomic_torch_save(state, path)
        return path

    @classmethod
    def load(cls: type[_T], path: str, model: Any, tokenizer: Any, prompts: Sequence[str], *,
             reward_fn: RewardFn | None = None, reward_model: Any = None, reward_tokenizer: Any = None,
             device: str | torch.device | None = None) -> _T:
        """A trainer restored from ``save``'s file (``torch.load(weights_only=True)``) into ``model`` (the same
        architecture; its weights are replaced): ``train(n)`` then continues exactly as the saved run would have
        (bitwise on CPU). The reward, the prompts and the tokenizer are the caller's, as the model's class is;
        ``device`` replaces the saved device."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"path: {path!r} is not an rltrain language-model checkpoint")
        cfg_dict = state.get("config")
        if not isinstance(cfg_dict, dict):
            raise ValueError(f"path: {path!r} holds no config")
        check_plain_data(cfg_dict, "config")
        check_plain_data(state.get("history"), "history")
        cfg = LMGRPOConfig.from_dict(dict(cfg_dict))
        if device is not None:
            cfg.device = str(device)
            cfg.validate()
        model.load_state_dict(state["model"])
        trainer = cls(model, tokenizer, cfg, prompts, reward_fn=reward_fn, reward_model=reward_model,
                      reward_tokenizer=reward_tokenizer)
        trainer.ref_model.load_state_dict(state["ref_model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step = int(state["step"])
        trainer.beta = float(state["beta"])
        trainer._rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], trainer.device)
        trainer.history = [dict(h) for h in state["history"]]
        return trainer


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device: expected 'auto' or a torch device name, got {name!r}") from exc


def _token_id(tokenizer: Any, attr: str) -> int:
    value = getattr(tokenizer, attr, None)
    if value is None:
        raise ValueError(f"tokenizer: expected {attr} to be set")
    return int(value)


class _ProgressBar:
    """tqdm on stderr when installed; otherwise one line on stderr, rewritten each step."""

    def __init__(self, total: int, start: int) -> None:
        self.total, self.done, self.start = total, 0, start
        self._bar: Any = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, desc="lm-grpo", unit="step", file=sys.stderr, leave=True)

    def update(self, metrics: dict[str, float]) -> None:
        self.done += 1
        post = f"reward {metrics['reward_mean']:.3f} kl {metrics['kl']:.4f}"
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(post)
            return
        sys.stderr.write(f"\rlm-grpo step {self.start + self.done} ({self.done}/{self.total}) {post}")
        sys.stderr.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.done:
            sys.stderr.write("\n")
            sys.stderr.flush()
