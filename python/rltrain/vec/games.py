"""The board games' native side: turning ``opponent`` / ``agent_player`` into the C++ config, the batcher factory
registered for ``rltrain/TicTacToe-v0`` and ``rltrain/ConnectFour-v0``, and ``action_mask`` from observations.

NumPy and ``_core`` only. Opponents the C++ envs play themselves: ``"random"``, ``"minimax"`` (TicTacToe, exact)
and ``"alphabeta:DEPTH"`` (ConnectFour). A checkpoint path or a callable cannot run on the C++ worker threads:
:func:`rltrain.make_vec` sends those to :class:`rltrain.games.GameVectorEnv` (a batched Python path with the same
rules and, for the built-in opponents, the same random draws).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rltrain import _core

__all__ = ["GAMES", "GameInfo", "action_mask", "agent_side", "game_info", "is_game", "make_game_batcher",
           "native_opponent"]


class GameInfo:
    """Static facts of one game id."""

    def __init__(self, env_id: str, name: str, rows: int, cols: int, n_actions: int, search: str) -> None:
        self.env_id, self.name, self.rows, self.cols = env_id, name, rows, cols
        self.cells, self.n_actions = rows * cols, n_actions
        self.search = search
        """The built-in searching opponent's name: "minimax" or "alphabeta"."""


GAMES: dict[str, GameInfo] = {
    "rltrain/TicTacToe-v0": GameInfo("rltrain/TicTacToe-v0", "TicTacToe", 3, 3, 9, "minimax"),
    "rltrain/ConnectFour-v0": GameInfo("rltrain/ConnectFour-v0", "ConnectFour", 6, 7, 7, "alphabeta"),
}
_SIDES = {"X": 0, "O": 1, "random": 2}


def is_game(env_id: object) -> bool:
    return isinstance(env_id, str) and env_id in GAMES


def game_info(env_id: str) -> GameInfo:
    if env_id not in GAMES:
        raise ValueError(f"env: {env_id!r} is not a board game; games: {sorted(GAMES)}")
    return GAMES[env_id]


def agent_side(agent_player: Any) -> int:
    """``"X"`` -> 0, ``"O"`` -> 1, ``"random"`` -> 2; ValueError naming ``agent_player`` otherwise."""
    if not isinstance(agent_player, str) or agent_player not in _SIDES:
        raise ValueError(f"agent_player: expected 'X', 'O' or 'random', got {agent_player!r}")
    return _SIDES[agent_player]


def native_opponent(env_id: str, opponent: Any) -> tuple[int, int] | None:
    """(opponent_code, search_depth) of an opponent the C++ env plays itself; None for a Python opponent (a
    callable, an object with ``moves``, or any other string, taken as a checkpoint path). A malformed
    ``"alphabeta:..."`` or a search the game lacks is a ValueError naming ``opponent``."""
    info = game_info(env_id)
    if not isinstance(opponent, str):
        return None
    if opponent == "random":
        return 0, 1
    if info.search == "minimax" and opponent == "minimax":
        return 1, 1
    if opponent.startswith("alphabeta") or opponent == "minimax":
        if info.search != "alphabeta" or not opponent.startswith("alphabeta:"):
            wanted = "'minimax'" if info.search == "minimax" else "'alphabeta:DEPTH'"
            raise ValueError(f"opponent: {info.name} offers 'random', {wanted}, a checkpoint path or a callable, "
                             f"got {opponent!r}")
        tail = opponent.split(":", 1)[1]
        if not tail.isdigit() or not 1 <= int(tail) <= 12:
            raise ValueError(f"opponent: expected 'alphabeta:DEPTH' with DEPTH in 1..12, got {opponent!r}")
        return 1, int(tail)
    return None


def action_mask(env_id: str, obs: np.ndarray) -> np.ndarray:
    """The legal moves of the positions in ``obs`` (``[n, cells]`` or ``[cells]``): empty cells (TicTacToe), columns
    whose top cell is empty (ConnectFour; row 0 is the top)."""
    info = game_info(env_id)
    o = np.asarray(obs)
    mask: np.ndarray = o == 0 if info.search == "minimax" else o[..., : info.cols] == 0
    return mask


def make_game_batcher(env_id: str) -> Any:
    """The ``vec_class`` factory registered for a game id: keyword arguments as ``gymnasium.make`` takes them."""
    info = game_info(env_id)
    cls = getattr(_core.envs, info.name + "Vec")

    def factory(num_envs: int, num_threads: int | None, seed: int | None, identical_seeds: bool, *,
                opponent: Any = "random", agent_player: str = "random", max_episode_steps: int | None = None) -> Any:
        nat = native_opponent(env_id, opponent)
        if nat is None:
            raise ValueError(f"opponent: {opponent!r} is not an opponent the native {info.name} plays in C++ "
                             "('random', or its search); rltrain.make_vec runs checkpoint and callable opponents "
                             "on the Python path (rltrain.games.GameVectorEnv)")
        kw: dict[str, Any] = {"opponent_code": nat[0], "search_depth": nat[1], "agent_side": agent_side(agent_player)}
        kw["max_episode_steps"] = info.cells if max_episode_steps is None else max_episode_steps
        return cls(num_envs, num_threads, seed, identical_seeds, **kw)

    return factory
