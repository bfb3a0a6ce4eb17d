"""Arrays in and out of the kernel wrappers: NumPy or torch arguments, ``out=`` targets, aliasing, and the
predicates that let a plain NumPy call skip all of it.

torch is never imported here unless a tensor was passed in (``import rltrain.kernels`` costs NumPy only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rltrain._checks import integer, require_shape

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
FLOATS = (_F32, _F64)
FLAG_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8), *FLOATS)
I64 = np.dtype(np.int64)
DDOF_MAX = 2**62
"""Beyond any element count: a larger ddof gives std 0 just the same, and the C++ side never overflows."""
_ND = np.ndarray


def c_aligned(a: np.ndarray) -> bool:
    f = a.flags
    return f.c_contiguous and f.aligned


# ----------------------------------------------------------------------------------------------- fast path
# A plain call (aligned C-contiguous NumPy arrays of the kernel's dtypes, Python float/int scalars) goes straight
# to the binding, which checks shapes, ranges and lengths itself and raises the same errors; everything else
# takes the converting path. Each kernel's test is a one-line conjunction of these role predicates: a generic
# table-driven test was measured 0.2-0.4 us slower per call (10-30% of a small kernel call).


def plain(a: Any, dtype: Any = None) -> bool:
    """An aligned C-contiguous ``numpy.ndarray`` of float32 or float64 (of exactly ``dtype`` when given).

    Native float dtypes are singletons, so identity suffices: any other dtype object (a byte-swapped float64)
    is simply not plain and gets converted."""
    if type(a) is not _ND:
        return False
    dt = a.dtype
    if (dt is not _F32 and dt is not _F64) or (dtype is not None and dt is not dtype):
        return False
    f = a.flags
    return f.c_contiguous and f.aligned


def plain_or_none(a: Any, dtype: Any) -> bool:
    """None (an optional input or ``out=`` not given) or ``plain(a, dtype)``."""
    return a is None or plain(a, dtype)


def plain_flags(a: Any) -> bool:
    """An aligned C-contiguous ``numpy.ndarray`` of bool, uint8, float32 or float64."""
    if type(a) is not _ND or a.dtype not in FLAG_DTYPES:
        return False
    f = a.flags
    return f.c_contiguous and f.aligned


def plain_lengths(a: Any) -> bool:
    """An aligned C-contiguous int64 ``numpy.ndarray``."""
    if type(a) is not _ND or a.dtype is not I64:
        return False
    f = a.flags
    return f.c_contiguous and f.aligned


def plain_ddof(ddof: Any) -> bool:
    """A Python int the binding takes as it is (no cap needed)."""
    return type(ddof) is int and ddof < DDOF_MAX


def ddof_arg(ddof: Any) -> int:
    """``ddof`` as an int >= 0, capped at ``DDOF_MAX``."""
    return min(integer(ddof, "ddof", lo=0), DDOF_MAX)


_TORCH_TYPES: dict[type, bool] = {}
"""type -> whether it is a torch tensor type (``is_torch`` runs several times per kernel call: a dict lookup is a
fifth of the module-name test)."""


def is_torch(x: Any) -> bool:
    """A torch tensor, recognised without importing torch."""
    t = type(x)
    known = _TORCH_TYPES.get(t)
    if known is None:
        known = t.__module__.split(".")[0] == "torch" and hasattr(t, "detach")
        if len(_TORCH_TYPES) < 256:
            _TORCH_TYPES[t] = known
    return known


def cpu_views(*xs: Any) -> list[Any] | None:
    """NumPy views of the CPU torch tensors among ``xs`` (everything else unchanged) when at least one is a tensor
    and numpy can view every tensor (CPU, a dtype numpy has); else None. A wrapper then calls itself on the views,
    which takes the plain-NumPy fast path, and hands the result back as a tensor: a tensor call costs what a NumPy
    call does."""
    from rltrain.kernels import _device  # the one device test (tests patch it)

    views: list[Any] = []
    tensor = False
    for x in xs:
        if is_torch(x):
            if _device.on_device(x):
                return None
            try:  # detach() only where needed: it costs as much again as numpy()
                views.append(x.detach().numpy() if x.requires_grad else x.numpy())
            except (TypeError, RuntimeError):  # bfloat16, conjugate or negative views: the general path
                return None
            tensor = True
        elif isinstance(x, (tuple, list)) and any(is_torch(e) for e in x):
            inner = cpu_views(*x)
            if inner is None:
                return None
            views.append(tuple(inner))
            tensor = True
        else:
            views.append(x)
    return views if tensor else None


def disjoint(out: Any, *xs: Any) -> bool:
    """``out`` None, or no NumPy array among ``xs`` whose address range meets ``out``'s (exact for C-contiguous
    arrays; a bounds test costing about 0.3 us each, against several for ``aliased``)."""
    if out is None:
        return True
    for x in xs:  # noqa: SIM110 (a loop: the generator of all() costs a few tenths of a us more per call)
        if x is not None and np.may_share_memory(out, x):
            return False
    return True


def as_tensor(a: Any) -> Any:
    """A NumPy result as a CPU tensor sharing its memory (tuples element-wise)."""
    import torch

    if isinstance(a, tuple):
        return tuple(torch.from_numpy(e) for e in a)
    return torch.from_numpy(a)


class Io:
    """Reads the arguments of one call as NumPy arrays and remembers whether they were torch tensors (and on
    which device) to give the results back the same way."""

    def __init__(self) -> None:
        self.torch_device: Any = None

    def array(self, x: Any, name: str) -> np.ndarray:
        if is_torch(x):
            if self.torch_device is None:
                self.torch_device = x.device
            x = x.detach()
            if x.device.type != "cpu":
                x = x.cpu()
            host: np.ndarray = x.numpy()
            return host
        if isinstance(x, np.ndarray):
            return x
        if x is None:
            raise TypeError(f"{name}: expected an array, got None")
        try:
            a = np.asarray(x)
        except Exception as exc:  # re-raised with the argument's name
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


def float_dtype(a: np.ndarray, name: str) -> np.dtype[Any]:
    if a.dtype not in FLOATS:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    return a.dtype


def as_dtype(a: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """C-contiguous, aligned array of ``dtype``; no copy when it already is one."""
    if a.dtype == dtype and c_aligned(a):
        return a
    return np.require(a, dtype=dtype, requirements=["C", "A"])


def check_flags(a: Any, name: str) -> bool:
    """Whether flags of ``a``'s dtype are read as they are (bool, uint8, float32, float64: True) or as non-zero
    (other integers: False); ``TypeError`` for any other dtype. Reads ``a.dtype`` only."""
    if a.dtype in FLAG_DTYPES:
        return True
    if a.dtype.kind in "iu":
        return False
    raise TypeError(f"{name}: expected dtype bool, uint8, float32 or float64, got {a.dtype}")


def flag_array(a: np.ndarray, name: str) -> np.ndarray:
    """Flags stay as they are when bool, uint8, float32 or float64 (non-zero means set); other integers are
    read as non-zero."""
    if check_flags(a, name):
        return as_dtype(a, a.dtype)
    return np.require(a != 0, requirements=["C", "A"])  # ascontiguousarray would make a 0-d array 1-D


def check_out(obj: Any, name: str, shape: Sequence[int], dtype: np.dtype[Any]) -> None:
    """The checks of an ``out=`` target (not None) of ``shape`` and ``dtype``: a NumPy array (writable) or a torch
    tensor on any device. Reads metadata only."""
    if is_torch(obj):
        import torch

        want = torch.float32 if dtype == np.float32 else torch.float64
        if obj.dtype != want:
            raise TypeError(f"{name}: expected dtype {want}, got {obj.dtype}")
        require_shape(obj, name, shape)
        return
    if not isinstance(obj, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(obj).__name__}")
    if obj.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {obj.dtype}")
    require_shape(obj, name, shape)
    if not obj.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")


class Out:
    """An ``out=`` target: written in place when it is a C-contiguous host array of the right dtype,
    otherwise computed into a temporary and copied in."""

    def __init__(self, obj: Any, name: str, shape: Sequence[int], dtype: np.dtype[Any]) -> None:
        self.obj, self.name, self.copy_back = obj, name, False
        self.buf: np.ndarray | None = None
        if obj is None:
            return
        check_out(obj, name, shape, dtype)
        if is_torch(obj):
            if obj.device.type == "cpu" and obj.is_contiguous() and not obj.requires_grad and obj.numpy().flags.aligned:
                self.buf = obj.numpy()
            else:
                self.buf, self.copy_back = np.empty(shape, dtype), True
            return
        if c_aligned(obj):
            self.buf = obj
        else:
            self.buf, self.copy_back = np.empty(shape, dtype), True

    def result(self, io: Io, computed: np.ndarray) -> Any:
        if self.obj is None:
            return io.wrap(computed)
        if self.copy_back:
            if is_torch(self.obj):
                import torch

                with torch.no_grad():
                    self.obj.copy_(torch.from_numpy(self.buf))
            else:
                self.obj[...] = self.buf
        return self.obj


def out_tuple(out: Any, n: int) -> tuple[Any, ...]:
    """The ``n`` buffers of a multi-output ``out=`` (all None when ``out`` is None)."""
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
    if type(x) is _ND or isinstance(x, np.ndarray):
        return x
    if is_torch(x) and x.device.type == "cpu":
        try:
            view: np.ndarray = x.detach().numpy()
            return view
        except (TypeError, RuntimeError):  # dtypes numpy lacks (bfloat16): compare address ranges instead
            return None
    return None


def _torch_span(t: Any) -> tuple[int, int]:
    """The byte range ``[start, end)`` a tensor's elements occupy."""
    extent = sum((n - 1) * abs(st) for n, st in zip(t.shape, t.stride()))
    start = int(t.data_ptr())
    return start, start + (extent + 1) * int(t.element_size())


