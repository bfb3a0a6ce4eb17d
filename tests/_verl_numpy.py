"""verl 0.9.1's advantage, loss-aggregation and KL formulas, written out in NumPy (float64) from
verl/trainer/ppo/core_algos.py and verl/utils/torch_functional.py of that release, loops and small constants
included, so that rltrain's kernels can be held to verl's conventions where verl itself is not installed
(tests/test_llm_conventions.py). tests/test_llm_parity_verl.py holds this transcription to verl's own functions.

Also the random batches both test files use: ragged groups named by uid strings in any order (as verl's
``non_tensor_batch["uid"]``), groups of one, a group whose rewards are all equal, response masks with holes and
fully masked rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Array = np.ndarray


# verl.utils.torch_functional: masked_sum, masked_mean (note the 1e-8 in the count), masked_var (unbiased, needs
# at least two masked entries), masked_whiten ((x - mean) * rsqrt(var + 1e-8) at every position).
def masked_mean(values: Array, mask: Array) -> float:
    return float(np.where(mask != 0, values, 0.0).sum() / (mask.sum() + 1e-8))


def masked_var(values: Array, mask: Array) -> float:
    mean = masked_mean(values, mask)
    n = float(mask.sum())
    if n < 2:
        raise ValueError("verl's masked_var needs at least two masked entries")
    return masked_mean((values - mean) ** 2, mask) * n / (n - 1)


def masked_whiten(values: Array, mask: Array, shift_mean: bool = True) -> Array:
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    out = (values - mean) / np.sqrt(var + 1e-8)
    return out + mean if not shift_mean else out


def _groups(index: Array) -> dict[object, list[int]]:
    """verl's id2score: the rows of each uid, in order of first appearance."""
    rows: dict[object, list[int]] = {}
    for i, uid in enumerate(index):
        rows.setdefault(uid, []).append(i)
    return rows


# core_algos.compute_grpo_outcome_advantage: score = sum of the token rewards; a group of one gets mean 0 and
# std 1; otherwise mean and Bessel std (torch.std); A = (score - mean) / (std + epsilon), or score - mean when
# norm_adv_by_std_in_grpo is False; the scalar is broadcast over the response mask. Returns (A, A).
def grpo_outcome_advantage(token_level_rewards: Array, response_mask: Array, index: Array, epsilon: float = 1e-6,
                           norm_adv_by_std_in_grpo: bool = True) -> Array:
    scores = token_level_rewards.sum(axis=-1)
    out = np.empty_like(scores)
    for rows in _groups(index).values():
        s = scores[rows]
        mean, std = (0.0, 1.0) if len(rows) == 1 else (s.mean(), s.std(ddof=1))
        out[rows] = (s - mean) / (std + epsilon) if norm_adv_by_std_in_grpo else s - mean
    return out[:, None] * response_mask


# core_algos.compute_rloo_outcome_advantage: for a group of n >= 2, score * n/(n-1) - mean * n/(n-1) (the
# leave-one-out baseline); a group of one keeps its score.
def rloo_outcome_advantage(token_level_rewards: Array, response_mask: Array, index: Array) -> Array:
    scores = token_level_rewards.sum(axis=-1)
    out = scores.copy()
    for rows in _groups(index).values():
        n = len(rows)
        if n > 1:
            s = scores[rows]
            out[rows] = s * n / (n - 1) - s.mean() * n / (n - 1)
    return out[:, None] * response_mask


# core_algos.compute_reinforce_plus_plus_outcome_advantage: from the last token back, new = r[t] + gamma * run;
# returns[t] = new * mask[t]; at a masked token the running return is carried through unchanged (and r[t]
# dropped). Advantages = masked_whiten(returns, mask) * mask. Returns (advantages, returns).
def reinforce_plus_plus_outcome_advantage(token_level_rewards: Array, response_mask: Array,
                                          gamma: float) -> tuple[Array, Array]:
    returns = np.zeros_like(token_level_rewards)
    running = np.zeros(token_level_rewards.shape[0])
    for t in reversed(range(token_level_rewards.shape[1])):
        new = token_level_rewards[:, t] + gamma * running
        returns[:, t] = new * response_mask[:, t]
        running = new * response_mask[:, t] + running * (1 - response_mask[:, t])
    return masked_whiten(returns, response_mask) * response_mask, returns


# core_algos.compute_gae_advantage_return: from the last token back, delta = r[t] + gamma * next_value - v[t],
# gae = delta + gamma * lam * last; at a masked token both next_value and last carry through unchanged.
# returns = gae + values (unwhitened); advantages = masked_whiten(gae, mask) (not multiplied by the mask).
def gae_advantage_return(token_level_rewards: Array, values: Array, response_mask: Array, gamma: float,
                         lam: float) -> tuple[Array, Array]:
    batch, length = token_level_rewards.shape
    next_value, last = np.zeros(batch), np.zeros(batch)
    gae = np.zeros_like(token_level_rewards)
    for t in reversed(range(length)):
        delta = token_level_rewards[:, t] + gamma * next_value - values[:, t]
        step = delta + gamma * lam * last
        m = response_mask[:, t]
        next_value = values[:, t] * m + (1 - m) * next_value
        last = step * m + (1 - m) * last
        gae[:, t] = last
    return masked_whiten(gae, response_mask), gae + values


