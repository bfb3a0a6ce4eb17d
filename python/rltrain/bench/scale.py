"""Scale-out benchmark: PPO iterations with local rollouts vs Ray rollout workers (1 and 2 actors of E envs each),
on CartPole-v1 and LunarLander-v3 with E=16 envs x T=1024 steps per worker and PPO's default update (10 epochs x 32
minibatches). Per iteration: time, env steps/s, and the split into collect (the rollout loop itself: local, or the
slowest worker's own time), Ray overhead (what the learner waits beyond that: weights to the object store, the call,
results back, concatenation), and update. Also the bytes a worker sends and receives per iteration, from which
``scaling_model`` extrapolates to 1..256 workers.

Rows: ``local``: G=E envs in this process (fast batched forward); ``local-inv``: the same with
``batch_invariant=True``, the forward Ray runs use so that their results equal a local run's; ``ray-1``, ``ray-2``:
K workers x E envs (G = K*E), batch-invariant. Each row: one warm-up iteration, then ``iters`` timed ones; the whole
set repeated ``rounds`` times (medians, min-max spread).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

from rltrain.bench._timing import fmt_table

ENVS = ("CartPole-v1", "LunarLander-v3")
ROWS = (("local", 0, False), ("local-inv", 0, True), ("ray-1", 1, True), ("ray-2", 2, True))
"""(label, Ray workers (0: local), batch-invariant forward)."""
NIC_BYTES_PER_S = 1.25e9
"""Learner network bandwidth the model assumes (10 Gbit/s Ethernet)."""
CALL_LATENCY_S = 2e-3
"""Per-worker round trip the model assumes for a Ray call between nodes."""


def _timed_trainer(env: str, workers: int, invariant: bool, E: int, T: int, seed: int) -> Any:
    from rltrain import PPOConfig, PPOTrainer

    kw: dict[str, Any] = {"env": env, "T": T, "seed": seed, "verbose": 0, "loggers": (),
                          "log_dir": os.path.join(tempfile.gettempdir(), "rltrain-bench-scale")}
    if workers:
        kw.update(G=workers * E, rollout_backend="ray", num_rollout_workers=workers)
    else:
        kw.update(G=E, batch_invariant=invariant)
    tr = PPOTrainer(None, PPOConfig(**kw))
    times: dict[str, float] = {"collect": 0.0, "update": 0.0}
    collect, update = tr._collect, tr._update

    def timed_collect() -> Any:
        t0 = time.perf_counter()
        out = collect()
        times["collect"] = time.perf_counter() - t0
        return out

    def timed_update(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        out = update(*a, **k)
        times["update"] = time.perf_counter() - t0
        return out

    tr._collect, tr._update = timed_collect, timed_update  # type: ignore[method-assign]
    return tr, times


def _bytes_per_worker(tr: Any, workers: int) -> dict[str, int]:
    """Payload one worker receives (weights, its noise slice) and sends back (its columns of the rollout arrays,
    last values, observations) per iteration, from the arrays of the last iteration."""
    k = max(workers, 1)
    weights = sum(v.numel() * v.element_size() for v in tr.policy.state_dict().values())
    noise = tr._rollout_noise((tr.cfg.T, tr.cfg.G))
    noise_bytes = 0 if noise is None else noise.numel() * noise.element_size()
    rollout = sum(int(v.nbytes) for v in tr._buffers.values()) + (tr._obs.nbytes + 4 * tr.cfg.G)
    return {"recv": int(weights + noise_bytes // k), "send": int(rollout // k)}


def measure(env: str, label: str, workers: int, invariant: bool, *, E: int, T: int, iters: int) -> dict[str, Any]:
    tr, times = _timed_trainer(env, workers, invariant, E, T, seed=0)
    try:
        tr.train(1)  # warm-up: actors started, envs reset, caches warm
        rows = []
        for _ in range(iters):
            t0 = time.perf_counter()
            tr.train(1)
            wall = time.perf_counter() - t0
            learner_collect = times["collect"]
            if tr._ray is not None:
                worker = tr._ray.timing["collect_s"]
                overhead = learner_collect - worker
            else:
                worker, overhead = learner_collect, 0.0
            rows.append({"iter_s": wall, "collect_s": worker, "ray_overhead_s": overhead, "update_s": times["update"],
                         "other_s": wall - learner_collect - times["update"]})
        payload = _bytes_per_worker(tr, workers)
    finally:
        tr.close()
    G = (workers or 1) * E
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    med["steps_per_s"] = G * T / med["iter_s"]
    med["overhead_frac"] = med["ray_overhead_s"] / med["iter_s"]
    return {"env": env, "row": label, "workers": workers, "G": G, "E": E, "T": T, **med, **payload}


def scaling_model(base: dict[str, Any], max_workers: int = 256, learners: int = 1) -> list[dict[str, Any]]:
    """Synchronous iteration time with K workers from one measured ``ray-1`` row: collect stays the per-worker
    time (workers run in parallel, one core each), the update grows with the batch (K times the measured update,
    divided among ``learners`` data-parallel learners, ideal), transfer is K workers' bytes through one learner NIC
    plus a call latency per worker (results arrive concurrently: only the bandwidth term is serial)."""
    out = []
    k = 1
    while k <= max_workers:
        collect = base["collect_s"] + base["ray_overhead_s"]
        update = k * base["update_s"] / learners
        transfer = k * (base["send"] + base["recv"]) / NIC_BYTES_PER_S + CALL_LATENCY_S
        it = collect + transfer + update
        out.append({"workers": k, "collect_s": collect, "transfer_s": transfer, "update_s": update, "iter_s": it,
                    "steps_per_s": k * base["E"] * base["T"] / it, "learner_share": update / it})
        k *= 2
    return out


def run(quick: bool = False, rounds: int = 3, iters: int = 2) -> dict[str, Any]:
    E, T = 16, (256 if quick else 1024)
    if quick:
        rounds, iters = 1, 1
    results: list[dict[str, Any]] = []
    for r in range(rounds):
        for env in ENVS:
            for label, workers, inv in ROWS:
                res = measure(env, label, workers, inv, E=E, T=T, iters=iters)
                res["round"] = r
                results.append(res)
                print(f"round {r} {env} {label}: {res['iter_s']:.2f} s/iter, {res['steps_per_s']:.0f} steps/s, "
                      f"collect {res['collect_s']:.2f} s, ray {res['ray_overhead_s']:.3f} s, update "
                      f"{res['update_s']:.2f} s", flush=True)
    table = []
    for env in ENVS:
        for label, _, _ in ROWS:
            rs = [x for x in results if x["env"] == env and x["row"] == label]
            row: dict[str, Any] = {"env": env, "row": label}
            for k in ("iter_s", "steps_per_s", "collect_s", "ray_overhead_s", "update_s", "overhead_frac"):
                vals = [x[k] for x in rs]
                row[k] = statistics.median(vals)
                row[k + "_min"], row[k + "_max"] = min(vals), max(vals)
            row.update({k: rs[0][k] for k in ("G", "E", "T", "send", "recv")})
            table.append(row)
    print(fmt_table(table, ["env", "row", "G", "iter_s", "steps_per_s", "collect_s", "ray_overhead_s", "update_s",
                            "overhead_frac"]))
    models = {}
    for env in ENVS:
        base = next(x for x in table if x["env"] == env and x["row"] == "ray-1")
        models[env] = {"learners_1": scaling_model(base), "learners_8": scaling_model(base, learners=8)}
        print(f"scaling model, {env} (1 learner):")
        print(fmt_table(models[env]["learners_1"], ["workers", "collect_s", "transfer_s", "update_s", "iter_s",
                                                    "steps_per_s", "learner_share"]))
    lunar = next(x for x in table if x["env"] == "LunarLander-v3" and x["row"] == "ray-1")
    return {"config": {"E": E, "T": T, "rounds": rounds, "iters": iters, "nic_bytes_per_s": NIC_BYTES_PER_S,
                       "call_latency_s": CALL_LATENCY_S},
            "raw": results, "table": table, "models": models,
            "summary": {"lunar_ray1_overhead_frac": lunar["overhead_frac"]}}
