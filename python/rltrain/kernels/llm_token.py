"""Per-token kernels of language-model RL (SPEC §6): ``token_returns``, ``token_gae``, ``masked_whiten`` and
``kl_estimate`` over response buffers with a mask (1 = response token).

Each function validates its arguments (``ValueError``/``TypeError`` naming the argument and the expected versus
actual shape or dtype), converts torch tensors and non-contiguous arrays, and calls the C++ core with the GIL
released; large inputs are split over the kernel pool (rows for the scans, elements otherwise) with results
identical for any thread count. A plain call (C-contiguous NumPy arrays or CPU torch tensors, Python float and bool
scalars, option names, ``out=`` None or disjoint from the inputs) is taken whole by the binding's ``*_fast`` entry
(``cpp/bindings/fast_args.hpp``: checks, tensor views and output in C++); it answers ``NotImplemented`` to anything
else, which takes the converting path (a plain NumPy call with an in-place ``out=`` still goes straight to the
binding, which checks shapes, dtypes and ranges itself). ``rltrain.reference`` holds the NumPy specification.

Masks are bool, uint8 or int64 (non-zero = 1; other integers are converted) or float32/float64 (the value enters
the formulas by multiplication, as verl's ``x * mask``). The output dtype is that of the float inputs.
CUDA tensors are checked by the same code on their metadata (``rltrain.kernels._device``: every array argument and
``out=`` on one device), then run ``rltrain.kernels._torch_paths.<name>`` on the device with resolved arguments
(canonical ``kind``, integer masks as non-zero) when ``_torch_paths.CUDA_PATH[name]`` is ``"torch"``, and are
otherwise copied through the host kernel and back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from rltrain import _core
from rltrain._checks import choice, real, require_ndim, require_shape
from rltrain.kernels import _device
from rltrain.kernels._convert import (
    I64,
    Io,
    Out,
    aliased,
    as_dtype,
    as_tensor,
    check_flags,
    check_out,
    copy_into,
    cpu_views,
    disjoint,
    flag_array,
    float_dtype,
    is_torch,
    out_tuple,
    plain,
    plain_flags,
    plain_lengths,
    plain_or_none,
)

_MASKED = {"restart": 0, "carry": 1}
_KL_KINDS = {"k1": 0, "kl": 0, "k2": 1, "mse": 1, "k3": 2, "low_var_kl": 2, "abs": 3}
_KL_NAMES = ("k1", "k2", "k3", "abs")
"""code -> the canonical kind the torch path takes (verl's aliases resolved)."""


def _code(value: Any, name: str, options: dict[str, int]) -> int:
    """The code of a string option; ``choice`` words the error (a dict lookup first: it is on the fast path)."""
    try:
        return options[value]
    except (KeyError, TypeError):
        return options[choice(value, name, options)]


def _discount(x: Any, name: str) -> float:
    return real(x, name, lo=0.0, hi=1.0)


def _flag(x: Any, name: str) -> bool:
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(x).__name__} {x!r}")
    return bool(x)


def _same(a: Any, b: Any) -> bool:
    """The same buffer exactly (the same object, or views with the same address, shape, strides and dtype): the
    elementwise kernels may then write ``out`` in place of that input, each element read before it is written."""
    if a is b:
        return True
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return (a.ctypes.data, a.shape, a.strides, a.dtype) == (b.ctypes.data, b.shape, b.strides, b.dtype)
    if is_torch(a) and is_torch(b):
        return (a.device, a.data_ptr(), a.shape, a.stride(), a.dtype) == (
            b.device, b.data_ptr(), b.shape, b.stride(), b.dtype)
    return False


def _mask(io: Io, mask: Any, shape: tuple[int, ...], layout: str | None) -> Any:
    """The mask as ``io`` reads it, checked: bool, uint8, int64 or float32/float64 (other integers are read as
    non-zero), of ``shape``."""
    m = io.array(mask, "mask")
    require_shape(m, "mask", shape, layout)
    if m.dtype != I64:
        check_flags(m, "mask")
    return m


def _mask_array(m: np.ndarray) -> np.ndarray:
    """A checked host mask as the binding takes it."""
    return as_dtype(m, m.dtype) if m.dtype == I64 else flag_array(m, "mask")


