"""The README's "Use it from ..." recipes run exactly as written: each code block of that section is taken from
README.md and run in a fresh interpreter (python blocks) or shell (the bash block, from the repository root)."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = "## Use it from Stable-Baselines3, a CleanRL script or gymnasium"


def _blocks() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end != -1 else None]
    return re.findall(r"```(python|bash)\n(.*?)```", section, flags=re.S)


def test_the_section_has_the_three_recipes() -> None:
    kinds = [k for k, _ in _blocks()]
    assert kinds == ["python", "python", "bash"]


@pytest.mark.parametrize("index", [0, 1], ids=["sb3", "gymnasium"])
def test_python_recipe_runs(index: int, tmp_path: pathlib.Path) -> None:
    code = _blocks()[index][1]
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr


def test_cleanrl_recipe_runs(tmp_path: pathlib.Path) -> None:
    (cmd,) = [c for k, c in _blocks() if k == "bash"]
    cmd = cmd.strip().replace("python ", f"{sys.executable} ", 1).replace("--json run.json",
                                                                           f"--json {tmp_path / 'run.json'}")
    out = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads((tmp_path / "run.json").read_text())
    assert result["steps"] >= 2048
