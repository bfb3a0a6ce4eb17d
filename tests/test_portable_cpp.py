"""The portable branches of the C++ core, compiled here: numpy_rng.hpp's 128-bit arithmetic without
``unsigned __int128`` (the branch MSVC takes) draws exactly numpy's default_rng stream, like the native branch."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import numpy as np
import pytest

INCLUDE = pathlib.Path(__file__).resolve().parents[1] / "cpp" / "include"
PROGRAM = r"""
#include <cstdio>
#include "rltrain/numpy_rng.hpp"
int main() {
  for (unsigned long long seed : {0ull, 123ull, 18446744073709551615ull}) {
    rltrain::NumpyRng r(seed);
    for (int i = 0; i < 2000; ++i) {
      const double u = r.random();  // one statement each: argument evaluation order is unspecified
      const long long small = r.integers(-9999, 9999);
      const long long big = r.integers(0, (int64_t)1 << 62);
      std::printf("%.17g %lld %lld\n", u, small, big);
    }
  }
}
"""


def _numpy_stream() -> list[str]:
    lines = []
    for seed in (0, 123, 2**64 - 1):
        r = np.random.default_rng(seed)
        for _ in range(2000):
            lines.append(f"{r.random()!r} {int(r.integers(-9999, 9999))} {int(r.integers(0, 1 << 62))}")
    return lines


@pytest.mark.parametrize("define", [[], ["-DRLTRAIN_NO_INT128"]], ids=["int128", "portable"])
def test_numpy_rng_matches_numpy(tmp_path: pathlib.Path, define: list[str]) -> None:
    cxx = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler on PATH")
    src = tmp_path / "rng.cpp"
    src.write_text(PROGRAM)
    exe = tmp_path / "rng"
    subprocess.run([cxx, "-std=c++17", "-O1", *define, f"-I{INCLUDE}", str(src), "-o", str(exe)], check=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
    # %.17g and repr differ in spelling, not in value: compare parsed values.
    got = [(float(a), int(b), int(c)) for a, b, c in (line.split() for line in out)]
    want = [(float(a), int(b), int(c)) for a, b, c in (line.split() for line in _numpy_stream())]
    assert got == want
