"""Compiled kernels: GAE, discounted returns, group (GRPO) advantages and running statistics.

Each function validates its arguments (raising ValueError/TypeError that name the argument and the expected
versus actual shape or dtype), converts torch tensors and non-contiguous arrays, and calls the C++ core with
the GIL released. ``rltrain.reference`` holds the NumPy specification of every function here.

torch in -> torch out on the same device (CUDA inputs are computed on the host and copied back). CPU inputs
that are already C-contiguous with a supported dtype are read without copying; ``out=`` avoids allocation.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from rltrain import _core

__all__ = [
    "gae",
    "discounted_returns",
    "group_normalize",
    "episodic_advantages",
    "per_step_advantages",
    "hybrid_advantages",
    "RunningMeanStd",
    "RewardNormalizer",
    "set_num_threads",
    "get_num_threads",
    "ppo_loss_grad",
]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_FLAG_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8)) + _FLOATS
_I64 = np.dtype(np.int64)
_DDOF_MAX = 2**62
_ND = np.ndarray


# Fast-path predicates: plain C-contiguous NumPy arrays go straight to the C++ binding, which checks shapes,
# dtypes and lengths again and raises the same errors; everything else takes the converting path.
def _plain(a: Any) -> bool:
    return type(a) is _ND and a.dtype in _FLOATS and _c_aligned(a)


def _plain_flag(a: Any) -> bool:
    return type(a) is _ND and a.dtype in _FLAG_DTYPES and _c_aligned(a)


def _c_aligned(a: np.ndarray) -> bool:
    f = a.flags
    return f.c_contiguous and f.aligned


def _plain_out(a: Any) -> bool:
    return a is None or _plain(a)


def set_num_threads(num_threads: int) -> None:
    """Sets the size of the kernel thread pool (default: ``RLTRAIN_NUM_THREADS``, else the CPUs this process may
    use: its affinity mask and cgroup CPU quota). The new pool is started before the old one is dropped: if its
    threads cannot be created, ``RuntimeError`` and the old pool stays in use.

    Results are identical for any thread count."""
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)):
        raise TypeError(f"num_threads: expected an int >= 1, got {type(num_threads).__name__}")
    if not 1 <= int(num_threads) <= _core.MAX_THREADS:
        raise ValueError(f"num_threads: expected an integer in [1, {_core.MAX_THREADS}], got {int(num_threads)}")
    _core.set_num_threads(int(num_threads))


def get_num_threads() -> int:
    """The number of threads (caller included) the kernels use."""
    return int(_core.get_num_threads())


# ----------------------------------------------------------------------------------------------- conversion


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach")


class _Io:
    """Remembers whether the inputs were torch tensors (and on which device) to shape the outputs."""

    def __init__(self) -> None:
        self.torch_device: Any = None

    def array(self, x: Any, name: str) -> np.ndarray:
        if _is_torch(x):
            if self.torch_device is None:
                self.torch_device = x.device
            x = x.detach()
            if x.device.type != "cpu":
                x = x.cpu()
            return x.numpy()
        if isinstance(x, np.ndarray):
            return x
        if x is None:
            raise TypeError(f"{name}: expected an array, got None")
        try:
            a = np.asarray(x)
        except Exception as exc:  # noqa: BLE001 - re-raised with the argument's name
            raise TypeError(f"{name}: expected an array-like, got {type(x).__name__}") from exc
        if a.dtype == object:
            raise TypeError(f"{name}: expected a numeric array, got dtype object")
        return a

    def wrap(self, a: np.ndarray) -> Any:
        if self.torch_device is None:
            return a
        import torch

        t = torch.from_numpy(a)
        return t if self.torch_device.type == "cpu" else t.to(self.torch_device)


def _shape(s: Sequence[int]) -> str:
    return str(tuple(int(v) for v in s))


def _check_ndim(a: np.ndarray, name: str, ndim: int, what: str) -> None:
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {what}, got shape {_shape(a.shape)}")


def _check_shape(a: np.ndarray, name: str, shape: Sequence[int], what: str) -> None:
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {what} = {_shape(shape)}, got {_shape(a.shape)}")


def _float_dtype(a: np.ndarray, name: str) -> np.dtype:
    if a.dtype not in _FLOATS:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    return a.dtype


def _as(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """C-contiguous array of ``dtype``; no copy when it already is one."""
    if a.dtype == dtype and _c_aligned(a):
        return a
    return np.require(a, dtype=dtype, requirements=["C", "A"])


def _flags(a: np.ndarray, name: str) -> np.ndarray:
    """Flags stay as they are when bool, uint8, float32 or float64 (non-zero means set)."""
    if a.dtype == np.bool_ or a.dtype == np.uint8 or a.dtype in _FLOATS:
        return _as(a, a.dtype)
    if a.dtype.kind in "iu":
        return np.ascontiguousarray(a != 0)
    raise TypeError(f"{name}: expected dtype bool, uint8, float32 or float64, got {a.dtype}")


def _unit(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number in [0, 1], got {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"{name}: expected a finite number in [0, 1], got {v}")
    return v


def _nonneg(x: Any, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number >= 0, got {type(x).__name__}")
    v = float(x)
    if not math.isfinite(v) or v < 0.0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {v}")
    return v


def _ddof(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"ddof: expected an int >= 0, got {type(x).__name__}")
    if x < 0:
        raise ValueError(f"ddof: expected an int >= 0, got {x}")
    return min(int(x), _DDOF_MAX)  # beyond any element count: std is 0 either way


class _Out:
    """An ``out=`` target: written in place when it is a C-contiguous host array of the right dtype,
    otherwise computed into a temporary and copied in."""

    def __init__(self, obj: Any, name: str, shape: Sequence[int], dtype: np.dtype) -> None:
        self.obj, self.name, self.copy_back = obj, name, False
        self.buf: np.ndarray | None = None
        if obj is None:
            return
        if _is_torch(obj):
            import torch

            want = torch.float32 if dtype == np.float32 else torch.float64
            if obj.dtype != want:
                raise TypeError(f"{name}: expected dtype {want}, got {obj.dtype}")
            if tuple(obj.shape) != tuple(shape):
                raise ValueError(f"{name}: expected shape {_shape(shape)}, got {_shape(obj.shape)}")
            if obj.device.type == "cpu" and obj.is_contiguous() and not obj.requires_grad and obj.numpy().flags.aligned:
                self.buf = obj.numpy()
            else:
                self.buf, self.copy_back = np.empty(shape, dtype), True
            return
        if not isinstance(obj, np.ndarray):
            raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(obj).__name__}")
        if obj.dtype != dtype:
            raise TypeError(f"{name}: expected dtype {dtype}, got {obj.dtype}")
        if tuple(obj.shape) != tuple(shape):
            raise ValueError(f"{name}: expected shape {_shape(shape)}, got {_shape(obj.shape)}")
        if not obj.flags.writeable:
            raise ValueError(f"{name}: output array is read-only")
        if _c_aligned(obj):
            self.buf = obj
        else:
            self.buf, self.copy_back = np.empty(shape, dtype), True

    def result(self, io: _Io, computed: np.ndarray) -> Any:
        if self.obj is None:
            return io.wrap(computed)
        if self.copy_back:
            if _is_torch(self.obj):
                import torch

                with torch.no_grad():
                    self.obj.copy_(torch.from_numpy(self.buf))
            else:
                self.obj[...] = self.buf
        return self.obj


def _out_pair(out: Any, n: int) -> tuple[Any, ...]:
    if out is None:
        return (None,) * n
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise TypeError(f"out: expected a tuple of {n} arrays, got {type(out).__name__}")
    return tuple(out)



# ------------------------------------------------------------------------------------------- aliased outputs
# The C++ kernels declare their rows __restrict: an out= buffer that overlaps an input would be read after it was
# written. Such calls are computed into fresh memory and copied into out= (so in-place use, out=rewards, works);
# two outputs sharing memory is an error, since one result would overwrite the other.


def _host_view(x: Any) -> np.ndarray | None:
    if isinstance(x, np.ndarray):
        return x
    if _is_torch(x) and x.device.type == "cpu":
        try:
            return x.detach().numpy()
        except (TypeError, RuntimeError):  # dtypes numpy lacks (bfloat16): compare address ranges instead
            return None
    return None


def _overlap(a: Any, b: Any) -> bool:
    va, vb = _host_view(a), _host_view(b)
    if va is not None and vb is not None:
        if va.size == 0 or vb.size == 0 or not np.may_share_memory(va, vb):
            return False
        try:
            return bool(np.shares_memory(va, vb, max_work=100_000))
        except Exception:  # numpy's TooHardError: cannot tell cheaply, so treat as overlapping
            return True
    if _is_torch(a) and _is_torch(b):
        if a.device != b.device or a.numel() == 0 or b.numel() == 0:
            return False

        def span(t: Any) -> tuple[int, int]:
            extent = sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride()))
            return t.data_ptr(), t.data_ptr() + (extent + 1) * t.element_size()

        (a0, a1), (b0, b1) = span(a), span(b)
        return a0 < b1 and b0 < a1
    return False


def _aliased(outs: Sequence[tuple[str, Any]], ins: Sequence[tuple[str, Any]]) -> bool:
    """Whether an output overlaps an input (the call must then go through scratch); ``ValueError`` when two
    outputs overlap each other."""
    outs = [(n, o) for n, o in outs if o is not None]
    for i, (n1, o1) in enumerate(outs):
        for n2, o2 in outs[i + 1:]:
            if _overlap(o1, o2):
                raise ValueError(f"{n1} and {n2} share memory; each result needs its own buffer")
    return any(_overlap(o, x) for _, o in outs for _, x in ins if x is not None)


def _copy_into(dst: Any, src: Any, name: str = "out") -> Any:
    """Copies a result computed through scratch into the caller's ``out=``, checked as ``_Out`` checks it."""
    if not (_is_torch(dst) or isinstance(dst, np.ndarray)):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(dst).__name__}")
    if tuple(dst.shape) != tuple(src.shape):
        raise ValueError(f"{name}: expected shape {_shape(src.shape)}, got {_shape(dst.shape)}")
    if str(dst.dtype).replace("torch.", "") != str(src.dtype).replace("torch.", ""):
        raise TypeError(f"{name}: expected dtype {src.dtype}, got {dst.dtype}")
    if isinstance(dst, np.ndarray) and not dst.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")
    if _is_torch(dst):
        import torch

        with torch.no_grad():
            dst.copy_(src if _is_torch(src) else torch.from_numpy(np.ascontiguousarray(src)))
    else:
        dst[...] = src.detach().cpu().numpy() if _is_torch(src) else src
    return dst


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
    if out is not None:
        o0, o1 = _out_pair(out, 2)
        if _aliased((("out[0] (advantages)", o0), ("out[1] (returns)", o1)),
                    (("rewards", rewards), ("values", values), ("dones", dones), ("last_values", last_values),
                     ("terminated", terminated), ("final_values", final_values))):
            a, b = gae(rewards, values, dones, last_values, gamma=gamma, lam=lam, terminated=terminated,
                       final_values=final_values)
            return _copy_into(o0, a, "out[0] (advantages)"), _copy_into(o1, b, "out[1] (returns)")
    if (
        terminated is None
        and type(gamma) is float
        and type(lam) is float
        and _plain(rewards)
        and _plain(values)
        and _plain(last_values)
        and _plain_flag(dones)
        and (out is None or (type(out) is tuple and len(out) == 2 and _plain(out[0]) and _plain(out[1])))
        and rewards.dtype == values.dtype == last_values.dtype
    ):
        o0, o1 = (None, None) if out is None else out
        return _core.gae(rewards, values, dones, last_values, None, None, gamma, lam, o0, o1)
    io = _Io()
    r = io.array(rewards, "rewards")
    _check_ndim(r, "rewards", 2, "[T, N]")
    T, N = r.shape
    v = io.array(values, "values")
    lv = io.array(last_values, "last_values")
    dtype = np.result_type(_float_dtype(r, "rewards"), _float_dtype(v, "values"), _float_dtype(lv, "last_values"))
    _check_shape(v, "values", (T, N), "[T, N]")
    d = io.array(dones, "dones")
    _check_shape(d, "dones", (T, N), "[T, N]")
    _check_shape(lv, "last_values", (N,), "[N]")
    term = fin = None
    if terminated is not None:
        term = io.array(terminated, "terminated")
        _check_shape(term, "terminated", (T, N), "[T, N]")
        if final_values is None:
            raise ValueError("final_values: required when terminated is given (values of the true final observations)")
        fin = io.array(final_values, "final_values")
        dtype = np.result_type(dtype, _float_dtype(fin, "final_values"))
        _check_shape(fin, "final_values", (T, N), "[T, N]")
        term = _flags(term, "terminated")
        fin = _as(fin, dtype)
    d = _flags(d, "dones")
    g, lm = _unit(gamma, "gamma"), _unit(lam, "lam")
    o_adv, o_ret = _out_pair(out, 2)
    adv = _Out(o_adv, "out[0] (advantages)", (T, N), dtype)
    ret = _Out(o_ret, "out[1] (returns)", (T, N), dtype)
    a, b = _core.gae(_as(r, dtype), _as(v, dtype), d, _as(lv, dtype), term, fin, g, lm, adv.buf, ret.buf)
    return adv.result(io, a), ret.result(io, b)


