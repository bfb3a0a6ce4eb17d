"""Timing helpers shared by the benchmark sections: medians of repeated calls, a hot-cache copy reference."""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def median_seconds(fn: Callable[[], Any], *, min_total: float = 0.3, repeats: int = 7,
                   max_loops: int = 10_000) -> float:
    """Median over ``repeats`` timings, each of enough back-to-back calls to last ``min_total / repeats``."""
    fn()
    t0 = time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-7)
    loops = int(min(max_loops, max(1, (min_total / repeats) / one)))
    gc_was = gc.isenabled()
    gc.disable()
    try:
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(loops):
                fn()
            samples.append((time.perf_counter() - t0) / loops)
    finally:
        if gc_was:
            gc.enable()
    return statistics.median(samples)


def copy_seconds(nbytes: int) -> float:
    """Hot-cache time to copy ``nbytes / 2`` bytes (so ``nbytes`` are read + written), as a bandwidth yardstick."""
    half = max(nbytes // 2, 1)
    src = np.ones(half, np.uint8)
    dst = np.empty_like(src)
    return median_seconds(lambda: np.copyto(dst, src))


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__}


def fmt_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            if v == 0 or 0.01 <= abs(v) < 1e5:
                return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
            return f"{v:.3g}"
        return "" if v is None else str(v)

    body = [[cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(cols)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    out = [line, sep]
    out += ["| " + " | ".join(b[i].ljust(widths[i]) for i in range(len(cols))) + " |" for b in body]
    return "\n".join(out)
