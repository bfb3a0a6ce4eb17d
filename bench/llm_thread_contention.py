"""Kernel calls at the sizes issue 15's bench uses, on one and on two kernel threads, to compare an idle machine with
one where another process keeps a core busy (start one yourself, e.g. ``python -c "while True: pass" &``):

    PYTHONPATH=<tree>/python flock /tmp/rltrain-bench.lock python bench/llm_thread_contention.py OUT.json
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from rltrain import kernels
from rltrain.bench._timing import median_seconds

rng = np.random.default_rng(0)
B, L = 65536, 32768
r = torch.from_numpy(rng.standard_normal(B).astype(np.float32))
o = torch.empty_like(r)
x = torch.from_numpy(rng.standard_normal((1, L)).astype(np.float32))
xo = torch.empty_like(x)
xr = x * 0.9
m = torch.from_numpy((np.arange(L)[None] < L * 3 // 4).astype(np.float32))
calls = {
    "group_advantages group": lambda: kernels.group_advantages(r, group_size=16, preset="trl", out=o),
    "group_advantages batch": lambda: kernels.group_advantages(r, group_size=16, preset="trl", scale="batch", out=o),
    "kl_estimate k3 (1,32768)": lambda: kernels.kl_estimate(x, xr, kind="k3", out=xo),
    "masked_whiten (1,32768)": lambda: kernels.masked_whiten(x, m, out=xo),
}
res = {}
for threads in (1, 2):
    kernels.set_num_threads(threads)
    for name, fn in calls.items():
        res[f"{name} threads={threads}"] = median_seconds(fn, min_total=0.3, repeats=7) * 1e6
for k, v in res.items():
    print(f"{k:40s} {v:8.1f} us")
if len(sys.argv) > 1:
    with open(sys.argv[1], "w") as f:
        json.dump(res, f, indent=1)
