"""Run logging: TensorBoard events and a CSV file with Stable-Baselines3's keys, one row per iteration."""

from __future__ import annotations

import csv
import math
import os
import warnings
from typing import Any, Sequence

__all__ = ["Logger"]


class Logger:
    """Collects ``record(key, value)`` calls and writes them on ``dump(step)``.

    Backends: "tensorboard" (``torch.utils.tensorboard.SummaryWriter``; skipped with a warning when the
    ``tensorboard`` package is missing) and "csv" (``progress.csv`` in ``log_dir``; the header grows when new
    keys appear, rewriting the file once).
    """

    def __init__(self, log_dir: str, backends: Sequence[str] = ("tensorboard", "csv")) -> None:
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self._values: dict[str, float] = {}
        self._tb: Any = None
        self._csv_path = os.path.join(log_dir, "progress.csv") if "csv" in backends else None
        self._csv_keys: list[str] = []
        if "tensorboard" in backends:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=log_dir)
            except ImportError:
                warnings.warn("tensorboard is not installed: logging to CSV only (pip install tensorboard)",
                              stacklevel=2)
        self.last: dict[str, float] = {}

    def record(self, key: str, value: Any) -> None:
        self._values[key] = float(value)

    def dump(self, step: int) -> dict[str, float]:
        vals, self._values = self._values, {}
        if not vals:
            return {}
        if self._tb is not None:
            for k, v in vals.items():
                if math.isfinite(v):
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._csv_path is not None:
            self._write_csv(step, vals)
        self.last = vals
        return vals

    def _write_csv(self, step: int, vals: dict[str, float]) -> None:
        row = {"step": step, **vals}
        new = [k for k in row if k not in self._csv_keys]
        if new:
            old_rows: list[dict[str, str]] = []
            if self._csv_keys and os.path.exists(self._csv_path):
                with open(self._csv_path, newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self._csv_keys += new
            with open(self._csv_path, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self._csv_keys)
                w.writeheader()
                w.writerows(old_rows)
                w.writerow(row)
            return
        with open(self._csv_path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._csv_keys).writerow(row)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
