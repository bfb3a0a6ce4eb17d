"""Kill -9 and resume: a PPO run with a checkpoint every iteration is killed with SIGKILL at random moments (some
while a checkpoint is being written), resumed each time from the newest checkpoint, and must end bitwise where an
uninterrupted run of the same seed ends. Every checkpoint left behind must load.

    python bench/kill_resume.py [--iters 40] [--kills 10] [--seed 0]

tests/test_kill_resume.py runs a short version. The driver (``--driver``) is this same file run as a subprocess.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

SLOW_SAVE_S = 0.05  # the driver's torch.save sleeps this long mid-write, so a kill can land inside a save


def _newest_checkpoint(workdir: str) -> str | None:
    found = glob.glob(os.path.join(workdir, "runs", "*", "checkpoint.pt"))
    return max(found, key=os.path.getmtime) if found else None


def driver(workdir: str, iters: int) -> None:
    """Trains (or resumes) to ``iters`` iterations, checkpointing each one; writes the final parameters."""
    import torch

    import rltrain.algos.base as base
    from rltrain import PPOConfig, PPOTrainer

    real_save = torch.save

    def slow_save(obj: object, f: object, *a: object, **k: object) -> None:
        real_save(obj, f, *a, **k)
        if hasattr(f, "flush"):
            f.flush()  # half-way: the bytes are in the temporary file, the rename has not happened
        time.sleep(SLOW_SAVE_S)

    base.torch.save = slow_save  # only the trainer's checkpoint writes
    ckpt = _newest_checkpoint(workdir)
    if ckpt is not None:
        trainer = PPOTrainer.load(ckpt)
    else:
        cfg = PPOConfig(env="CartPole-v1", G=4, T=64, minibatches=4, epochs=4, seed=0, verbose=0,
                        log_dir=os.path.join(workdir, "runs"), loggers=("csv",), checkpoint_interval=1)
        trainer = PPOTrainer(None, cfg)
    trainer.train(iters=iters - trainer.iteration)
    real_save({k: v.detach().clone() for k, v in trainer.policy.state_dict().items()},
              os.path.join(workdir, "final_params.pt"))
    trainer.close()


def _start(workdir: str, iters: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--driver", workdir, str(iters)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def run_with_kills(workdir: str, iters: int, kills: int, seed: int = 0, timeout: float = 300) -> dict[str, object]:
    """The uninterrupted run and the killed-and-resumed run; returns their parameters and what happened."""
    import torch

    from rltrain import PPOTrainer

    rng = np.random.default_rng(seed)
    ref_dir, kill_dir = os.path.join(workdir, "uninterrupted"), os.path.join(workdir, "killed")
    proc = _start(ref_dir, iters)
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()
    done_kills = during_save = 0
    deadline = time.monotonic() + timeout
    tmp_files = os.path.join(kill_dir, "runs", "*", ".tmp-*.pt")
    ckpt_files = os.path.join(kill_dir, "runs", "*", "checkpoint.pt")

    def checkpoints() -> dict[str, float]:
        found = {}
        for path in glob.glob(ckpt_files):
            with contextlib.suppress(FileNotFoundError):  # replaced between glob and stat
                found[path] = os.path.getmtime(path)
        return found

    while True:
        left_over = set(glob.glob(tmp_files))  # temporaries of writes killed earlier
        before = checkpoints()
        proc = _start(kill_dir, iters)
        if done_kills < kills:
            # Every kill waits for this process to make progress (a checkpoint written, or one being written), so
            # the run always moves on and the kills land while it trains, whatever the machine's speed.
            if done_kills % 2:  # kill inside a checkpoint write
                while proc.poll() is None and not set(glob.glob(tmp_files)) - left_over:
                    time.sleep(0.002)
                during_save += proc.poll() is None
            else:  # kill at a random moment after the first new checkpoint
                while proc.poll() is None and not any(before.get(p) != m for p, m in checkpoints().items()):
                    time.sleep(0.002)
                time.sleep(float(rng.uniform(0.0, 0.15)))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                assert proc.stderr is not None
                proc.stderr.close()
                done_kills += 1
                for path in glob.glob(os.path.join(kill_dir, "runs", "*", "checkpoint.pt")):
                    PPOTrainer.load(path).close()  # never truncated, never unreadable
                continue
        _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.returncode == 0, err.decode()
        break
    want = torch.load(os.path.join(ref_dir, "final_params.pt"), weights_only=True)
    got = torch.load(os.path.join(kill_dir, "final_params.pt"), weights_only=True)
    return {"want": want, "got": got, "kills": done_kills, "during_save": during_save,
            "equal": all(torch.equal(want[k], got[k]) for k in want)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--driver", nargs=2, metavar=("WORKDIR", "ITERS"), help=argparse.SUPPRESS)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None, help="default: a new temporary directory")
    a = ap.parse_args()
    if a.driver:
        driver(a.driver[0], int(a.driver[1]))
        return
    import tempfile

    workdir = a.workdir or tempfile.mkdtemp(prefix="kill_resume-")
    pathlib.Path(workdir).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    r = run_with_kills(workdir, a.iters, a.kills, a.seed, timeout=3600)
    print(f"{a.iters} iterations, {r['kills']} SIGKILLs ({r['during_save']} inside a checkpoint write), "
          f"bitwise equal to the uninterrupted run: {r['equal']}  ({time.perf_counter() - t0:.0f} s, {workdir})")
    sys.exit(0 if r["equal"] else 1)


if __name__ == "__main__":
    main()