def _out(out: Any, name: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
    if out is not None:
        check_out(out, name, shape, dtype)


def _plain_mask(m: Any) -> bool:
    """A mask the binding takes as it is: flags, floats or int64 (verl's attention-style masks)."""
    return plain_flags(m) or plain_lengths(m)


def _no_overlap(out: Any, *xs: Any) -> bool:
    """True when ``out`` is None, or it and every input are NumPy arrays (or None) whose address ranges do not meet:
    the call then needs no scratch and ``aliased`` (several us) need not run. False means: ask ``aliased``."""
    if out is None:
        return True
    return type(out) is np.ndarray and all(x is None or type(x) is np.ndarray for x in xs) and disjoint(out, *xs)


# ------------------------------------------------------------------------------------------ token_returns


def token_returns(
    token_rewards: Any, mask: Any, *, gamma: float = 1.0, masked: str = "restart", out: Any = None
) -> Any:
    """Reverse discounted returns over ``[B, L]`` response tokens (REINFORCE++), from ``t = L - 1`` down with
    ``run = 0``:

    * ``masked="restart"`` (SPEC §6): ``ret[t] = r[t] + gamma * run; run = ret[t] * mask[t]``. A masked token
      restarts the return; ``ret`` at masked positions is whatever the recursion gives (not forced to 0).
    * ``masked="carry"`` (verl 0.9.1's ``compute_reinforce_plus_plus_outcome_advantage``):
      ``new = r[t] + gamma * run; ret[t] = new * mask[t]; run = new * mask[t] + run * (1 - mask[t])``. The
      return carries unchanged across masked spans (tool observations) and is 0 there.

    ``gamma`` in [0, 1]. Returns ``[B, L]`` of the rewards' dtype (``out=`` to write into a buffer)."""
    res = _core.kernels.token_returns_fast(token_rewards, mask, gamma, masked, out)
    if res is not NotImplemented:  # a plain call (NumPy or CPU torch), computed whole in C++
        return res
    v = cpu_views(token_rewards, mask, out)
    if v is not None:
        with contextlib.suppress(ValueError, TypeError):  # bad input: the general path words the error for tensors
            res = token_returns(v[0], v[1], gamma=gamma, masked=masked, out=v[2])
            return out if out is not None else as_tensor(res)
    mode = _code(masked, "masked", _MASKED)
    if not _no_overlap(out, token_rewards, mask) and aliased((("out", out),), (("token_rewards", token_rewards),
                                                                                 ("mask", mask))):
        return copy_into(out, token_returns(token_rewards, mask, gamma=gamma, masked=masked))
    if (
        type(gamma) is float
        and plain(token_rewards)
        and _plain_mask(mask)
        and plain_or_none(out, token_rewards.dtype)
    ):
        return _core.kernels.token_returns(token_rewards, mask, gamma, mode, out)
    on = _device.device_of(("token_rewards", token_rewards), ("mask", mask))
    if on is not None:
        _, _, g, _ = _check_returns(_device.MetaIo(), token_rewards, mask, gamma, out)
        _device.require_device(*on, (("token_rewards", token_rewards), ("mask", mask), ("out", out)))
        if _device.cuda_path("token_returns") == "torch":
            from rltrain.kernels import _torch_paths

            res = _torch_paths.token_returns(token_rewards.detach(), _device.torch_mask(mask), gamma=g,
                                             masked=("restart", "carry")[mode])
            return _device.write_out(out, res)
    io = Io()
    r, m, g, dtype = _check_returns(io, token_rewards, mask, gamma, out)
    o = Out(out, "out", r.shape, dtype)
    return o.result(io, _core.kernels.token_returns(as_dtype(r, dtype), _mask_array(m), g, mode, o.buf))


def _check_returns(io: Io, token_rewards: Any, mask: Any, gamma: Any, out: Any) -> tuple[Any, Any, float, Any]:
    r = io.array(token_rewards, "token_rewards")
    require_ndim(r, "token_rewards", 2, "[B, L]")
    dtype = float_dtype(r, "token_rewards")
    m = _mask(io, mask, r.shape, "[B, L]")
    g = _discount(gamma, "gamma")
    _out(out, "out", r.shape, dtype)
    return r, m, g, dtype


# ---------------------------------------------------------------------------------------------- token_gae


def token_gae(
    token_rewards: Any,
    values: Any,
    mask: Any,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
    out: tuple[Any, Any] | None = None,
) -> tuple[Any, Any]:
    """GAE over ``[B, L]`` response tokens as verl 0.9.1's ``compute_gae_advantage_return`` computes it, without
    its final whitening (``masked_whiten(advantages, mask)`` gives verl's advantages); returns
    ``(advantages, returns)``. With ``nextvalues = lastgaelam = 0``, for ``t`` from ``L - 1`` down::

        delta = r[t] + gamma * nextvalues - v[t];  lg = delta + gamma * lam * lastgaelam
        nextvalues = v[t] * m[t] + (1 - m[t]) * nextvalues
        lastgaelam = lg * m[t] + (1 - m[t]) * lastgaelam;  advantages[t] = lastgaelam

    Masked tokens are skipped: the advantage and the next value carry backward through them.
    ``returns = advantages + values`` at every position. ``gamma``, ``lam`` in [0, 1] (Schulman et al. 2016:
    ``lam=0`` is the TD(0) error, ``lam=1`` the Monte-Carlo return minus V)."""
    fast: tuple[Any, Any] = _core.kernels.token_gae_fast(token_rewards, values, mask, gamma, lam, out)
    if fast is not NotImplemented:
        return fast
    v = cpu_views(token_rewards, values, mask, out)
    if v is not None:
        with contextlib.suppress(ValueError, TypeError):
            res2 = token_gae(v[0], v[1], v[2], gamma=gamma, lam=lam, out=v[3])
            return tuple(out) if out is not None else as_tensor(res2)
    o_adv, o_ret = (None, None) if out is None else out_tuple(out, 2)
    if out is not None and not (
        _no_overlap(o_adv, token_rewards, values, mask, o_ret) and _no_overlap(o_ret, token_rewards, values, mask)
    ) and aliased(
        (("out[0] (advantages)", o_adv), ("out[1] (returns)", o_ret)),
        (("token_rewards", token_rewards), ("values", values), ("mask", mask)),
    ):
        a, b = token_gae(token_rewards, values, mask, gamma=gamma, lam=lam)
        return copy_into(o_adv, a, "out[0] (advantages)"), copy_into(o_ret, b, "out[1] (returns)")
    if (
        type(gamma) is float
        and type(lam) is float
        and plain(token_rewards)
        and plain(values, token_rewards.dtype)
        and _plain_mask(mask)
        and plain_or_none(o_adv, token_rewards.dtype)
        and plain_or_none(o_ret, token_rewards.dtype)
    ):
        return _core.kernels.token_gae(token_rewards, values, mask, gamma, lam, o_adv, o_ret)
    on = _device.device_of(("token_rewards", token_rewards), ("values", values), ("mask", mask))
    if on is not None:
        _, _, _, g, lm, dtype = _check_gae(_device.MetaIo(), token_rewards, values, mask, gamma, lam, o_adv, o_ret)
        _device.require_device(*on, (("token_rewards", token_rewards), ("values", values), ("mask", mask),
                                     ("out[0] (advantages)", o_adv), ("out[1] (returns)", o_ret)))
        if _device.cuda_path("token_gae") == "torch":
            from rltrain.kernels import _torch_paths

            td = _device.torch_dtype(dtype)
            a, b = _torch_paths.token_gae(token_rewards.detach().to(td), values.detach().to(td),
                                          _device.torch_mask(mask), gamma=g, lam=lm)
            return _device.write_out(o_adv, a), _device.write_out(o_ret, b)
    io = Io()
    r, v, m, g, lm, dtype = _check_gae(io, token_rewards, values, mask, gamma, lam, o_adv, o_ret)
    adv = Out(o_adv, "out[0] (advantages)", r.shape, dtype)
    ret = Out(o_ret, "out[1] (returns)", r.shape, dtype)
    a, b = _core.kernels.token_gae(as_dtype(r, dtype), as_dtype(v, dtype), _mask_array(m), g, lm, adv.buf, ret.buf)
    return adv.result(io, a), ret.result(io, b)


def _check_gae(
    io: Io, token_rewards: Any, values: Any, mask: Any, gamma: Any, lam: Any, o_adv: Any, o_ret: Any
) -> tuple[Any, Any, Any, float, float, np.dtype[Any]]:
    r = io.array(token_rewards, "token_rewards")
    require_ndim(r, "token_rewards", 2, "[B, L]")
    v = io.array(values, "values")
    dtype = np.result_type(float_dtype(r, "token_rewards"), float_dtype(v, "values"))
    require_shape(v, "values", r.shape, "[B, L]")
    m = _mask(io, mask, r.shape, "[B, L]")
    g, lm = _discount(gamma, "gamma"), _discount(lam, "lam")
    _out(o_adv, "out[0] (advantages)", r.shape, dtype)
    _out(o_ret, "out[1] (returns)", r.shape, dtype)
    return r, v, m, g, lm, dtype


# ----------------------------------------------------------------------------------------- masked_whiten


def masked_whiten(
    x: Any, mask: Any, *, shift_mean: bool = True, eps: float = 1e-8, times_mask: bool = False, out: Any = None
) -> Any:
    """verl's ``masked_whiten`` (any shape, ``mask.shape == x.shape``): with ``n = sum(mask)``,
    ``mean = sum(x * mask) / n`` and the unbiased ``var = sum((x - mean)^2 * mask) / n * n / (n - 1)``, every
    position (masked or not) becomes ``(x - mean) * 1 / sqrt(var + eps)``, plus ``mean`` again when
    ``shift_mean`` is False. Statistics in float64 (fixed blocks: the same for any thread count), the result
    rounded once to x's dtype. ``times_mask=True`` then multiplies the result by the mask in x's dtype (flags as
    0/1, float masks by their value), in the same pass: ``masked_whiten(x, m, times_mask=True)`` is bitwise
    ``masked_whiten(x, m) * m``, the last step of verl's REINFORCE++ estimator. ``ValueError`` naming ``mask``
    when ``n < 2``."""
    res = _core.kernels.masked_whiten_fast(x, mask, shift_mean, eps, times_mask, out)
    if res is not NotImplemented:
        return res
    v = cpu_views(x, mask, out)
    if v is not None:
        with contextlib.suppress(ValueError, TypeError):
            res = masked_whiten(v[0], v[1], shift_mean=shift_mean, eps=eps, times_mask=times_mask, out=v[2])
            return out if out is not None else as_tensor(res)
    if not _no_overlap(out, x, mask) and aliased((("out", out),), (("x", None if _same(out, x) else x),
                                                                   ("mask", mask))):
        return copy_into(out, masked_whiten(x, mask, shift_mean=shift_mean, eps=eps, times_mask=times_mask))
    if (
        type(eps) is float
        and type(shift_mean) is bool
        and type(times_mask) is bool
        and plain(x)
        and _plain_mask(mask)
        and plain_or_none(out, x.dtype)
    ):
        return _core.kernels.masked_whiten(x, mask, shift_mean, eps, out, times_mask)
    on = _device.device_of(("x", x), ("mask", mask))
    if on is not None:
        _, _, sm, e, tm, _ = _check_whiten(_device.MetaIo(), x, mask, shift_mean, eps, times_mask, out)
        _device.require_device(*on, (("x", x), ("mask", mask), ("out", out)))
        if _device.cuda_path("masked_whiten") == "torch":
            import torch

            from rltrain.kernels import _torch_paths

            m = _device.torch_mask(mask)
            # fewer than 2 masked entries (or a NaN weight): the host kernel raises its error
            if bool((m.sum(dtype=torch.float64) >= 2.0).item()):
                res = _torch_paths.masked_whiten(x.detach(), m, shift_mean=sm, eps=e, times_mask=tm)
                return _device.write_out(out, res)
    io = Io()
    xa, m, sm, e, tm, dtype = _check_whiten(io, x, mask, shift_mean, eps, times_mask, out)
    o = Out(out, "out", xa.shape, dtype)
    return o.result(io, _core.kernels.masked_whiten(as_dtype(xa, dtype), _mask_array(m), sm, e, o.buf, tm))


def _check_whiten(
    io: Io, x: Any, mask: Any, shift_mean: Any, eps: Any, times_mask: Any, out: Any
) -> tuple[Any, Any, bool, float, bool, Any]:
    sm = _flag(shift_mean, "shift_mean")
    e = real(eps, "eps", lo=0.0)
    tm = _flag(times_mask, "times_mask")
    xa = io.array(x, "x")
    dtype = float_dtype(xa, "x")
    m = _mask(io, mask, xa.shape, None)
    _out(out, "out", xa.shape, dtype)
    return xa, m, sm, e, tm, dtype


# ------------------------------------------------------------------------------------------- kl_estimate


def kl_estimate(
    logp: Any, ref_logp: Any, mask: Any = None, *, kind: str = "k3", clamp: bool = False, out: Any = None
) -> Any:
    """Per-token KL estimators of the policy from the reference (J. Schulman, "Approximating KL divergence",
    2020), any shape. With ``d = logp - ref_logp``:

    * ``"k1"`` (verl: ``"kl"``): ``d``;  ``"k2"`` (``"mse"``): ``d^2 / 2``;  ``"abs"``: ``|d|``;
    * ``"k3"`` (``"low_var_kl"``): ``exp(-d) + d - 1``, evaluated as verl does with ``kl = ref_logp - logp`` as
      ``(exp(kl) - kl) - 1``. ``clamp=True`` reproduces verl's ``kl_penalty_forward``: ``kl`` clamped to
      [-20, 20] before the exp and the result to [-10, 10] (ignored for the other kinds).

    Where ``mask == 0`` the output is exactly 0 (a select, not a product: no NaN from ``inf * 0``); elsewhere
    the mask's value does not scale the estimate."""
    res = _core.kernels.kl_estimate_fast(logp, ref_logp, mask, kind, clamp, out)
    if res is not NotImplemented:
        return res
    v = cpu_views(logp, ref_logp, mask, out)
    if v is not None:
        with contextlib.suppress(ValueError, TypeError):
            res = kl_estimate(v[0], v[1], v[2], kind=kind, clamp=clamp, out=v[3])
            return out if out is not None else as_tensor(res)
    code = _code(kind, "kind", _KL_KINDS)
    if not _no_overlap(out, logp, ref_logp, mask) and aliased(
        (("out", out),),
        (("logp", None if _same(out, logp) else logp), ("ref_logp", None if _same(out, ref_logp) else ref_logp),
         ("mask", mask)),
    ):
        return copy_into(out, kl_estimate(logp, ref_logp, mask, kind=kind, clamp=clamp))
    if (
        type(clamp) is bool
        and plain(logp)
        and plain(ref_logp, logp.dtype)
        and (mask is None or _plain_mask(mask))
        and plain_or_none(out, logp.dtype)
    ):
        return _core.kernels.kl_estimate(logp, ref_logp, mask, code, clamp, out)
    on = _device.device_of(("logp", logp), ("ref_logp", ref_logp), ("mask", mask))
    if on is not None:
        _, _, _, cl, dtype = _check_kl(_device.MetaIo(), logp, ref_logp, mask, clamp, out)
        _device.require_device(*on, (("logp", logp), ("ref_logp", ref_logp), ("mask", mask), ("out", out)))
        if _device.cuda_path("kl_estimate") == "torch":
            from rltrain.kernels import _torch_paths

            td = _device.torch_dtype(dtype)
            res = _torch_paths.kl_estimate(logp.detach().to(td), ref_logp.detach().to(td),
                                           None if mask is None else mask.detach(), kind=_KL_NAMES[code], clamp=cl)
            return _device.write_out(out, res)
    io = Io()
    a, b, m, cl, dtype = _check_kl(io, logp, ref_logp, mask, clamp, out)
    o = Out(out, "out", a.shape, dtype)
    m = None if m is None else _mask_array(m)
    return o.result(io, _core.kernels.kl_estimate(as_dtype(a, dtype), as_dtype(b, dtype), m, code, cl, o.buf))


def _check_kl(io: Io, logp: Any, ref_logp: Any, mask: Any, clamp: Any, out: Any) -> tuple[Any, Any, Any, bool, Any]:
    cl = _flag(clamp, "clamp")
    a = io.array(logp, "logp")
    b = io.array(ref_logp, "ref_logp")
    dtype = np.result_type(float_dtype(a, "logp"), float_dtype(b, "ref_logp"))
    require_shape(b, "ref_logp", a.shape)
    m = None if mask is None else _mask(io, mask, a.shape, None)
    _out(out, "out", a.shape, dtype)
    return a, b, m, cl, dtype
