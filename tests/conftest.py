"""Shared pytest/Hypothesis configuration: deterministic, bounded property tests and thread-count hygiene."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Deterministic by default (derandomize: the same examples on every run, no example database), bounded so the
# kernel suites stay fast on a 2-core machine. HYPOTHESIS_PROFILE=thorough explores more (still deterministic
# unless HYPOTHESIS_PROFILE=random).
_COMMON = dict(
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", max_examples=60, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, derandomize=True, **_COMMON)
settings.register_profile("random", max_examples=200, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """Restores the kernel thread count a test changes with ``rltrain.kernels.set_num_threads``."""
    from rltrain import kernels

    before = kernels.get_num_threads()
    try:
        yield
    finally:
        kernels.set_num_threads(before)
