"""The board games: rules, masks, the built-in opponents, illegal actions, seeding, and the Python path (callable
and checkpoint opponents) against the native batcher."""

from __future__ import annotations

import itertools

import gymnasium as gym
import numpy as np
import pytest

import rltrain
from rltrain import _core
from rltrain.games import GameVectorEnv, winning_lines
from rltrain.vec.games import GAMES
from rltrain.vec.native import NativeVectorEnv

TTT, C4 = "rltrain/TicTacToe-v0", "rltrain/ConnectFour-v0"


def _play_random(env: gym.vector.VectorEnv, steps: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """Steps ``env`` with uniformly random legal actions drawn from ``seed``; returns the reset's (obs, mask), then
    each step's (obs, rewards, terminated, truncated, mask)."""
    rng = np.random.default_rng(seed)
    obs, infos = env.reset()  # the env's own seed (make_vec's)
    out = [(obs.copy(), infos["action_mask"].copy())]
    for _ in range(steps):
        mask = infos["action_mask"]
        a = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        obs, r, te, tr, infos = env.step(a)
        out.append((obs.copy(), r.copy(), te.copy(), tr.copy(), infos["action_mask"].copy()))
    return out


def _winner(board: np.ndarray, lines: np.ndarray) -> int:
    sums = board[lines].sum(-1)
    k = lines.shape[1]
    return 1 if (sums == k).any() else -1 if (sums == -k).any() else 0


@pytest.mark.parametrize("env_id,opponent", [(TTT, "random"), (TTT, "minimax"), (C4, "random"), (C4, "alphabeta:2")])
def test_python_path_matches_native(env_id: str, opponent: str) -> None:
    # Same seed, same actions: the NumPy engine draws what the C++ env draws, so every array agrees.
    nat = rltrain.make_vec(env_id, 6, seed=3, opponent=opponent)
    assert isinstance(nat, NativeVectorEnv)
    py = GameVectorEnv(env_id, 6, seed=3, opponent=opponent)
    a, b = _play_random(nat, 60, 11), _play_random(py, 60, 11)
    for x, y in zip(a, b, strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)
    ends = sum(int(s[2].sum()) for s in a[1:])
    assert ends >= 6  # episodes ended and autoreset on both


@pytest.mark.parametrize("env_id", [TTT, C4])
def test_rules_observations_and_rewards(env_id: str) -> None:
    info = GAMES[env_id]
    lines = winning_lines(info)
    env = rltrain.make_vec(env_id, 8, seed=0, opponent="random")
    rng = np.random.default_rng(0)
    obs, infos = env.reset(seed=0)
    prev = obs.copy()
    outcomes = set()
    for _ in range(400):
        mask = infos["action_mask"]
        assert mask.dtype == np.bool_ and mask.shape == (8, info.n_actions)
        a = np.array([rng.choice(np.flatnonzero(m)) for m in mask])
        obs, r, te, tr, infos = env.step(a)
        assert obs.dtype == np.float32 and set(np.unique(obs)) <= {-1.0, 0.0, 1.0}
        assert not tr.any()
        for i in range(8):
            if te[i]:
                final = infos["final_obs"][i]
                w = _winner(final, lines)
                assert r[i] == w  # +1 own line, -1 the opponent's, 0 a full board
                if w == 0:
                    assert (final != 0).all() if env_id == TTT else (final[: info.cols] != 0).all()
                outcomes.add(int(r[i]))
                assert np.count_nonzero(obs[i]) <= 1  # the next game: empty, or the opponent's first stone
            else:
                assert r[i] == 0 and _winner(obs[i], lines) == 0
                # one stone each more than before: the agent's (+1) and the opponent's (-1)
                assert np.sum(obs[i] == 1) == np.sum(prev[i] == 1) + 1
                assert np.sum(obs[i] == -1) == np.sum(prev[i] == -1) + 1
        prev = obs.copy()
    assert outcomes == {-1, 0, 1} if env_id == TTT else outcomes >= {-1, 1}
    if env_id == C4:  # gravity: every stone rests on the bottom row or on another stone
        b = obs.reshape(8, info.rows, info.cols)
        assert ((b[:, :-1] != 0) <= (b[:, 1:] != 0)).all()


def test_action_mask_and_agent_player() -> None:
    for side, first in (("X", 0), ("O", 1)):
        env = rltrain.make_vec(TTT, 4, seed=0, agent_player=side)
        obs, infos = env.reset()
        assert (np.count_nonzero(obs, axis=1) == first).all()
        np.testing.assert_array_equal(infos["action_mask"], obs == 0)
    env = rltrain.make_vec(TTT, 64, seed=0, agent_player="random")
    obs, _ = env.reset()
    n_o = int((np.count_nonzero(obs, axis=1) == 1).sum())
    assert 16 < n_o < 48
    with pytest.raises(ValueError, match="agent_player"):
        rltrain.make_vec(TTT, 2, agent_player="Z")
    with pytest.raises(ValueError, match="opponent"):
        rltrain.make_vec(TTT, 2, opponent="alphabeta:3")
    with pytest.raises(ValueError, match="opponent"):
        rltrain.make_vec(C4, 2, opponent="alphabeta:x")
    with pytest.raises(ValueError, match="opponent"):
        rltrain.make_vec(TTT, 2, opponent="/no/such/checkpoint.pt")


@pytest.mark.parametrize("python_path", [False, True])
def test_illegal_action_names_the_env_and_steps_nothing(python_path: bool) -> None:
    kw = {"opponent": (lambda b, m: int(np.flatnonzero(m)[0])) if python_path else "random"}
    env = rltrain.make_vec(TTT, 3, seed=0, agent_player="X", **kw)
    env.reset(seed=0)
    env.step(np.array([4, 4, 4]))
    before = env.get_state()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="env 0: cell 4 is already occupied"):
        env.step(np.array([4, 0, 0]))
    assert env.get_state() == before  # type: ignore[attr-defined]
    c4 = rltrain.make_vec(C4, 2, seed=0, agent_player="X", opponent="random")
    c4.reset(seed=0)
    with pytest.raises(ValueError, match="env 1: discrete action 7"):
        c4.step(np.array([0, 7]))
    single = gym.make(TTT, opponent="random", agent_player="X")
    single.reset(seed=0)
    single.step(4)
    with pytest.raises(ValueError, match="cell 4 is already occupied"):
        single.step(4)


