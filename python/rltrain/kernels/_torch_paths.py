"""The language-model kernels (SPEC §6) written with torch operations only, for tensors that live on a GPU.

A CUDA tensor reaches the C++ kernels only through a copy to the host and back; for large token tensors that copy
costs more than computing on the device. The wrappers in ``rltrain.kernels`` therefore send a CUDA call either
here or through the host, as ``CUDA_PATH`` says for each kernel (set from ``bench/gpu_llm_kernels.py`` run on a
GPU). These functions take the arguments the wrappers have already checked and resolved (no ``preset``, no
``out=``), work on any device, and have no Python loop over tokens or samples:

- group statistics are two-pass float64 sums per group (a reshape for a fixed ``group_size``, ``torch.unique``
  and ``index_add_`` for arbitrary ids);
- the token recurrences (``token_returns``, ``token_gae``) are first-order linear recurrences
  ``x[t] = a[t] * x[t + 1] + b[t]``, solved by a Hillis-Steele parallel scan in ceil(log2 L) vectorised steps
  (Blelloch, "Prefix sums and their applications", 1990, first-order recurrences: the maps compose
  associatively). The scan runs in the input dtype: each output is a sum of log2(L) partial sums, so in float32
  at L = 32,768 it was measured within ~1e-7 of the float64 loop relative to the largest |value| (the test in
  tests/test_llm_torch_paths.py allows 1e-6).

torch is imported inside each function: importing ``rltrain.kernels`` must not load it (tests/test_layering.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CUDA_PATH: dict[str, str] = {
    "group_advantages": "torch",
    "rloo_advantages": "torch",
    "token_returns": "torch",
    "masked_whiten": "torch",
    "token_gae": "torch",
    "kl_estimate": "torch",
}
"""For a CUDA input, each kernel's faster path: "torch" (the functions here, on the device) or "host" (copy to
the CPU, run the C++ kernel, copy back). Measured by ``bench/gpu_llm_kernels.py`` on an H200 (torch 2.11, 16 host
cores; bench/results/gpu_llm_kernels_h200.json), sum of the medians over each kernel's cases: the torch path wins
for every kernel, by 5x-280x at [1024, 4096] (e.g. token_gae 1.4 vs 28.6 ms, kl_estimate 0.12 vs 32 ms) and for
scattered group ids (B = 1,048,576: 0.75 vs 24 ms). The host path was faster only for small calls, where a few
host microseconds beat the device's launch latency: one 32,768-token sequence (token_returns 0.20 vs 1.3 ms,
token_gae 0.37 vs 2.6 ms: the scan's log2(L) launches) and contiguous groups at B = 65,536 (0.23 vs 0.34 ms)."""


# ------------------------------------------------------------------------------------------------- groups


