"""Plain NumPy references for every kernel in ``rltrain.kernels``: these functions *are* the specification.

Same signatures as the compiled kernels. They favour clarity over speed (loops over time, float64 statistics)
and do no argument checking beyond what NumPy does; ``rltrain.kernels`` validates and then calls C++.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "RewardNormalizer",
    "RunningMeanStd",
    "discounted_returns",
    "episodic_advantages",
    "gae",
    "group_advantages",
    "group_normalize",
    "hybrid_advantages",
    "per_step_advantages",
    "ppo_loss_grad",
    "rloo_advantages",
]


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _flags(x: Any) -> np.ndarray:
    return _np(x).astype(bool)


def _write(out: Any, value: np.ndarray) -> Any:
    if out is None:
        return value
    _np(out)[...] = value
    return out


def gae(
    rewards: Any,
    values: Any,
    dones: Any,
    last_values: Any,
    *,
    gamma: float = 0.99,
    lam: float = 0.95,
    terminated: Any = None,
    final_values: Any = None,
    out: tuple[Any, Any] | None = None,
) -> tuple[Any, Any]:
    """Generalized Advantage Estimation (Schulman et al. 2016, eq. 16), time-major ``[T, N]``.

    ``dones[t]`` cuts the trace after step t. Without ``terminated`` a done step bootstraps nothing
    (Stable-Baselines3's ``compute_returns_and_advantage``); with it, a truncated step (done, not terminated)
    bootstraps from ``final_values[t]``, the value of the true final observation. ``lam=0`` gives the TD(0)
    error, ``lam=1`` the Monte-Carlo return minus V.
    """
    r, v = _np(rewards), _np(values)
    dtype = np.result_type(r, v, _np(last_values))
    r, v, lv = r.astype(dtype), v.astype(dtype), _np(last_values).astype(dtype)
    d = _flags(dones)
    term = None if terminated is None else _flags(terminated)
    fin = None if terminated is None else _np(final_values).astype(dtype)
    T = r.shape[0]
    adv = np.zeros_like(r)
    g, gl = dtype.type(gamma), dtype.type(gamma * lam)
    a_next = np.zeros_like(lv)
    for t in range(T - 1, -1, -1):
        next_v = v[t + 1] if t < T - 1 else lv
        if term is None or fin is None:  # both or neither
            boot = np.where(d[t], dtype.type(0), next_v)
        else:
            boot = np.where(term[t], dtype.type(0), np.where(d[t], fin[t], next_v))
        delta = r[t] + g * boot - v[t]
        a_next = delta + gl * np.where(d[t], dtype.type(0), a_next)
        adv[t] = a_next
    returns = adv + v
    if out is None:
        return adv, returns
    return _write(out[0], adv), _write(out[1], returns)


def discounted_returns(
    rewards: Any, dones: Any, *, gamma: float = 0.99, last_values: Any = None, out: Any = None
) -> Any:
    """``R[t] = rewards[t] + gamma * (1 - dones[t]) * R[t+1]`` with ``R[T] = last_values`` (zeros when None)."""
    r = _np(rewards)
    d = _flags(dones)
    dtype = r.dtype if last_values is None else np.result_type(r, _np(last_values))
    r = r.astype(dtype)
    nxt = np.zeros(r.shape[1], dtype) if last_values is None else _np(last_values).astype(dtype)
    g = dtype.type(gamma)
    res = np.zeros_like(r)
    for t in range(r.shape[0] - 1, -1, -1):
        nxt = r[t] + g * np.where(d[t], dtype.type(0), nxt)
        res[t] = nxt
    return _write(out, res)


def _std(x: np.ndarray, ddof: int) -> float:
    """Standard deviation with ``ddof``; 0 where fewer than ddof + 1 values exist."""
    n = x.size
    if n < ddof + 1:
        return 0.0
    return float(np.sqrt(np.sum((x - x.mean()) ** 2) / (n - ddof)))


def group_normalize(
    scores: Any,
    *,
    group_size: int | None = None,
    scale: str = "group",
    eps: float = 1e-8,
    ddof: int = 0,
    out: Any = None,
) -> Any:
    """Group-relative advantages of scalar scores (GRPO, Shao et al. 2024): ``s - mean_group(s)``, divided by
    ``std_group + eps`` ("group"), by the std of all scores + eps ("batch"), or not at all ("none", Dr. GRPO)."""
    s = _np(scores)
    x = s.astype(np.float64)
    n = x.size
    gs = n if group_size is None else group_size
    res = np.zeros(n, np.float64)
    batch_denom = _std(x, ddof) + eps
    for g0 in range(0, n, max(gs, 1)):
        grp = x[g0 : g0 + gs]
        centered = grp - grp.mean()
        if scale == "group":
            centered = centered / (_std(grp, ddof) + eps)
        elif scale == "batch":
            centered = centered / batch_denom
        res[g0 : g0 + gs] = centered
    return _write(out, res.astype(s.dtype))


def _groups(rewards: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray, np.dtype, tuple[int, ...]]:
    r = _np(rewards)
    shape = r.shape
    B = int(np.prod(shape[:-2], dtype=np.int64))
    x = r.astype(np.float64).reshape((B,) + shape[-2:])
    lens = _np(lengths).astype(np.int64).reshape(x.shape[:2])
    return x, lens, r.dtype, shape


def _valid(lens: np.ndarray, T: int) -> np.ndarray:
    return np.arange(T)[None, :] < lens[:, None]


def episodic_advantages(
    rewards: Any, lengths: Any, *, eps: float = 1e-8, ddof: int = 0, out: Any = None
) -> Any:
    """Outcome supervision: ``A_i = (R_i - mean(R)) / (std(R) + eps)`` with ``R_i`` the total reward of
    episode i, written on each of its valid steps (zeros after its length)."""
    x, lens, dtype, shape = _groups(rewards, lengths)
    res = np.zeros_like(x)
    for b in range(x.shape[0]):
        mask = _valid(lens[b], x.shape[2])
        R = np.where(mask, x[b], 0.0).sum(axis=1)
        A = (R - R.mean()) / (_std(R, ddof) + eps) if R.size else R
        res[b] = np.where(mask, A[:, None], 0.0)
    return _write(out, res.reshape(shape).astype(dtype))


def _per_step_double(
    x: np.ndarray, lens: np.ndarray, gamma: float, normalize: str, eps: float, ddof: int
) -> np.ndarray:
    B, G, T = x.shape
    res = np.zeros_like(x)
    for b in range(B):
        mask = _valid(lens[b], T)
        n = np.zeros((G, T))
        if normalize == "timestep":
            for t in range(T):
                alive = mask[:, t]
                col = x[b, alive, t]
                if col.size:
                    n[alive, t] = (col - col.mean()) / (_std(col, ddof) + eps)
        else:
            vals = x[b][mask]
            if vals.size:
                n[mask] = (vals - vals.mean()) / (_std(vals, ddof) + eps)
        acc = np.zeros(G)
        for t in range(T - 1, -1, -1):
            acc = np.where(mask[:, t], n[:, t] + gamma * acc, 0.0)
            res[b, :, t] = acc
    return res


def per_step_advantages(
    rewards: Any,
    lengths: Any,
    *,
    gamma: float = 0.99,
    normalize: str = "timestep",
    eps: float = 1e-8,
    ddof: int = 0,
    out: Any = None,
) -> Any:
    """Process supervision: step rewards normalised per timestep over the episodes still alive at t
    ("timestep") or over all valid steps of the group ("pooled", DeepSeekMath), then
    ``A[i, t] = sum_{k=t}^{len_i-1} gamma^(k-t) n[i, k]``."""
    x, lens, dtype, shape = _groups(rewards, lengths)
    res = _per_step_double(x, lens, gamma, normalize, eps, ddof)
    return _write(out, res.reshape(shape).astype(dtype))


def hybrid_advantages(
    rewards: Any,
    lengths: Any,
    *,
    gamma: float = 0.99,
    alpha: float = 1.0,
    beta: float = 1.0,
    clip: float | None = 10.0,
    eps: float = 1e-8,
    ddof: int = 0,
    out: Any = None,
) -> Any:
    """Hybrid: ``sign = +1`` where the episodic advantage E and the per-step advantage S are both positive,
    else -1; magnitude ``|E|^alpha * |S|^beta`` (clipped at ``clip``); then normalised over the valid steps."""
    x, lens, dtype, shape = _groups(rewards, lengths)
    B, G, T = x.shape
    E = episodic_advantages(x, lens, eps=eps, ddof=ddof)
    S = _per_step_double(x, lens, gamma, "timestep", eps, ddof)
    res = np.zeros_like(x)
    for b in range(B):
        mask = _valid(lens[b], T)
        e, s = E[b], S[b]
        mag = np.abs(e) ** alpha * np.abs(s) ** beta
        if clip is not None:
            mag = np.minimum(mag, clip)
        h = np.where((e > 0) & (s > 0), mag, -mag)
        vals = h[mask]
        if vals.size:
            res[b][mask] = (vals - vals.mean()) / (_std(vals, ddof) + eps)
    return _write(out, res.reshape(shape).astype(dtype))


class RunningMeanStd:
    """Running mean and population variance (Stable-Baselines3 semantics, Chan et al. parallel merge)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.shape = tuple(shape)
        self.mean = np.zeros(self.shape, np.float64)
        self.var = np.ones(self.shape, np.float64)
        self.count = float(epsilon)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    def update(self, batch: Any) -> None:
        x = _np(batch).astype(np.float64)
        self._merge(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def merge(self, other: RunningMeanStd) -> None:
        self._merge(other.mean, other.var, other.count)

    def _merge(self, bmean: np.ndarray, bvar: np.ndarray, bcount: float) -> None:
        delta = bmean - self.mean
        tot = self.count + bcount
        m2 = self.var * self.count + bvar * bcount + delta**2 * self.count * bcount / tot
        self.mean = self.mean + delta * bcount / tot
        self.var = m2 / tot
        self.count = tot

    def normalize(self, x: Any, clip: float = 10.0, eps: float = 1e-8) -> np.ndarray:
        a = _np(x)
        return np.clip((a - self.mean) / np.sqrt(self.var + eps), -clip, clip).astype(a.dtype)


class RewardNormalizer:
    """Scales rewards by the std of the discounted return (SB3 ``VecNormalize`` reward path)."""

    def __init__(self, num_envs: int, gamma: float = 0.99, epsilon: float = 1e-8, clip: float = 10.0) -> None:
        self.gamma, self.epsilon, self.clip = gamma, epsilon, clip
        self.returns = np.zeros(num_envs, np.float64)
        self.stats = RunningMeanStd(shape=())
        self.training = True

    def normalize(self, rewards: Any, dones: Any) -> np.ndarray:
        r = _np(rewards)
        if self.training:
            self.returns = self.returns * self.gamma + r
            self.stats.update(self.returns)
        out = np.clip(r / np.sqrt(self.stats.var + self.epsilon), -self.clip, self.clip).astype(r.dtype)
        self.returns[_flags(dones)] = 0.0
        return out


def ppo_loss_grad(head: Any, actions: Any, old_logp: Any, adv: Any, returns: Any, values: Any, old_values: Any, *,
                  clip: float, clip_vf: float | None, ent_coef: float, vf_coef: float, dhead: Any, dvalues: Any,
                  log_std: Any = None, dlog_std: Any = None, normalize_adv: bool = False,
                  ) -> tuple[float, float, float, float, float]:
    """Loss ``pg + ent_coef * (-entropy) + vf_coef * value_loss`` of SB3's PPO and its gradient w.r.t. the head
    outputs and the values. Sub-gradients as autograd takes them on the torch formulation: ``min(u, c)`` splits
    ties evenly and ``clamp`` passes the gradient on the closed interval."""
    z = _np(head).astype(np.float64)
    B, A = z.shape
    lp_old, a_, ret, v, v_old = (_np(x).astype(np.float64) for x in (old_logp, adv, returns, values, old_values))
    if normalize_adv and B > 1:
        a_ = (a_ - a_.mean()) / (a_.std(ddof=1) + 1e-8)
    if log_std is None:
        act = _np(actions).astype(np.int64)
        lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
        logp_all = z - lse[:, None]
        p = np.exp(logp_all)
        logp = logp_all[np.arange(B), act]
        ent = -(p * logp_all).sum(1)
        entropy = float(ent.mean()) if B else 0.0
    else:
        ls = _np(log_std).astype(np.float64)
        x = _np(actions).astype(np.float64)
        d = x - z
        iv = np.exp(-2 * ls)
        logp = (-0.5 * d * d * iv - ls).sum(1) - 0.5 * np.log(2 * np.pi) * A
        entropy = float((0.5 + 0.5 * np.log(2 * np.pi) + ls).sum())
    log_ratio = logp - lp_old
    ratio = np.exp(log_ratio)
    clipped = np.clip(ratio, 1 - clip, 1 + clip)
    u, c = a_ * ratio, a_ * clipped
    in_range = (ratio >= 1 - clip) & (ratio <= 1 + clip)
    w = np.where(u < c, 1.0, np.where(u > c, in_range, 0.5 + 0.5 * in_range))
    dlogp = -a_ * w * ratio / B
    if log_std is None:
        onehot = np.zeros_like(p)
        onehot[np.arange(B), act] = 1.0
        g = dlogp[:, None] * (onehot - p) + (ent_coef / B) * p * (logp_all + ent[:, None])
    else:
        g = dlogp[:, None] * d * iv
        _np(dlog_std)[...] = (dlogp[:, None] * (d * d * iv - 1)).sum(0) - ent_coef
    _np(dhead)[...] = g
    if clip_vf is None:
        vpred, gate = v, np.ones_like(v)
    else:
        vpred = v_old + np.clip(v - v_old, -clip_vf, clip_vf)
        gate = (np.abs(v - v_old) <= clip_vf).astype(np.float64)
    err = ret - vpred
    _np(dvalues)[...] = -2.0 * vf_coef / B * err * gate

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if B else 0.0

    return (mean(-np.minimum(u, c)), mean(err * err), entropy, mean((ratio - 1) - log_ratio),
            mean((np.abs(ratio - 1) > clip).astype(np.float64)))


# ============================================================================================================
# Language-model RL kernels (SPEC §6): per-sample rewards [B] (or [B, R]) in groups of completions of a prompt.
# ============================================================================================================

LLM_PRESETS: dict[str, tuple[str, int, float, str, str]] = {
    "rltrain": ("group", 0, 1e-8, "std", "center"),  # = group_normalize
    "trl": ("group", 1, 1e-4, "std", "center"),  # TRL GRPOTrainer
    "verl": ("group", 1, 1e-6, "std", "identity"),  # verl compute_grpo_outcome_advantage
    "dr_grpo": ("none", 0, 1e-8, "std", "center"),  # Dr. GRPO (Liu et al. 2025): mean only
}
"""preset -> (scale, ddof, eps, eps_on, singleton) of ``group_advantages``."""


def _llm_groups(n: int, group_ids: Any, group_size: int | None) -> list[np.ndarray]:
    """The member indices of each group, ascending: by ``group_ids``, contiguous ``group_size``, or all n."""
    if group_ids is not None:
        ids = _np(group_ids).astype(np.int64)
        _, inverse = np.unique(ids, return_inverse=True)
        members = np.argsort(inverse, kind="stable")  # by group, ascending within each group
        return np.split(members, np.cumsum(np.bincount(inverse))[:-1]) if n else []
    gs = n if group_size is None else group_size
    return [np.arange(g0, g0 + gs) for g0 in range(0, n, max(gs, 1))]


def _mean_var(x: np.ndarray, ddof: int) -> tuple[float, float]:
    """Mean and variance ``ss / (n - ddof)`` (two passes, float64); variance 0 when n <= ddof."""
    n = x.size
    m = float(np.sum(x)) / n
    ss = float(np.sum((x - m) ** 2))
    return m, (ss / (n - ddof) if n > ddof else 0.0)


def _llm_denominator(var: float, eps: float, eps_on: str) -> float:
    return float(np.sqrt(var)) + eps if eps_on == "std" else float(np.sqrt(var + eps))


def _llm_normalize(x: np.ndarray, groups: list[np.ndarray], scale: str, ddof: int, eps: float, eps_on: str,
                   singleton: str) -> np.ndarray:
    """Group-relative advantages of the float64 values x (the rules of ``group_advantages``)."""
    res = np.zeros(x.size, np.float64)
    batch_d = _llm_denominator(_mean_var(x, ddof)[1], eps, eps_on) if scale == "batch" and x.size else 1.0
    for idx in groups:
        g = x[idx]
        if g.size == 1 and singleton == "identity":
            mean, var = 0.0, 1.0  # verl: a group of one gets mean 0, std 1
        else:
            mean, var = _mean_var(g, ddof)  # a group of one ("center"): mean = r, so A = 0
        if scale == "group":
            res[idx] = (g - mean) / _llm_denominator(var, eps, eps_on)
        elif scale == "batch":
            res[idx] = (g - mean) / batch_d
        else:
            res[idx] = g - mean
    return res


def group_advantages(
    rewards: Any,
    group_ids: Any = None,
    *,
    group_size: int | None = None,
    preset: str = "rltrain",
    scale: str | None = None,
    ddof: int | None = None,
    eps: float | None = None,
    eps_on: str | None = None,
    reward_weights: Any = None,
    combine: str = "sum",
    out: Any = None,
) -> Any:
    """GRPO advantages of per-sample rewards ``[B]`` or ``[B, R]`` (R reward columns) within groups.

    Groups: ``group_ids [B]`` (ints, any order, uneven sizes), or contiguous groups of ``group_size``, or (neither)
    one group of all B. ``preset`` sets ``(scale, ddof, eps, eps_on, singleton)`` (``LLM_PRESETS``); explicit
    ``scale``, ``ddof``, ``eps``, ``eps_on`` override it. In float64, per group: ``mean`` and
    ``var = sum((r - mean)^2) / (n - ddof)`` (0 when n <= ddof), ``std = sqrt(var)``; a group of one keeps
    ``mean = r`` ("center") or takes mean 0 and var 1 ("identity", verl). Then ``A = (r - mean) / d`` with
    ``d = std + eps`` (``eps_on="std"``) or ``sqrt(var + eps)`` (``"var"``) of the group (``scale="group"``) or
    of all B values with the same ddof (``"batch"``); ``A = r - mean`` for ``scale="none"``.

    ``combine="sum"``: the rule above on ``s_i = sum_k w_k r_ik`` (``reward_weights [R]``, default ones).
    ``combine="normalize_then_sum"`` (GDPO): each column normalised by the rule above, ``a_i = sum_k w_k a_ik``,
    then ``A = (a - mean_B(a)) / d_B(a)`` over the whole batch (same ddof, eps, eps_on). The output dtype is the
    result type of rewards and (a float array of) reward_weights."""
    r = _np(rewards)
    sc, dd, ep, eo, singleton = LLM_PRESETS[preset]
    sc = sc if scale is None else scale
    dd = dd if ddof is None else ddof
    ep = ep if eps is None else eps
    eo = eo if eps_on is None else eps_on
    dtype = r.dtype
    x = r.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("rewards: expected finite values")
    cols = x if x.ndim == 2 else x[:, None]
    w = np.ones(cols.shape[1])
    if reward_weights is not None:
        wa = _np(reward_weights)
        if hasattr(reward_weights, "dtype") and wa.dtype.kind == "f":
            dtype = np.result_type(dtype, wa.dtype)
        w = wa.astype(np.float64)
    groups = _llm_groups(x.shape[0], group_ids, group_size)
    if combine == "sum":
        s = x
        if x.ndim == 2:
            s = np.zeros(cols.shape[0])
            for k in range(cols.shape[1]):
                s += w[k] * cols[:, k]
        res = _llm_normalize(s, groups, sc, dd, ep, eo, singleton)
    else:
        a = np.zeros(cols.shape[0])
        for k in range(cols.shape[1]):
            a += w[k] * _llm_normalize(cols[:, k], groups, sc, dd, ep, eo, singleton)
        res = np.zeros_like(a)
        if a.size:
            mean, var = _mean_var(a, dd)
            res = (a - mean) / _llm_denominator(var, ep, eo)
    return _write(out, res.astype(dtype))


def rloo_advantages(rewards: Any, group_ids: Any = None, *, group_size: int | None = None, out: Any = None) -> Any:
    """REINFORCE leave-one-out (Ahmadian et al. 2024): ``A_i = r_i - (sum_g - r_i) / (n_g - 1)``, the reward minus
    the mean of the other members of its group; 0 in a group of one. Groups as in ``group_advantages``."""
    r = _np(rewards)
    x = r.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("rewards: expected finite values")
    res = np.zeros(x.size, np.float64)
    for idx in _llm_groups(x.size, group_ids, group_size):
        if idx.size > 1:
            total = float(np.sum(x[idx]))
            res[idx] = x[idx] - (total - x[idx]) / (idx.size - 1)
    return _write(out, res.astype(r.dtype))


# ============================================================================================================
# LLM token kernels (SPEC §6): token_returns, masked_whiten, token_gae, kl_estimate.
# Token tensors are [B, L] (kl_estimate and masked_whiten: any shape), mask of the same shape: bool/uint8 flags
# count as 0/1 (non-zero = 1); float masks enter the formulas with their value. The output dtype is that of the
# float inputs (result_type); the recursions run in it, statistics in float64.
# ============================================================================================================

__all__ += ["kl_estimate", "masked_whiten", "token_gae", "token_returns"]

KL_KINDS = {"k1": "k1", "kl": "k1", "k2": "k2", "mse": "k2", "k3": "k3", "low_var_kl": "k3", "abs": "abs"}
"""Names of the KL estimators, verl's spellings included ("kl", "mse", "low_var_kl")."""


def _mask_as(mask: Any, dtype: Any) -> np.ndarray:
    """The mask as numbers of ``dtype``: flags (bool, integers) as 0/1, float masks converted as they are."""
    m = _np(mask)
    return m.astype(dtype) if m.dtype.kind == "f" else (m != 0).astype(dtype)


def token_returns(
    token_rewards: Any, mask: Any, *, gamma: float = 1.0, masked: str = "restart", out: Any = None
) -> Any:
    """Reverse discounted returns over ``[B, L]`` tokens, from ``t = L - 1`` down with ``run = 0``:

    * ``masked="restart"`` (SPEC §6): ``ret[t] = r[t] + gamma * run; run = ret[t] * mask[t]`` -- a masked token
      restarts the return; ``ret`` at masked positions is whatever the recursion gives.
    * ``masked="carry"`` (verl 0.9.1 ``compute_reinforce_plus_plus_outcome_advantage``):
      ``new = r[t] + gamma * run; ret[t] = new * mask[t]; run = new * mask[t] + run * (1 - mask[t])`` -- the
      return carries unchanged across masked spans, and is 0 there.
    """
    r = _np(token_rewards)
    dtype = r.dtype
    m = _mask_as(mask, dtype)
    g, one = dtype.type(gamma), dtype.type(1)
    ret = np.empty_like(r)
    run = np.zeros(r.shape[0], dtype)
    for t in range(r.shape[1] - 1, -1, -1):
        new = r[:, t] + g * run
        if masked == "restart":
            ret[:, t] = new
            run = new * m[:, t]
        else:
            kept = new * m[:, t]
            ret[:, t] = kept
            run = kept + run * (one - m[:, t])
    return _write(out, ret)


def masked_whiten(
    x: Any, mask: Any, *, shift_mean: bool = True, eps: float = 1e-8, times_mask: bool = False, out: Any = None
) -> Any:
    """verl's ``masked_whiten``: with ``n = sum(mask)``, ``mean = sum(x * mask) / n`` and the unbiased
    ``var = sum((x - mean)^2 * mask) / n * n / (n - 1)`` (float64), every position becomes
    ``(x - mean) * 1 / sqrt(var + eps)`` (``+ mean`` again when ``shift_mean`` is False), computed in float64
    and rounded once to x's dtype; with ``times_mask`` that result is then multiplied by the mask in x's dtype
    (flags as 0/1), as verl's REINFORCE++ does. ``ValueError`` naming ``mask`` when ``n < 2``."""
    xa = _np(x)
    xs = xa.astype(np.float64)
    m = _mask_as(mask, np.float64)
    n = float(m.sum())
    if not n >= 2.0:
        raise ValueError(f"mask: expected at least 2 masked entries (sum of mask >= 2), got {n}")
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = float((xs * m).sum()) / n
        var = float(((xs - mean) ** 2 * m).sum()) / n * (n / (n - 1.0))
        w = (xs - mean) * (1.0 / np.sqrt(var + eps))
        if not shift_mean:
            w = w + mean
        res = w.astype(xa.dtype)
        if times_mask:
            res = res * _mask_as(mask, xa.dtype)
    return _write(out, res)


def token_gae(
    token_rewards: Any,
    values: Any,
    mask: Any,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
    out: tuple[Any, Any] | None = None,
) -> tuple[Any, Any]:
    """GAE over response tokens as verl 0.9.1's ``compute_gae_advantage_return`` computes it, without its final
    whitening. ``nextvalues = lastgaelam = 0``; for ``t`` from ``L - 1`` down::

        delta = r[t] + gamma * nextvalues - v[t];  lg = delta + gamma * lam * lastgaelam
        nextvalues = v[t] * m[t] + (1 - m[t]) * nextvalues;  lastgaelam = lg * m[t] + (1 - m[t]) * lastgaelam
        adv[t] = lastgaelam

    so masked tokens are skipped: the advantage and the next value carry backward through them.
    ``returns = adv + values`` at every position. ``gamma * lam`` is rounded once to the dtype."""
    r, v = _np(token_rewards), _np(values)
    dtype = np.result_type(r, v)
    r, v = r.astype(dtype), v.astype(dtype)
    m = _mask_as(mask, dtype)
    g, gl, one = dtype.type(gamma), dtype.type(gamma * lam), dtype.type(1)
    adv = np.empty_like(r)
    nextvalues = np.zeros(r.shape[0], dtype)
    lastgaelam = np.zeros(r.shape[0], dtype)
    for t in range(r.shape[1] - 1, -1, -1):
        delta = (r[:, t] + g * nextvalues) - v[:, t]
        lg = delta + gl * lastgaelam
        keep = one - m[:, t]
        nextvalues = v[:, t] * m[:, t] + keep * nextvalues
        lastgaelam = lg * m[:, t] + keep * lastgaelam
        adv[:, t] = lastgaelam
    a, b = (None, None) if out is None else out
    return _write(a, adv), _write(b, adv + v)


def kl_estimate(
    logp: Any, ref_logp: Any, mask: Any = None, *, kind: str = "k3", clamp: bool = False, out: Any = None
) -> Any:
    """Per-token KL estimators (J. Schulman, "Approximating KL divergence", 2020), any shape.

    With ``d = logp - ref_logp``: ``k1 = d``; ``k2 = d^2 / 2``; ``k3 = exp(-d) + d - 1``, evaluated as verl does
    with ``kl = ref_logp - logp`` as ``(exp(kl) - kl) - 1``; ``"abs" = |d|``. verl's names are accepted:
    ``"kl"`` = k1, ``"mse"`` = k2, ``"low_var_kl"`` = k3. ``clamp=True`` (k3 only) reproduces verl's
    ``kl_penalty_forward``: ``kl`` clamped to [-20, 20] before the exp, the result to [-10, 10]. Where
    ``mask == 0`` the output is exactly 0 (a select: no NaN from ``inf * 0``)."""
    a, b = _np(logp), _np(ref_logp)
    dtype = np.result_type(a, b)
    d = a.astype(dtype) - b.astype(dtype)
    k = KL_KINDS[kind]
    with np.errstate(over="ignore", invalid="ignore"):
        if k == "k1":
            v = d
        elif k == "k2":
            v = dtype.type(0.5) * (d * d)
        elif k == "abs":
            v = np.abs(d)
        else:
            kl = -d
            if clamp:
                kl = np.clip(kl, dtype.type(-20), dtype.type(20))
            v = (np.exp(kl) - kl) - dtype.type(1)
            if clamp:
                v = np.clip(v, dtype.type(-10), dtype.type(10))
    if mask is not None:
        v = np.where(_np(mask) != 0, v, dtype.type(0))
    return _write(out, np.asarray(v, dtype))
