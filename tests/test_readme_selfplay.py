"""The README's self-play recipes (section "Self-play on two-player games") run as written, with the iteration
count cut to 2 and fewer evaluation games so that the test stays short."""

from __future__ import annotations

import pathlib
import re
import shlex
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = "### Self-play on two-player games"


def _blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    end3 = text.find("\n### ", start + len(SECTION))
    stop = min(x for x in (end, end3) if x != -1)
    return re.findall(r"```(python|bash)\n(.*?)```", text[start:stop], flags=re.S)


def test_the_section_has_a_shell_and_a_python_recipe() -> None:
    assert [k for k, _ in _blocks()] == ["bash", "python"]


def test_python_recipe_runs(tmp_path: pathlib.Path) -> None:
    code = _blocks()[1][1]
    assert "trainer.train(400)" in code and "games=200" in code
    code = code.replace("trainer.train(400)", "trainer.train(2)").replace("games=200", "games=20")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and all("'win'" in x and "'loss'" in x for x in lines)


def test_shell_recipe_trains_then_plays(tmp_path: pathlib.Path) -> None:
    train, play = (ln.split("#")[0].strip() for ln in _blocks()[0][1].strip().splitlines())
    args = shlex.split(train.replace("--iters 400", "--iters 2").replace("runs/ttt", str(tmp_path / "ttt")))
    assert args[:3] == ["rltrain", "train", "selfplay"]
    run = [sys.executable, "-m", "rltrain", *args[1:]]
    out = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (ckpt,) = (tmp_path / "ttt").glob("*/final_model.pt")
    pargs = shlex.split(play.replace("runs/ttt/<run>/final_model.pt", str(ckpt)))
    assert pargs[:2] == ["rltrain", "play"] and pargs[-2:] == ["--human", "O"]
    out = subprocess.run([sys.executable, "-m", "rltrain", *pargs[1:]], input="q\n", cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "you play O" in out.stdout and "X" in out.stdout  # the board, after the agent's first move as X
