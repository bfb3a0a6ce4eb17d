"""Floor analysis of PPO on LunarLander-v3 with RL-Zoo's hyperparameters (16 envs x 1024 steps, 4 epochs of
minibatches of 64, the default 64x64 tanh actor and critic): the arithmetic of one iteration, this machine's measured
rate for it, and how far the end-to-end time is from the sum of the parts that cannot be avoided.

* FLOPs: the update (forward and backward through both trunks and heads for 4 x 16,384 samples: weight gradients
  for every layer, input gradients for all but the first) and the inference (one forward pass for 16 envs per step).
  Only matrix products are counted (2 FLOPs per multiply-add); activations, the loss and Adam are O(params) or
  O(B * H) and excluded.
* Rates (one thread): torch ``addmm`` on the update's shapes (B = 64) and the inference's (B = 16), one call at a
  time as an update runs them; torch on the same products batched into one large GEMM (rows = 16,384; the best
  rate this core reaches for these K and N); the C++ epoch (``rltrain._core.kernels.ppo_mlp_epoch``) as trained.
* Floor: native LunarLander stepping at one thread for 16,384 steps, plus the FLOPs at the best measured rate.
  End-to-end: ``PPOTrainer`` iterations (collect + update), median of ``ITERS``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rltrain.bench._timing import fmt_table

OBS, H, A, G, T, MB, EPOCHS = 8, 64, 4, 16, 1024, 64, 4
ITERS = 5


def layer_macs() -> tuple[int, int, int]:
    """Per sample: forward multiply-adds (both trunks and heads), backward weight-gradient and input-gradient
    multiply-adds."""
    fwd = (OBS * H + H * H + H * A) + (OBS * H + H * H + H * 1)
    wgrad = fwd
    igrad = (H * H + H * A) + (H * H + H * 1)  # the first layer needs no input gradient
    return fwd, wgrad, igrad


def flops() -> dict[str, float]:
    fwd, wgrad, igrad = layer_macs()
    n = G * T
    return {"update_flops_per_iter": 2.0 * (fwd + wgrad + igrad) * n * EPOCHS,
            "inference_flops_per_step": 2.0 * fwd * G, "inference_flops_per_iter": 2.0 * fwd * G * T}


def _time(fn: Any, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def _gemm_rate(rows: int, k: int, n: int, reps: int) -> float:
    """GFLOP/s of torch.addmm([rows, k] @ [k, n] + bias), one thread."""
    import torch

    x, w, b = torch.randn(rows, k), torch.randn(k, n), torch.randn(n)
    out = torch.empty(rows, n)
    secs = _time(lambda: torch.addmm(b, x, w, out=out), reps)
    return 2.0 * rows * k * n / secs / 1e9


def rates(quick: bool) -> list[dict[str, Any]]:
    reps = 200 if quick else 2000
    rows = []
    for label, b in (("update minibatch", MB), ("inference step", G), ("batched (one GEMM)", G * T)):
        r = reps if b < 1024 else max(reps // 100, 5)
        for k, n in ((OBS, H), (H, H), (H, A)):
            rows.append({"shape": f"[{b},{k}]x[{k},{n}]", "use": label, "gflops": _gemm_rate(b, k, n, r)})
    return rows


def _trainer(fast_epoch: bool) -> Any:
    import torch

    from rltrain import PPOConfig, PPOTrainer
    from rltrain.policies import ActorCriticPolicy

    cfg = PPOConfig(env="LunarLander-v3", G=G, T=T, minibatches=G * T // MB, epochs=EPOCHS, lam=0.98, gamma=0.999,
                    ent_coef=0.01, lr=3e-4, clip_eps=0.2, target_kl=None, seed=0, verbose=0, n_workers=1,
                    log_dir="/tmp/rltrain-bench-runs", loggers=("csv",), save_best=False)
    torch.manual_seed(0)
    tr = PPOTrainer(ActorCriticPolicy(OBS, A), cfg)
    assert tr.fused is not None
    tr.fused.native_epoch = fast_epoch
    tr._ensure_env()
    return tr


def iteration_split(iters: int, fast_epoch: bool = True) -> dict[str, float]:
    """Median seconds of collect and update per iteration (one env thread, the fused update)."""
    tr = _trainer(fast_epoch)
    col, upd = [], []
    try:
        for _ in range(iters + 1):
            t0 = time.perf_counter()
            res = tr._collect()
            t1 = time.perf_counter()
            tr._update(res["advantages"], res["returns"], 0.5)
            t2 = time.perf_counter()
            col.append(t1 - t0)
            upd.append(t2 - t1)
    finally:
        tr.close()
    return {"collect_s": float(np.median(col[1:])), "update_s": float(np.median(upd[1:]))}


def env_seconds(quick: bool) -> float:
    """Seconds for G x T native LunarLander steps at one thread with random actions (the batcher alone)."""
    from rltrain import make_vec

    steps = 256 if quick else T
    acts = np.random.default_rng(0).integers(0, A, size=(steps + 50, G))
    env: Any = make_vec("LunarLander-v3", G, backend="native", seed=0, num_threads=1)
    try:
        env.reset(seed=0)
        for a in acts[:50]:
            env.core.step(a)
        t0 = time.perf_counter()
        for a in acts[50:]:
            env.core.step(a)
        return (time.perf_counter() - t0) * T / steps
    finally:
        env.close()


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    f = flops()
    rate_rows = rates(quick)
    print(fmt_table(rate_rows, ["use", "shape", "gflops"]))
    peak = max(r["gflops"] for r in rate_rows)
    env_s = env_seconds(quick)
    iters = 2 if quick else ITERS
    fast = iteration_split(iters, True)
    step = iteration_split(iters, False)
    compute_floor = (f["update_flops_per_iter"] + f["inference_flops_per_iter"]) / (peak * 1e9)
    floor_s = env_s + compute_floor
    e2e = fast["collect_s"] + fast["update_s"]
    out = {**f, "best_gflops": peak, "env_s_per_iter": env_s, "compute_floor_s_per_iter": compute_floor,
           "floor_s_per_iter": floor_s, "fast_epoch": fast, "fused_step": step,
           "cpp_update_gflops": f["update_flops_per_iter"] / fast["update_s"] / 1e9,
           "torch_step_update_gflops": f["update_flops_per_iter"] / step["update_s"] / 1e9,
           "e2e_s_per_iter": e2e, "e2e_steps_per_s": G * T / e2e, "floor_steps_per_s": G * T / floor_s}
    rows = [{"part": "env stepping (native, 1 thread)", "seconds": env_s},
            {"part": f"update FLOPs {f['update_flops_per_iter'] / 1e9:.3f} G at {peak:.0f} GFLOP/s",
             "seconds": f["update_flops_per_iter"] / (peak * 1e9)},
            {"part": f"inference FLOPs {f['inference_flops_per_iter'] / 1e9:.3f} G at {peak:.0f} GFLOP/s",
             "seconds": f["inference_flops_per_iter"] / (peak * 1e9)},
            {"part": "floor (sum)", "seconds": floor_s},
            {"part": "measured collect (C++ epoch run)", "seconds": fast["collect_s"]},
            {"part": "measured update, C++ epoch", "seconds": fast["update_s"]},
            {"part": "measured update, torch fused step", "seconds": step["update_s"]},
            {"part": "measured iteration (C++ epoch)", "seconds": e2e}]
    print(fmt_table(rows, ["part", "seconds"]))
    summary = {"e2e_pct_of_floor": 100.0 * floor_s / e2e, "cpp_update_gflops": out["cpp_update_gflops"],
               "best_gflops": peak, "e2e_steps_per_s": out["e2e_steps_per_s"]}
    return {**out, "rates": rate_rows, "table": rows, "summary": summary}