def test_seeding_is_deterministic_and_thread_independent() -> None:
    runs = [_play_random(rltrain.make_vec(C4, 8, seed=5, num_threads=t, opponent="alphabeta:1"), 30, 1)
            for t in (1, 2, 1)]
    for x, y in zip(runs[0], runs[1], strict=True):
        for u, v in zip(x, y, strict=True):
            np.testing.assert_array_equal(u, v)
    other = _play_random(rltrain.make_vec(C4, 8, seed=6, opponent="alphabeta:1"), 30, 1)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(runs[0], other, strict=True))


def test_gymnasium_class_equals_native() -> None:
    # gymnasium.make with a built-in opponent is the C++ env: the same games as env 0 of a batcher seeded alike.
    for env_id, opp in ((TTT, "minimax"), (C4, "alphabeta:2")):
        single = gym.make(env_id, opponent=opp, agent_player="random")
        vec = rltrain.make_vec(env_id, 1, seed=9, opponent=opp, agent_player="random")
        rng = np.random.default_rng(2)
        o1, i1 = single.reset(seed=9)
        o2, i2 = vec.reset(seed=9)
        for _ in range(40):
            np.testing.assert_array_equal(o1, o2[0])
            np.testing.assert_array_equal(i1["action_mask"], i2["action_mask"][0])
            a = int(rng.choice(np.flatnonzero(i1["action_mask"])))
            o1, r1, t1, _, i1 = single.step(a)
            o2, r2, t2, _, i2 = vec.step(np.array([a]))
            assert r1 == r2[0] and t1 == t2[0]
            if t1:
                np.testing.assert_array_equal(o1, i2["final_obs"][0])
                o1, i1 = single.reset()
                # the batcher reset in the same step, from the same RNG stream
                np.testing.assert_array_equal(o1, o2[0])


