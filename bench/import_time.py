"""Import time of rltrain's package face: each statement timed in fresh interpreters, printed as a markdown table.

Every run is a new ``sys.executable -c`` process that times only the statement (``time.perf_counter`` around
``exec``), so interpreter start-up is excluded and nothing is cached in ``sys.modules``. One discarded run per
statement first warms the OS file cache. Reports the median, min and max over ``--runs`` runs, with the date,
machine and versions the numbers belong to. Run it against an installed rltrain (not the source tree).

    python bench/import_time.py --runs 7
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys

STATEMENTS = (
    "import numpy",
    "import torch",
    "import rltrain.kernels",
    "import rltrain",
    "import rltrain; rltrain.PPOTrainer",
)

_CHILD = (
    "import time, sys\n"
    "t0 = time.perf_counter()\n"
    "exec(sys.argv[1])\n"
    "t1 = time.perf_counter()\n"
    "print(repr((t1 - t0) * 1e3), int('torch' in sys.modules))\n"
)


def _time_once(stmt: str) -> tuple[float, bool]:
    out = subprocess.run([sys.executable, "-c", _CHILD, stmt], check=True, capture_output=True, text=True)
    ms, torch_loaded = out.stdout.split()
    return float(ms), torch_loaded == "1"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> str:
    probe = (
        "import importlib.metadata as m, rltrain, os\n"
        "v = lambda p: m.version(p)\n"
        "print(f'numpy {v(\"numpy\")}, torch {v(\"torch\")}, gymnasium {v(\"gymnasium\")}, '"
        " f'rltrain {rltrain.__version__} from {os.path.dirname(rltrain.__file__)}')\n"
    )
    return subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout.strip()


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per statement (default 7)")
    args = ap.parse_args()
    if args.runs < 1:
        ap.error("--runs: expected an int >= 1")

    load_before = _load_average()
    rows = []
    for stmt in STATEMENTS:
        _time_once(stmt)  # warm the file cache; not counted
        samples, torch_loaded = [], False
        for _ in range(args.runs):
            ms, torch_loaded = _time_once(stmt)
            samples.append(ms)
        rows.append((stmt, statistics.median(samples), min(samples), max(samples), torch_loaded))

    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    cmd = " ".join(shlex.quote(a) for a in [os.path.basename(sys.executable), *sys.argv])
    print(f"Import time, {now}; {os.cpu_count()} CPUs ({_cpu_model()}); Python {platform.python_version()}; "
          f"{_versions()}.")
    print(f"Command: `{cmd}`; {args.runs} fresh processes per statement after one warm-up run, the statement "
          f"alone timed (interpreter start-up excluded). 1-min load average {load_before} before, "
          f"{_load_average()} after ({os.cpu_count()} CPUs).\n")
    print("| statement | median ms | min ms | max ms | torch loaded |")
    print("|---|---:|---:|---:|---|")
    for stmt, med, lo, hi, torch_loaded in rows:
        print(f"| `{stmt}` | {med:.1f} | {lo:.1f} | {hi:.1f} | {'yes' if torch_loaded else 'no'} |")


if __name__ == "__main__":
    main()
