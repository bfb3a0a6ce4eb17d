"""Players for the board games' Python path: a callable, a policy (from a trainer, a module or a checkpoint) and
the batched protocol :class:`rltrain.games.GameVectorEnv` asks them through.

A batched player has ``moves(boards, masks, env_ids) -> actions``: ``boards`` ``[n, cells]`` float32 from the
player's own point of view (+1 its stones, -1 the other side's), ``masks`` ``[n, n_actions]`` bool (legal moves),
``env_ids`` the envs asking; optionally ``reset(env_ids)``, called when those envs start a game.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["CallablePlayer", "PolicyPlayer", "as_player", "load_policy"]


class CallablePlayer:
    """Wraps ``fn(board, mask) -> action`` (one position at a time) as a batched player."""

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], Any]) -> None:
        self.fn = fn

    def moves(self, boards: np.ndarray, masks: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(boards), np.int64)
        for k in range(len(boards)):
            a = self.fn(boards[k].copy(), masks[k].copy())
            try:
                out[k] = int(a)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"opponent: the callable returned {a!r}, expected an integer action") from exc
        return out


class PolicyPlayer:
    """A policy (``act(obs, deterministic, action_mask=...)``, e.g. an ``ActorCriticPolicy``) as a batched player:
    greedy (``deterministic=True``) or sampled from its masked distribution. ``obs_rms``: observation
    normalisation statistics applied frozen (a checkpoint's, when it has them)."""

    def __init__(self, policy: torch.nn.Module, deterministic: bool = True, obs_rms: Any = None) -> None:
        self.policy, self.deterministic, self.obs_rms = policy, bool(deterministic), obs_rms

    @torch.no_grad()
    def moves(self, boards: np.ndarray, masks: np.ndarray, env_ids: np.ndarray) -> np.ndarray:
        obs = np.asarray(boards, np.float32)
        if self.obs_rms is not None:
            obs = np.asarray(self.obs_rms.normalize(obs), np.float32)
        out = self.policy.act(torch.from_numpy(obs), deterministic=self.deterministic,  # type: ignore[operator]
                              action_mask=torch.from_numpy(np.asarray(masks, bool)))
        actions: np.ndarray = out[0].numpy().astype(np.int64)
        return actions


def load_policy(path: str) -> tuple[torch.nn.Module, Any]:
    """(policy, observation statistics or None) from an rltrain checkpoint, read with ``weights_only=True``; the
    policy class must be one of rltrain's own (nothing named in the file is imported)."""
    from rltrain.algos.checkpoint import CHECKPOINT_FORMAT, check_plain_data, resolve_class, trusted_classes
    from rltrain.kernels import RunningMeanStd

    if not os.path.isfile(path):
        raise ValueError(f"path: no checkpoint file at {path!r}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, "rltrain-checkpoint-1"):
        raise ValueError(f"path: {path!r} is not an rltrain checkpoint")
    policy_cls = resolve_class(state.get("policy_class"), "policy_class", trusted_classes())
    if not issubclass(policy_cls, torch.nn.Module):
        raise ValueError(f"policy_class: {state['policy_class']!r} is not a torch module")
    kwargs = state.get("policy_kwargs")
    if not isinstance(kwargs, dict):
        raise ValueError(f"path: {path!r} lacks policy_kwargs")
    check_plain_data(kwargs, "policy_kwargs")
    policy = policy_cls(**kwargs)
    policy.load_state_dict(state["policy"])
    policy.eval()
    rms = None
    st = state.get("obs_rms")
    if st is not None:
        rms = RunningMeanStd(shape=tuple(np.asarray(st["mean"]).shape))
        rms.load_state_dict({k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in st.items()})
    return policy, rms


def as_player(opponent: Any, env_id: str) -> Any:
    """A batched player for a Python-path opponent: a batched player as it is, a ``torch.nn.Module`` policy
    (greedy), a checkpoint path (its policy, greedy) or a callable ``(board, mask) -> action``."""
    if callable(getattr(opponent, "moves", None)):
        return opponent
    if isinstance(opponent, torch.nn.Module):
        return PolicyPlayer(opponent)
    if isinstance(opponent, (str, os.PathLike)):
        if not os.path.isfile(opponent):
            raise ValueError(f"opponent: {opponent!r} is neither a built-in opponent of {env_id} nor a checkpoint file")
        policy, rms = load_policy(os.fspath(opponent))
        return PolicyPlayer(policy, deterministic=True, obs_rms=rms)
    if callable(opponent):
        return CallablePlayer(opponent)
    raise TypeError(f"opponent: expected a string, a checkpoint path or a callable (board, mask) -> action, got "
                    f"{type(opponent).__name__}")
