"""Placeholder: which per-token kernels run as torch code on CUDA tensors (``CUDA_PATH[name] == "torch"``)
instead of being copied through the host kernel. The torch implementations are written elsewhere."""

from __future__ import annotations

CUDA_PATH: dict[str, str] = {}
