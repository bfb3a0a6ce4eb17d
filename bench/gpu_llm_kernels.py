"""Which path each language-model kernel (SPEC §6) should take for CUDA tensors: the torch path on the device
(``rltrain.kernels._torch_paths``) or the host path (``.cpu()`` -> the C++ kernel -> ``.to(device)``).

For every kernel at the benchmark sizes (token kernels: 1024 x 4096 and 1 x 32,768 float32; group kernels:
B = 65,536 in groups of 16, contiguous and with shuffled ids) it times, with CUDA tensors,
  torch   the torch path on the device,
  host    the copy through the public CPU kernel,
  public  ``rltrain.kernels.<name>`` called on the CUDA tensors (whatever ``CUDA_PATH`` dispatches to),
  copy    the host path's copies alone (inputs to the host, the output back), its floor,
each the median of up to --reps calls after a warm-up, with ``torch.cuda.synchronize`` around every call; and the
largest absolute difference between the torch and host results. A failure in one measurement is recorded in the
JSON and the table, never fatal; the whole run keeps within --budget seconds (later measurements are skipped).

    python bench/gpu_llm_kernels.py --json gpu_llm_kernels.json

The last lines printed are the ``CUDA_PATH`` the timings suggest (per kernel, the faster path summed over its
cases). Without a GPU it runs on the CPU (``--device cpu``), which only checks that the script works.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

import rltrain
import rltrain.kernels as K
from rltrain.kernels import _torch_paths as TP

Inputs = dict[str, Any]
# The resolved values of preset="trl" (TRL's GRPOTrainer): what the wrapper hands the torch path.
TRL = {"scale": "group", "ddof": 1, "eps": 1e-4, "eps_on": "std", "singleton": "center"}


@dataclass
class Case:
    kernel: str
    shape: str
    make: Callable[[torch.device, torch.Generator], Inputs]
    torch_fn: Callable[[Inputs], Any]
    public_fn: Callable[[Inputs], Any]
    """Also the host path: called on the inputs moved to the CPU."""
    result: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------ inputs


def _tokens(b: int, n: int, names: tuple[str, ...]) -> Callable[[torch.device, torch.Generator], Inputs]:
    def make(device: torch.device, gen: torch.Generator) -> Inputs:
        out: Inputs = {k: torch.randn(b, n, generator=gen).to(device) for k in names}
        if "ref_logp" in out:  # log-probabilities near each other, as a policy and its reference
            out["logp"] = -out["logp"].abs() - 0.1
            out["ref_logp"] = out["logp"] + 0.05 * out["ref_logp"]
        # A response mask: a prompt-like prefix, then the response up to a random length.
        t = torch.arange(n)
        start = (torch.rand(b, 1, generator=gen) * n / 4).long()
        stop = start + 1 + (torch.rand(b, 1, generator=gen) * (n - start)).long()
        out["mask"] = ((t >= start) & (t < stop)).to(device)
        return out

    return make


def _groups(b: int, k: int, shuffled: bool) -> Callable[[torch.device, torch.Generator], Inputs]:
    def make(device: torch.device, gen: torch.Generator) -> Inputs:
        r = (torch.rand(b, generator=gen) < 0.4).float() + 0.1 * torch.randn(b, generator=gen)
        out: Inputs = {"rewards": r.to(device), "group_ids": None, "group_size": k}
        if shuffled:
            out["group_ids"] = (torch.arange(b) // k)[torch.randperm(b, generator=gen)].to(device)
            out["group_size"] = None
        return out

    return make


def _cases() -> list[Case]:
    cases: list[Case] = []
    for b, n in [(1024, 4096), (1, 32768)]:
        shape = f"{b} x {n}"
        cases += [
            Case(
                "token_returns",
                shape,
                _tokens(b, n, ("r",)),
                lambda x: TP.token_returns(x["r"], x["mask"], gamma=1.0, masked="restart"),
                lambda x: K.token_returns(x["r"], x["mask"], gamma=1.0),
            ),
            Case(
                "masked_whiten",
                shape,
                _tokens(b, n, ("x",)),
                lambda x: TP.masked_whiten(x["x"], x["mask"], shift_mean=True, eps=1e-8),
                lambda x: K.masked_whiten(x["x"], x["mask"], shift_mean=True, eps=1e-8),
            ),
            Case(
                "token_gae",
                shape,
                _tokens(b, n, ("r", "v")),
                lambda x: TP.token_gae(x["r"], x["v"], x["mask"], gamma=1.0, lam=0.95),
                lambda x: K.token_gae(x["r"], x["v"], x["mask"], gamma=1.0, lam=0.95),
            ),
            Case(
                "kl_estimate",
                shape,
                _tokens(b, n, ("logp", "ref_logp")),
                lambda x: TP.kl_estimate(x["logp"], x["ref_logp"], x["mask"], kind="k3", clamp=False),
                lambda x: K.kl_estimate(x["logp"], x["ref_logp"], x["mask"], kind="k3"),
            ),
        ]
    for b, k, shuffled in [(65536, 16, False), (65536, 16, True), (1048576, 16, True)]:
        shape = f"{b} / {k}" + (" shuffled ids" if shuffled else "")
        cases += [
            Case(
                "group_advantages",
                shape,
                _groups(b, k, shuffled),
                lambda x: TP.group_advantages(
                    x["rewards"], x["group_ids"], group_size=x["group_size"], reward_weights=None, combine="sum", **TRL
                ),
                lambda x: K.group_advantages(x["rewards"], x["group_ids"], group_size=x["group_size"], preset="trl"),
            ),
            Case(
                "rloo_advantages",
                shape,
                _groups(b, k, shuffled),
                lambda x: TP.rloo_advantages(x["rewards"], x["group_ids"], group_size=x["group_size"]),
                lambda x: K.rloo_advantages(x["rewards"], x["group_ids"], group_size=x["group_size"]),
            ),
        ]
    return cases


# ------------------------------------------------------------------------------------------------ timing


def _to(x: Inputs, device: torch.device) -> Inputs:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in x.items()}


def _tensors(y: Any) -> list[torch.Tensor]:
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _host(case: Case, x: Inputs, device: torch.device) -> Any:
    y = case.public_fn(_to(x, torch.device("cpu")))
    out = [t.to(device) for t in _tensors(y)]
    return tuple(out) if isinstance(y, (tuple, list)) else out[0]


def _copies(x: Inputs, y: Any, device: torch.device) -> None:
    """The host path without the kernel: the inputs to the host, an output-sized tensor back."""
    _to(x, torch.device("cpu"))
    for t in _tensors(y):
        torch.empty_like(t, device="cpu").to(device)


def _time(fn: Callable[[], Any], reps: int, budget_s: float, sync: Callable[[], None]) -> dict[str, Any]:
    """Median and minimum milliseconds of up to ``reps`` calls after two warm-up calls; fewer when one call is
    slow (each measurement gets about ``budget_s`` seconds)."""
    for _ in range(2):
        sync()
        fn()
        sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < reps and (len(times) < 3 or time.perf_counter() - start < budget_s):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(1e3 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "reps": len(times)}


def _max_diff(a: Any, b: Any) -> tuple[float, float]:
    """Largest |a - b| over all outputs, and the largest |b| (to read the difference against)."""
    diff = scale = 0.0
    for s, t in zip(_tensors(a), _tensors(b)):
        d = (s.double() - t.to(s.device).double()).abs()
        diff = max(diff, float(d.nan_to_num(nan=float("inf")).max()))
        scale = max(scale, float(t.double().abs().max()))
    return diff, scale


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def run_case(case: Case, device: torch.device, reps: int, budget_s: float, sync: Callable[[], None]) -> None:
    res = case.result
    gen = torch.Generator().manual_seed(0)
    try:
        x = case.make(device, gen)
    except Exception as e:
        res["error"] = _err(e)
        return
    outs: dict[str, Any] = {}
    paths: dict[str, Callable[[], Any]] = {
        "torch": lambda: case.torch_fn(x),
        "host": lambda: _host(case, x, device),
        "public": lambda: case.public_fn(x),
    }
    for name, fn in paths.items():
        try:
            outs[name] = fn()
            res[name] = _time(fn, reps, budget_s, sync)
        except Exception as e:
            res[name] = {"error": _err(e)}
            if os.environ.get("GPU_BENCH_TRACEBACK"):
                traceback.print_exc()
    ref = outs.get("host", outs.get("torch"))
    if ref is not None:
        try:
            res["copy"] = _time(lambda: _copies(x, ref, device), reps, budget_s, sync)
        except Exception as e:
            res["copy"] = {"error": _err(e)}
    for name in ("torch", "public"):
        if name in outs and "host" in outs:
            try:
                diff, scale = _max_diff(outs[name], outs["host"])
                res[f"max_abs_diff_{name}_vs_host"] = diff
                res["max_abs_host"] = scale
            except Exception as e:
                res[f"max_abs_diff_{name}_vs_host"] = _err(e)
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ report


def _ms(res: dict[str, Any], name: str) -> float | None:
    v = res.get(name)
    return v.get("median_ms") if isinstance(v, dict) else None


def recommend(cases: list[Case]) -> dict[str, str]:
    """Per kernel, the path with the smaller total median time over the cases where both were measured."""
    totals: dict[str, list[float]] = {}
    for c in cases:
        t, h = _ms(c.result, "torch"), _ms(c.result, "host")
        if t is not None and h is not None:
            acc = totals.setdefault(c.kernel, [0.0, 0.0])
            acc[0] += t
            acc[1] += h
    return {k: ("torch" if t <= h else "host") for k, (t, h) in totals.items()}


def table(cases: list[Case]) -> str:
    head = f"{'kernel':<17} {'shape':<26} {'torch ms':>9} {'host ms':>9} {'copy ms':>9} {'public ms':>9} "
    head += f"{'faster':>6}  {'max|torch-host|':>15} {'max|host|':>10}  errors"
    lines = [head, "-" * len(head)]
    for c in cases:
        r = c.result
        cols = [_ms(r, n) for n in ("torch", "host", "copy", "public")]
        t, h = cols[0], cols[1]
        faster = "-" if t is None or h is None else ("torch" if t <= h else "host")
        diff = r.get("max_abs_diff_torch_vs_host")
        errs = "; ".join(
            f"{n}: {r[n]['error']}"
            for n in ("torch", "host", "copy", "public")
            if isinstance(r.get(n), dict) and "error" in r[n]
        )
        errs = errs or r.get("error", "") or r.get("skipped", "")
        fmt = [f"{v:9.3f}" if v is not None else f"{'-':>9}" for v in cols]
        d = f"{diff:15.3g}" if isinstance(diff, float) else f"{'-':>15}"
        s = r.get("max_abs_host")
        sc = f"{s:10.3g}" if isinstance(s, float) else f"{'-':>10}"
        lines.append(f"{c.kernel:<17} {c.shape:<26} {' '.join(fmt)} {faster:>6}  {d} {sc}  {errs}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--reps", type=int, default=20, help="timed calls per measurement (at most)")
    p.add_argument("--budget", type=float, default=80.0, help="seconds for the whole run; later cases are skipped")
    p.add_argument("--only", default=None, help="comma-separated kernel names")
    args = p.parse_args()

    t_start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.init()
        torch.empty(1, device=device)

        def sync() -> None:
            torch.cuda.synchronize(device)

    else:

        def sync() -> None:
            pass

    cases = _cases()
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c.kernel in keep]
    # Each of a case's four measurements gets an equal share of what is left, at most 1.5 s.
    for i, c in enumerate(cases):
        left = args.budget - (time.perf_counter() - t_start)
        if left < 2.0:
            c.result["skipped"] = "time budget spent"
            continue
        per = min(1.5, left / (4 * (len(cases) - i)))
        t0 = time.perf_counter()
        run_case(c, device, args.reps, per, sync)
        c.result["wall_s"] = round(time.perf_counter() - t0, 3)
        print(f"[{time.perf_counter() - t_start:6.1f} s] {c.kernel} {c.shape} done", flush=True)

    print()
    print(table(cases))
    rec = recommend(cases)
    suggested = {k: rec.get(k, TP.CUDA_PATH.get(k, "torch")) for k in TP.CUDA_PATH}
    print("\nmeasured faster path per kernel (sum of medians over its cases):")
    print("CUDA_PATH = " + json.dumps(suggested, indent=4))
    missing = sorted(set(TP.CUDA_PATH) - set(rec))
    if missing:
        print(f"(not measured on both paths, kept as it was: {', '.join(missing)})")

    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "rltrain": getattr(rltrain, "__version__", "?"),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "rltrain_threads": K.get_num_threads(),
        "cuda_path_in_package": dict(TP.CUDA_PATH),
        "reps": args.reps,
        "wall_s": round(time.perf_counter() - t_start, 2),
    }
    doc = {
        "meta": meta,
        "cases": [{"kernel": c.kernel, "shape": c.shape, **c.result} for c in cases],
        "faster_path": rec,
        "suggested_cuda_path": suggested,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
