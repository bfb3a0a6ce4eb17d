"""Group-relative advantages of per-sample language-model rewards (SPEC §6): ``group_advantages`` (GRPO in the
conventions of TRL, verl, Dr. GRPO and rltrain; several reward columns, GDPO) and ``rloo_advantages``.

Each function validates its arguments (``ValueError``/``TypeError`` naming the argument), converts torch tensors,
other integer id dtypes and non-contiguous arrays, and calls the C++ core (``cpp/include/rltrain/llm_group.hpp``)
with the GIL released. A plain call (C-contiguous NumPy rewards or CPU torch tensors, int64 ids or an int group
size, a preset and plain overrides, no weights, ``out=`` None or a disjoint buffer) is taken whole by the binding's
``*_fast`` entry (``cpp/bindings/fast_args.hpp``: the checks, the views of the tensors and the output in C++, about
1 us a call); it answers ``NotImplemented`` to anything else, which then takes the converting path below.
CUDA tensors are checked by the same code on their metadata (``rltrain.kernels._device``: ids and ``out=`` must
be on the rewards' device; ``reward_weights`` is read on the host and moved there), then take the torch path of
``rltrain.kernels._torch_paths`` where ``CUDA_PATH`` says so, else are computed on the host and copied back.
``rltrain.reference`` holds the NumPy specification.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np

from rltrain import _core
from rltrain._checks import choice, optional_integer, real, require_ndim, require_shape, shape_str
from rltrain.kernels import _device
from rltrain.kernels._convert import (
    I64,
    Io,
    Out,
    aliased,
    as_dtype,
    as_tensor,
    check_out,
    copy_into,
    cpu_views,
    ddof_arg,
    float_dtype,
    plain,
    plain_ddof,
    plain_lengths,
    plain_or_none,
)

_SCALES = {"group": 0, "batch": 1, "none": 2}
_EPS_ON = {"std": 0, "var": 1}
_SINGLETON = {"center": 0, "identity": 1}
_COMBINE = {"sum": 0, "normalize_then_sum": 1}

PRESETS: dict[str, tuple[str, int, float, str, str]] = {
    "rltrain": ("group", 0, 1e-8, "std", "center"),
    "trl": ("group", 1, 1e-4, "std", "center"),
    "verl": ("group", 1, 1e-6, "std", "identity"),
    "dr_grpo": ("none", 0, 1e-8, "std", "center"),
}
"""preset -> (scale, ddof, eps, eps_on, singleton): rltrain = ``group_normalize``; trl = TRL's GRPOTrainer;
verl = verl's ``compute_grpo_outcome_advantage``; dr_grpo = Dr. GRPO (mean only)."""

_GS_MAX = 2**62  # a larger group size cannot divide any B; the checking path words the error

_NAMES = {
    "scale": list(_SCALES),
    "eps_on": list(_EPS_ON),
    "singleton": list(_SINGLETON),
    "combine": list(_COMBINE),
}
"""code -> name of each option (the torch paths take the names)."""

_PRESET_CODES = {
    name: (_SCALES[sc], dd, e, _EPS_ON[eo], _SINGLETON[sg]) for name, (sc, dd, e, eo, sg) in PRESETS.items()
}


_Codes = tuple[int, int, float, int, int]  # scale, ddof, eps, eps_on, singleton


def _plain_settings(preset: Any, scale: Any, ddof: Any, eps: Any, eps_on: Any) -> _Codes | None:
    """The codes of a preset and plain overrides (known strings, an int ddof, a float eps), or None: the checking
    path then words any error (the binding refuses a negative ddof too)."""
    codes = _PRESET_CODES.get(preset) if type(preset) is str else None
    if codes is None:
        return None
    sc, dd, e, eo, sg = codes
    if scale is not None:
        if type(scale) is not str or scale not in _SCALES:
            return None
        sc = _SCALES[scale]
    if ddof is not None:
        if not plain_ddof(ddof):
            return None
        dd = ddof
    if eps is not None:
        if type(eps) is not float or not 0.0 <= eps < math.inf:
            return None
        e = eps
    if eps_on is not None:
        if type(eps_on) is not str or eps_on not in _EPS_ON:
            return None
        eo = _EPS_ON[eps_on]
    return sc, dd, e, eo, sg


