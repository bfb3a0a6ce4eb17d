"""Shared pytest/Hypothesis configuration: deterministic, bounded property tests and thread-count hygiene."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Deterministic by default (derandomize: the same examples on every run, no example database), bounded so the
# kernel suites stay fast on a 2-core machine. HYPOTHESIS_PROFILE=thorough explores more (still deterministic
# unless HYPOTHESIS_PROFILE=random).
_COMMON = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("ci", max_examples=100, derandomize=True, **_COMMON)
# The sanitizer stages of .ci/run (ASan + UBSan, ThreadSanitizer) run the property tests with fewer examples: there
# every call is 3-20x slower, and they look for memory errors and races, which the fixed-shape tests and the first
# examples (Hypothesis tries the small and edge cases first) reach; the default suite keeps 100.
settings.register_profile("sanitizer", max_examples=25, derandomize=True, **_COMMON)
settings.register_profile("thorough", max_examples=1000, derandomize=True, **_COMMON)
settings.register_profile("random", max_examples=200, derandomize=False, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# When a property test fails, Hypothesis's pytest plugin imports its patch writer, which imports libcst,
# which emits a DeprecationWarning (mypy_extensions.TypedDict); with warnings as errors that turns the
# failure report into an INTERNALERROR. Import it once here with that warning silenced, so failures are
# reported normally.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    # Optional (libcst missing, private module moved): then there is nothing to pre-import.
    with contextlib.suppress(Exception):
        import hypothesis.extra._patching  # noqa: F401


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """Restores the kernel thread count a test changes with ``rltrain.kernels.set_num_threads``."""
    from rltrain import kernels

    before = kernels.get_num_threads()
    try:
        yield
    finally:
        kernels.set_num_threads(before)
