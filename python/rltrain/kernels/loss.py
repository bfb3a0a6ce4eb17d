"""The PPO minibatch loss and its gradient in one C++ call (the fused PPO update's loss step).

Public because trainers reach C++ only through ``rltrain.kernels`` and ``rltrain.reference.ppo_loss_grad``
specifies it. NumPy arrays only: the update loop passes views of its tensors, and the gradient must land in
the caller's buffers, so nothing is converted or copied.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrain import _core
from rltrain._checks import optional_real, real

_OUTPUTS = ("dhead", "dvalues", "dlog_std")
_INPUTS = ("head", "actions", "old_logp", "adv", "returns", "values", "old_values", "log_std")
_may_share = np.may_share_memory


def _no_shared_memory(outs: tuple[Any, ...], ins: tuple[Any, ...]) -> None:
    """``ValueError`` when an output overlaps another output or an input (``_OUTPUTS``, ``_INPUTS`` name them):
    the kernel writes each gradient while it still reads the inputs, so overlapping buffers would give wrong
    numbers without any error. Bounds only, which is exact for the C-contiguous arrays the binding accepts."""
    for i, o in enumerate(outs):
        if o is None:
            continue
        for j, x in enumerate(outs[:i] + ins):
            if x is not None and _may_share(o, x):
                other = _OUTPUTS[j] if j < i else _INPUTS[j - i]
                raise ValueError(f"{_OUTPUTS[i]}: shares memory with {other}; each gradient needs its own buffer")


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
    (``(adv - mean) / (std + 1e-8)``, std with ddof 1 as ``torch.std``). ``rltrain.reference.ppo_loss_grad`` is
    the specification.

    Arguments: aligned C-contiguous NumPy arrays of one float dtype (discrete ``actions``: int64 in ``[0, A)``);
    ``dhead``, ``dvalues`` and ``dlog_std`` writable and sharing no memory with each other or the inputs;
    ``clip``, ``ent_coef``, ``vf_coef`` and ``clip_vf`` (None: no value clipping) finite and >= 0. Anything else
    raises ``ValueError`` or ``TypeError`` naming the argument (the binding checks the arrays).
    """
    c = real(clip, "clip", lo=0.0)
    c_vf = optional_real(clip_vf, "clip_vf", lo=0.0)
    ent = real(ent_coef, "ent_coef", lo=0.0)
    vf = real(vf_coef, "vf_coef", lo=0.0)
    if not isinstance(normalize_adv, (bool, np.bool_)):
        raise TypeError(f"normalize_adv: expected a bool, got {type(normalize_adv).__name__}")
    if (log_std is None) != (dlog_std is None):
        given, missing = ("log_std", "dlog_std") if dlog_std is None else ("dlog_std", "log_std")
        raise ValueError(f"{missing}: required when {given} is given (a Gaussian head needs both)")
    _no_shared_memory((dhead, dvalues, dlog_std),
                      (head, actions, old_logp, adv, returns, values, old_values, log_std))
    stats: tuple[float, float, float, float, float] = _core.kernels.ppo_loss_grad(
        head, actions, old_logp, adv, returns, values, old_values, c, -1.0 if c_vf is None else c_vf, ent, vf,
        dhead, dvalues, log_std, dlog_std, bool(normalize_adv))
    return stats