def _option(value: Any, name: str, options: dict[str, int]) -> int:
    """The code of a string option; ``ValueError`` listing the choices otherwise."""
    return options[choice(value, name, options)]


def _out_overlaps(out: Any, *inputs: Any) -> bool:
    """Whether ``out=`` may share memory with an input (the call then goes through scratch). NumPy arrays whose
    address ranges are disjoint are told apart cheaply; anything else takes ``aliased``'s full test."""
    if (
        type(out) is np.ndarray
        and all(x is None or type(x) is np.ndarray for x in inputs)
        and not any(x is not None and np.may_share_memory(out, x) for x in inputs)
    ):
        return False
    return aliased((("out", out),), tuple(("input", x) for x in inputs))


def _ids(io: Io, group_ids: Any, group_size: Any, B: int) -> tuple[Any, int | None]:
    """``group_ids`` as ``io`` reads it, checked (integer dtype, ``[B]``; None when not given), and the checked
    ``group_size``."""
    if group_ids is None:
        gs = optional_integer(group_size, "group_size", lo=1)
        if gs is not None and B % gs != 0:
            raise ValueError(f"group_size: expected an integer >= 1 dividing len(rewards) = {B}, got {gs}")
        return None, gs
    if group_size is not None:
        raise ValueError(f"group_size: expected None when group_ids is given (pass one of them), got {group_size!r}")
    ids = io.array(group_ids, "group_ids")
    if ids.dtype == np.bool_ or ids.dtype.kind not in "iu":
        raise TypeError(f"group_ids: expected an integer dtype, got {ids.dtype}")
    require_shape(ids, "group_ids", (B,), "[B]")
    return ids, None


def _rewards(io: Io, rewards: Any, ndims: tuple[int, ...]) -> Any:
    r = io.array(rewards, "rewards")
    if r.ndim not in ndims:
        want = "a 1-D array [B]" if ndims == (1,) else "a 1-D [B] or 2-D [B, R] array"
        raise ValueError(f"rewards: expected {want}, got shape {shape_str(r.shape)}")
    float_dtype(r, "rewards")
    return r


def _weights(io: Io, reward_weights: Any, r: Any) -> tuple[np.ndarray, np.dtype[Any]]:
    """``reward_weights`` as finite float64 ``[R]`` and the output dtype. A float array (or tensor) takes part in
    the output dtype; integers and Python sequences of numbers do not."""
    if r.ndim == 1:
        raise ValueError(
            "reward_weights: expected None with 1-D rewards [B] (weights combine the columns of [B, R] rewards), "
            f"got {type(reward_weights).__name__}"
        )
    w = io.array(reward_weights, "reward_weights")
    dtype: np.dtype[Any] = r.dtype
    if w.dtype.kind == "f" and hasattr(reward_weights, "dtype"):
        dtype = np.result_type(dtype, float_dtype(w, "reward_weights"))
    elif w.dtype == np.bool_ or w.dtype.kind not in "iuf":
        raise TypeError(f"reward_weights: expected a float or integer dtype, got {w.dtype}")
    require_ndim(w, "reward_weights", 1, "[R]")
    require_shape(w, "reward_weights", (r.shape[1],), "[R]")
    w64 = np.ascontiguousarray(w, dtype=np.float64)
    if not np.isfinite(w64).all():
        bad = int(np.flatnonzero(~np.isfinite(w64))[0])
        raise ValueError(f"reward_weights: expected finite values, got {w64[bad]} at index {bad}")
    return w64, dtype


_Settings = tuple[int, int, float, int, int, int]  # scale, ddof, eps, eps_on, singleton, combine


def _settings(preset: Any, scale: Any, ddof: Any, eps: Any, eps_on: Any, combine: Any) -> _Settings:
    """The checked codes of a preset and its overrides."""
    p_scale, p_ddof, p_eps, p_eps_on, singleton = _PRESET_CODES[choice(preset, "preset", _PRESET_CODES)]
    sc = p_scale if scale is None else _option(scale, "scale", _SCALES)
    dd = p_ddof if ddof is None else ddof_arg(ddof)
    e = p_eps if eps is None else real(eps, "eps", lo=0.0)
    eo = p_eps_on if eps_on is None else _option(eps_on, "eps_on", _EPS_ON)
    return sc, dd, e, eo, singleton, _option(combine, "combine", _COMBINE)


