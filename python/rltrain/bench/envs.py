"""Environment-stepping benchmark: steps/s with pre-generated random actions for CartPole-v1 and LunarLander-v3
at 16 and 64 envs on every backend available in one run (rltrain native sync/async with 1 and 2 threads, rltrain
fork, gymnasium Sync/AsyncVectorEnv, SB3 Dummy/SubprocVecEnv, EnvPool sync/async with 1 and 2 threads), then a
rollout closer to training: 16 envs x 1024 steps of LunarLander with a 64x64 torch MLP choosing every action, and
CartPole-v1 at 16, 64 and 256 envs against rlox's Rust ``VecEnv`` (when rlox is installed).
Every measurement skips its first ``WARMUP`` vector steps and is repeated in ``ROUNDS`` interleaved rounds; the
median is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from rltrain.bench._timing import fmt_table

ENV_IDS = ("CartPole-v1", "LunarLander-v3")
ENVPOOL_IDS = {"CartPole-v1": "CartPole-v1", "LunarLander-v3": "LunarLander-v2"}


def _actions(env_id: str, n: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    k = 2 if env_id.startswith("CartPole") else 4
    return rng.integers(0, k, size=(steps, n)).astype(np.int64)


WARMUP = 50  # untimed vector steps before every measurement (worker start-up, first-touch page faults)


def _sync_loop(step: Callable[[np.ndarray], Any], acts: np.ndarray) -> float:
    for a in acts[:WARMUP]:
        step(a)
    t0 = time.perf_counter()
    for a in acts[WARMUP:]:
        step(a)
    return acts[WARMUP:].size / (time.perf_counter() - t0)


def _async_loop(recv: Callable[[], Any], send: Callable[[np.ndarray, Any], Any], acts: np.ndarray,
                batch: int) -> float:
    """Pipelined stepping (EnvPool's send/recv API, which NativeVectorEnv mirrors): receive the ``batch`` envs
    that finished first and send them their next actions; steps/s after ``WARMUP`` rounds."""
    t0 = time.perf_counter()
    steps = 0
    for k, a in enumerate(acts):
        if k == WARMUP:
            t0, steps = time.perf_counter(), 0
        info = recv()[4]
        send(a[:batch], info["env_id"])
        steps += batch
    return steps / (time.perf_counter() - t0)


def _native(env_id: str, n: int, threads: int, asyn: bool, acts: np.ndarray) -> float:
    from rltrain import make_vec

    env: Any = make_vec(env_id, n, backend="native", seed=0, num_threads=threads)  # send/recv: NativeVectorEnv
    try:
        env.reset(seed=0)
        if not asyn:
            return _sync_loop(env.step, acts)
        half = n // 2
        env.send(acts[0][:half], np.arange(half))
        env.send(acts[0][half:], np.arange(half, n))
        return _async_loop(lambda: env.recv(half), env.send, acts, half)
    finally:
        env.close()


def _stepped(env: Any, reset: Callable[[], Any], step: Callable[[np.ndarray], Any], acts: np.ndarray) -> float:
    """``reset()``, then :func:`_sync_loop` over ``step``; the env is closed whatever happens."""
    try:
        reset()
        return _sync_loop(step, acts)
    finally:
        env.close()


def _fork(env_id: str, n: int, acts: np.ndarray) -> float:
    from rltrain import make_vec

    env = make_vec(env_id, n, backend="fork", seed=0)
    return _stepped(env, lambda: env.reset(seed=0), env.step, acts)


def _gym(env_id: str, n: int, asyn: bool, acts: np.ndarray) -> float:
    import gymnasium as gym

    fns = [lambda: gym.make(env_id) for _ in range(n)]
    mode = gym.vector.AutoresetMode.SAME_STEP
    env = (gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode) if asyn
           else gym.vector.SyncVectorEnv(fns, autoreset_mode=mode))
    return _stepped(env, lambda: env.reset(seed=0), env.step, acts)


def _sb3(env_id: str, n: int, subproc: bool, acts: np.ndarray) -> float:
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    fns = [lambda: gym.make(env_id) for _ in range(n)]
    env = SubprocVecEnv(fns, start_method="fork") if subproc else DummyVecEnv(fns)

    def step(a: np.ndarray) -> Any:
        env.step_async(a)
        return env.step_wait()

    return _stepped(env, env.reset, step, acts)


def _envpool(env_id: str, n: int, threads: int, asyn: bool, acts: np.ndarray) -> float:
    import envpool

    batch = n // 2 if asyn else n
    env = envpool.make(ENVPOOL_IDS[env_id], env_type="gymnasium", num_envs=n, batch_size=batch,
                       num_threads=threads, seed=0)
    try:
        if not asyn:
            env.reset()
            return _sync_loop(env.step, acts)
        env.async_reset()
        return _async_loop(env.recv, env.send, acts, batch)
    finally:
        env.close()


def _candidates(env_id: str, n: int, acts: np.ndarray) -> list[tuple[str, Callable[[], float]]]:
    c: list[tuple[str, Callable[[], float]]] = []
    for th in (1, 2):
        c.append((f"rltrain native sync {th}T", partial(_native, env_id, n, th, False, acts)))
        c.append((f"rltrain native async {th}T", partial(_native, env_id, n, th, True, acts)))
    c.append(("rltrain fork", partial(_fork, env_id, n, acts)))
    c.append(("gymnasium SyncVectorEnv", partial(_gym, env_id, n, False, acts)))
    c.append(("gymnasium AsyncVectorEnv", partial(_gym, env_id, n, True, acts)))
    c.append(("sb3 DummyVecEnv", partial(_sb3, env_id, n, False, acts)))
    c.append(("sb3 SubprocVecEnv", partial(_sb3, env_id, n, True, acts)))
    for th in (1, 2):
        c.append((f"envpool sync {th}T", partial(_envpool, env_id, n, th, False, acts)))
        c.append((f"envpool async {th}T", partial(_envpool, env_id, n, th, True, acts)))
    return c


def _rollout(backend: str, steps: int = 1024, n: int = 16) -> float:
    """Seconds for ``steps`` vector steps of LunarLander with a 64x64 MLP choosing every action."""
    import torch

    from rltrain.policies import ActorCriticPolicy

    torch.manual_seed(0)
    pol = ActorCriticPolicy(8, 4)
    if backend.startswith("envpool"):
        import envpool

        env: Any = envpool.make("LunarLander-v2", env_type="gymnasium", num_envs=n, num_threads=2, seed=0)
        obs, _ = env.reset()
        step = env.step
    elif backend.startswith("sb3"):
        import gymnasium as gym
        from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

        fns = [lambda: gym.make("LunarLander-v3") for _ in range(n)]
        env = SubprocVecEnv(fns, start_method="fork") if "Subproc" in backend else DummyVecEnv(fns)
        obs = env.reset()

        def step(a: np.ndarray) -> Any:
            env.step_async(a)
            return env.step_wait()
    elif backend.startswith("gymnasium"):
        import gymnasium as gym

        fns = [lambda: gym.make("LunarLander-v3") for _ in range(n)]
        mode = gym.vector.AutoresetMode.SAME_STEP
        env = (gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode) if "Async" in backend
               else gym.vector.SyncVectorEnv(fns, autoreset_mode=mode))
        obs, _ = env.reset(seed=0)
        step = env.step
    else:
        from rltrain import make_vec

        env = make_vec("LunarLander-v3", n, backend=backend.split()[1], seed=0)
        obs, _ = env.reset(seed=0)
        step = env.step
    try:
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(steps):
                a, _, _ = pol.act(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
                obs = step(a.numpy())[0]
        return time.perf_counter() - t0
    finally:
        env.close()


def _batcher(n: int, threads: int, acts: np.ndarray) -> float:
    """The native batcher's own step (``NativeVectorEnv.core.step``): obs/rewards/flags as views of its buffers and
    the final observations in ``core.buffers()``, no gymnasium info dict; the level rlox's ``step_all`` works at."""
    from rltrain import make_vec

    env: Any = make_vec("CartPole-v1", n, backend="native", seed=0, num_threads=threads)
    return _stepped(env, lambda: env.reset(seed=0), env.core.step, acts)


def _rlox(n: int, acts: np.ndarray) -> float:
    """rlox's ``VecEnv`` (CartPole only; Rayon's default thread pool) through ``step_all``, which returns obs,
    rewards, terminated, truncated and the terminal observations."""
    import rlox

    env = rlox.VecEnv(n=n, seed=0)
    env.reset_all()
    return _sync_loop(env.step_all, acts)


RLOX_ENVS = (16, 64, 256)


def run_rlox(quick: bool = False) -> list[dict[str, Any]]:
    """CartPole-v1 steps/s, rltrain native (gymnasium API and raw batcher, 1 and 2 threads) against rlox's VecEnv
    at ``RLOX_ENVS`` envs, interleaved rounds, median; empty when rlox is not installed."""
    try:
        import rlox
    except ImportError as exc:
        print(f"  skip rlox comparison: {exc}")
        return []
    rng = np.random.default_rng(1)
    rows: list[dict[str, Any]] = []
    rounds = 1 if quick else ROUNDS
    for n in RLOX_ENVS:
        acts = _actions("CartPole-v1", n, max((20_000 if quick else 200_000) // n, 2 * WARMUP), rng)
        cands: list[tuple[str, Callable[[], float]]] = []
        for th in (1, 2):
            cands.append((f"rltrain native sync {th}T", partial(_native, "CartPole-v1", n, th, False, acts)))
            cands.append((f"rltrain native batcher {th}T", partial(_batcher, n, th, acts)))
        cands.append((f"rlox {rlox.__version__} VecEnv", partial(_rlox, n, acts)))
        samples: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, fn in cands:
                samples.setdefault(name, []).append(fn())
        for name, vals in samples.items():
            sps = float(np.median(vals))
            rows.append({"env": "CartPole-v1", "num_envs": n, "backend": name, "steps_per_s": sps,
                         "spread": [round(min(vals)), round(max(vals))], "rounds": [round(v) for v in vals]})
            print(f"  CartPole-v1 x{n} {name}: {sps:,.0f} steps/s (median of {len(vals)})", flush=True)
    return rows


ROUNDS = 3  # interleaved repetitions of every measurement (median reported)


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    steps_for = {"CartPole-v1": 2000, "LunarLander-v3": 400}
    if not quick:
        steps_for = {"CartPole-v1": 10000, "LunarLander-v3": 2000}
    rounds = 1 if quick else ROUNDS
    for env_id in ENV_IDS:
        for n in (16, 64):
            acts = _actions(env_id, n, steps_for[env_id] if n == 16 else steps_for[env_id] // 4, rng)
            # Interleaved rounds (every backend once per round), median per backend: load from elsewhere on a
            # shared machine then hits all backends alike instead of whichever ran during it.
            samples: dict[str, list[float]] = {}
            skipped: set[str] = set()
            for _ in range(rounds):
                for name, fn in _candidates(env_id, n, acts):
                    if name in skipped:
                        continue
                    try:
                        samples.setdefault(name, []).append(fn())
                    except (ImportError, ModuleNotFoundError, ValueError) as exc:
                        print(f"  skip {name} on {env_id}: {type(exc).__name__}: {exc}")
                        skipped.add(name)
                        samples.pop(name, None)
            for name, vals in samples.items():
                sps = float(np.median(vals))
                rows.append({"env": env_id, "num_envs": n, "backend": name, "steps_per_s": sps,
                             "rounds": [round(v) for v in vals]})
                print(f"  {env_id} x{n} {name}: {sps:,.0f} steps/s (median of {len(vals)})", flush=True)
    print(fmt_table(rows, ["env", "num_envs", "backend", "steps_per_s"]))
    rlox_rows = run_rlox(quick)
    if rlox_rows:
        print("CartPole-v1: rltrain native vs rlox")
        print(fmt_table(rlox_rows, ["num_envs", "backend", "steps_per_s", "spread"]))
    rollout_rows = []
    for backend in ("rltrain native", "rltrain fork", "gymnasium SyncVectorEnv", "gymnasium AsyncVectorEnv",
                    "sb3 DummyVecEnv", "sb3 SubprocVecEnv", "envpool sync 2T"):
        try:
            secs = _rollout(backend, steps=256 if quick else 1024)
        except (ImportError, ModuleNotFoundError, ValueError) as exc:
            print(f"  skip rollout {backend}: {exc}")
            continue
        rollout_rows.append({"backend": backend, "seconds": secs, "steps_per_s": (256 if quick else 1024) * 16 / secs})
    print("rollout: 16 envs x 1024 steps of LunarLander, 64x64 MLP acting every step")
    print(fmt_table(rollout_rows, ["backend", "seconds", "steps_per_s"]))
    return {"rows": rows, "rlox": rlox_rows, "rollout": rollout_rows, "summary": summarize(rows, rlox_rows)}


def summarize(rows: list[dict[str, Any]], rlox_rows: list[dict[str, Any]] | None = None) -> dict[str, float]:
    def best(env_id: str, n: int, prefix: str) -> float | None:
        v = [r["steps_per_s"] for r in rows if r["env"] == env_id and r["num_envs"] == n
             and r["backend"].startswith(prefix)]
        return max(v) if v else None

    out: dict[str, float] = {}
    for env_id in ENV_IDS:
        key = env_id.split("-")[0].lower()
        ours, pool = best(env_id, 16, "rltrain native"), best(env_id, 16, "envpool")
        if ours and pool:
            out[f"{key}_16_native_vs_best_envpool"] = ours / pool
    fork, sync = best("LunarLander-v3", 16, "rltrain fork"), best("LunarLander-v3", 16, "gymnasium SyncVectorEnv")
    if fork and sync:
        out["lunarlander_16_fork_vs_gym_sync"] = fork / sync
    for n in RLOX_ENVS:
        theirs = best_of(rlox_rows or [], n, "rlox")
        for prefix, key in (("rltrain native sync", "native"), ("rltrain native batcher", "batcher")):
            ours = best_of(rlox_rows or [], n, prefix)
            if ours and theirs:
                out[f"cartpole_{n}_{key}_vs_rlox"] = ours / theirs
    return out


def best_of(rows: list[dict[str, Any]], n: int, prefix: str) -> float | None:
    """The highest steps/s among ``rows`` at ``n`` envs whose backend starts with ``prefix``."""
    v = [r["steps_per_s"] for r in rows if r["num_envs"] == n and r["backend"].startswith(prefix)]
    return max(v) if v else None
