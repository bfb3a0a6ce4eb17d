"""Command line: ``rltrain train ALGO --env ID [config overrides]``, ``rltrain eval CHECKPOINT``,
``rltrain play CHECKPOINT`` (a person against a board-game agent),
``rltrain bench [SECTION ...]``, ``rltrain plot RUN_DIR ...``, ``rltrain robustness CHECKPOINT --env ID``,
``rltrain pipeline --env ID --algo ALGO`` and ``rltrain llm-demo --task TASK``.
Train options are generated from the config dataclasses by tyro (``rltrain train ppo --help`` lists every field
with its docstring)."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

from rltrain._checks import class_from_path
from rltrain.config import GRPOConfig, PolicyGroupConfig, PPOConfig, ReinforceConfig, SelfPlayConfig

USAGE = """usage: rltrain {train,eval,play,bench,plot,robustness,pipeline,llm-demo} ...

  rltrain train ALGO --env ID [--G N --T N --iters N ...]   ALGO: ppo, grpo-step, grpo-episode, grpo-hybrid, reinforce,
                                                            policy-groups (--groups G --group-size M),
                                                            selfplay (board games: rltrain/TicTacToe-v0, ConnectFour)
  rltrain eval CHECKPOINT [--episodes N] [--video DIR]
  rltrain play CHECKPOINT [--human X|O|random] [--games N]  play a board-game agent in the terminal
  rltrain bench [SECTION ...] [--json PATH]                 same as python -m rltrain.bench
  rltrain plot RUN_DIR ... [--out PNG] [--key COLUMN]       learning curves from progress.csv
  rltrain robustness CHECKPOINT --env ID [--episodes N]     noise/delay/masking/dynamics presets: JSON + PNG
  rltrain pipeline --env ID --algo ALGO [--steps N] [--out RUN_DIR]
                                                            train, evaluate, robustness suite, plots, report.json
  rltrain llm-demo --task {reverse,sort,add} [--reward-model] [--json PATH] [--png PATH] [--seed N] [--quick]
                                                            GRPO on a tiny char LM from scratch (extra [llm])

