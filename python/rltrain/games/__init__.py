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
           "evaluate_vs", "exact_tictactoe_outcomes", "exact_tictactoe_scores", "game_for_policy", "load_policy",
           "winning_lines"]


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


_TTT_POSITIONS: dict[str, Any] = {}


def _tictactoe_positions() -> dict[str, Any]:
    """Every reachable unfinished TicTacToe position (X +1, O -1, X moves first), once per process: ``index``
    (board -> row), ``boards`` (``[n, 9]`` float32, X's view), ``mover`` (``[n]``, +1 X / -1 O) and ``perfect``
    (per row, the perfect moves of the mover as the minimax opponent plays them)."""
    if not _TTT_POSITIONS:
        from rltrain import _core

        index: dict[tuple[int, ...], int] = {}
        order: list[tuple[int, ...]] = []
        stack: list[tuple[int, ...]] = [(0,) * 9]
        while stack:
            b = stack.pop()
            if b in index:
                continue
            index[b] = len(order)
            order.append(b)
            mover = 1 if sum(b) == 0 else -1
            for a in range(9):
                if b[a] == 0:
                    nb = b[:a] + (mover,) + b[a + 1:]
                    if not _ttt_won(nb, mover) and not all(nb):
                        stack.append(nb)
        movers = np.array([1 if sum(b) == 0 else -1 for b in order], np.int64)
        _TTT_POSITIONS.update(
            index=index, boards=np.array(order, np.float32), mover=movers,
            perfect=[tuple(int(m) for m in _core.envs.tictactoe_best_moves(np.array(b, np.int8), int(p)))
                     for b, p in zip(order, movers)])
    return _TTT_POSITIONS


def _ttt_won(b: tuple[int, ...], p: int) -> bool:
    return any(b[i] == p and b[j] == p and b[k] == p for i, j, k in _TTT_LINES)


@torch.no_grad()
def exact_tictactoe_scores(policy_or_checkpoint: Any, *, obs_rms: Any = None) -> dict[str, dict[str, float]]:
    """:func:`exact_tictactoe_outcomes` for all four matches at once (keys ``"random/X"``, ``"random/O"``,
    ``"minimax/X"``, ``"minimax/O"``; values ``{"win", "draw", "loss"}``), cheaply enough to run during training:
    the greedy move of every reachable position comes from one batched forward pass, and the outcome
    probabilities from one pass of dynamic programming over the positions per match (the greedy player is
    deterministic, so a position's outcome does not depend on how it was reached). ``obs_rms``: observation
    statistics for a bare policy module (a trainer or a checkpoint brings its own)."""
    policy, rms = _resolve_player(policy_or_checkpoint)
    rms = obs_rms if rms is None else rms
    pos = _tictactoe_positions()
    boards, mover = pos["boards"], pos["mover"]
    own = boards * mover[:, None].astype(np.float32)  # each position from its mover's point of view
    greedy = PolicyPlayer(policy, deterministic=True, obs_rms=rms).moves(own, own == 0,
                                                                          np.arange(len(own)))
    out: dict[str, dict[str, float]] = {}
    for opponent in ("random", "minimax"):
        for side in ("X", "O"):
            w, d, lo = _ttt_outcome((0,) * 9, 1 if side == "X" else -1, opponent == "random", greedy, pos, {})
            out[f"{opponent}/{side}"] = {"win": w, "draw": d, "loss": lo}
    return out


def _ttt_outcome(b: tuple[int, ...], me: int, random_opponent: bool, greedy: np.ndarray, pos: dict[str, Any],
                 memo: dict[int, tuple[float, float, float]]) -> tuple[float, float, float]:
    """(win, draw, loss) probabilities from the unfinished position ``b`` for the greedy player ``me`` (+1 X, -1 O)
    against the random or the minimax opponent; ``memo`` caches positions by row."""
    i = pos["index"][b]
    got = memo.get(i)
    if got is not None:
        return got
    to_move = int(pos["mover"][i])
    if to_move == me:
        moves: Any = (int(greedy[i]),)
    else:
        moves = [a for a in range(9) if b[a] == 0] if random_opponent else pos["perfect"][i]
    p = 1.0 / len(moves)
    w = d = lo = 0.0
    for a in moves:
        nb = b[:a] + (to_move,) + b[a + 1:]
        if _ttt_won(nb, to_move):
            if to_move == me:
                w += p
            else:
                lo += p
        elif all(nb):
            d += p
        else:
            sw, sd, sl = _ttt_outcome(nb, me, random_opponent, greedy, pos, memo)
            w, d, lo = w + p * sw, d + p * sd, lo + p * sl
    memo[i] = (w, d, lo)
    return memo[i]