def _check(
    io: Io, wio: Io, rewards: Any, group_ids: Any, group_size: Any, reward_weights: Any, out: Any, rloo: bool = False
) -> tuple[Any, Any, int | None, np.ndarray | None, np.dtype[Any]]:
    """The argument checks of both kernels, host and device calls alike: rewards and ids as ``io`` reads them
    (host arrays, or ``_device.Meta`` for device tensors), the group size, the float64 weights read by ``wio``
    and the output dtype; ``out=`` checked against them."""
    r = _rewards(io, rewards, (1,) if rloo else (1, 2))
    ids, gs = _ids(io, group_ids, group_size, r.shape[0])
    w, dtype = (None, r.dtype) if reward_weights is None else _weights(wio, reward_weights, r)
    if out is not None:
        check_out(out, "out", (r.shape[0],), dtype)
    return r, ids, gs, w, dtype


def _id_array(ids: np.ndarray | None) -> np.ndarray | None:
    # uint64 ids beyond 2**63 wrap to distinct negative int64 ids: the grouping is the same.
    return None if ids is None else as_dtype(ids, I64)


_BOUND = 1e300
"""Device test of the rewards: when the sum of |values| and of their squares stay below this, every group sum
and sum of squared deviations the host kernel forms is finite (it raises otherwise), with room for rounding."""


def _bounded(t: Any) -> bool:
    """Whether the float64 magnitudes ``t`` (non-negative) pass the device test (NaN fails it); one sync."""
    return bool(((t.sum() <= _BOUND) & (t.square().sum() <= _BOUND)).item())


def _group_torch(rewards: Any, group_ids: Any, gs: int | None, settings: _Settings, w: np.ndarray | None,
                 dtype: np.dtype[Any]) -> Any:
    """``group_advantages`` of checked device tensors by the torch path, or None when the rewards fail the device
    test (non-finite, or so large that a sum could overflow): the host kernel then raises or decides."""
    import torch

    from rltrain.kernels import _torch_paths

    sc, dd, e, eo, sg, comb = settings
    r = rewards.detach().to(_device.torch_dtype(dtype))
    wt = None if w is None else torch.from_numpy(w).to(r.device)
    mag = r.to(torch.float64).abs()
    if r.dim() == 2 and comb == _COMBINE["sum"]:
        mag = mag @ wt.abs() if wt is not None else mag.sum(1)  # bounds |sum_k w_k r_ik|
    if not _bounded(mag):
        return None
    res = _torch_paths.group_advantages(
        r, None if group_ids is None else group_ids.detach(), group_size=gs, scale=_NAMES["scale"][sc], ddof=dd,
        eps=e, eps_on=_NAMES["eps_on"][eo], singleton=_NAMES["singleton"][sg], reward_weights=wt,
        combine=_NAMES["combine"][comb])
    # GDPO's last pass: the host kernel raises when the combined advantages do not sum (or square-sum) to a finite
    # value; that leaves a non-finite or an all-zero result here, which the host path then settles.
    gdpo = comb == _COMBINE["normalize_then_sum"] and r.shape[0] > 0
    if gdpo and not bool((torch.isfinite(res).all() & (res != 0).any()).item()):
        return None
    return res