'rltrain train ppo --help' lists every configuration field."""


@dataclasses.dataclass
class _RunOptions:
    """Options of a training run that are not trainer configuration."""

    iters: int = 300
    """Training iterations."""
    device: str = "auto"
    """Device of the update loop: auto, cpu, cuda, cuda:N."""
    eval_interval: int = 30
    """Iterations between deterministic evaluations."""
    eval_episodes: int = 20
    """Episodes per evaluation (and for the final one)."""
    video_dir: str | None = None
    """Write mp4 videos of the final agent here."""
    video_episodes: int = 3
    """Episodes to record."""
    learners: int = 1
    """Data-parallel learner processes (ppo): N > 1 relaunches this command under ``torchrun --nproc-per-node N``
    (gloo on CPU, NCCL on CUDA); rank 0 collects, logs and saves. Under torchrun itself leave it at 1."""


@dataclasses.dataclass
class PPOCommand(_RunOptions, PPOConfig):
    """Train PPO (Stable-Baselines3 semantics)."""

    env: str = "LunarLander-v3"
    """Environment id (native ids run on the C++ batcher; any other gymnasium id on worker processes)."""


@dataclasses.dataclass
class GRPOCommand(_RunOptions, GRPOConfig):
    """Train a GRPO variant (actor only, group-relative advantages)."""

    env: str = "LunarLander-v3"
    """Environment id (native ids run on the C++ batcher; any other gymnasium id on worker processes)."""


@dataclasses.dataclass
class ReinforceCommand(_RunOptions, ReinforceConfig):
    """Train REINFORCE (Monte-Carlo policy gradient)."""

    env: str = "CartPole-v1"
    """Environment id (native ids run on the C++ batcher; any other gymnasium id on worker processes)."""


@dataclasses.dataclass
class PolicyGroupCommand(_RunOptions, PolicyGroupConfig):
    """Train policy groups (performance-weighted group selection, group-relative advantages, a critic per group)."""

    env: str = "CartPole-v1"
    """Environment id (native ids run on the C++ batcher; any other gymnasium id on worker processes)."""


@dataclasses.dataclass
class SelfPlayCommand(_RunOptions, SelfPlayConfig):
    """Train by self-play on a board game (PPO against a league of frozen past versions)."""

    env: str = "rltrain/TicTacToe-v0"
    """The game: rltrain/TicTacToe-v0 or rltrain/ConnectFour-v0."""
    iters: int = 400
    """Training iterations (400: the TicTacToe run of bench/README.md, "Games", under 2 CPU minutes)."""


ALGOS: dict[str, tuple[type, str]] = {
    "ppo": (PPOCommand, "rltrain.algos.ppo:PPOTrainer"),
    "grpo-step": (GRPOCommand, "rltrain.algos.grpo:PerStepAdvGRPOTrainer"),
    "grpo-episode": (GRPOCommand, "rltrain.algos.grpo:PerEpAdvGRPOTrainer"),
    "grpo-hybrid": (GRPOCommand, "rltrain.algos.grpo:HybridAdvGRPOTrainer"),
    "reinforce": (ReinforceCommand, "rltrain.algos.reinforce:ReinforceTrainer"),
    "policy-groups": (PolicyGroupCommand, "rltrain.algos.policy_groups:PolicyGroupTrainer"),
    "selfplay": (SelfPlayCommand, "rltrain.algos.selfplay:SelfPlayTrainer"),
}
"""ALGO -> (command dataclass, trainer class path), imported only when that ALGO runs."""


def _split(cmd: Any, config_cls: type) -> tuple[Any, _RunOptions]:
    names = {f.name for f in dataclasses.fields(config_cls)}
    cfg = config_cls(**{k: getattr(cmd, k) for k in names})
    run = _RunOptions(**{f.name: getattr(cmd, f.name) for f in dataclasses.fields(_RunOptions)})
    return cfg, run


def cmd_train(argv: list[str]) -> int:
    import tyro

    if not argv or argv[0] in ("-h", "--help") or argv[0] not in ALGOS:
        print(f"usage: rltrain train ALGO [options]; ALGO is one of {sorted(ALGOS)}", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    algo = argv[0]
    cmd_cls, trainer_path = ALGOS[algo]
    cmd: Any = tyro.cli(cmd_cls, args=argv[1:], prog=f"rltrain train {algo}")
    trainer_cls: Any = class_from_path(trainer_path, "ALGO", allow_import=True)  # one of ALGOS' fixed paths
    cfg, run = _split(cmd, trainer_cls.config_class)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if run.learners < 1 or (run.learners > 1 or world > 1) and algo != "ppo":
        print(f"rltrain train {algo}: error: learners: expected 1, or N > 1 learners with ppo, got {run.learners} "
              f"(WORLD_SIZE={world})", file=sys.stderr)
        return 2
    if run.learners > 1:
        if world > 1:
            print("rltrain train: error: learners: already running under torchrun; drop --learners",
                  file=sys.stderr)
            return 2
        import subprocess

        rest = _drop_option(argv, "--learners")
        return subprocess.call([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                f"--nproc-per-node={run.learners}", "-m", "rltrain", "train", *rest])
    rank = 0
    if world > 1:
        from rltrain.distributed.ddp import init_from_env

        run.device = init_from_env(run.device)
        rank = int(os.environ.get("RANK", "0"))
        if rank != 0:  # only rank 0 logs, evaluates and saves
            import tempfile

            cfg.loggers, cfg.verbose, cfg.save_best = (), 0, False
            cfg.log_dir = tempfile.mkdtemp(prefix=f"rltrain-rank{rank}-")
    try:
        cfg.validate()
        trainer = trainer_cls(None, cfg, device=run.device)  # the policy the config describes
    except (ValueError, TypeError, ImportError) as exc:
        print(f"rltrain train {algo}: error: {exc}", file=sys.stderr)
        return 2
    if rank != 0:
        try:
            trainer.train(iters=run.iters)
        finally:
            trainer.close()
        return 0
    try:
        trainer.train(iters=run.iters, eval_env=cfg.env, eval_interval=run.eval_interval,
                      eval_episodes=run.eval_episodes, video_dir=run.video_dir, video_episodes=run.video_episodes)
        final = os.path.join(trainer.run_dir, "final_model.pt")
        trainer.save(final)
        res = trainer.evaluate(n_episodes=run.eval_episodes)
    finally:
        trainer.close()
    print(f"final evaluation ({run.eval_episodes} episodes, deterministic): "
          f"{res['mean_reward']:.2f} +/- {res['std_reward']:.2f}, mean length {res['mean_length']:.1f}")
    print(f"env steps: {trainer.num_timesteps}; training time: {trainer.train_time:.1f} s "
          f"({trainer.num_timesteps / max(trainer.train_time, 1e-9):.0f} steps/s)")
    print(f"logs (TensorBoard, progress.csv): {trainer.run_dir}")
    print(f"checkpoints: {final}" + (f", {os.path.join(trainer.run_dir, 'best_model.pt')}"
                                     if os.path.exists(os.path.join(trainer.run_dir, "best_model.pt")) else ""))
    if run.video_dir:
        print(f"videos: {run.video_dir}")
    return 0


def _drop_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE``."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out


def cmd_eval(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="rltrain eval", description="Evaluate a checkpoint deterministically.")
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=20, help="episodes to run (default 20)")
    p.add_argument("--video", metavar="DIR", help="also write mp4 videos of a few episodes here")
    p.add_argument("--video-episodes", type=int, default=3)
    p.add_argument("--env", help="evaluate on this env id instead of the training env")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stochastic", action="store_true", help="sample actions instead of the deterministic policy")
    a = p.parse_args(argv)
    from rltrain.algos.base import BaseTrainer

    if not os.path.isfile(a.checkpoint):
        print(f"rltrain eval: error: checkpoint: no such file {a.checkpoint!r}", file=sys.stderr)
        return 2
    try:
        trainer = BaseTrainer.load(a.checkpoint, device=a.device, env=a.env, verbose=0)
        res = trainer.evaluate(n_episodes=a.episodes, deterministic=not a.stochastic)
    except (ValueError, TypeError) as exc:
        print(f"rltrain eval: error: {exc}", file=sys.stderr)
        return 2
    print(f"{a.checkpoint}: {res['mean_reward']:.2f} +/- {res['std_reward']:.2f} over {a.episodes} episodes "
          f"(mean length {res['mean_length']:.1f}; trained {trainer.num_timesteps} steps, "
          f"{trainer.iteration} iterations)")
    if a.video:
        paths = trainer.record_video(a.video, episodes=a.video_episodes, env=a.env)
        print(f"videos: {', '.join(paths)}")
    return 0


def _show_board(obs: Any, rows: int, cols: int, human: str) -> str:
    """The board as text, the person's stones (+1 in their observation) with their letter."""
    agent = "O" if human == "X" else "X"
    sym = {1.0: human, -1.0: agent, 0.0: "."}
    lines = [" ".join(sym[float(v)] for v in obs[r * cols:(r + 1) * cols]) for r in range(rows)]
    if rows == 3:  # TicTacToe: cells are numbered 0-8, row by row
        lines = [f"{line}    {' '.join(str(r * cols + c) for c in range(cols))}" for r, line in enumerate(lines)]
    else:
        lines.append(" ".join(str(c) for c in range(cols)))
    return "\n".join(lines)


