"""The board games on the Python path, and the gymnasium class.

:class:`GameVectorEnv` is a batched NumPy implementation of the C++ games (``cpp/include/rltrain/envs/
board_games.hpp``): same rules, observations, rewards, same-step autoreset and infos, and for the built-in
opponents the same random draws (env i's ``numpy.random.default_rng(seed + i)``, drawn in the C++ order), so from
one seed and the same actions it returns what the native batcher returns. It exists for opponents that cannot run
on the C++ worker threads: a checkpoint path, any callable ``(board, mask) -> action``, or a batched player (an
object with ``moves(boards, masks, env_ids)``, e.g. the self-play league), asked once per step for all the envs
waiting on it. :func:`rltrain.make_vec` picks it for those opponents; C++ opponents run natively.

:class:`GameEnv` is what ``gymnasium.make("rltrain/TicTacToe-v0", opponent=..., agent_player=...)`` returns: one
game, the C++ env for the built-in opponents, the Python path for the others.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from rltrain import _checks, _core
from rltrain.games.players import as_player
from rltrain.vec._infos import add_episode_statistics, add_final_obs
from rltrain.vec.games import GameInfo, action_mask, agent_side, game_info, native_opponent

__all__ = ["GameEnv", "GameVectorEnv", "winning_lines"]


def winning_lines(info: GameInfo) -> np.ndarray:
    """Every line of cells that wins (``[n_lines, k]`` cell indices): 8 of 3 for TicTacToe, 69 of 4 for
    ConnectFour."""
    k = 3 if info.search == "minimax" else 4
    lines = []
    for r in range(info.rows):
        for c in range(info.cols):
            for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
                cells = [(r + i * dr, c + i * dc) for i in range(k)]
                if all(0 <= rr < info.rows and 0 <= cc < info.cols for rr, cc in cells):
                    lines.append([rr * info.cols + cc for rr, cc in cells])
    return np.array(lines, dtype=np.int64)


def _spaces(info: GameInfo) -> tuple[gym.spaces.Box, gym.spaces.Discrete]:
    return (gym.spaces.Box(-1.0, 1.0, (info.cells,), np.float32), gym.spaces.Discrete(info.n_actions))


class GameVectorEnv(VectorEnv):
    """``num_envs`` games against one opponent on the Python path (see the module docstring).

    Args:
        env_id: ``"rltrain/TicTacToe-v0"`` or ``"rltrain/ConnectFour-v0"``.
        num_envs: number of games.
        opponent: ``"random"``, the game's search (``"minimax"`` / ``"alphabeta:DEPTH"``), a checkpoint path (its
            policy plays greedily), a callable ``(board, mask) -> action`` given the board from its own point of
            view, or a batched player with ``moves(boards, masks, env_ids)`` (and optionally ``reset(env_ids)``,
            called when those envs start a game).
        agent_player: ``"X"``, ``"O"`` or ``"random"`` (drawn at each reset); X moves first.
        seed: env i draws from ``numpy.random.default_rng(seed + i)``; None: fresh entropy.
        identical_seeds: every env draws from ``default_rng(seed)`` (GRPO groups).
        max_episode_steps: truncation after this many agent moves (default: one per cell, never reached).
    """

    def __init__(self, env_id: str, num_envs: int, *, opponent: Any = "random", agent_player: str = "random",
                 seed: int | None = None, identical_seeds: bool = False,
                 max_episode_steps: int | None = None) -> None:
        self.info = info = game_info(env_id)
        self.env_id = env_id
        self.num_envs = n = _checks.integer(num_envs, "num_envs", lo=1)
        self._side = agent_side(agent_player)
        self.agent_player = agent_player
        self.opponent = opponent
        nat = native_opponent(env_id, opponent)
        self._search: tuple[int, int] | None = nat
        self._player = None if nat is not None else as_player(opponent, env_id)
        self.max_episode_steps = _checks.integer(info.cells if max_episode_steps is None else max_episode_steps,
                                                 "max_episode_steps", lo=1)
        self._lines = winning_lines(info)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
        self.render_mode = None
        self.spec = None
        self.single_observation_space, self.single_action_space = _spaces(info)
        self.observation_space = batch_space(self.single_observation_space, n)
        self.action_space = batch_space(self.single_action_space, n)
        self.boards = np.zeros((n, info.cells), np.int8)  # from X's point of view
        self.agent = np.ones(n, np.int8)  # +1: the agent plays X, -1: O
        self.elapsed = np.zeros(n, np.int64)
        self._ret = np.zeros(n)
        self._len = np.zeros(n, np.int64)
        self._t0 = np.full(n, time.perf_counter())
        self._rngs = [np.random.default_rng() for _ in range(n)]
        self._identical = bool(identical_seeds)
        self._autoreset = True  # GameEnv turns it off: a finished single game waits for reset()
        if seed is not None:
            self._seed(seed)
        self._needs_reset = True

    # ------------------------------------------------------------------------------------------------ rules

    def _seed(self, seed: Any) -> None:
        s = _checks.optional_seed(seed, "seed", count=1 if self._identical else self.num_envs)
        assert s is not None
        self._rngs = [np.random.default_rng(s + (0 if self._identical else i)) for i in range(self.num_envs)]

    def _masks(self, idx: np.ndarray) -> np.ndarray:
        b = self.boards[idx]
        mask: np.ndarray = b == 0 if self.info.search == "minimax" else b[:, : self.info.cols] == 0
        return mask

    def _play(self, idx: np.ndarray, actions: np.ndarray, stones: np.ndarray) -> np.ndarray:
        """Plays ``actions`` for ``stones`` in envs ``idx``; returns whether each move won."""
        if len(idx) == 0:
            return np.zeros(0, bool)
        if self.info.search == "minimax":
            cells = actions
        else:
            cols = self.info.cols
            column = self.boards[idx[:, None], actions[:, None] + cols * np.arange(self.info.rows)[None]]
            cells = ((column == 0).sum(1) - 1) * cols + actions
        self.boards[idx, cells] = stones
        sums = self.boards[idx][:, self._lines].sum(-1, dtype=np.int64)
        won: np.ndarray = (sums == stones.astype(np.int64)[:, None] * self._lines.shape[1]).any(1)
        return won

    def _opponent_moves(self, idx: np.ndarray) -> np.ndarray:
        """The opponent's moves in envs ``idx`` (where it is the opponent's turn)."""
        out = np.zeros(len(idx), np.int64)
        if len(idx) == 0:
            return out
        masks = self._masks(idx)
        if self._search is not None:
            code, depth = self._search
            for k, i in enumerate(idx):
                if code == 0:
                    moves = np.flatnonzero(masks[k])
                elif self.info.search == "minimax":
                    moves = np.asarray(_core.envs.tictactoe_best_moves(self.boards[i], int(-self.agent[i])))
                else:
                    moves = np.asarray(_core.envs.connect_four_best_moves(self.boards[i], int(-self.agent[i]), depth))
                out[k] = moves[self._rngs[i].integers(0, len(moves))]
            return out
        assert self._player is not None
        own = (self.boards[idx] * -self.agent[idx, None]).astype(np.float32)
        out = np.asarray(self._player.moves(own, masks, idx), dtype=np.int64).reshape(-1)
        if out.shape != (len(idx),):
            raise ValueError(f"opponent: expected {len(idx)} moves, got shape {out.shape}")
        bad = ~masks[np.arange(len(idx)), np.clip(out, 0, self.info.n_actions - 1)] | (out < 0) | (
            out >= self.info.n_actions)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"opponent: env {int(idx[k])}: it chose the illegal move {int(out[k])} "
                             f"(legal: {np.flatnonzero(masks[k]).tolist()})")
        return out

    def _reset_envs(self, idx: np.ndarray) -> None:
        self.boards[idx] = 0
        self.elapsed[idx] = 0
        self._ret[idx], self._len[idx] = 0.0, 0
        self._t0[idx] = time.perf_counter()
        for i in idx:
            side = self._side if self._side != 2 else int(self._rngs[i].integers(0, 2))
            self.agent[i] = 1 if side == 0 else -1
        if self._player is not None and hasattr(self._player, "reset"):
            self._player.reset(idx)
        first = idx[self.agent[idx] == -1]
        self._play(first, self._opponent_moves(first), np.ones(len(first), np.int8))

    def _obs(self) -> np.ndarray:
        obs: np.ndarray = (self.boards * self.agent[:, None]).astype(np.float32)
        return obs

    def _check_actions(self, actions: Any) -> np.ndarray:
        a = np.asarray(actions)
        if a.dtype.kind not in "iu":
            raise ValueError(f"actions: expected an integer array, got dtype {a.dtype}")
        if a.shape != (self.num_envs,):
            raise ValueError(f"actions: expected shape ({self.num_envs},), got {a.shape}")
        a = a.astype(np.int64)
        masks = self._masks(np.arange(self.num_envs))
        for i in range(self.num_envs):
            if not 0 <= a[i] < self.info.n_actions:
                raise ValueError(f"actions: env {i}: discrete action {int(a[i])} is outside "
                                 f"[0, {self.info.n_actions})")
            if not masks[i, a[i]]:
                what = "cell" if self.info.search == "minimax" else "column"
                why = "is already occupied" if self.info.search == "minimax" else "is full"
                raise ValueError(f"actions: env {i}: {what} {int(a[i])} {why}")
        return a

    # -------------------------------------------------------------------------------------------- the API

    def reset(self, *, seed: int | Sequence[int | None] | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError("reset: options are not supported by the board games")
        if isinstance(seed, Sequence) and not isinstance(seed, (str, bytes)):
            if len(seed) != self.num_envs:
                raise ValueError(f"seed: expected {self.num_envs} per-env seeds, got {len(seed)}")
            for i, s in enumerate(seed):
                if s is not None:
                    self._rngs[i] = np.random.default_rng(_checks.optional_seed(s, "seed"))
        elif seed is not None:
            self._seed(seed)
        self._reset_envs(np.arange(self.num_envs))
        self._needs_reset = False
        obs = self._obs()
        return obs, {"action_mask": action_mask(self.env_id, obs), "_action_mask": np.ones(self.num_envs, bool)}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._needs_reset:
            raise RuntimeError("step: call reset() before stepping")
        a = self._check_actions(actions)
        n = self.num_envs
        everyone = np.arange(n)
        rewards = np.zeros(n)
        terminated = np.zeros(n, bool)
        won = self._play(everyone, a, self.agent.copy())
        rewards[won] = 1.0
        full = (self.boards != 0).all(1) if self.info.search == "minimax" else (self.boards[:, : self.info.cols]
                                                                                 != 0).all(1)
        terminated |= won | full
        idx = np.flatnonzero(~terminated)
        lost = self._play(idx, self._opponent_moves(idx), -self.agent[idx])
        rewards[idx[lost]] = -1.0
        terminated[idx[lost]] = True
        full = (self.boards != 0).all(1) if self.info.search == "minimax" else (self.boards[:, : self.info.cols]
                                                                                 != 0).all(1)
        terminated |= full
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        self._ret += rewards
        self._len += 1
        obs = self._obs()
        done = terminated | truncated
        infos: dict[str, Any] = {}
        ended = np.flatnonzero(done)
        if len(ended):
            add_final_obs(infos, done, obs)
            now = time.perf_counter()
            add_episode_statistics(infos, done, self._ret.copy(), self._len.copy(), now - self._t0)
            if self._autoreset:
                self._reset_envs(ended)
                obs = self._obs()
            else:
                self._needs_reset = True
        infos["action_mask"] = action_mask(self.env_id, obs)
        infos["_action_mask"] = np.ones(n, bool)
        return obs, rewards, terminated, truncated, infos

    # ------------------------------------------------------------------------------------------- snapshots

    def get_state(self) -> bytes:
        """Boards, sides, counters and every env's RNG as bytes (JSON); :meth:`set_state` continues exactly. The
        opponent's own state (a league's assignments) is its owner's to save."""
        return json.dumps({
            "env_id": self.env_id, "boards": self.boards.tolist(), "agent": self.agent.tolist(),
            "elapsed": self.elapsed.tolist(), "ret": self._ret.tolist(), "len": self._len.tolist(),
            "rngs": [g.bit_generator.state for g in self._rngs], "needs_reset": self._needs_reset,
        }).encode()

    def set_state(self, state: bytes) -> None:
        d = json.loads(bytes(state).decode())
        if d.get("env_id") != self.env_id or len(d.get("boards", [])) != self.num_envs:
            raise ValueError(f"state: not a state of {self.num_envs} {self.env_id} games")
        self.boards = np.array(d["boards"], np.int8)
        self.agent = np.array(d["agent"], np.int8)
        self.elapsed = np.array(d["elapsed"], np.int64)
        self._ret, self._len = np.array(d["ret"], np.float64), np.array(d["len"], np.int64)
        for g, st in zip(self._rngs, d["rngs"], strict=True):
            g.bit_generator.state = st
        self._needs_reset = bool(d["needs_reset"])

    def close_extras(self, **kwargs: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"GameVectorEnv({self.env_id}, num_envs={self.num_envs}, opponent={self.opponent!r})"


class GameEnv(gym.Env[np.ndarray, np.int64]):
    """One board game against an opponent (``gymnasium.make("rltrain/TicTacToe-v0", opponent=...,
    agent_player=...)``); see :class:`GameVectorEnv` for the arguments. Built-in opponents run in the C++ env
    (the same code as the native batcher), others on the Python path. ``info["action_mask"]`` after every reset
    and step; an illegal action raises ValueError."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, env_id: str, opponent: Any = "random", agent_player: str = "random",
                 max_episode_steps: int | None = None, render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode: {env_id} does not render, got {render_mode!r}")
        self.env_id = env_id
        info = game_info(env_id)
        self.observation_space, self.action_space = _spaces(info)
        nat = native_opponent(env_id, opponent)
        self._native: Any = None
        self._py: GameVectorEnv | None = None
        if nat is not None:
            kw: dict[str, Any] = {"opponent_code": nat[0], "search_depth": nat[1],
                                  "agent_side": agent_side(agent_player)}
            kw["max_episode_steps"] = info.cells if max_episode_steps is None else max_episode_steps
            self._native = getattr(_core.envs, info.name)(**kw)
            # make_vec(GameEnv instance) runs this configuration on the native batcher.
            self.native_id = env_id
            self.native_config: dict[str, Any] = {"opponent": opponent, "agent_player": agent_player}
            if max_episode_steps is not None:
                self.native_config["max_episode_steps"] = max_episode_steps
        else:
            self._py = GameVectorEnv(env_id, 1, opponent=opponent, agent_player=agent_player,
                                     max_episode_steps=max_episode_steps)
            self._py._autoreset = False
        self.opponent, self.agent_player = opponent, agent_player
        self.render_mode = None
        self._seeded = False
        self._done = True

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if options:
            raise ValueError(f"{self.env_id}: reset options are not supported")
        super().reset(seed=seed)
        if seed is None and not self._seeded:
            seed = int(self.np_random.integers(2**63))
        self._seeded = True
        self._done = False
        if self._native is not None:
            obs = np.asarray(self._native.reset(seed), np.float32)
        else:
            assert self._py is not None
            obs = self._py.reset(seed=seed)[0][0]
        return obs, {"action_mask": action_mask(self.env_id, obs)}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError(f"{self.env_id}: the game is over (or not started); call reset()")
        a = np.asarray(action)
        if a.shape not in ((), (1,)) or a.dtype.kind not in "iu":
            raise ValueError(f"action: expected one integer, got {action!r}")
        if self._native is not None:
            obs, reward, term, trunc = self._native.step(int(a.reshape(-1)[0]))
            obs = np.asarray(obs, np.float32)
        else:
            assert self._py is not None
            py = self._py
            o, r, te, tr, infos = py.step(a.reshape(1).astype(np.int64))
            obs = o[0]
            reward, term, trunc = float(r[0]), bool(te[0]), bool(tr[0])
        self._done = bool(term or trunc)
        return obs, float(reward), bool(term), bool(trunc), {"action_mask": action_mask(self.env_id, obs)}
