"""Run logging: TensorBoard events, a CSV file and optionally Weights & Biases, with Stable-Baselines3's keys,
one row per iteration."""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["Logger"]


class Logger:
    """Collects ``record(key, value)`` calls and writes them on ``dump(step)``.

    Backends: "tensorboard" (``torch.utils.tensorboard.SummaryWriter``; skipped with a warning when the
    ``tensorboard`` package is missing), "csv" (``progress.csv`` in ``log_dir``; the header grows when new
    keys appear, rewriting the file atomically; with ``append=True`` an existing file is continued, as a resumed run
    wants) and "wandb" (``wandb.init(**wandb)`` with ``dir=log_dir``; an optional
    dependency, so asking for it without the package raises; ``WANDB_MODE=offline`` keeps everything local).
    """

    def __init__(self, log_dir: str, backends: Sequence[str] = ("tensorboard", "csv"),
                 wandb: dict[str, Any] | None = None, *, append: bool = False) -> None:
        self.log_dir = log_dir
        os.makedirs(log_dir, exist_ok=True)
        self._values: dict[str, float] = {}
        self._tb: Any = None
        self._csv_path = os.path.join(log_dir, "progress.csv") if "csv" in backends else None
        self._csv_keys: list[str] = []
        if append and self._csv_path is not None and os.path.exists(self._csv_path):
            with open(self._csv_path, newline="") as f:
                self._csv_keys = next(csv.reader(f), [])
        if "tensorboard" in backends:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(log_dir=log_dir)
            except ImportError:
                warnings.warn("tensorboard is not installed: logging to CSV only (pip install tensorboard)",
                              stacklevel=2)
        self._wandb: Any = None
        if "wandb" in backends:
            try:
                import wandb as wandb_module
            except ImportError as exc:
                raise ValueError("loggers: the 'wandb' backend needs the wandb package "
                                 "(pip install 'rltrain[wandb]')") from exc
            kwargs = {k: v for k, v in (wandb or {}).items() if v is not None}
            self._wandb = wandb_module.init(dir=log_dir, reinit="finish_previous", **kwargs)
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
        if self._wandb is not None:
            self._wandb.log({k: v for k, v in vals.items() if math.isfinite(v)}, step=step)
        self.last = vals
        return vals

    def _write_csv(self, step: int, vals: dict[str, float]) -> None:
        path = self._csv_path
        assert path is not None  # only called with the csv logger on
        row = {"step": step, **vals}
        new = [k for k in row if k not in self._csv_keys]
        if new:
            old_rows: list[dict[str, str]] = []
            if self._csv_keys and os.path.exists(path):
                with open(path, newline="") as f:
                    old_rows = list(csv.DictReader(f))
            self._csv_keys += new
            # Rewritten into a temporary file and renamed over the old one: a crash mid-write never leaves a
            # truncated progress.csv behind.
            tmp = f"{path}.tmp{os.getpid()}"
            try:
                with open(tmp, "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=self._csv_keys)
                    w.writeheader()
                    w.writerows(old_rows)
                    w.writerow(row)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                self._csv_keys = self._csv_keys[: len(self._csv_keys) - len(new)]
                if os.path.exists(tmp):
                    os.remove(tmp)
                raise
            return
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self._csv_keys).writerow(row)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None