def cmd_play(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="rltrain play", description="Play a board-game agent in the terminal: type a "
                                "cell (TicTacToe, 0-8) or a column (ConnectFour, 0-6) and Enter; q quits.")
    p.add_argument("checkpoint")
    p.add_argument("--human", default="X", help="your side: X (moves first), O or random (default X)")
    p.add_argument("--games", type=int, default=1, help="games to play (default 1)")
    p.add_argument("--seed", type=int, default=None, help="seed of the side draw with --human random")
    a = p.parse_args(argv)
    import numpy as np

    from rltrain.games import GameEnv, PolicyPlayer, game_for_policy, load_policy
    from rltrain.vec.games import game_info

    try:
        policy, rms = load_policy(a.checkpoint)
        env_id = game_for_policy(policy)
        env = GameEnv(env_id, opponent=PolicyPlayer(policy, deterministic=True, obs_rms=rms), agent_player=a.human)
    except (ValueError, TypeError) as exc:
        print(f"rltrain play: error: {exc}", file=sys.stderr)
        return 2
    info = game_info(env_id)
    what = "cell 0-8" if info.rows == 3 else "column 0-6"
    tally = {"win": 0, "draw": 0, "loss": 0}
    for g in range(a.games):
        obs, inf = env.reset(seed=None if a.seed is None else a.seed + g)
        # Your side: the agent (X) has already moved when the board is not empty.
        human = "O" if np.count_nonzero(obs) else "X"
        print(f"game {g + 1}: you play {human}" + (" (the agent moved first)" if human == "O" else ""))
        done, reward = False, 0.0
        while not done:
            print(_show_board(obs, info.rows, info.cols, human))
            line = sys.stdin.readline()
            if not line or line.strip().lower() in ("q", "quit", "exit"):
                print("bye")
                return 0
            try:
                move = int(line.strip())
            except ValueError:
                print(f"type a {what}")
                continue
            if not (0 <= move < info.n_actions and inf["action_mask"][move]):
                print(f"illegal move {move}; legal: {np.flatnonzero(inf['action_mask']).tolist()}")
                continue
            obs, r, term, trunc, inf = env.step(move)
            done, reward = bool(term or trunc), float(r)
        print(_show_board(obs, info.rows, info.cols, human))
        result = "win" if reward > 0 else "loss" if reward < 0 else "draw"
        tally[result] += 1
        print({"win": "you win", "loss": "the agent wins", "draw": "draw"}[result])
    print(f"score: {tally['win']} won, {tally['draw']} drawn, {tally['loss']} lost")
    return 0


def cmd_bench(argv: list[str]) -> int:
    from rltrain.bench.__main__ import main as bench_main

    return bench_main(argv)


def cmd_plot(argv: list[str]) -> int:
    from rltrain.plot import main as plot_main

    return plot_main(argv)


def cmd_robustness(argv: list[str]) -> int:
    from rltrain.robustness import main as robustness_main

    return robustness_main(argv)


def cmd_pipeline(argv: list[str]) -> int:
    from rltrain.pipeline import main as pipeline_main

    return pipeline_main(argv)


def cmd_llm_demo(argv: list[str]) -> int:
    from rltrain.llm.demo import main as llm_demo_main

    return llm_demo_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    commands = {"train": cmd_train, "eval": cmd_eval, "play": cmd_play, "bench": cmd_bench, "plot": cmd_plot,
                "robustness": cmd_robustness, "pipeline": cmd_pipeline, "llm-demo": cmd_llm_demo}
    if argv[0] not in commands:
        print(f"rltrain: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
