"""Compiled kernels (step 1 of the split: the old module, moved unchanged)."""

from rltrain.kernels.advantages import *  # noqa: F403
from rltrain.kernels.advantages import __all__  # noqa: F401
