"""The one home of argument checks and their messages.

Every public function, config and wrapper checks its arguments through these, so a bad argument reads the same
everywhere: ``"<name>: expected <what>, got <actual>"``. A value of the wrong kind (a string for a number, a
bool for an int, an array for a scalar) raises ``TypeError``; a value of the right kind out of range raises
``ValueError``. NumPy and the standard library only: this module sits below every other layer.

Class paths follow one rule everywhere (a config's ``backbone``, a checkpoint's class names, the CLI's trainers):
``"module:QualName"`` (or ``"module.QualName"``), resolved by :func:`class_from_path`, which imports a module only
when its caller allows it (a path the user wrote), never for a path read from a file.
"""

from __future__ import annotations

import importlib
import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "choice",
    "class_from_path",
    "class_path",
    "integer",
    "optional_integer",
    "optional_real",
    "optional_seed",
    "probability",
    "real",
    "require_ndim",
    "require_shape",
    "shape_str",
]

T = TypeVar("T")

_REAL_TYPES = (int, float, np.integer, np.floating)


def _describe_interval(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if lo is not None and hi is not None:
        return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f"{'<' if hi_open else '<='} {hi:g}"
    return ""


def real(
    value: Any,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
    what: str = "a finite number",
) -> float:
    """``value`` as a finite float within the bounds given (closed unless ``lo_open``/``hi_open``)."""
    bounds = _describe_interval(lo, hi, lo_open, hi_open)
    expected = f"{what} {bounds}".rstrip()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, _REAL_TYPES):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    v = float(value)
    if (
        not math.isfinite(v)
        or (lo is not None and (v <= lo if lo_open else v < lo))
        or (hi is not None and (v >= hi if hi_open else v > hi))
    ):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return v


def optional_real(value: Any, name: str, **bounds: Any) -> float | None:
    """None, or :func:`real` with the same bounds (the message says None is allowed)."""
    if value is None:
        return None
    what = bounds.pop("what", "a finite number")
    return real(value, name, what=f"None or {what}", **bounds)


def probability(value: Any, name: str) -> float:
    """A number in [0, 1]."""
    return real(value, name, lo=0.0, hi=1.0, what="a probability")


def integer(value: Any, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int within ``[lo, hi]``; bools and floats are refused (``2.0`` is not a count)."""
    bounds = _describe_interval(lo, hi, False, False)
    expected = f"an integer {bounds}".rstrip()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected {expected}, got bool {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}") from None
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name}: expected {expected}, got {v!r}")
    return v


def optional_integer(value: Any, name: str, *, lo: int | None = None, hi: int | None = None) -> int | None:
    """None, or :func:`integer`."""
    return None if value is None else integer(value, name, lo=lo, hi=hi)


def optional_seed(value: Any, name: str = "seed", *, count: int = 1) -> int | None:
    """None, or a seed for ``count`` consecutive streams: an int in ``[0, 2**64 - count]`` (stream i gets
    ``value + i``, a uint64). Written out, since ``2**64`` reads badly in :func:`integer`'s ``:g`` bounds."""
    if value is None:
        return None
    expected = f"None or an integer in [0, 2**64 - {count}]"
    try:
        v = integer(value, name)
    except TypeError:
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}") from None
    if not 0 <= v <= 2**64 - count:
        raise ValueError(f"{name}: expected {expected}, got {v!r}")
    return v


def choice(value: T, name: str, options: Iterable[T]) -> T:
    """``value`` when it is one of ``options``; else ``ValueError`` listing them."""
    opts = list(options)
    try:
        ok = value in opts
    except TypeError:  # an unhashable or uncomparable value is simply not an option
        ok = False
    if not ok:
        listed = ", ".join(repr(o) for o in opts)
        raise ValueError(f"{name}: expected one of {listed}, got {value!r}")
    return value


def shape_str(shape: Sequence[int]) -> str:
    """``(3, 4)`` for any shape-like sequence (tuple, torch.Size, list of numpy ints)."""
    return str(tuple(int(v) for v in shape))


def require_ndim(a: Any, name: str, ndim: int, layout: str) -> None:
    """``ValueError`` unless ``a`` has ``ndim`` dimensions; ``layout`` names them, e.g. ``"[T, N]"``."""
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array {layout}, got shape {shape_str(a.shape)}")


def require_shape(a: Any, name: str, shape: Sequence[int], layout: str | None = None) -> None:
    """``ValueError`` unless ``a.shape == shape``; ``layout`` names the dimensions, e.g. ``"[T, N]"``."""
    if tuple(a.shape) != tuple(shape):
        want = shape_str(shape) if layout is None else f"{layout} = {shape_str(shape)}"
        raise ValueError(f"{name}: expected shape {want}, got {shape_str(a.shape)}")


def class_path(cls: type) -> str:
    """The path that names ``cls``: ``"module:QualName"``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def class_from_path(
    path: Any,
    name: str,
    *,
    known: Mapping[str, type] | None = None,
    allow_import: bool = False,
    hint: str = "",
) -> type:
    """The class ``path`` names: ``"module:QualName"`` or ``"module.QualName"``.

    ``known`` (path -> class) is consulted first. Otherwise the module is imported only when ``allow_import``
    is True (a path the caller wrote itself); a path read from a file is looked up in ``known`` and nowhere else.
    A string that names nothing allowed raises ``ValueError`` (``hint`` says how to allow it), a non-string
    ``TypeError``."""
    if not isinstance(path, str):
        raise TypeError(f"{name}: expected a class path 'module:Class', got {type(path).__name__} {path!r}")
    if known is not None and path in known:
        return known[path]
    if not allow_import:
        raise ValueError(f"{name}: {path!r} is not among the classes allowed here{hint}")
    module, sep, qualname = path.partition(":")
    if not sep:
        module, _, qualname = path.rpartition(".")
    if not module or not qualname:
        raise ValueError(f"{name}: expected a class path 'module:Class', got {path!r}{hint}")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{name}: cannot import {path!r} ({exc}){hint}") from exc
    if not isinstance(obj, type):
        raise ValueError(f"{name}: {path!r} is not a class{hint}")
    return obj