def _rloo_torch(rewards: Any, group_ids: Any, gs: int | None) -> Any:
    """``rloo_advantages`` by the torch path, or None when the rewards fail the device test (see ``_group_torch``)."""
    import torch

    from rltrain.kernels import _torch_paths

    r = rewards.detach()
    if not _bounded(r.to(torch.float64).abs()):
        return None
    return _torch_paths.rloo_advantages(r, None if group_ids is None else group_ids.detach(), group_size=gs)


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
    """GRPO advantages of per-sample rewards within groups (Shao et al. 2024), in the convention of a library.

    ``rewards``: float32/float64 ``[B]``, or ``[B, R]`` for R reward columns; finite (else ``ValueError``).
    Groups: ``group_ids [B]`` (any integer dtype, any values, any order, uneven sizes) or contiguous groups of
    ``group_size`` (dividing B), not both; neither means one group of all B.

    ``preset`` sets ``(scale, ddof, eps, eps_on, singleton)``; explicit ``scale``, ``ddof``, ``eps``, ``eps_on``
    override it:

    ===========  ======  ====  ====  ======  =========
    preset       scale   ddof  eps   eps_on  singleton
    ===========  ======  ====  ====  ======  =========
    ``rltrain``  group   0     1e-8  std     center     (= ``group_normalize``)
    ``trl``      group   1     1e-4  std     center     (TRL ``GRPOTrainer``)
    ``verl``     group   1     1e-6  std     identity   (verl ``compute_grpo_outcome_advantage``)
    ``dr_grpo``  none    0     1e-8  std     center     (Dr. GRPO, Liu et al. 2025)
    ===========  ======  ====  ====  ======  =========

    Per group, in float64 (two passes): ``mean`` and ``var = sum((r - mean)^2) / (n - ddof)`` (0 when n <= ddof),
    ``std = sqrt(var)``. A group of exactly one member keeps ``mean = r`` (``"center"``: A = 0 with scale group or
    none) or takes mean 0 and var 1 (``"identity"``, verl: A = r / (1 + eps) with scale group, r with none).
    Then ``A = (r - mean) / d``: ``d = std + eps`` (``eps_on="std"``) or ``sqrt(var + eps)`` (``"var"``) of the
    group (``scale="group"``) or of all B rewards with the same ddof (``"batch"``, keeping the group mean);
    ``scale="none"``: ``A = r - mean``.

    ``combine="sum"``: with ``[B, R]`` rewards the rule above runs on ``s_i = sum_k w_k r_ik`` (``reward_weights``
    ``[R]``, finite, default ones; only with 2-D rewards). ``combine="normalize_then_sum"`` (GDPO; TRL's
    ``multi_objective_aggregation="normalize_then_sum"``): each column is normalised by the rule above,
    ``a_i = sum_k w_k a_ik``, and then always ``A = (a - mean(a)) / d(a)`` over the whole batch (same ddof, eps,
    eps_on; std 0 when B <= ddof).

    Returns ``[B]`` of the result type of rewards and reward_weights (a float array or tensor of weights takes
    part; a list does not), computed in float64 and rounded once (the kernel multiplies by ``1 / d``: within an ulp
    of dividing); torch in -> torch out; ``out=`` a ``[B]`` buffer. ``eps=0`` on a zero-variance group gives nan,
    as the formula does. ``rltrain.reference.group_advantages`` is the specification.

    Equal to TRL's GRPOTrainer advantages (``preset="trl"``, ``scale`` = its ``scale_rewards``, ``combine`` = its
    ``multi_objective_aggregation``, ``group_size`` = ``num_generations``) and to verl's
    ``compute_grpo_outcome_advantage`` (``preset="verl"``, ``group_ids`` = its ``index`` as integers;
    ``scale="none"`` for ``norm_adv_by_std_in_grpo=False``).
    """
    res = _core.kernels.group_advantages_fast(rewards, group_ids, group_size, preset, scale, ddof, eps, eps_on,
                                              reward_weights, combine, out, _PRESET_CODES)
    if res is not NotImplemented:  # a plain call (NumPy or CPU torch), computed whole in C++
        return res
    v = cpu_views(rewards, group_ids, reward_weights, out)
    if v is not None:
        with contextlib.suppress(ValueError, TypeError):  # bad input: the general path words the error for tensors
            res = group_advantages(v[0], v[1], group_size=group_size, preset=preset, scale=scale, ddof=ddof, eps=eps,
                                   eps_on=eps_on, reward_weights=v[2], combine=combine, out=v[3])
            return out if out is not None else as_tensor(res)
    if out is not None and _out_overlaps(out, rewards, group_ids, reward_weights):
        return copy_into(out, group_advantages(
            rewards, group_ids, group_size=group_size, preset=preset, scale=scale, ddof=ddof, eps=eps, eps_on=eps_on,
            reward_weights=reward_weights, combine=combine))
    plain_options = (
        reward_weights is None
        and type(combine) is str
        and combine in _COMBINE
        and (group_size is None or (type(group_size) is int and 0 < group_size < _GS_MAX))
    )
    if (
        plain_options
        and plain(rewards)
        and (group_ids is None or plain_lengths(group_ids))
        and plain_or_none(out, rewards.dtype)
    ):
        codes = _plain_settings(preset, scale, ddof, eps, eps_on)
        if codes is not None:
            return _core.kernels.group_advantages(rewards, group_ids, group_size, *codes, None, _COMBINE[combine],
                                                  out)
    settings = _settings(preset, scale, ddof, eps, eps_on, combine)
    on = _device.device_of(("rewards", rewards), ("group_ids", group_ids))
    if on is not None:
        # reward_weights ([R]) is read on the host, as on the host path, and moved to the device
        r, ids, gs, w, dtype = _check(_device.MetaIo(), Io(), rewards, group_ids, group_size, reward_weights, out)
        _device.require_device(*on, (("rewards", rewards), ("group_ids", group_ids), ("out", out)))
        if _device.cuda_path("group_advantages") == "torch":
            res = _group_torch(rewards, group_ids, gs, settings, w, dtype)
            if res is not None:
                return _device.write_out(out, res)
    io = Io()
    r, ids, gs, w, dtype = _check(io, io, rewards, group_ids, group_size, reward_weights, out)
    o = Out(out, "out", (r.shape[0],), dtype)
    sc, dd, e, eo, sg, comb = settings
    res = _core.kernels.group_advantages(as_dtype(r, dtype), _id_array(ids), gs, sc, dd, e, eo, sg, w, comb, o.buf)
    return o.result(io, res)