# core_algos.compute_gdpo_outcome_advantage: each reward column through the GRPO outcome advantage (its own
# groups, epsilon), the weighted sum, then masked_whiten over the response mask, times the mask. Returns (A, A).
def gdpo_outcome_advantage(score_columns: list[Array], response_mask: Array, index: Array, weights: Array,
                           epsilon: float = 1e-6) -> Array:
    total = sum(w * grpo_outcome_advantage(s, response_mask, index, epsilon) for w, s in zip(weights, score_columns))
    return masked_whiten(np.asarray(total), response_mask) * response_mask


# core_algos.agg_loss with one data-parallel rank and no global counts given.
def agg_loss(loss: Array, mask: Array, mode: str, loss_scale_factor: float | None = None) -> float:
    masked = np.where(mask != 0, loss, 0.0) * mask
    if mode == "token-mean":
        return float(masked.sum() / mask.sum())
    if mode == "token-sum":
        return float(masked.sum())
    seq_count = mask.sum(axis=-1)
    nonempty = (seq_count > 0).astype(np.float64)
    if mode in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
        seq = (loss * mask).sum(axis=-1)
        value = (seq * nonempty).sum() / nonempty.sum()
        if mode == "seq-mean-token-sum-norm":
            value /= loss.shape[-1] if loss_scale_factor is None else loss_scale_factor
        return float(value)
    if mode == "seq-mean-token-mean":
        seq = (loss * mask).sum(axis=-1) / (seq_count + 1e-8)
        return float((seq * nonempty).sum() / nonempty.sum())
    raise ValueError(mode)


# core_algos.kl_penalty_forward: "kl"/"k1" = logp - ref; "abs" = |logp - ref|; "mse"/"k2" = (logp - ref)^2 / 2;
# "low_var_kl"/"k3": x = clamp(ref - logp, -20, 20), clamp(exp(x) - x - 1, -10, 10).
def kl_penalty_forward(logprob: Array, ref_logprob: Array, kind: str) -> Array:
    d = logprob - ref_logprob
    if kind in ("kl", "k1"):
        return d
    if kind == "abs":
        return np.abs(d)
    if kind in ("mse", "k2"):
        return 0.5 * d**2
    if kind in ("low_var_kl", "k3"):
        x = np.clip(ref_logprob - logprob, -20, 20)
        return np.clip(np.exp(x) - x - 1, -10, 10)
    raise ValueError(kind)


VERL_KL_KINDS = ["kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3"]
LOSS_MODES = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]


@dataclass
class Batch:
    """One random batch of B responses of length L, float64."""

    uid: Array  # [B] object array of str, verl's non_tensor_batch["uid"]
    group_ids: Array  # [B] int64, np.unique(uid, return_inverse=True)
    mask: Array  # [B, L] float64 0/1: holes inside responses, some rows fully masked
    token_rewards: Array  # [B, L] outcome reward on the last token plus sparse process rewards
    values: Array  # [B, L]
    columns: Array  # [B, 3] three reward columns (GDPO)


def random_batch(seed: int, batch: int = 37, length: int = 11) -> Batch:
    rng = np.random.default_rng(seed)
    # Ragged groups: sizes 1..6 (several groups of one), shuffled so that groups interleave.
    sizes: list[int] = []
    while sum(sizes) < batch:
        sizes.append(int(rng.integers(1, 7)))
    sizes[-1] -= sum(sizes) - batch
    sizes = [s for s in sizes if s > 0] + [1, 1]
    labels = np.repeat([f"prompt-{seed}-{k}" for k in range(len(sizes))], sizes)
    uid = np.array(rng.permutation(labels), dtype=object)
    n = uid.size
    _, group_ids = np.unique(uid, return_inverse=True)

    mask = (rng.random((n, length)) < 0.8).astype(np.float64)  # holes anywhere
    lengths = rng.integers(0, length + 1, size=n)
    mask[np.arange(length)[None, :] >= lengths[:, None]] = 0.0  # right padding
    mask[rng.choice(n, size=3, replace=False)] = 0.0  # fully masked rows
    mask[0, :2] = 1.0  # masked_var needs two masked entries

    token_rewards = np.where(rng.random((n, length)) < 0.2, rng.standard_normal((n, length)), 0.0)
    token_rewards[:, -1] += rng.standard_normal(n) * 2.0
    columns = np.stack([rng.standard_normal(n), rng.integers(0, 2, n).astype(np.float64), rng.random(n)], axis=1)

    # One group of at least two whose rewards (every column, and the summed score) are all equal.
    counts = {u: int((uid == u).sum()) for u in np.unique(uid)}
    tied = next(u for u, c in counts.items() if c >= 2)
    rows = uid == tied
    token_rewards[rows] = token_rewards[np.flatnonzero(rows)[0]]
    columns[rows] = columns[np.flatnonzero(rows)[0]]

    values = rng.standard_normal((n, length))
    return Batch(uid, group_ids.astype(np.int64), mask, token_rewards, values, columns)
