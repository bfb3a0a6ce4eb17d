"""The data-parallel learner on ``torch.distributed`` (``torchrun --nproc-per-node N -m rltrain train ppo ...``).

Rank 0 collects the rollout (locally or on Ray) and broadcasts the batch; every rank holds the whole batch and
draws the same minibatch permutation, computes the loss of its contiguous share of each minibatch weighted by
``share / minibatch`` and all-reduces (sums) the gradients, so each rank applies the gradient of the mean loss over
the global minibatch: the single-process update up to the order of the floating-point sums. Gloo on CPU, NCCL on
CUDA.
"""

from __future__ import annotations

import os

import numpy as np
import torch

__all__ = ["allreduce_grads", "allreduce_sum", "broadcast_arrays", "init_from_env", "rank_world", "shard",
           "sync_start"]


def rank_world() -> tuple[int, int] | None:
    """(rank, world size) inside an initialised process group of more than one process, else None."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return dist.get_rank(), dist.get_world_size()


def init_from_env(device: str) -> str:
    """Initialises the process group torchrun describes (``WORLD_SIZE`` > 1 in the environment): NCCL when the
    update runs on CUDA, else gloo. Returns the device this rank should use (``cuda:LOCAL_RANK`` on CUDA)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) < 2 or dist.is_initialized():
        return device
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def shard(n: int, rank: int, world: int) -> slice:
    """Rank's contiguous share of ``n`` rows (sizes differ by at most one)."""
    return slice(rank * n // world, (rank + 1) * n // world)


def allreduce_grads(params: list[torch.Tensor]) -> None:
    """Sums every parameter's gradient over the ranks (one flat buffer; a missing gradient counts as zero)."""
    import torch.distributed as dist

    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat)
    k = 0
    for p in params:
        n = p.numel()
        g = flat[k:k + n].view_as(p)
        if p.grad is None:
            p.grad = g.clone()
        else:
            p.grad.copy_(g)
        k += n


def allreduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over the ranks (in place) and returned."""
    import torch.distributed as dist

    dist.all_reduce(t)
    return t


def broadcast_arrays(arrays: list[np.ndarray], src: int = 0) -> None:
    """Overwrites each (writable, C-contiguous) array on every rank with rank ``src``'s values, in place."""
    import torch.distributed as dist

    nccl = dist.get_backend() == "nccl"  # NCCL moves device tensors only
    for a in arrays:
        t = torch.from_numpy(a.view(np.uint8) if a.dtype == np.bool_ else a)
        if nccl:
            d = t.cuda()
            dist.broadcast(d, src=src)
            t.copy_(d.cpu())
        else:
            dist.broadcast(t, src=src)


def sync_start(module: torch.nn.Module, seed: int) -> int:
    """Rank 0's seed and parameters on every rank (a run without a fixed seed draws a different one per process);
    returns the shared seed."""
    import torch.distributed as dist

    box: list[object] = [int(seed)]
    dist.broadcast_object_list(box, src=0)
    nccl = dist.get_backend() == "nccl"
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            if nccl and t.device.type != "cuda":
                d = t.detach().cuda()
                dist.broadcast(d, src=0)
                t.copy_(d.cpu())
            else:
                dist.broadcast(t.data, src=0)
    shared = box[0]
    assert isinstance(shared, int)
    return shared
