"""``python -m rltrain.bench [kernels|envs|learning|grpo|control|sb3|scale|floor ...] [--json PATH] [--quick]``."""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
from typing import Any

from rltrain.bench._timing import machine

SECTIONS = {"kernels": "rltrain.bench.kernels", "envs": "rltrain.bench.envs", "learning": "rltrain.bench.learning",
            "grpo": "rltrain.bench.grpo", "control": "rltrain.bench.control", "sb3": "rltrain.bench.sb3",
            "cleanrl": "rltrain.bench.cleanrl", "llm": "rltrain.bench.llm",
            "scale": "rltrain.bench.scale", "floor": "rltrain.bench.floor"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rltrain.bench", description=__doc__)
    p.add_argument("sections", nargs="*", default=["kernels"], help=f"any of {sorted(SECTIONS)} (default: kernels)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = p.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        p.error(f"unknown section(s) {unknown}; expected any of {sorted(SECTIONS)}")
    sections: dict[str, Any] = {}
    result = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(), "sections": sections}
    print(f"rltrain bench on {result['machine']}")
    for name in args.sections:
        mod = importlib.import_module(SECTIONS[name])
        sections[name] = mod.run(quick=args.quick)
        summary = sections[name].get("summary")
        if summary:
            print("summary: " + ", ".join(f"{k}={v:.3g}" for k, v in summary.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, default=float)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
