"""Group-relative advantages of per-sample language-model rewards (SPEC §6): ``group_advantages`` (GRPO in the
conventions of TRL, verl, Dr. GRPO and rltrain; several reward columns, GDPO) and ``rloo_advantages``.

Each function validates its arguments (``ValueError``/``TypeError`` naming the argument), converts torch tensors,
other integer id dtypes and non-contiguous arrays, and calls the C++ core (``cpp/include/rltrain/llm_group.hpp``)
with the GIL released. A plain call (C-contiguous NumPy rewards, int64 ids or an int group size, a preset and plain
overrides, no weights) goes straight to the binding, which checks shapes and ranges itself. CUDA tensors take the
torch path of ``rltrain.kernels._torch_paths`` where that measured faster, else they are computed on the host and
copied back. ``rltrain.reference`` holds the NumPy specification.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from rltrain import _core
from rltrain._checks import choice, optional_integer, real, require_ndim, require_shape, shape_str
from rltrain.kernels._convert import (
    I64,
    Io,
    Out,
    aliased,
    as_dtype,
    copy_into,
    ddof_arg,
    float_dtype,
    is_torch,
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


_Views = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]  # rewards, group_ids, out


def _torch_views(rewards: Any, group_ids: Any, out: Any) -> _Views | None:
    """NumPy views of a plain torch CPU call, which then goes straight to the binding as a plain NumPy call does:
    ``rewards`` a C-contiguous float tensor, ``group_ids`` None or a C-contiguous int64 tensor, ``out`` None or a
    C-contiguous tensor of the rewards' dtype that shares no memory with them (all exactly ``torch.Tensor``, on
    the CPU, without grad: ``numpy()`` refuses the rest). None otherwise: the converting path handles the call.
    torch is looked up in ``sys.modules``, never imported: a tensor exists only once torch is."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    tensor = torch.Tensor
    if type(rewards) is not tensor or not (group_ids is None or type(group_ids) is tensor) or not (
        out is None or type(out) is tensor
    ):
        return None
    try:
        r = rewards.numpy()
        ids = None if group_ids is None else group_ids.numpy()
        o = None if out is None else out.numpy()
    except (RuntimeError, TypeError):  # grad, another device, a negative or conjugate view
        return None
    if not (plain(r) and (ids is None or plain_lengths(ids)) and plain_or_none(o, r.dtype)):
        return None
    if o is not None and (np.may_share_memory(o, r) or (ids is not None and np.may_share_memory(o, ids))):
        return None
    return r, ids, o


def _as_torch(res: np.ndarray, out: Any) -> Any:
    """The result of a call through ``_torch_views``: ``out`` itself, or a tensor on ``res``."""
    return out if out is not None else sys.modules["torch"].from_numpy(res)


def _cuda_fn(name: str, x: Any) -> Callable[..., Any] | None:
    """The torch implementation to run when ``x`` is a CUDA tensor and that path measured faster, else None."""
    if not (is_torch(x) and x.device.type == "cuda"):
        return None
    from rltrain.kernels import _torch_paths

    if _torch_paths.CUDA_PATH.get(name, "host") != "torch":
        return None
    fn: Callable[..., Any] = getattr(_torch_paths, name)
    return fn


def _ids(io: Io, group_ids: Any, group_size: Any, B: int) -> tuple[np.ndarray | None, int | None]:
    """``group_ids`` as a C-contiguous int64 ``[B]`` array (None when not given) and the checked ``group_size``."""
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
    # uint64 ids beyond 2**63 wrap to distinct negative int64 ids: the grouping is the same.
    return as_dtype(ids, I64), None


def _rewards(io: Io, rewards: Any, ndims: tuple[int, ...]) -> np.ndarray:
    r = io.array(rewards, "rewards")
    if r.ndim not in ndims:
        want = "a 1-D array [B]" if ndims == (1,) else "a 1-D [B] or 2-D [B, R] array"
        raise ValueError(f"rewards: expected {want}, got shape {shape_str(r.shape)}")
    float_dtype(r, "rewards")
    return r


