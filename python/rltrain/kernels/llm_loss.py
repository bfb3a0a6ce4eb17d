"""``aggregate_loss``: a per-token loss ``[B, L]`` and its mask reduced to the scalar a trainer backpropagates
(SPEC §6), in plain torch so that autograd runs through it. torch is imported inside the function: importing
``rltrain.kernels`` costs NumPy only."""

from __future__ import annotations

from typing import Any

from rltrain._checks import choice, optional_real, shape_str

AGGREGATE_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
"""The reductions of ``aggregate_loss`` (verl's ``loss_agg_mode`` names)."""


def aggregate_loss(loss: Any, mask: Any, *, mode: str = "token-mean", norm_constant: float | None = None) -> Any:
    """Reduces a per-token ``loss [B, L]`` (any float tensor; sequences along the last axis) under ``mask`` of
    the same shape (bool, integer or float; its values weight the tokens) to a 0-d tensor, differentiably:

    * ``"token-mean"``: ``sum(loss * mask) / sum(mask)``;
    * ``"token-sum"``: ``sum(loss * mask)``;
    * ``"seq-mean-token-sum"``: the mean, over the sequences with at least one mask token, of each sequence's
      ``sum(loss * mask)``;
    * ``"seq-mean-token-mean"``: the same mean of each sequence's ``sum(loss * mask) / sum(mask)``;
    * ``"seq-mean-token-sum-norm"``: ``sum(loss * mask) / norm_constant`` (default ``L = loss.shape[-1]``), the
      SPEC's definition (Dr. GRPO's constant normaliser). ``norm_constant`` (> 0) serves this mode only.

    Relations to the libraries: verl 0.9.1's ``agg_loss(..., "seq-mean-token-sum-norm")`` is this value divided
    by the number of non-empty sequences (verl's ``loss_scale_factor`` is ``norm_constant``); TRL's
    ``loss_type="dr_grpo"`` is this value with ``norm_constant=max_completion_length``, divided by B. Entries
    where the mask is 0 are selected away before the product (as verl's ``masked_sum``), so a NaN or inf there
    does not leak into the result or the gradient. When nothing is masked in (no token, no non-empty sequence)
    the result is 0.0 with a zero gradient, not NaN.
    """
    import torch

    choice(mode, "mode", AGGREGATE_MODES)
    c = optional_real(norm_constant, "norm_constant", lo=0.0, lo_open=True)
    if not isinstance(loss, torch.Tensor):
        raise TypeError(f"loss: expected a torch.Tensor, got {type(loss).__name__}")
    if not loss.is_floating_point():
        raise TypeError(f"loss: expected a floating-point tensor, got {loss.dtype}")
    if loss.ndim < 1:
        raise ValueError(f"loss: expected a tensor [B, L] with a token axis, got shape {shape_str(loss.shape)}")
    if not isinstance(mask, torch.Tensor):
        try:
            mask = torch.as_tensor(mask)
        except Exception as exc:  # re-raised with the argument's name
            raise TypeError(f"mask: expected a tensor or array, got {type(mask).__name__}") from exc
    if tuple(mask.shape) != tuple(loss.shape):
        raise ValueError(f"mask: expected shape {shape_str(loss.shape)} (that of loss), got {shape_str(mask.shape)}")
    if mask.is_complex():
        raise TypeError(f"mask: expected dtype bool, integer or float, got {mask.dtype}")
    mask = mask.to(device=loss.device)
    keep = mask if mask.dtype == torch.bool else mask != 0
    # where() first: 0 * inf would be NaN, and the gradient of where() is exactly 0 at masked-out entries. A bool
    # mask needs no product after it (each full-size temporary costs as much as the reduction).
    masked = torch.where(keep, loss, 0.0)
    if mask.dtype == torch.bool:
        weight = keep
    else:
        weight = mask.to(loss.dtype)
        # in place on where()'s output (its gradient does not need it); a weight with a gradient needs the copy
        masked = masked * weight if weight.requires_grad else masked.mul_(weight)
    if mode == "token-sum":
        return masked.sum()
    if mode == "seq-mean-token-sum-norm":
        return masked.sum() / (float(loss.shape[-1]) if c is None else c)
    if mode == "token-mean":
        return masked.sum() / _nonzero(weight.sum().to(loss.dtype))
    per_seq = masked.sum(dim=-1)
    if mode == "seq-mean-token-mean":
        per_seq = per_seq / _nonzero(weight.sum(dim=-1).to(loss.dtype))
    n = keep.any(dim=-1).sum().to(loss.dtype)  # an empty sequence adds 0 to per_seq.sum()
    return per_seq.sum() / _nonzero(n)


def _nonzero(x: Any) -> Any:
    """``x`` with zeros replaced by ones (a denominator over nothing: the numerator is 0 there)."""
    import torch

    return torch.where(x != 0, x, torch.ones((), dtype=x.dtype, device=x.device))
