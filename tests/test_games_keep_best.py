"""Self-play's keep_best (exact scoring during training, the schedule ends on the best snapshot), the batched exact
TicTacToe scorer it uses, and the epsilon-greedy search opponent (search_epsilon)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import SelfPlayConfig, SelfPlayTrainer, _core
from rltrain.games import exact_tictactoe_outcomes, exact_tictactoe_scores

MATCHES = ("random/X", "random/O", "minimax/X", "minimax/O")


def _cfg(tmp_path: Any, **kw: Any) -> SelfPlayConfig:
    base: dict[str, Any] = {"G": 8, "T": 8, "epochs": 2, "minibatches": 2, "hidden_sizes": (32, 32), "seed": 0,
                            "verbose": 0, "loggers": (), "log_dir": str(tmp_path), "snapshot_interval": 2,
                            "league_size": 3, "random_opponent_prob": 0.2, "search_opponent_prob": 0.2,
                            "keep_best_interval": 2}
    base.update(kw)
    return SelfPlayConfig(**base)


class _Minimax(torch.nn.Module):
    """A perfect TicTacToe player with the policy interface the scorers use."""

    obs_dim = 9

    def act(self, obs: torch.Tensor, deterministic: bool = True,
            action_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        moves = [_core.envs.tictactoe_best_moves(o.numpy().astype(np.int8), 1)[0] for o in obs]
        return (torch.tensor(moves),)


def _same(a: dict[str, float], b: dict[str, float]) -> None:
    for k in ("win", "draw", "loss"):
        assert abs(a[k] - b[k]) < 1e-12, (k, a, b)


def test_exact_scores_match_the_game_by_game_enumeration(tmp_path: Any) -> None:
    t = SelfPlayTrainer(None, _cfg(tmp_path, keep_best=False))
    t.train(2)
    for player in (t, t.policy, _Minimax()):
        scores = exact_tictactoe_scores(player)
        assert sorted(scores) == sorted(MATCHES)
        for m in MATCHES:
            opp, side = m.split("/")
            _same(scores[m], exact_tictactoe_outcomes(player, opp, side))
    perfect = exact_tictactoe_scores(_Minimax())
    assert perfect["minimax/X"]["loss"] == 0 and perfect["minimax/O"]["loss"] == 0
    assert perfect["random/O"]["loss"] == 0 and perfect["random/O"]["win"] > 0.75


def test_keep_best_ends_the_schedule_on_the_best_snapshot(tmp_path: Any) -> None:
    t = SelfPlayTrainer(None, _cfg(tmp_path))  # keep_best None: on for TicTacToe
    scored: list[tuple[int, tuple[float, float], dict[str, torch.Tensor]]] = []
    inner = t._score_snapshot

    def spy(done: int, out: dict[str, float]) -> None:
        inner(done, out)
        s = exact_tictactoe_scores(t.policy)
        key = (-(s["minimax/X"]["loss"] + s["minimax/O"]["loss"]),
               s["random/X"]["win"] - s["random/X"]["loss"] + s["random/O"]["win"] - s["random/O"]["loss"])
        scored.append((done, key, {k: v.clone() for k, v in t.policy.state_dict().items()}))

    t._score_snapshot = spy  # type: ignore[method-assign]
    t.train(9)
    # every keep_best_interval iterations and at the end of the schedule
    assert [d for d, _, _ in scored] == [2, 4, 6, 8, 9]
    best = max(range(len(scored)), key=lambda i: (scored[i][1], i))  # ties: the later snapshot
    assert best < len(scored) - 1  # (this run) an earlier snapshot wins, so the restore is what is tested
    sel = t.selected_snapshot
    assert sel is not None and sel["iteration"] == scored[best][0] and t.best_snapshot is None
    for k, v in t.policy.state_dict().items():
        assert torch.equal(v, scored[best][2][k]), k
    now = exact_tictactoe_scores(t)
    for m in MATCHES:
        _same(now[m], sel["scores"][m])
    # off: the policy is the last iteration's
    u = SelfPlayTrainer(None, _cfg(tmp_path, keep_best=False))
    u.train(3)
    assert u.selected_snapshot is None and u.best_snapshot is None


def test_keep_best_state_survives_a_checkpoint_mid_schedule(tmp_path: Any) -> None:
    a = SelfPlayTrainer(None, _cfg(tmp_path, schedule_iters=6))
    a.train(3)
    assert a.best_snapshot is not None and a.best_snapshot["iteration"] == 2 and a.selected_snapshot is None
    path = a.save(os.path.join(str(tmp_path), "kb.pt"))
    torch.load(path, weights_only=True)
    a.train(3)
    b = SelfPlayTrainer.load(path)
    assert isinstance(b, SelfPlayTrainer)
    b.train(3)
    assert a.selected_snapshot is not None and b.selected_snapshot is not None
    assert a.selected_snapshot["iteration"] == b.selected_snapshot["iteration"]
    for (k, x), (_, y) in zip(a.policy.state_dict().items(), b.policy.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


def test_keep_best_and_search_epsilon_validation(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="keep_best"):
        SelfPlayConfig(env="rltrain/ConnectFour-v0", keep_best=True).validate()
    with pytest.raises(TypeError, match="keep_best"):
        SelfPlayConfig(keep_best="yes").validate()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="keep_best_interval"):
        SelfPlayConfig(keep_best_interval=0).validate()
    with pytest.raises(ValueError, match="search_epsilon"):
        SelfPlayConfig(search_epsilon=1.5).validate()
    c4 = SelfPlayTrainer(None, _cfg(tmp_path, env="rltrain/ConnectFour-v0"))
    assert not c4._keep_best() and c4.league is not None and c4.league.search_epsilon == 0.0
    ttt = SelfPlayTrainer(None, _cfg(tmp_path))
    assert ttt._keep_best() and ttt.league is not None and ttt.league.search_epsilon == 0.2


def test_search_epsilon_makes_the_search_play_random_moves_at_that_rate(tmp_path: Any) -> None:
    # X (the searcher, +1 in its own view) threatens nothing, O (-1) threatens 0-1-2: the search must block at 2.
    board = np.array([-1, -1, 0, 1, 0, 0, 1, 0, 0], np.float32)
    n = 2000
    boards, masks = np.tile(board, (n, 1)), np.tile(board == 0, (n, 1))
    rates = {}
    for eps in (0.0, 0.5, 1.0):
        t = SelfPlayTrainer(None, _cfg(tmp_path, random_opponent_prob=0.0, search_opponent_prob=1.0,
                                       search_opponent_prob_second=None, search_epsilon=eps, G=n))
        lg = t.league
        assert lg is not None
        lg.assigned[:] = -2  # the search opponent in every game
        moves = lg.moves(boards, masks, np.arange(n))
        assert masks[np.arange(n), moves].all()  # legal only
        rates[eps] = float(np.mean(moves != 2))
    # eps: a uniform legal move (6 legal cells, 5 of them not the block) with probability eps
    assert rates[0.0] == 0.0
    assert abs(rates[0.5] - 0.5 * 5 / 6) < 0.05
    assert abs(rates[1.0] - 5 / 6) < 0.04
