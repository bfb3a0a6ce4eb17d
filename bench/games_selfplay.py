"""Self-play on the board games: train, then measure win/draw/loss against the built-in opponents.

    flock /tmp/rltrain-bench.lock python bench/games_selfplay.py tictactoe --seeds 0 1 2 --iters 400 \
        --json bench/results/games_tictactoe.json [--set search_opponent_prob=0.25 ...]
    flock /tmp/rltrain-bench.lock python bench/games_selfplay.py connectfour --seeds 0 --iters 300 \
        --json bench/results/games_connectfour.json

Training is timed in CPU seconds of this process (``time.process_time``: every thread, torch's and the env's),
evaluation excluded. TicTacToe is scored exactly (every game the opponent can make, weighted by its probability:
:func:`rltrain.games.exact_tictactoe_outcomes`) and by sampled games (:func:`rltrain.games.evaluate_vs`);
ConnectFour by sampled games against random and alpha-beta depth 1, 2 and 4, as X and as O.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import statistics
import tempfile
import time
from typing import Any


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _evaluate(game: str, ckpt: str, seed: int, games: int) -> dict[str, Any]:
    from rltrain.games import evaluate_vs, exact_tictactoe_outcomes

    opponents = (["random", "minimax"] if game == "tictactoe"
                 else ["random", "alphabeta:1", "alphabeta:2", "alphabeta:4"])
    sampled: dict[str, Any] = {}
    for opp in opponents:
        for side in ("X", "O"):
            n = games if opp in ("random", "minimax", "alphabeta:1") else max(games // 2, 50)
            sampled[f"{opp}/{side}"] = evaluate_vs(ckpt, opp, games=n, agent_player=side, seed=1000 + seed)
    out: dict[str, Any] = {"sampled": sampled}
    if game == "tictactoe":
        out["exact"] = {f"{opp}/{side}": exact_tictactoe_outcomes(ckpt, opp, side)
                        for opp in ("random", "minimax") for side in ("X", "O")}
    return out


def run_seed(game: str, seed: int, iters: int, overrides: dict[str, Any], games: int, eval_every: int,
             progress: Any = None) -> dict[str, Any]:
    import torch

    from rltrain import SelfPlayConfig, SelfPlayTrainer

    env = "rltrain/TicTacToe-v0" if game == "tictactoe" else "rltrain/ConnectFour-v0"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SelfPlayConfig(env=env, seed=seed, verbose=0, loggers=(), log_dir=tmp, **overrides)
        cpu, wall = 0.0, 0.0
        c0, w0 = time.process_time(), time.perf_counter()
        trainer = SelfPlayTrainer(None, cfg)
        curve = []
        result: dict[str, Any] = {"seed": seed, "torch_threads": torch.get_num_threads()}
        while trainer.iteration < iters:
            trainer.train(min(eval_every, iters - trainer.iteration))
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            ckpt = trainer.save(os.path.join(tmp, "model.pt"))
            ev = _evaluate(game, ckpt, seed, games)  # not counted in the training time
            curve.append({"iters": trainer.iteration, "env_steps": trainer.num_timesteps,
                          "train_cpu_s": round(cpu, 2), **ev})
            sel = trainer.selected_snapshot  # keep_best: the snapshot the schedule ended on, and its own scores
            result.update({"iters": trainer.iteration, "env_steps": trainer.num_timesteps,
                           "train_cpu_s": round(cpu, 2), "train_wall_s": round(wall, 2),
                           "keep_best_selected": None if sel is None else {"iteration": sel["iteration"],
                                                                           "scores": sel["scores"]},
                           **ev, "curve": curve})
            if progress is not None:
                progress(result)
            c0, w0 = time.process_time(), time.perf_counter()
        trainer.close()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("game", choices=("tictactoe", "connectfour"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--iters", type=int, default=400)
    p.add_argument("--games", type=int, default=1000, help="sampled games per opponent and side")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="SelfPlayConfig overrides")
    p.add_argument("--eval-every", type=int, default=0, help="also evaluate (and write the JSON) every this many "
                   "iterations (default: only at the end)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="instead of training, combine the complete results "
                   "of one-seed runs made in parallel (same game, iterations and overrides) into --json")
    a = p.parse_args()
    overrides = _parse_set(a.set)
    runs: list[dict[str, Any]] = []
    kind = "exact" if a.game == "tictactoe" else "sampled"
    if a.merge:
        for path in a.merge:
            with open(path) as f:
                part = json.load(f)
            if not part["complete"] or part["game"] != a.game or part["iters"] != a.iters:
                raise SystemExit(f"--merge: {path} is not a complete {a.game} run of {a.iters} iterations")
            if runs and part["overrides"] != overrides:
                raise SystemExit(f"--merge: {path} has other overrides ({part['overrides']})")
            overrides = part["overrides"]
            runs.extend(part["runs"])
        a.seeds = [r["seed"] for r in runs]

    def write(partial: dict[str, Any] | None = None) -> None:
        done = runs + ([partial] if partial is not None else [])
        keys = list(done[0][kind])
        summary: dict[str, Any] = {"train_cpu_s": {"median": statistics.median(r["train_cpu_s"] for r in done),
                                                   "min": min(r["train_cpu_s"] for r in done),
                                                   "max": max(r["train_cpu_s"] for r in done)}}
        for k in keys:
            for outcome in ("win", "draw", "loss"):
                vals = [r[kind][k][outcome] for r in done]
                summary[f"{k}/{outcome}"] = {"median": statistics.median(vals), "min": min(vals), "max": max(vals)}
        out = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": f"{os.cpu_count()} cores, "
               f"{platform.processor() or platform.machine()}", "game": a.game, "iters": a.iters,
               "overrides": overrides, "complete": partial is None and len(runs) == len(a.seeds),
               "runs": done, "summary": summary}
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
        print(json.dumps({k: v["median"] for k, v in summary.items()}), flush=True)

    if a.merge:
        write()
        return
    for seed in a.seeds:
        r = run_seed(a.game, seed, a.iters, overrides, a.games, a.eval_every or a.iters, write)
        runs.append(r)
    write()


if __name__ == "__main__":
    main()
