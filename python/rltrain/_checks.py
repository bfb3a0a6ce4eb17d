"""The one home of argument checks and their messages.

Every public function, config and wrapper checks its arguments through these, so a bad argument reads the same
everywhere: ``"<name>: expected <what>, got <actual>"``. A value of the wrong kind (a string for a number, a
bool for an int, an array for a scalar) raises ``TypeError``; a value of the right kind out of range raises
``ValueError``. NumPy only: this module sits below every other layer.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "choice",
    "integer",
    "optional_integer",
    "optional_real",
    "optional_seed",
    "probability",
    "real",
    "shape_str",
    "require_ndim",
    "require_shape",
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
