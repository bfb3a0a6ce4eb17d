"""The fork backend: gymnasium envs stepped in forked worker processes that share numpy buffers with the caller.

:class:`ForkVectorEnv` (the caller's side, :mod:`.env`) and :class:`WorkerError`; the worker loop is in
:mod:`.worker`, what both sides agree on in :mod:`.protocol`, the action checks in :mod:`.actions`.
"""

from __future__ import annotations

from rltrain.vec.fork.env import ForkVectorEnv, WorkerError

__all__ = ["ForkVectorEnv", "WorkerError"]