def rloo_advantages(rewards: Any, group_ids: Any = None, *, group_size: int | None = None, out: Any = None) -> Any:
    """REINFORCE leave-one-out advantages (Ahmadian et al. 2024; Kool et al. 2019):
    ``A_i = r_i - (sum_g - r_i) / (n_g - 1)``, the reward minus the mean of the other members of its group, in
    float64; 0 in a group of one. ``rewards``: float32/float64 ``[B]``, finite. Groups as in
    :func:`group_advantages` (``group_ids [B]`` or ``group_size``, not both; neither: one group). Equals TRL's and
    verl's RLOO for groups of two or more (verl leaves a singleton's score unchanged; here it gets 0).
    torch in -> torch out; ``out=`` a ``[B]`` buffer. ``rltrain.reference.rloo_advantages`` is the specification.
    """
    res = _core.kernels.rloo_advantages_fast(rewards, group_ids, group_size, out)
    if res is not NotImplemented:
        return res
    plain_size = group_size is None or (type(group_size) is int and 0 < group_size < _GS_MAX)
    v = cpu_views(rewards, group_ids, out)
    if v is not None:
        with contextlib.suppress(ValueError, TypeError):
            res = rloo_advantages(v[0], v[1], group_size=group_size, out=v[2])
            return out if out is not None else as_tensor(res)
    if out is not None and _out_overlaps(out, rewards, group_ids):
        return copy_into(out, rloo_advantages(rewards, group_ids, group_size=group_size))
    if (
        plain_size
        and plain(rewards)
        and (group_ids is None or plain_lengths(group_ids))
        and plain_or_none(out, rewards.dtype)
    ):
        return _core.kernels.rloo_advantages(rewards, group_ids, group_size, out)
    on = _device.device_of(("rewards", rewards), ("group_ids", group_ids))
    if on is not None:
        r, ids, gs, _, _ = _check(_device.MetaIo(), Io(), rewards, group_ids, group_size, None, out, rloo=True)
        _device.require_device(*on, (("rewards", rewards), ("group_ids", group_ids), ("out", out)))
        if _device.cuda_path("rloo_advantages") == "torch":
            res = _rloo_torch(rewards, group_ids, gs)
            if res is not None:
                return _device.write_out(out, res)
    io = Io()
    r, ids, gs, _, _ = _check(io, io, rewards, group_ids, group_size, None, out, rloo=True)
    o = Out(out, "out", (r.shape[0],), r.dtype)
    return o.result(io, _core.kernels.rloo_advantages(as_dtype(r, r.dtype), _id_array(ids), gs, o.buf))
