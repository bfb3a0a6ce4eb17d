"""Vector environments: the fork-based worker pool (and, alongside it, the native batcher)."""

from __future__ import annotations

from rltrain.vec.fork import ForkVectorEnv, WorkerError

__all__ = ["ForkVectorEnv", "WorkerError"]