def overlap(a: Any, b: Any) -> bool:
    """Whether two arrays or tensors may share an element (True when that is too costly to rule out)."""
    va, vb = _host_view(a), _host_view(b)
    if va is not None and vb is not None:
        if va.size == 0 or vb.size == 0 or not np.may_share_memory(va, vb):
            return False
        try:
            # numpy's stub admits only the sentinels -1 and 0 for max_work; any bound is valid at run time
            return bool(np.shares_memory(va, vb, max_work=100_000))  # type: ignore[arg-type]
        except Exception:  # numpy's TooHardError: cannot tell cheaply, so treat as overlapping
            return True
    if is_torch(a) and is_torch(b):
        if a.device != b.device or a.device.type == "meta" or a.numel() == 0 or b.numel() == 0:
            return False
        (a0, a1), (b0, b1) = _torch_span(a), _torch_span(b)
        return a0 < b1 and b0 < a1
    return False


def aliased(outs: Sequence[tuple[str, Any]], ins: Sequence[tuple[str, Any]]) -> bool:
    """Whether an output overlaps an input (the call must then go through scratch); ``ValueError`` when two
    outputs overlap each other."""
    given = [(n, o) for n, o in outs if o is not None]
    for i, (n1, o1) in enumerate(given):
        for n2, o2 in given[i + 1 :]:
            if overlap(o1, o2):
                raise ValueError(f"{n1} and {n2} share memory; each result needs its own buffer")
    return any(overlap(o, x) for _, o in given for _, x in ins if x is not None)


def copy_into(dst: Any, src: Any, name: str = "out") -> Any:
    """Copies a result computed through scratch into the caller's ``out=``, checked as ``Out`` checks it."""
    if not (is_torch(dst) or isinstance(dst, np.ndarray)):
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(dst).__name__}")
    require_shape(dst, name, src.shape)
    if str(dst.dtype).replace("torch.", "") != str(src.dtype).replace("torch.", ""):
        raise TypeError(f"{name}: expected dtype {src.dtype}, got {dst.dtype}")
    if isinstance(dst, np.ndarray) and not dst.flags.writeable:
        raise ValueError(f"{name}: output array is read-only")
    if is_torch(dst):
        import torch

        with torch.no_grad():
            dst.copy_(src if is_torch(src) else torch.from_numpy(np.require(src, requirements=["C"])))
    else:
        dst[...] = src.detach().cpu().numpy() if is_torch(src) else src
    return dst
