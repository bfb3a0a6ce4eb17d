"""The measurements of issue 19 in one hold of the bench lock, each written to ``bench/results/<name>.json`` with
the load average at its start and end (the machine is shared):

    flock /tmp/rltrain-bench.lock python bench/issue19_bench.py floor rlox LunarLander-v3 CartPole-v1

``floor``: ``rltrain.bench.floor.run()``; ``rlox``: ``rltrain.bench.envs.run_rlox()`` (CartPole-v1 at 16, 64 and 256
envs against rlox); an env id: ``rltrain.bench.learning.run`` for that env with 3 rltrain and 3 SB3 seeds.
Run from the repository root.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, "python")

from rltrain.bench._timing import machine


def dump(name: str, load0: tuple[float, float, float], obj: dict[str, Any]) -> None:
    out = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
           "loadavg_start": load0, "loadavg_end": os.getloadavg(), **obj}
    with open(f"bench/results/{name}.json", "w") as f:
        json.dump(out, f, indent=2, default=float)
    print("wrote", name, "load", os.getloadavg(), flush=True)


def main(what: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    print("start", time.strftime("%H:%M:%S"), "load", os.getloadavg(), flush=True)
    if "floor" in what:
        from rltrain.bench import floor

        load0 = os.getloadavg()
        dump("floor", load0, floor.run())
    if "rlox" in what:
        from rltrain.bench import envs

        load0 = os.getloadavg()
        rows = envs.run_rlox()
        dump("envs_rlox", load0, {"rows": rows, "summary": envs.summarize([], rows)})
    for env_id in ("LunarLander-v3", "CartPole-v1"):
        if env_id in what:
            from rltrain.bench import learning

            load0 = os.getloadavg()
            res = learning.run(seeds=3, sb3_seeds={env_id: 3}, envs=(env_id,))
            dump("learning_" + env_id.split("-")[0].lower(), load0, res)


if __name__ == "__main__":
    main(sys.argv[1:])
