"""Benchmarks: ``python -m rltrain.bench [SECTION ...] [--json PATH]``; sections listed by ``--help``."""

from __future__ import annotations
