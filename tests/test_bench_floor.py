"""The floor analysis' FLOP counts (``python -m rltrain.bench floor``) against the default policy's own layers."""

from __future__ import annotations

from torch import nn

from rltrain.bench import floor
from rltrain.policies import ActorCriticPolicy


def test_flop_counts_match_the_default_policy() -> None:
    pol = ActorCriticPolicy(floor.OBS, floor.A)
    lins = [m for m in pol.modules() if isinstance(m, nn.Linear)]
    macs = sum(m.in_features * m.out_features for m in lins)
    # The layers that read the observation need no input gradient.
    first = sum(m.in_features * m.out_features for m in lins if m.in_features == floor.OBS)
    f = floor.flops()
    assert f["inference_flops_per_step"] == 2 * macs * floor.G
    assert f["inference_flops_per_iter"] == 2 * macs * floor.G * floor.T
    assert f["update_flops_per_iter"] == 2 * (3 * macs - first) * floor.G * floor.T * floor.EPOCHS