def discounted_returns(
    rewards: Any, dones: Any, *, gamma: float = 0.99, last_values: Any = None, out: Any = None
) -> Any:
    """``R[t] = rewards[t] + gamma * (1 - dones[t]) * R[t+1]`` over ``[T, N]``; ``R[T] = last_values``
    (zeros when None). Monte-Carlo returns for REINFORCE."""
    if out is not None and _aliased((("out", out),),
                                    (("rewards", rewards), ("dones", dones), ("last_values", last_values))):
        return _copy_into(out, discounted_returns(rewards, dones, gamma=gamma, last_values=last_values))
    if (
        type(gamma) is float
        and _plain(rewards)
        and _plain_flag(dones)
        and _plain_out(out)
        and (last_values is None or (_plain(last_values) and last_values.dtype == rewards.dtype))
    ):
        return _core.discounted_returns(rewards, dones, last_values, gamma, out)
    io = _Io()
    r = io.array(rewards, "rewards")
    _check_ndim(r, "rewards", 2, "[T, N]")
    T, N = r.shape
    dtype = _float_dtype(r, "rewards")
    d = io.array(dones, "dones")
    _check_shape(d, "dones", (T, N), "[T, N]")
    lv = None
    if last_values is not None:
        lv = io.array(last_values, "last_values")
        dtype = np.result_type(dtype, _float_dtype(lv, "last_values"))
        _check_shape(lv, "last_values", (N,), "[N]")
        lv = _as(lv, dtype)
    d = _flags(d, "dones")
    g = _unit(gamma, "gamma")
    o = _Out(out, "out", (T, N), dtype)
    return o.result(io, _core.discounted_returns(_as(r, dtype), d, lv, g, o.buf))


