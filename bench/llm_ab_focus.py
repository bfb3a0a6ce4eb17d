"""Focused A/B of the rows issue 15's % of copy target is short on (group kernels at B = 65,536, scattered ids, the
one 32,768-token row, call overheads), with the shapes and timing helpers of ``rltrain.bench llm`` but no peers, so
that one run takes ~10 s and "before" / "after" trees can be interleaved:

    PYTHONPATH=<tree>/python flock /tmp/rltrain-bench.lock python bench/llm_ab_focus.py OUT.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import torch

from rltrain import _core, kernels
from rltrain.bench._timing import copy_seconds, median_seconds

T = _core._testing
rng = np.random.default_rng(0)
res: dict[str, dict[str, float]] = {}


def tm(name: str, fn: Any, nbytes: int | None = None) -> None:
    s = median_seconds(fn, min_total=0.3, repeats=7)
    res[name] = {"us": s * 1e6}
    if nbytes:
        res[name]["%copy"] = 100 * copy_seconds(nbytes) / s


B = 65536
r = torch.from_numpy(rng.standard_normal(B).astype(np.float32))
o = torch.empty_like(r)
rn, on = r.numpy(), o.numpy()
tm("floor: float64 round trip", lambda: T.floor_roundtrip(rn, on, 0.5), B * 8)
r16, o16, rn16, on16 = r[:16], o[:16], rn[:16], on[:16]
tm("call overhead group (16,)", lambda: kernels.group_advantages(r16, group_size=16, preset="trl", out=o16))
tm("call overhead group numpy (16,)", lambda: kernels.group_advantages(rn16, group_size=16, preset="trl", out=on16))
for sc in ("group", "batch", "none"):
    tm(f"group_advantages {sc}",
       lambda sc=sc: kernels.group_advantages(r, group_size=16, preset="trl", scale=sc, out=o), B * 8)
tm("rloo_advantages", lambda: kernels.rloo_advantages(r, group_size=16, out=o), B * 8)
ids = torch.from_numpy((np.arange(B) // 16)[rng.permutation(B)])
tm("group_advantages ids shuffled", lambda: kernels.group_advantages(r, ids, preset="verl", out=o), B * 16)
tm("rloo_advantages ids shuffled", lambda: kernels.rloo_advantages(r, ids, out=o), B * 16)
if hasattr(T, "floor_permute"):
    order, tmp = np.argsort(ids.numpy(), kind="stable").astype(np.int64), np.empty_like(rn)
    tm("floor: random gather + scatter", lambda: T.floor_permute(order, rn, tmp, on), B * 8)
    tm("floor: divider", lambda: T.floor_divider(rn, 1e-4))
tm("floor: bare counting sort", lambda: T.floor_scatter(ids.numpy(), rn, on, 1e-4))
L = 32768
x = torch.from_numpy(rng.standard_normal((1, L)).astype(np.float32))
v = torch.from_numpy(rng.standard_normal((1, L)).astype(np.float32))
m = torch.from_numpy((np.arange(L)[None] < L * 3 // 4).astype(np.float32))
lp = torch.from_numpy(-rng.random((1, L)).astype(np.float32))
ref = lp + 0.1 * torch.from_numpy(rng.standard_normal((1, L)).astype(np.float32))
a_o, r_o = torch.empty_like(x), torch.empty_like(x)
tm("kl_estimate k3 (1, 32768)", lambda: kernels.kl_estimate(lp, ref, kind="k3", clamp=True, out=a_o), L * 12)
tm("masked_whiten (1, 32768)", lambda: kernels.masked_whiten(x, m, out=a_o), L * 12)
tm("token_returns (1, 32768)", lambda: kernels.token_returns(x, m, gamma=1.0, masked="carry", out=r_o), L * 12)
tm("token_gae (1, 32768)", lambda: kernels.token_gae(x, v, m, gamma=1.0, lam=1.0, out=(a_o, r_o)), L * 20)
lp8, ref8, x8, m8, a8, r8 = lp[:, :8], ref[:, :8], x[:, :8], m[:, :8], a_o[:, :8], r_o[:, :8]
tm("call overhead kl (1, 8)", lambda: kernels.kl_estimate(lp8, ref8, kind="k3", clamp=True, out=a8))
tm("call overhead whiten (1, 8)", lambda: kernels.masked_whiten(x8, m8, out=a8))
tm("call overhead returns (1, 8)", lambda: kernels.token_returns(x8, m8, gamma=1.0, masked="carry", out=r8))
lpn, refn, aon = lp.numpy().ravel(), ref.numpy().ravel(), a_o.numpy().ravel()
tm("floor: bare pass (1, 32768)", lambda: T.floor_pass(lpn, refn, aon), L * 12)
with open(sys.argv[1], "w") as f:
    json.dump(res, f, indent=1)
for k, d in res.items():
    print(f"{k:36s} {d['us']:9.2f} us  {d.get('%copy', float('nan')):6.1f} %copy")