def test_callable_opponent_sees_its_own_view() -> None:
    seen = []

    def first_legal(board: np.ndarray, mask: np.ndarray) -> int:
        seen.append((board.copy(), mask.copy()))
        return int(np.flatnonzero(mask)[0])

    env = gym.make(TTT, opponent=first_legal, agent_player="X")
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(4)  # agent (X) takes the centre; the opponent (O) sees it as -1 and takes cell 0
    board, mask = seen[-1]
    assert board[4] == -1 and board.sum() == -1 and not mask[4]
    assert obs[0] == -1 and obs[4] == 1


def _negamax(board: tuple[int, ...], to_move: int, memo: dict[tuple[tuple[int, ...], int], int]) -> int:
    """An independent (slow, pure Python) TicTacToe solver: value for the player to move."""
    key = (board, to_move)
    if key in memo:
        return memo[key]
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
    best = -2
    for a in range(9):
        if board[a]:
            continue
        b = board[:a] + (to_move,) + board[a + 1:]
        v = 1 if any(all(b[i] == to_move for i in ln) for ln in lines) else (
            0 if all(b) else -_negamax(b, -to_move, memo))
        best = max(best, v)
    memo[key] = best if best > -2 else 0
    return memo[key]


def test_minimax_never_loses_to_exhaustive_play() -> None:
    # Every agent move sequence against every move the minimax opponent may choose: it never loses, its moves are
    # optimal for an independent solver, and it takes an immediate win whenever there is one.
    memo: dict[tuple[tuple[int, ...], int], int] = {}
    lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]

    def won(b: tuple[int, ...], p: int) -> bool:
        return any(all(b[i] == p for i in ln) for ln in lines)

    losses = positions = 0
    seen: set[tuple[tuple[int, ...], int]] = set()

    def explore(b: tuple[int, ...], to_move: int, engine: int) -> None:
        nonlocal losses, positions
        if (b, engine) in seen:  # a transposition: its whole subtree was checked already
            return
        seen.add((b, engine))
        if won(b, -to_move) or all(b):
            losses += won(b, -engine)
            return
        if to_move == engine:
            moves = _core.envs.tictactoe_best_moves(np.array(b, np.int8), engine)
            positions += 1
            values = {a: (1 if won(b[:a] + (engine,) + b[a + 1:], engine) else
                          -_negamax(b[:a] + (engine,) + b[a + 1:], -engine, memo)) for a in range(9) if not b[a]}
            optimal = {a for a, v in values.items() if v == max(values.values())}
            assert moves and set(moves) <= optimal  # perfect play...
            wins_now = {a for a in values if won(b[:a] + (engine,) + b[a + 1:], engine)}
            assert not wins_now or set(moves) <= wins_now  # ...that wins at once when it can
        else:
            moves = [a for a in range(9) if not b[a]]
        for a in moves:
            explore(b[:a] + (to_move,) + b[a + 1:], -to_move, engine)

    explore((0,) * 9, 1, 1)   # the engine as X
    explore((0,) * 9, 1, -1)  # the engine as O
    assert losses == 0 and positions > 200


def test_alphabeta_takes_wins_and_blocks() -> None:
    b = np.zeros((6, 7), np.int8)
    b[5, :3] = 1  # X threatens column 3 on the bottom row
    b[4, :2] = -1
    for depth in (1, 2, 4):
        assert _core.envs.connect_four_best_moves(b.reshape(-1), 1, depth) == [3]  # X wins at once
    for depth in (2, 4):
        assert _core.envs.connect_four_best_moves(b.reshape(-1), -1, depth) == [3]  # O must block
    # The winning lines helper knows both games.
    assert winning_lines(GAMES[TTT]).shape == (8, 3) and winning_lines(GAMES[C4]).shape == (69, 4)


def test_python_path_state_round_trip() -> None:
    env = GameVectorEnv(C4, 4, seed=1, opponent=lambda b, m: int(np.flatnonzero(m)[-1]))
    _play_random(env, 5, 0)
    st = env.get_state()
    nxt = [env.step(np.array([3, 3, 3, 3]))[0] for _ in range(2)]
    env.set_state(st)
    again = [env.step(np.array([3, 3, 3, 3]))[0] for _ in range(2)]
    for x, y in itertools.zip_longest(nxt, again):
        np.testing.assert_array_equal(x, y)