# ------------------------------------------------------------------------------------------ group kernels


def _fast_group(rewards: Any, lengths: Any, out: Any, eps: Any, ddof: Any) -> bool:
    return (
        type(eps) is float
        and type(ddof) is int
        and ddof < _DDOF_MAX
        and _plain(rewards)
        and type(lengths) is _ND
        and lengths.dtype == _I64
        and _c_aligned(lengths)
        and _plain_out(out)
    )


def _group_inputs(io: _Io, rewards: Any, lengths: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Validates and converts ``rewards [G, T] | [B, G, T]`` and ``lengths [G] | [B, G]``."""
    r = io.array(rewards, "rewards")
    if r.ndim not in (2, 3):
        raise ValueError(f"rewards: expected a 2-D [G, T] or 3-D [B, G, T] array, got shape {_shape(r.shape)}")
    dtype = _float_dtype(r, "rewards")
    lens = io.array(lengths, "lengths")
    if lens.dtype == np.bool_ or lens.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected an integer dtype, got {lens.dtype}")
    _check_shape(lens, "lengths", r.shape[:-1], "[G]" if r.ndim == 2 else "[B, G]")
    T = r.shape[-1]
    if lens.size:
        lo, hi = int(lens.min()), int(lens.max())
        if lo < 0 or hi > T:
            bad = lo if lo < 0 else hi
            raise ValueError(f"lengths: expected integers in [0, T] = [0, {T}], got {bad}")
    return _as(r, dtype), _as(lens, _I64), tuple(r.shape)


def episodic_advantages(
    rewards: Any, lengths: Any, *, eps: float = 1e-8, ddof: int = 0, out: Any = None
) -> Any:
    """Outcome supervision (GRPO): every valid step of episode i gets
    ``(R_i - mean(R)) / (std(R) + eps)``, ``R_i`` its total reward; zeros past ``lengths[i]``.

    ``rewards [G, T]`` padded per episode (or ``[B, G, T]`` for B independent groups), ``lengths [G]``."""
    if out is not None and _aliased((("out", out),), (("rewards", rewards), ("lengths", lengths))):
        return _copy_into(out, episodic_advantages(rewards, lengths, eps=eps, ddof=ddof))
    if _fast_group(rewards, lengths, out, eps, ddof):
        return _core.episodic_advantages(rewards, lengths, eps, ddof, out)
    io = _Io()
    e, dd = _nonneg(eps, "eps"), _ddof(ddof)
    r3, l2, shape = _group_inputs(io, rewards, lengths)
    o = _Out(out, "out", shape, r3.dtype)
    return o.result(io, _core.episodic_advantages(r3, l2, e, dd, o.buf))


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
    if normalize not in ("timestep", "pooled"):
        raise ValueError(f"normalize: expected 'timestep' or 'pooled', got {normalize!r}")
    if out is not None and _aliased((("out", out),), (("rewards", rewards), ("lengths", lengths))):
        return _copy_into(out, per_step_advantages(rewards, lengths, gamma=gamma, normalize=normalize, eps=eps,
                                                   ddof=ddof))
    if type(gamma) is float and _fast_group(rewards, lengths, out, eps, ddof):
        return _core.per_step_advantages(rewards, lengths, gamma, int(normalize == "pooled"), eps, ddof, out)
    io = _Io()
    g, e, dd = _unit(gamma, "gamma"), _nonneg(eps, "eps"), _ddof(ddof)
    r3, l2, shape = _group_inputs(io, rewards, lengths)
    o = _Out(out, "out", shape, r3.dtype)
    return o.result(io, _core.per_step_advantages(r3, l2, g, int(normalize == "pooled"), e, dd, o.buf))


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
    if out is not None and _aliased((("out", out),), (("rewards", rewards), ("lengths", lengths))):
        return _copy_into(out, hybrid_advantages(rewards, lengths, gamma=gamma, alpha=alpha, beta=beta, clip=clip,
                                                 eps=eps, ddof=ddof))
    if (
        type(gamma) is float
        and type(alpha) is float
        and type(beta) is float
        and (clip is None or type(clip) is float)
        and _fast_group(rewards, lengths, out, eps, ddof)
        and (clip is None or clip >= 0.0)
    ):
        c = -1.0 if clip is None else clip
        return _core.hybrid_advantages(rewards, lengths, gamma, alpha, beta, c, eps, ddof, out)
    io = _Io()
    g, e, dd = _unit(gamma, "gamma"), _nonneg(eps, "eps"), _ddof(ddof)
    a, b = _nonneg(alpha, "alpha"), _nonneg(beta, "beta")
    c = -1.0 if clip is None else _nonneg(clip, "clip")
    r3, l2, shape = _group_inputs(io, rewards, lengths)
    o = _Out(out, "out", shape, r3.dtype)
    return o.result(io, _core.hybrid_advantages(r3, l2, g, a, b, c, e, dd, o.buf))


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
    if scale not in _SCALES:
        raise ValueError(f"scale: expected 'group', 'batch' or 'none', got {scale!r}")
    if out is not None and _aliased((("out", out),), (("scores", scores),)):
        return _copy_into(out, group_normalize(scores, group_size=group_size, scale=scale, eps=eps, ddof=ddof))
    if (
        _plain(scores)
        and scores.ndim == 1
        and type(eps) is float
        and type(ddof) is int
        and ddof < _DDOF_MAX
        and _plain_out(out)
    ):
        if group_size is None:
            return _core.group_normalize(scores, max(scores.shape[0], 1), _SCALES[scale], eps, ddof, out)
        if type(group_size) is int:
            return _core.group_normalize(scores, group_size, _SCALES[scale], eps, ddof, out)
    io = _Io()
    e, dd = _nonneg(eps, "eps"), _ddof(ddof)
    s = io.array(scores, "scores")
    _check_ndim(s, "scores", 1, "[B*G]")
    dtype = _float_dtype(s, "scores")
    n = s.shape[0]
    if group_size is None:
        gs = max(n, 1)
    else:
        if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)):
            raise TypeError(f"group_size: expected an int >= 1 or None, got {type(group_size).__name__}")
        gs = int(group_size)
        if gs < 1 or n % gs != 0:
            raise ValueError(f"group_size: expected an int >= 1 dividing len(scores) = {n}, got {gs}")
    o = _Out(out, "out", (n,), dtype)
    return o.result(io, _core.group_normalize(_as(s, dtype), gs, _SCALES[scale], e, dd, o.buf))


# ------------------------------------------------------------------------------------- running statistics


def _stats_array(io: _Io, x: Any, name: str) -> np.ndarray:
    """Float32/float64 stay as they are; integers, bool and float16 are widened; the rest is refused."""
    a = io.array(x, name)
    if a.dtype in _FLOATS:
        return _as(a, a.dtype)
    if a.dtype.kind in "biu" or a.dtype == np.float16:
        return _as(a, np.dtype(np.float32 if a.dtype == np.float16 else np.float64))
    raise TypeError(f"{name}: expected a real numeric dtype, got {a.dtype}")


class RunningMeanStd:
    """Running mean and variance with float64 accumulators (Stable-Baselines3 semantics).

    Starts at ``mean=0, var=1, count=epsilon``; ``update(batch)`` merges the batch's mean and population
    variance (two-pass, so a mean of 1e8 with std 1 keeps full precision) with Chan et al.'s parallel formula.
    """

    def __init__(self, shape: Sequence[int] | int = (), epsilon: float = 1e-4) -> None:
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        if any(s < 0 for s in self.shape):
            raise ValueError(f"shape: expected non-negative dimensions, got {self.shape}")
        self._mean = np.zeros(self.shape, np.float64)
        self._var = np.ones(self.shape, np.float64)
        self.count = _nonneg(epsilon, "epsilon")

    @property
    def mean(self) -> np.ndarray:
        return self._mean

    @mean.setter
    def mean(self, value: Any) -> None:
        self._mean = self._stat(value, "mean")

    @property
    def var(self) -> np.ndarray:
        return self._var

    @var.setter
    def var(self, value: Any) -> None:
        self._var = self._stat(value, "var")

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._var)

    def _stat(self, value: Any, name: str) -> np.ndarray:
        a = np.array(value.detach().cpu().numpy() if _is_torch(value) else value, dtype=np.float64)
        if a.shape != self.shape:
            raise ValueError(f"{name}: expected shape {self.shape}, got {a.shape}")
        return np.ascontiguousarray(a)

    def _dim(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def update(self, batch: Any) -> None:
        """Merges a batch of shape ``(n, *shape)``."""
        x = _stats_array(_Io(), batch, "batch")
        if tuple(x.shape[1:]) != self.shape or x.ndim != len(self.shape) + 1:
            raise ValueError(f"batch: expected shape (n, *{self.shape}), got {_shape(x.shape)}")
        self.count = float(
            _core.rms_update(self._mean.reshape(-1), self._var.reshape(-1), self.count, x.reshape(x.shape[0], self._dim()))
        )

    def merge(self, other: RunningMeanStd) -> None:
        """Merges another RunningMeanStd's statistics into this one."""
        if not isinstance(other, RunningMeanStd):
            raise TypeError(f"other: expected a RunningMeanStd, got {type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"other: expected shape {self.shape}, got {other.shape}")
        delta = other.mean - self._mean
        tot = self.count + other.count
        if other.count == 0:
            return
        m2 = self._var * self.count + other.var * other.count + delta**2 * self.count * other.count / tot
        self._mean = np.ascontiguousarray(self._mean + delta * other.count / tot)
        self._var = np.ascontiguousarray(m2 / tot)
        self.count = tot

    combine = merge  # Stable-Baselines3's name

    def normalize(self, x: Any, clip: float = 10.0, eps: float = 1e-8) -> Any:
        """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` for ``x`` of shape ``(*batch, *shape)``."""
        io = _Io()
        a = _stats_array(io, x, "x")
        k = len(self.shape)
        if a.ndim < k or tuple(a.shape[a.ndim - k :]) != self.shape:
            raise ValueError(f"x: expected shape (..., *{self.shape}), got {_shape(a.shape)}")
        c, e = _nonneg(clip, "clip"), _nonneg(eps, "eps")
        out = np.empty(a.shape, a.dtype)
        dim = self._dim()
        rows = int(np.prod(a.shape[: a.ndim - k], dtype=np.int64))
        _core.rms_normalize(a.reshape(rows, dim), self._mean.reshape(-1), self._var.reshape(-1), c, e,
                            out.reshape(rows, dim))
        return io.wrap(out)

    def copy(self) -> RunningMeanStd:
        new = RunningMeanStd(self.shape, epsilon=self.count)
        new._mean, new._var = self._mean.copy(), self._var.copy()
        return new

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickle needed): mean, var, count."""
        return {"mean": self._mean.copy(), "var": self._var.copy(), "count": np.array(self.count, np.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("mean", "var", "count"):
            if key not in state:
                raise KeyError(f"state: missing key {key!r}")
        count = float(np.asarray(state["count"].detach().cpu() if _is_torch(state["count"]) else state["count"]))
        mean, var = self._stat(state["mean"], "mean"), self._stat(state["var"], "var")
        self._mean, self._var, self.count = mean, var, _nonneg(count, "count")

    def __repr__(self) -> str:
        return f"RunningMeanStd(shape={self.shape}, count={self.count:g})"


class RewardNormalizer:
    """Divides rewards by the running std of the discounted return (SB3 ``VecNormalize`` reward path):
    ``ret = ret * gamma + r; stats.update(ret); out = clip(r / sqrt(var + epsilon)); ret[dones] = 0``.
    Set ``training = False`` to freeze the statistics (and, as SB3, the return accumulator) for evaluation."""

    def __init__(self, num_envs: int, gamma: float = 0.99, epsilon: float = 1e-8, clip: float = 10.0) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"num_envs: expected an int >= 1, got {num_envs!r}")
        self.num_envs = int(num_envs)
        self.gamma = _unit(gamma, "gamma")
        self.epsilon = _nonneg(epsilon, "epsilon")
        self.clip = _nonneg(clip, "clip")
        self.returns = np.zeros(self.num_envs, np.float64)
        self.stats = RunningMeanStd(shape=())
        self.training = True

    def normalize(self, rewards: Any, dones: Any) -> Any:
        io = _Io()
        r = _stats_array(io, rewards, "rewards")
        _check_shape(r, "rewards", (self.num_envs,), "[num_envs]")
        d = io.array(dones, "dones")
        _check_shape(d, "dones", (self.num_envs,), "[num_envs]")
        d = _flags(d, "dones").astype(bool, copy=False)
        if self.training:  # as SB3's VecNormalize: the return accumulator and its statistics both freeze
            self.returns *= self.gamma
            self.returns += r
            self.stats.update(self.returns)
        out = np.clip(r / np.sqrt(self.stats.var + self.epsilon), -self.clip, self.clip).astype(r.dtype, copy=False)
        self.returns[d] = 0.0
        return io.wrap(out)

    def state_dict(self) -> dict[str, np.ndarray]:
        s = {f"stats.{k}": v for k, v in self.stats.state_dict().items()}
        s["returns"] = self.returns.copy()
        return s

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("stats.")})
        ret = np.array(state["returns"], dtype=np.float64)
        if ret.shape != (self.num_envs,):
            raise ValueError(f"returns: expected shape ({self.num_envs},), got {ret.shape}")
        self.returns = ret

    def __repr__(self) -> str:
        return f"RewardNormalizer(num_envs={self.num_envs}, gamma={self.gamma}, clip={self.clip})"


# ----------------------------------------------------------------------------------------------- PPO loss


def ppo_loss_grad(
    head: np.ndarray,
    actions: np.ndarray,
    old_logp: np.ndarray,
    adv: np.ndarray,
    returns: np.ndarray,
    values: np.ndarray,
    old_values: np.ndarray,
    *,
    clip: float,
    clip_vf: float | None,
    ent_coef: float,
    vf_coef: float,
    dhead: np.ndarray,
    dvalues: np.ndarray,
    log_std: np.ndarray | None = None,
    dlog_std: np.ndarray | None = None,
    normalize_adv: bool = False,
) -> tuple[float, float, float, float, float]:
    """Stable-Baselines3's PPO minibatch loss ``pg + ent_coef * (-entropy) + vf_coef * value_loss``: returns
    ``(pg_loss, value_loss, entropy, approx_kl, clip_fraction)`` and writes its gradient with respect to the policy
    head outputs (``dhead``: logits [B, A] or Gaussian means [B, A]; ``dlog_std`` [A] for a Gaussian head with
    ``log_std``) and the values (``dvalues`` [B]). ``normalize_adv`` first normalises ``adv`` over the minibatch
    (``(adv - mean) / (std + 1e-8)``, std with ddof 1 as ``torch.std``). NumPy arrays only (the update loop passes
    views of its tensors); ``rltrain.reference.ppo_loss_grad`` is the specification."""
    return _core.ppo_loss_grad(head, actions, old_logp, adv, returns, values, old_values, float(clip),
                               -1.0 if clip_vf is None else float(clip_vf), float(ent_coef), float(vf_coef),
                               dhead, dvalues, log_std, dlog_std, bool(normalize_adv))
