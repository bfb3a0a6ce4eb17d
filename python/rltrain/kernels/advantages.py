"""Advantage and return kernels: GAE, discounted returns and the group (GRPO) advantages.

Each function validates its arguments (``ValueError``/``TypeError`` naming the argument and the expected versus
actual shape or dtype), converts torch tensors and non-contiguous arrays, and calls the C++ core with the GIL
released. A plain call (C-contiguous NumPy arrays, Python float scalars) goes straight to the binding, which
checks shapes, dtypes, ranges and lengths itself. ``rltrain.reference`` holds the NumPy specification.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrain import _core
from rltrain._checks import choice, optional_integer, optional_real, real, require_ndim, require_shape, shape_str
from rltrain.kernels._convert import (
    I64,
    Io,
    Out,
    aliased,
    as_dtype,
    copy_into,
    ddof_arg,
    flag_array,
    float_dtype,
    out_tuple,
    plain,
    plain_ddof,
    plain_flags,
    plain_lengths,
    plain_or_none,
)


def _discount(x: Any, name: str) -> float:
    """gamma and lam: a finite number in [0, 1]."""
    return real(x, name, lo=0.0, hi=1.0)


def _nonneg(x: Any, name: str) -> float:
    return real(x, name, lo=0.0)


def _option(value: Any, name: str, options: dict[str, int]) -> int:
    """The code of a string option; ``choice`` words the error (a dict lookup first: it is on the fast path)."""
    try:
        return options[value]
    except (KeyError, TypeError):
        return options[choice(value, name, options)]


# ---------------------------------------------------------------------------------------------------- GAE


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
    """Generalized Advantage Estimation over time-major ``[T, N]`` buffers; returns ``(advantages, returns)``.

    Schulman et al. 2016, eq. 16: ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}`` with
    ``delta_t = r_t + gamma * V_boot - V_t``. ``lam=0`` is the TD(0) error, ``lam=1`` the Monte-Carlo return
    minus V. Without ``terminated`` a done step bootstraps nothing (Stable-Baselines3's RolloutBuffer);
    with ``terminated`` (and ``final_values``), truncated steps bootstrap from the value of the true final
    observation. See ``rltrain.reference.gae`` for the exact definition.
    """
    o_adv, o_ret = (None, None) if out is None else out_tuple(out, 2)
    if out is not None and aliased(
        (("out[0] (advantages)", o_adv), ("out[1] (returns)", o_ret)),
        (("rewards", rewards), ("values", values), ("dones", dones), ("last_values", last_values),
         ("terminated", terminated), ("final_values", final_values)),
    ):
        a, b = gae(rewards, values, dones, last_values, gamma=gamma, lam=lam, terminated=terminated,
                   final_values=final_values)
        return copy_into(o_adv, a, "out[0] (advantages)"), copy_into(o_ret, b, "out[1] (returns)")
    if (
        terminated is None
        and type(gamma) is float
        and type(lam) is float
        and plain(rewards)
        and plain(values, rewards.dtype)
        and plain(last_values, rewards.dtype)
        and plain_flags(dones)
        and plain_or_none(o_adv, rewards.dtype)
        and plain_or_none(o_ret, rewards.dtype)
    ):
        return _core.kernels.gae(rewards, values, dones, last_values, None, None, gamma, lam, o_adv, o_ret)
    io = Io()
    r = io.array(rewards, "rewards")
    require_ndim(r, "rewards", 2, "[T, N]")
    T, N = r.shape
    v = io.array(values, "values")
    lv = io.array(last_values, "last_values")
    dtype = np.result_type(float_dtype(r, "rewards"), float_dtype(v, "values"), float_dtype(lv, "last_values"))
    require_shape(v, "values", (T, N), "[T, N]")
    d = io.array(dones, "dones")
    require_shape(d, "dones", (T, N), "[T, N]")
    require_shape(lv, "last_values", (N,), "[N]")
    term = fin = None
    if terminated is not None:
        term = io.array(terminated, "terminated")
        require_shape(term, "terminated", (T, N), "[T, N]")
        if final_values is None:
            raise ValueError("final_values: required when terminated is given (values of the true final observations)")
        fin = io.array(final_values, "final_values")
        dtype = np.result_type(dtype, float_dtype(fin, "final_values"))
        require_shape(fin, "final_values", (T, N), "[T, N]")
        term = flag_array(term, "terminated")
        fin = as_dtype(fin, dtype)
    d = flag_array(d, "dones")
    g, lm = _discount(gamma, "gamma"), _discount(lam, "lam")
    adv = Out(o_adv, "out[0] (advantages)", (T, N), dtype)
    ret = Out(o_ret, "out[1] (returns)", (T, N), dtype)
    a, b = _core.kernels.gae(as_dtype(r, dtype), as_dtype(v, dtype), d, as_dtype(lv, dtype), term, fin, g, lm, adv.buf,
                     ret.buf)
    return adv.result(io, a), ret.result(io, b)


def discounted_returns(
    rewards: Any, dones: Any, *, gamma: float = 0.99, last_values: Any = None, out: Any = None
) -> Any:
    """``R[t] = rewards[t] + gamma * (1 - dones[t]) * R[t+1]`` over ``[T, N]``; ``R[T] = last_values``
    (zeros when None). Monte-Carlo returns for REINFORCE."""
    if out is not None and aliased((("out", out),),
                                   (("rewards", rewards), ("dones", dones), ("last_values", last_values))):
        return copy_into(out, discounted_returns(rewards, dones, gamma=gamma, last_values=last_values))
    if (
        type(gamma) is float
        and plain(rewards)
        and plain_flags(dones)
        and plain_or_none(last_values, rewards.dtype)
        and plain_or_none(out, rewards.dtype)
    ):
        return _core.kernels.discounted_returns(rewards, dones, last_values, gamma, out)
    io = Io()
    r = io.array(rewards, "rewards")
    require_ndim(r, "rewards", 2, "[T, N]")
    T, N = r.shape
    dtype = float_dtype(r, "rewards")
    d = io.array(dones, "dones")
    require_shape(d, "dones", (T, N), "[T, N]")
    lv = None
    if last_values is not None:
        lv = io.array(last_values, "last_values")
        dtype = np.result_type(dtype, float_dtype(lv, "last_values"))
        require_shape(lv, "last_values", (N,), "[N]")
        lv = as_dtype(lv, dtype)
    d = flag_array(d, "dones")
    g = _discount(gamma, "gamma")
    o = Out(out, "out", (T, N), dtype)
    return o.result(io, _core.kernels.discounted_returns(as_dtype(r, dtype), d, lv, g, o.buf))


# ------------------------------------------------------------------------------------------ group kernels


def _fast_group(rewards: Any, lengths: Any, out: Any, eps: Any, ddof: Any) -> bool:
    """The fast-path test shared by the three group kernels (each adds its own scalars)."""
    return (
        type(eps) is float
        and plain_ddof(ddof)
        and plain(rewards)
        and plain_lengths(lengths)
        and plain_or_none(out, rewards.dtype)
    )


def _group_inputs(io: Io, rewards: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validates and converts ``rewards [G, T] | [B, G, T]`` and ``lengths [G] | [B, G]``."""
    r = io.array(rewards, "rewards")
    if r.ndim not in (2, 3):
        raise ValueError(f"rewards: expected a 2-D [G, T] or 3-D [B, G, T] array, got shape {shape_str(r.shape)}")
    dtype = float_dtype(r, "rewards")
    lens = io.array(lengths, "lengths")
    if lens.dtype == np.bool_ or lens.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected an integer dtype, got {lens.dtype}")
    require_shape(lens, "lengths", r.shape[:-1], "[G]" if r.ndim == 2 else "[B, G]")
    T = r.shape[-1]
    if lens.size:
        lo, hi = int(lens.min()), int(lens.max())
        if lo < 0 or hi > T:
            bad = lo if lo < 0 else hi
            raise ValueError(f"lengths: expected integers in [0, T] = [0, {T}], got {bad}")
    return as_dtype(r, dtype), as_dtype(lens, I64), tuple(r.shape)


def episodic_advantages(
    rewards: Any, lengths: Any, *, eps: float = 1e-8, ddof: int = 0, out: Any = None
) -> Any:
    """Outcome supervision (GRPO): every valid step of episode i gets
    ``(R_i - mean(R)) / (std(R) + eps)``, ``R_i`` its total reward; zeros past ``lengths[i]``.

    ``rewards [G, T]`` padded per episode (or ``[B, G, T]`` for B independent groups), ``lengths [G]``."""
    if out is not None and aliased((("out", out),), (("rewards", rewards), ("lengths", lengths))):
        return copy_into(out, episodic_advantages(rewards, lengths, eps=eps, ddof=ddof))
    if _fast_group(rewards, lengths, out, eps, ddof):
        return _core.kernels.episodic_advantages(rewards, lengths, eps, ddof, out)
    io = Io()
    e, dd = _nonneg(eps, "eps"), ddof_arg(ddof)
    r3, l2, shape = _group_inputs(io, rewards, lengths)
    o = Out(out, "out", shape, r3.dtype)
    return o.result(io, _core.kernels.episodic_advantages(r3, l2, e, dd, o.buf))


_NORMALIZE = {"timestep": 0, "pooled": 1}


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
    """Process supervision (GRPO): normalise step rewards per timestep over the episodes alive at t
    (``normalize="timestep"``) or over all valid steps (``"pooled"``, DeepSeekMath), then
    ``A[i, t] = sum_{k=t}^{len_i-1} gamma^(k-t) n[i, k]``."""
    pooled = _option(normalize, "normalize", _NORMALIZE)
    if out is not None and aliased((("out", out),), (("rewards", rewards), ("lengths", lengths))):
        return copy_into(out, per_step_advantages(rewards, lengths, gamma=gamma, normalize=normalize, eps=eps,
                                                  ddof=ddof))
    if type(gamma) is float and _fast_group(rewards, lengths, out, eps, ddof):
        return _core.kernels.per_step_advantages(rewards, lengths, gamma, pooled, eps, ddof, out)
    io = Io()
    g, e, dd = _discount(gamma, "gamma"), _nonneg(eps, "eps"), ddof_arg(ddof)
    r3, l2, shape = _group_inputs(io, rewards, lengths)
    o = Out(out, "out", shape, r3.dtype)
    return o.result(io, _core.kernels.per_step_advantages(r3, l2, g, pooled, e, dd, o.buf))


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
    """Hybrid group advantage: ``sign = +1`` only where the episodic (E) and per-step (S, timestep
    normalisation) advantages are both positive; ``|E|^alpha * |S|^beta`` clipped at ``clip`` (None: no clip);
    then normalised to zero mean and unit std over the group's valid steps."""
    if out is not None and aliased((("out", out),), (("rewards", rewards), ("lengths", lengths))):
        return copy_into(out, hybrid_advantages(rewards, lengths, gamma=gamma, alpha=alpha, beta=beta, clip=clip,
                                                eps=eps, ddof=ddof))
    # The binding reads a negative clip as "no clip" (None): a negative float must take the checking path.
    if (
        type(gamma) is float
        and type(alpha) is float
        and type(beta) is float
        and (clip is None or (type(clip) is float and clip >= 0.0))
        and _fast_group(rewards, lengths, out, eps, ddof)
    ):
        clip_arg = -1.0 if clip is None else clip
        return _core.kernels.hybrid_advantages(rewards, lengths, gamma, alpha, beta, clip_arg, eps, ddof, out)
    io = Io()
    g, e, dd = _discount(gamma, "gamma"), _nonneg(eps, "eps"), ddof_arg(ddof)
    a, b = _nonneg(alpha, "alpha"), _nonneg(beta, "beta")
    c = optional_real(clip, "clip", lo=0.0)
    r3, l2, shape = _group_inputs(io, rewards, lengths)
    o = Out(out, "out", shape, r3.dtype)
    return o.result(io, _core.kernels.hybrid_advantages(r3, l2, g, a, b, -1.0 if c is None else c, e, dd, o.buf))


_SCALES = {"group": 0, "batch": 1, "none": 2}


def group_normalize(
    scores: Any,
    *,
    group_size: int | None = None,
    scale: str = "group",
    eps: float = 1e-8,
    ddof: int = 0,
    out: Any = None,
) -> Any:
    """GRPO advantages of scalar scores ``[B*G]`` in contiguous groups of ``group_size`` (None: one group):
    ``s - mean_group(s)`` divided by ``std_group + eps`` (``scale="group"``), by the std of all scores + eps
    (``"batch"``) or by nothing (``"none"``, Dr. GRPO). TRL and verl use ``ddof=1``."""
    sc = _option(scale, "scale", _SCALES)
    if out is not None and aliased((("out", out),), (("scores", scores),)):
        return copy_into(out, group_normalize(scores, group_size=group_size, scale=scale, eps=eps, ddof=ddof))
    if (
        type(eps) is float
        and plain_ddof(ddof)
        and (group_size is None or type(group_size) is int)
        and plain(scores)
        and scores.ndim == 1
        and plain_or_none(out, scores.dtype)
    ):
        gs = max(scores.shape[0], 1) if group_size is None else group_size
        return _core.kernels.group_normalize(scores, gs, sc, eps, ddof, out)
    io = Io()
    e, dd = _nonneg(eps, "eps"), ddof_arg(ddof)
    s = io.array(scores, "scores")
    require_ndim(s, "scores", 1, "[B*G]")
    dtype = float_dtype(s, "scores")
    n = s.shape[0]
    gs = optional_integer(group_size, "group_size", lo=1)
    if gs is None:
        gs = max(n, 1)
    elif n % gs != 0:
        raise ValueError(f"group_size: expected an integer >= 1 dividing len(scores) = {n}, got {gs}")
    o = Out(out, "out", (n,), dtype)
    return o.result(io, _core.kernels.group_normalize(as_dtype(s, dtype), gs, sc, e, dd, o.buf))
