"""Two-player board games: ``rltrain/TicTacToe-v0`` and ``rltrain/ConnectFour-v0`` as single-agent envs against
an opponent, the players that can be that opponent, and :func:`evaluate_vs` (win/draw/loss fractions).

The envs are native (C++, :mod:`rltrain.vec.games`) for the built-in opponents ("random", "minimax",
"alphabeta:DEPTH") and run on the Python path (:class:`GameVectorEnv`) for checkpoint and callable opponents;
:func:`rltrain.make_vec` chooses. Self-play training: :class:`rltrain.SelfPlayTrainer`.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from rltrain import _checks
from rltrain.games.env import GameEnv, GameVectorEnv, winning_lines
from rltrain.games.players import CallablePlayer, PolicyPlayer, as_player, load_policy
from rltrain.vec.games import GAMES, action_mask

__all__ = ["GAMES", "CallablePlayer", "GameEnv", "GameVectorEnv", "PolicyPlayer", "action_mask", "as_player",
           "evaluate_vs", "exact_tictactoe_outcomes", "game_for_policy", "load_policy", "winning_lines"]


def game_for_policy(policy: Any) -> str:
    """The game id whose board size matches the policy's observation size (9: TicTacToe, 42: ConnectFour)."""
    dim = getattr(policy, "obs_dim", None)
    for env_id, info in GAMES.items():
        if dim == info.cells:
            return env_id
    raise ValueError(f"policy: its observation size {dim!r} matches no game; pass env_id")


def _resolve_player(policy_or_checkpoint: Any) -> tuple[torch.nn.Module, Any]:
    if isinstance(policy_or_checkpoint, (str, os.PathLike)):
        return load_policy(os.fspath(policy_or_checkpoint))
    inner = getattr(policy_or_checkpoint, "policy", None)  # a trainer
    if isinstance(inner, torch.nn.Module):
        return inner, getattr(policy_or_checkpoint, "obs_rms", None)
    if isinstance(policy_or_checkpoint, torch.nn.Module):
        return policy_or_checkpoint, None
    raise TypeError(f"policy_or_checkpoint: expected a policy, a trainer or a checkpoint path, got "
                    f"{type(policy_or_checkpoint).__name__}")


@torch.no_grad()
def evaluate_vs(policy_or_checkpoint: Any, opponent: Any, games: int = 100, agent_player: str = "X", *,
                env_id: str | None = None, seed: int = 0, deterministic: bool = True,
                num_envs: int | None = None) -> dict[str, float]:
    """Plays ``games`` games of the policy (a policy module, a trainer or a checkpoint path; greedy over legal moves
    unless ``deterministic=False``) against ``opponent`` (any opponent the games accept) as ``agent_player``;
    returns ``{"win", "draw", "loss"}`` as fractions of the games, plus ``"games"``. Games are spread evenly over
    ``num_envs`` parallel envs seeded from ``seed``."""
    from rltrain.vec import make_vec

    games = _checks.integer(games, "games", lo=1)
    policy, rms = _resolve_player(policy_or_checkpoint)
    gid = env_id or game_for_policy(policy)
    player = PolicyPlayer(policy, deterministic=deterministic, obs_rms=rms)
    n = num_envs or min(games, 32)
    venv = make_vec(gid, n, seed=seed, opponent=opponent, agent_player=agent_player)
    targets = np.array([(games + i) // n for i in range(n)])
    counts = np.zeros(n, int)
    tally = {"win": 0, "draw": 0, "loss": 0}
    try:
        obs, infos = venv.reset(seed=seed)
        while (counts < targets).any():
            a = player.moves(obs, infos["action_mask"], np.arange(n))
            obs, r, term, trunc, infos = venv.step(a)
            for i in np.flatnonzero(np.logical_or(term, trunc)):
                if counts[i] < targets[i]:
                    counts[i] += 1
                    tally["win" if r[i] > 0 else "loss" if r[i] < 0 else "draw"] += 1
    finally:
        venv.close()
    return {"win": tally["win"] / games, "draw": tally["draw"] / games, "loss": tally["loss"] / games,
            "games": float(games)}


_TTT_LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


@torch.no_grad()
def exact_tictactoe_outcomes(policy_or_checkpoint: Any, opponent: str, agent_player: str = "X") -> dict[str, float]:
    """The exact win/draw/loss probabilities of the greedy policy at TicTacToe against ``"random"`` (uniform legal
    moves) or ``"minimax"`` (uniform among the perfect moves, as the env plays them), by enumerating every game the
    opponent can make; plus ``"games"``, the number of distinct games. ``loss == 0`` against minimax means no game
    at all is lost, whatever the opponent's tie-breaks."""
    from rltrain import _core

    if opponent not in ("random", "minimax"):
        raise ValueError(f"opponent: expected 'random' or 'minimax', got {opponent!r}")
    if agent_player not in ("X", "O"):
        raise ValueError(f"agent_player: expected 'X' or 'O', got {agent_player!r}")
    policy, rms = _resolve_player(policy_or_checkpoint)
    player = PolicyPlayer(policy, deterministic=True, obs_rms=rms)
    me = 1 if agent_player == "X" else -1
    memo: dict[tuple[int, ...], int] = {}
    out = {"win": 0.0, "draw": 0.0, "loss": 0.0, "games": 0.0}

    def won(b: tuple[int, ...], p: int) -> bool:
        return any(b[i] == p and b[j] == p and b[k] == p for i, j, k in _TTT_LINES)

    def rec(b: tuple[int, ...], to_move: int, prob: float) -> None:
        if to_move == me:
            if b not in memo:
                own = np.array(b, np.float32)[None] * me
                memo[b] = int(player.moves(own, own == 0, np.zeros(1, np.int64))[0])
            moves, p = [memo[b]], prob
        else:
            x_view = np.array(b, np.int8)
            moves = (list(np.flatnonzero(x_view == 0)) if opponent == "random"
                     else list(_core.envs.tictactoe_best_moves(x_view, to_move)))
            p = prob / len(moves)
        for a in moves:
            nb = b[:a] + (to_move,) + b[a + 1:]
            if won(nb, to_move):
                out["win" if to_move == me else "loss"] += p
                out["games"] += 1
            elif all(nb):
                out["draw"] += p
                out["games"] += 1
            else:
                rec(nb, -to_move, p)

    rec((0,) * 9, 1, 1.0)
    return out
