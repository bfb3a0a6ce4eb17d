"""Schedules for the learning rate, the clip range and the entropy coefficient, as functions of training progress.

``progress`` is the fraction of the schedule's horizon done (0 at the start, 1 at the end). ``linear`` decays to
0 (RL-Zoo's ``lin_<value>``); ``cosine`` is SGDR's half cosine (Loshchilov & Hutter 2017) from the base value to
0; ``warmup_cosine`` first ramps linearly from 0 over the ``warmup`` fraction, then follows the cosine over the rest.
"""

from __future__ import annotations

import math

from rltrain._checks import choice, real

__all__ = ["SCHEDULES", "schedule_value"]

SCHEDULES = ("constant", "linear", "cosine", "warmup_cosine")


def schedule_value(kind: str, base: float, progress: float, warmup: float = 0.05) -> float:
    """The scheduled value of ``base`` at ``progress`` in [0, 1] (clamped)."""
    choice(kind, "schedule", SCHEDULES)
    warmup = real(warmup, "warmup", lo=0.0, hi=1.0, hi_open=True, what="a fraction")
    p = min(1.0, max(0.0, float(progress)))
    if kind == "constant":
        return float(base)
    if kind == "linear":
        return float(base) * (1.0 - p)
    if kind == "warmup_cosine":
        if warmup > 0 and p < warmup:
            return float(base) * p / warmup
        p = (p - warmup) / (1.0 - warmup)
    return float(base) * 0.5 * (1.0 + math.cos(math.pi * p))