def _weights(io: Io, reward_weights: Any, r: np.ndarray) -> tuple[np.ndarray, np.dtype[Any]]:
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
    plain_options = (
        reward_weights is None
        and type(combine) is str
        and combine in _COMBINE
        and (group_size is None or (type(group_size) is int and 0 < group_size < _GS_MAX))
    )
    if plain_options and type(rewards) is not np.ndarray:
        views = _torch_views(rewards, group_ids, out)
        codes = _plain_settings(preset, scale, ddof, eps, eps_on)
        if views is not None and codes is not None:
            rv, iv, ov = views
            res = _core.kernels.group_advantages(rv, iv, group_size, *codes, None, _COMBINE[combine], ov)
            return _as_torch(res, out)
    if out is not None and _out_overlaps(out, rewards, group_ids, reward_weights):
        return copy_into(out, group_advantages(
            rewards, group_ids, group_size=group_size, preset=preset, scale=scale, ddof=ddof, eps=eps, eps_on=eps_on,
            reward_weights=reward_weights, combine=combine))
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
    fn = _cuda_fn("group_advantages", rewards)
    if fn is not None:
        res = fn(rewards, group_ids, group_size=group_size, preset=preset, scale=scale, ddof=ddof, eps=eps,
                 eps_on=eps_on, reward_weights=reward_weights, combine=combine)
        return res if out is None else copy_into(out, res)
    p_scale, p_ddof, p_eps, p_eps_on, singleton = _PRESET_CODES[choice(preset, "preset", _PRESET_CODES)]
    sc = p_scale if scale is None else _option(scale, "scale", _SCALES)
    dd = p_ddof if ddof is None else ddof_arg(ddof)
    e = p_eps if eps is None else real(eps, "eps", lo=0.0)
    eo = p_eps_on if eps_on is None else _option(eps_on, "eps_on", _EPS_ON)
    comb = _option(combine, "combine", _COMBINE)
    io = Io()
    r = _rewards(io, rewards, (1, 2))
    ids, gs = _ids(io, group_ids, group_size, r.shape[0])
    w, dtype = (None, r.dtype) if reward_weights is None else _weights(io, reward_weights, r)
    o = Out(out, "out", (r.shape[0],), dtype)
    res = _core.kernels.group_advantages(as_dtype(r, dtype), ids, gs, sc, dd, e, eo, singleton, w, comb, o.buf)
    return o.result(io, res)


def rloo_advantages(rewards: Any, group_ids: Any = None, *, group_size: int | None = None, out: Any = None) -> Any:
    """REINFORCE leave-one-out advantages (Ahmadian et al. 2024; Kool et al. 2019):
    ``A_i = r_i - (sum_g - r_i) / (n_g - 1)``, the reward minus the mean of the other members of its group, in
    float64; 0 in a group of one. ``rewards``: float32/float64 ``[B]``, finite. Groups as in
    :func:`group_advantages` (``group_ids [B]`` or ``group_size``, not both; neither: one group). Equals TRL's and
    verl's RLOO for groups of two or more (verl leaves a singleton's score unchanged; here it gets 0).
    torch in -> torch out; ``out=`` a ``[B]`` buffer. ``rltrain.reference.rloo_advantages`` is the specification.
    """
    plain_size = group_size is None or (type(group_size) is int and 0 < group_size < _GS_MAX)
    if plain_size and type(rewards) is not np.ndarray:
        views = _torch_views(rewards, group_ids, out)
        if views is not None:
            return _as_torch(_core.kernels.rloo_advantages(*views[:2], group_size, views[2]), out)
    if out is not None and _out_overlaps(out, rewards, group_ids):
        return copy_into(out, rloo_advantages(rewards, group_ids, group_size=group_size))
    if (
        plain_size
        and plain(rewards)
        and (group_ids is None or plain_lengths(group_ids))
        and plain_or_none(out, rewards.dtype)
    ):
        return _core.kernels.rloo_advantages(rewards, group_ids, group_size, out)
    fn = _cuda_fn("rloo_advantages", rewards)
    if fn is not None:
        res = fn(rewards, group_ids, group_size=group_size)
        return res if out is None else copy_into(out, res)
    io = Io()
    r = _rewards(io, rewards, (1,))
    ids, gs = _ids(io, group_ids, group_size, r.shape[0])
    o = Out(out, "out", (r.shape[0],), r.dtype)
    return o.result(io, _core.kernels.rloo_advantages(as_dtype(r, r.dtype), ids, gs, o.buf))
