"""Calls of the language-model kernels with tensors on an accelerator (CUDA).

A call is a *device call* when one of its input arrays is a torch tensor off the CPU (``on_device``; the tests
patch it to take CPU tensors for device ones). The wrapper then:

1. runs the very checks of its host path, on metadata only: ``MetaIo.array`` gives a ``Meta`` (shape, ndim,
   dtype) where ``Io.array`` would copy the tensor to the host, so the messages are those of a CPU call;
2. requires every other array argument, ``out=`` included, to be a tensor on the same device (``ValueError``
   naming it). No hidden copies of [B] or [B, L] data: a NumPy array or a CPU tensor next to a CUDA one is an
   error. The one exception is ``reward_weights`` ([R], a handful of numbers), read on the host as on the host
   path (list, NumPy array or tensor anywhere) and moved to the device;
3. runs the torch path (``rltrain.kernels._torch_paths``, with resolved settings) or the host path (copy to the
   host, C++ kernel, copy back), as ``_torch_paths.CUDA_PATH[name]`` says ("host" when absent).

Checks that need the data (non-finite rewards, fewer than 2 masked entries) reduce on the device and read one
flag back; when one fails, the call takes the host path, whose C++ kernel raises its usual error (or, for the
few inputs a conservative device test cannot clear, gives its exact result).

torch is imported inside the functions only (``import rltrain.kernels`` must not load it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rltrain.kernels import _torch_paths
from rltrain.kernels._convert import Io, is_torch


def on_device(x: Any) -> bool:
    """A torch tensor on a device other than the CPU (``is_cpu``: a tenth of the cost of ``device.type``)."""
    if not is_torch(x):
        return False
    cpu = getattr(x, "is_cpu", None)
    return not cpu if cpu is not None else x.device.type != "cpu"


def device_of(*args: tuple[str, Any]) -> tuple[Any, str] | None:
    """``(device, name)`` of the first named argument ``on_device``; None for a host call."""
    for name, x in args:
        if x is not None and on_device(x):
            return x.device, name
    return None


def cuda_path(name: str) -> str:
    """``"torch"`` or ``"host"``: the path of kernel ``name`` for device inputs."""
    return _torch_paths.CUDA_PATH.get(name, "host")


class _TorchOnlyDtype:
    """A torch dtype NumPy lacks (bfloat16, ...): fails every dtype check of the host path, which names it."""

    kind = "V"

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    __repr__ = __str__


_NP_DTYPES: dict[Any, Any] = {}


def numpy_dtype(torch_dtype: Any) -> Any:
    """The NumPy dtype of a torch dtype (a ``_TorchOnlyDtype`` when NumPy has none)."""
    dt = _NP_DTYPES.get(torch_dtype)
    if dt is None:
        import torch

        try:
            dt = torch.empty(0, dtype=torch_dtype).numpy().dtype
        except (TypeError, RuntimeError):
            dt = _TorchOnlyDtype(str(torch_dtype).replace("torch.", ""))
        _NP_DTYPES[torch_dtype] = dt
    return dt


def torch_dtype(dtype: np.dtype[Any]) -> Any:
    import torch

    return torch.float32 if dtype == np.float32 else torch.float64


class Meta:
    """What the host path's checks read of an array (shape, ndim, dtype), taken from a tensor without its data."""

    __slots__ = ("dtype", "ndim", "shape")

    def __init__(self, t: Any) -> None:
        self.shape = tuple(t.shape)
        self.ndim = len(self.shape)
        self.dtype = numpy_dtype(t.dtype)


class MetaIo(Io):
    """``Io`` for the checks of a device call: tensors give their ``Meta``; anything else is read as ``Io`` reads
    it (a NumPy array as it is, a sequence converted), so a wrong kind raises the host path's message before the
    device is checked."""

    def array(self, x: Any, name: str) -> Any:
        if is_torch(x):
            return Meta(x)
        return super().array(x, name)


def require_device(device: Any, ref: str, args: Sequence[tuple[str, Any]]) -> None:
    """``ValueError`` naming the first argument (None skipped) that is not a tensor on ``device``."""
    for name, x in args:
        if x is None:
            continue
        if is_torch(x):
            if x.device == device:
                continue
            got = f"a tensor on {x.device}"
        elif isinstance(x, np.ndarray):
            got = "a numpy array"
        else:
            got = type(x).__name__
        raise ValueError(
            f"{name}: expected a torch tensor on {device} (the device of {ref}; arrays are not moved between "
            f"devices), got {got}"
        )


def torch_mask(mask: Any) -> Any:
    """A mask as the kernels read it, for the torch paths: bool and float masks as they are, integer masks as
    ``mask != 0`` (the host kernels read a non-zero integer as 1)."""
    import torch

    if mask.dtype.is_floating_point or mask.dtype == torch.bool:
        return mask.detach()
    return mask.detach() != 0


def write_out(out: Any, res: Any) -> Any:
    """``res`` written into the checked ``out=`` tensor (returned), or ``res`` when ``out`` is None."""
    if out is None:
        return res
    import torch

    with torch.no_grad():
        out.copy_(res)
    return out