class _Groups:
    """Sums per group along dim 0 and the broadcast of a per-group statistic back to the members.

    Three layouts: arbitrary ``ids`` (``torch.unique`` + ``index_add_``), contiguous groups of ``size`` (a
    reshape), or one group of everything (both None)."""

    def __init__(self, n: int, ids: torch.Tensor | None, size: int | None, device: torch.device) -> None:
        import torch

        self.n = n
        self.inverse: torch.Tensor | None = None
        self.size: int | None = None
        if ids is not None:
            _, inverse, counts = torch.unique(ids.reshape(-1), return_inverse=True, return_counts=True)
            self.inverse = inverse
            self.count = counts.to(torch.float64)
        elif size is not None:
            self.size = int(size)
            self.count = torch.full((n // self.size,), float(self.size), dtype=torch.float64, device=device)
        else:
            self.count = torch.full((1,), float(n), dtype=torch.float64, device=device)

    def sum(self, x: torch.Tensor) -> torch.Tensor:
        """[B, ...] -> [G, ...]."""
        import torch

        if self.inverse is not None:
            out = torch.zeros((self.count.shape[0], *x.shape[1:]), dtype=x.dtype, device=x.device)
            return out.index_add_(0, self.inverse, x)
        if self.size is not None:
            return x.reshape(self.n // self.size, self.size, *x.shape[1:]).sum(1)
        return x.sum(0, keepdim=True)

    def spread(self, s: torch.Tensor) -> torch.Tensor:
        """[G, ...] -> [B, ...] (or a shape that broadcasts against it): each member gets its group's value."""
        if self.inverse is not None:
            return s.index_select(0, self.inverse)
        if self.size is not None:
            return s.repeat_interleave(self.size, dim=0)
        return s

    def per_member(self, c: torch.Tensor, trailing: int) -> torch.Tensor:
        """A per-group vector [G] spread to the members, with ``trailing`` unit dims to broadcast over columns."""
        return self.spread(c).reshape(-1, *([1] * trailing))


def _var(ss: torch.Tensor, n: torch.Tensor | float, ddof: int) -> torch.Tensor:
    """Sum of squared deviations -> variance with ``ddof``; 0 where no more than ``ddof`` values exist."""
    import torch

    if isinstance(n, float):  # the batch: no tensor (and no host-to-device copy) for one number
        return ss / (n - ddof) if n > ddof else torch.zeros_like(ss)
    denom = n - float(ddof)
    return torch.where(denom > 0, ss / denom.clamp(min=1.0), torch.zeros_like(ss))


def _divide(d: torch.Tensor, var: torch.Tensor, eps: float, eps_on: str) -> torch.Tensor:
    """``d / (std + eps)`` or, with ``eps_on="var"``, ``d / sqrt(var + eps)``."""
    if eps_on == "var":
        return d / (var + eps).sqrt()
    return d / (var.sqrt() + eps)


def _batch_var(x: torch.Tensor, ddof: int) -> torch.Tensor:
    """Two-pass variance over dim 0 (per column), shaped to broadcast against ``x``."""
    mean = x.mean(0, keepdim=True)
    ss = (x - mean).square().sum(0, keepdim=True)
    return _var(ss, float(x.shape[0]), ddof)


def _normalize(
    r: torch.Tensor, g: _Groups, *, scale: str, ddof: int, eps: float, eps_on: str, singleton: str
) -> torch.Tensor:
    """Group-normalise the float64 rewards ``r`` [B] or [B, R] (each column on its own)."""
    import torch

    trailing = r.dim() - 1
    mean = g.sum(r) / g.count.reshape(-1, *([1] * trailing))
    centered = r - g.spread(mean)
    dev = centered
    one = g.per_member(g.count, trailing) == 1
    if singleton == "identity":
        # verl: a group of one has mean 0 and std 1, so its advantage is r itself (up to eps).
        dev = torch.where(one, r, centered)
    if scale == "none":
        return dev
    if scale == "batch":
        return _divide(dev, _batch_var(r, ddof), eps, eps_on)
    var = _var(g.sum(centered.square()), g.count.reshape(-1, *([1] * trailing)), ddof)
    var_b = g.spread(var)
    if singleton == "identity":
        var_b = torch.where(one, torch.ones_like(var_b), var_b)
    return _divide(dev, var_b, eps, eps_on)


def group_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor | None,
    *,
    group_size: int | None,
    scale: str,
    ddof: int,
    eps: float,
    eps_on: str,
    singleton: str,
    reward_weights: torch.Tensor | None,
    combine: str,
) -> torch.Tensor:
    """GRPO advantages of ``rewards`` [B] or [B, R] per group (the wrapper has resolved ``preset``).

    ``combine="sum"``: the weighted sum of the columns is normalised; ``"normalize_then_sum"`` (GDPO): each column
    is normalised, the weighted sum taken, and that sum normalised over the batch once more."""
    import torch

    r = rewards.to(torch.float64)
    g = _Groups(r.shape[0], group_ids, group_size, r.device)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return _normalize(x, g, scale=scale, ddof=ddof, eps=eps, eps_on=eps_on, singleton=singleton)

    if r.dim() == 2:
        w = (
            torch.ones(r.shape[1], dtype=torch.float64, device=r.device)
            if reward_weights is None
            else reward_weights.to(device=r.device, dtype=torch.float64)
        )
        if combine == "normalize_then_sum":
            a = norm(r) @ w
            out = _divide(a - a.mean(), _batch_var(a, ddof), eps, eps_on)
            return out.to(rewards.dtype)
        r = r @ w
    return norm(r).to(rewards.dtype)


def rloo_advantages(rewards: torch.Tensor, group_ids: torch.Tensor | None, *, group_size: int | None) -> torch.Tensor:
    """REINFORCE leave-one-out: ``r_i - (sum_g - r_i) / (n_g - 1)``; 0 for a group of one."""
    import torch

    r = rewards.to(torch.float64)
    g = _Groups(r.shape[0], group_ids, group_size, r.device)
    trailing = r.dim() - 1
    total = g.spread(g.sum(r))
    n = g.per_member(g.count, trailing)
    adv = r - (total - r) / (n - 1.0).clamp(min=1.0)
    return torch.where(n > 1, adv, torch.zeros_like(adv)).to(rewards.dtype)


# ---------------------------------------------------------------------------------------------- token scans


def _reverse_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``x[..., t] = a[..., t] * x[..., t + 1] + b[..., t]`` with ``x[..., L] = 0``, along the last dim.

    Hillis-Steele: after the step with offset d, (a[t], b[t]) is the composition of the maps t .. t+2d-1, so
    b[t] is x[t] once 2d >= L. Two buffers alternate (torch refuses overlapping in-place updates)."""
    import torch

    length = b.shape[-1]
    a, b = a.clone(), b.clone()
    a2, b2 = torch.empty_like(a), torch.empty_like(b)
    d = 1
    while d < length:
        torch.addcmul(b[..., :-d], a[..., :-d], b[..., d:], out=b2[..., :-d])
        b2[..., -d:] = b[..., -d:]
        b, b2 = b2, b
        if 2 * d < length:
            torch.mul(a[..., :-d], a[..., d:], out=a2[..., :-d])
            a2[..., -d:] = a[..., -d:]
            a, a2 = a2, a
        d *= 2
    return b


def _float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(device=like.device, dtype=like.dtype)


def _shift_left(x: torch.Tensor) -> torch.Tensor:
    """``y[..., t] = x[..., t + 1]``, 0 at the last position."""
    import torch

    y = torch.zeros_like(x)
    y[..., :-1] = x[..., 1:]
    return y


def token_returns(token_rewards: torch.Tensor, mask: torch.Tensor, *, gamma: float, masked: str) -> torch.Tensor:
    """Reverse discounted returns over [B, L], from the last token back, ``run = 0`` at the end.

    ``masked="restart"`` (verl's REINFORCE++): ``ret[t] = r[t] + gamma * run; run = ret[t] * mask[t]``.
    ``masked="carry"``: a masked token passes ``run`` through unchanged and gets 0:
    ``new = r[t] + gamma * run; ret[t] = new * mask[t]; run = new * mask[t] + run * (1 - mask[t])``."""
    r = token_rewards
    m = _float_mask(mask, r)
    if masked == "restart":
        # ret[t] = r[t] + gamma * m[t+1] * ret[t+1]
        return _reverse_scan(_shift_left(m) * gamma, r)
    # run[t] = (1 - m[t] + gamma m[t]) run[t+1] + m[t] r[t];  ret[t] = m[t] (r[t] + gamma run[t+1])
    run = _reverse_scan(1.0 - m + gamma * m, m * r)
    return m * (r + gamma * _shift_left(run))


def token_gae(
    token_rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over [B, L] as verl's ``compute_gae_advantage_return``: masked positions carry ``nextvalues`` and
    ``lastgaelam`` backward unchanged. Returns ``(advantages, advantages + values)``."""
    r, v = token_rewards, values
    m = _float_mask(mask, r)
    keep = 1.0 - m
    # nextvalues after position t: nv[t] = (1 - m[t]) nv[t+1] + m[t] v[t]
    nv = _reverse_scan(keep, m * v)
    delta = r + gamma * _shift_left(nv) - v
    # lastgaelam after position t: g[t] = (1 - m[t] + m[t] gamma lam) g[t+1] + m[t] delta[t]
    adv = _reverse_scan(keep + (gamma * lam) * m, m * delta)
    return adv, adv + v


# --------------------------------------------------------------------------------------------- per token


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool, eps: float, times_mask: bool = False
) -> torch.Tensor:
    """``(x - mean) * rsqrt(var + eps)`` (``+ mean`` unless ``shift_mean``) at every position, with the mean and
    the unbiased variance of the masked entries (float64, two passes); times the mask in x's dtype when
    ``times_mask``."""
    import torch

    x64 = x.to(torch.float64)
    m = mask.to(device=x.device, dtype=torch.float64)
    n = m.sum()
    mean = (x64 * m).sum() / n
    dev = x64 - mean
    var = (dev.square() * m).sum() / (n - 1.0)
    out = dev * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    if times_mask:
        return out.to(x.dtype) * mask.to(x.dtype)
    return out.to(x.dtype)


def kl_estimate(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor | None, *, kind: str, clamp: bool
) -> torch.Tensor:
    """Per-token KL estimate of ``d = logp - ref_logp`` (Schulman's k1, k2, k3, or |d|); 0 where ``mask`` is 0.

    k3 = exp(-d) + d - 1 is computed as ``expm1(-d) + d``, which keeps float32 accurate for small |d|; with
    ``clamp`` (verl's ``low_var_kl``) -d is clamped to [-20, 20] first and the estimate to [-10, 10]."""
    import torch

    d = logp - ref_logp
    if kind == "k1":
        k = d
    elif kind == "k2":
        k = 0.5 * d.square()
    elif kind == "abs":
        k = d.abs()
    else:
        neg = -d
        if clamp:
            neg = neg.clamp(-20.0, 20.0)
        k = torch.expm1(neg) - neg
        if clamp:
            k = k.clamp(-10.0, 10.0)
    if mask is None:
        return k
    return torch.where(mask.to(device=k.device) != 0, k, torch.zeros_like(k))
