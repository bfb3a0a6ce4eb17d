"""token_returns and token_gae on one 32,768-token row (the blocked scan of long_row_scan.hpp) on each vector clone
this CPU has (``_core._testing.set_isa_cap``: 2 AVX-512, 1 AVX2, 0 the x86-64 baseline), float and bool masks:

    PYTHONPATH=<tree>/python flock /tmp/rltrain-bench.lock python bench/llm_long_row_clones.py
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from rltrain import _core, kernels
from rltrain.bench._timing import copy_seconds, median_seconds

rng = np.random.default_rng(0)
L = 32768
x = torch.from_numpy(rng.standard_normal((1, L)).astype(np.float32))
v = torch.from_numpy(rng.standard_normal((1, L)).astype(np.float32))
mb = torch.from_numpy(np.arange(L)[None] < L * 3 // 4)
mf = mb.float()
a_o, r_o = torch.empty_like(x), torch.empty_like(x)


def tm(name: str, fn: Callable[[], object], nbytes: int) -> None:
    s = median_seconds(fn, min_total=0.3, repeats=7)
    print(f"{name:30s} {s * 1e6:7.1f} us  {100 * copy_seconds(nbytes) / s:6.1f} %copy")


try:
    for cap in range(_core._testing.cpu_isa(), -1, -1):
        _core._testing.set_isa_cap(cap)
        tm(f"returns float-mask cap{cap}", lambda: kernels.token_returns(x, mf, gamma=0.99, out=a_o), L * 12)
        tm(f"returns bool-mask cap{cap}", lambda: kernels.token_returns(x, mb, gamma=0.99, out=a_o), L * 9)
        tm(f"gae float-mask cap{cap}",
           lambda: kernels.token_gae(x, v, mf, gamma=0.99, lam=0.95, out=(a_o, r_o)), L * 20)
finally:
    _core._testing.set_isa_cap(2)
