"""``python -m rltrain ...`` (and ``torchrun -m rltrain train ...``): the same command line as ``rltrain``."""

from __future__ import annotations

import sys

from rltrain.cli import main

if __name__ == "__main__":
    sys.exit(main())
