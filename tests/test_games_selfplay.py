"""Self-play: the trainer's smoke run, exact save/load/continue, evaluate_vs and the ``rltrain play`` CLI driven
through stdin."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import SelfPlayConfig, SelfPlayTrainer, _core
from rltrain.games import GameVectorEnv, evaluate_vs

TTT = "rltrain/TicTacToe-v0"


def _cfg(tmp_path: Any, **kw: Any) -> SelfPlayConfig:
    base: dict[str, Any] = {"G": 8, "T": 8, "epochs": 2, "minibatches": 2, "hidden_sizes": (32, 32), "seed": 0,
                            "verbose": 0, "loggers": (), "log_dir": str(tmp_path), "snapshot_interval": 2,
                            "league_size": 3, "random_opponent_prob": 0.2, "search_opponent_prob": 0.2}
    base.update(kw)
    return SelfPlayConfig(**base)


def test_selfplay_smoke_league_and_metrics(tmp_path: Any) -> None:
    t = SelfPlayTrainer(None, _cfg(tmp_path))
    t.train(8)  # the games raise on an illegal move, so finishing shows the masked learner never made one
    assert t.league is not None
    # the untrained start, then one per 2 iterations, capped at 3 (the first stays)
    assert len(t.league.members) == 3 and t.league.member_iters[0] == 0 and t.league.member_iters[-1] == 8
    assert set(np.unique(t.league.assigned)) <= {-2, -1, 0, 1, 2}
    assert t.num_timesteps == 8 * 8 * 8
    assert len(t.ep_info) > 0
    with pytest.raises(ValueError, match="env: self-play needs a board game"):
        SelfPlayTrainer(None, _cfg(tmp_path, env="CartPole-v1"))
    with pytest.raises(ValueError, match="agent_player"):
        SelfPlayTrainer(None, _cfg(tmp_path, agent_player="Y"))
    with pytest.raises(ValueError, match="search_opponent"):
        SelfPlayTrainer(None, _cfg(tmp_path, search_opponent="random"))
    with pytest.raises(ValueError, match="search_opponent"):
        SelfPlayTrainer(None, _cfg(tmp_path, env="rltrain/ConnectFour-v0", search_opponent="alphabeta:1,minimax"))
    c4 = SelfPlayTrainer(None, _cfg(tmp_path, env="rltrain/ConnectFour-v0", search_opponent_prob=0.8,
                                    search_opponent="alphabeta:1,alphabeta:3"))
    c4.train(1)
    assert c4.league is not None and c4.league.search_depths == [1, 3]
    assert set(np.unique(c4.league.assigned)) & {-2, -3}


def test_search_opponent_prob_second_weights_the_search_by_the_learners_side(tmp_path: Any) -> None:
    # The search plays every game the learner plays as O and none it plays as X: the league reads each game's side.
    t = SelfPlayTrainer(None, _cfg(tmp_path, random_opponent_prob=0.0, search_opponent_prob=0.0,
                                   search_opponent_prob_second=1.0))
    seen_o = seen_x = 0
    for _ in range(3):
        t.train(1)
        assert t.league is not None and isinstance(t.env, GameVectorEnv)
        second = t.env.agent == -1
        np.testing.assert_array_equal(t.league.assigned <= -2, second)
        seen_o, seen_x = seen_o + int(second.sum()), seen_x + int((~second).sum())
    assert seen_o > 0 and seen_x > 0
    # None: one probability for both sides (here the search plays every game); out of range or past 1 is refused
    t = SelfPlayTrainer(None, _cfg(tmp_path, random_opponent_prob=0.0, search_opponent_prob=1.0,
                                   search_opponent_prob_second=None))
    t.train(1)
    assert t.league is not None and isinstance(t.env, GameVectorEnv) and (t.env.agent == -1).any()
    assert (t.league.assigned <= -2).all()
    with pytest.raises(ValueError, match="search_opponent_prob_second"):
        SelfPlayTrainer(None, _cfg(tmp_path, search_opponent_prob_second=1.5))
    with pytest.raises(ValueError, match="search_opponent_prob_second"):
        SelfPlayTrainer(None, _cfg(tmp_path, random_opponent_prob=0.3, search_opponent_prob_second=0.8))


def test_selfplay_save_load_continues_exactly(tmp_path: Any) -> None:
    a = SelfPlayTrainer(None, _cfg(tmp_path))
    a.train(3)
    path = a.save(os.path.join(str(tmp_path), "sp.pt"))
    a.train(3)
    b = SelfPlayTrainer.load(path)
    assert isinstance(b, SelfPlayTrainer) and b.league is not None
    b.train(3)
    for (k, x), (_, y) in zip(a.policy.state_dict().items(), b.policy.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    assert a.league is not None and len(a.league.members) == len(b.league.members)
    for ma, mb in zip(a.league.members, b.league.members, strict=True):
        for x, y in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True):
            assert torch.equal(x, y)
    assert [r for r, _ in a.ep_info] == [r for r, _ in b.ep_info]
    # weights_only loading: the file holds plain tensors and data only
    torch.load(path, weights_only=True)


class _Minimax(torch.nn.Module):
    """A perfect TicTacToe player with the policy interface evaluate_vs uses."""

    obs_dim = 9

    def act(self, obs: torch.Tensor, deterministic: bool = True,
            action_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        moves = [_core.envs.tictactoe_best_moves(o.numpy().astype(np.int8), 1)[0] for o in obs]
        return (torch.tensor(moves),)


def test_evaluate_vs_fractions() -> None:
    vs_random_x = evaluate_vs(_Minimax(), "random", games=60, agent_player="X")
    assert vs_random_x["loss"] == 0 and vs_random_x["win"] > 0.8
    assert abs(vs_random_x["win"] + vs_random_x["draw"] + vs_random_x["loss"] - 1) < 1e-12
    for side in ("X", "O"):
        assert evaluate_vs(_Minimax(), "minimax", games=40, agent_player=side)["draw"] == 1.0
    # A callable opponent (Python path) that always takes the first legal cell loses to perfect play as X.
    first = evaluate_vs(_Minimax(), lambda b, m: int(np.flatnonzero(m)[0]), games=10, agent_player="X")
    assert first["win"] == 1.0
    with pytest.raises(ValueError, match="games"):
        evaluate_vs(_Minimax(), "random", games=0)


def test_evaluate_vs_checkpoint_and_checkpoint_opponent(tmp_path: Any) -> None:
    t = SelfPlayTrainer(None, _cfg(tmp_path))
    t.train(2)
    path = t.save(os.path.join(str(tmp_path), "m.pt"))
    res = evaluate_vs(path, "random", games=20, agent_player="O")
    assert res["games"] == 20 and abs(res["win"] + res["draw"] + res["loss"] - 1) < 1e-12
    # the checkpoint as the opponent (Python path): perfect play never loses to it
    res = evaluate_vs(_Minimax(), path, games=10, agent_player="O")
    assert res["loss"] == 0


def _play(path: str, moves: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run([sys.executable, "-c", "import sys; from rltrain.cli import main; sys.exit(main())",
                           "play", path, *args], input=moves, capture_output=True, text=True, env=env, timeout=120)


def test_play_cli_via_stdin(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    t = SelfPlayTrainer(None, _cfg(tmp_path))
    t.train(1)
    path = t.save(os.path.join(str(tmp_path), "m.pt"))
    # A real terminal process: garbage, the centre twice (the second time it is taken: refused), then every cell
    # in turn (occupied ones are refused and asked again), so the game always finishes.
    moves = "hello\n4\n4\n" + "".join(f"{c}\n" for c in range(9)) * 2
    out = _play(path, moves, "--human", "X")
    assert out.returncode == 0, out.stderr
    assert "game 1: you play X" in out.stdout and "type a cell 0-8" in out.stdout
    assert "illegal move" in out.stdout
    assert any(s in out.stdout for s in ("you win", "the agent wins", "draw"))
    assert "score: " in out.stdout
    # The same entry point in this process (faster): quitting, and a missing checkpoint.
    from rltrain.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("4\nq\n"))
    assert main(["play", path, "--human", "O"]) == 0
    got = capsys.readouterr().out
    assert "you play O (the agent moved first)" in got and "bye" in got
    assert main(["play", os.path.join(str(tmp_path), "missing.pt")]) == 2
    assert "no checkpoint file" in capsys.readouterr().err


def test_train_selfplay_cli(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from rltrain.cli import main

    rc = main(["train", "selfplay", "--env", "rltrain/TicTacToe-v0", "--iters", "2", "--G", "4", "--T", "4",
               "--minibatches", "2", "--epochs", "1", "--eval-interval", "2", "--eval-episodes", "4", "--verbose", "0",
               "--loggers", "csv", "--log-dir", str(tmp_path), "--seed", "0"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "final evaluation" in out and "final_model.pt" in out
    assert main(["train", "selfplay", "--env", "CartPole-v1", "--iters", "1", "--log-dir", str(tmp_path)]) == 2
