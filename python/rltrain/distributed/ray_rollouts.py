"""Rollouts on Ray actors: K workers, each owning envs ``w*E .. w*E+E-1`` and a CPU copy of the policy.

Data flow per iteration: learner -> ``ray.put(weights)`` once -> every worker loads them, steps its vector env
with its slice of the iteration's pre-drawn sampling noise (the same loop as a local run,
``rltrain.algos.rollout``) -> NumPy arrays back -> the learner concatenates them in env order. Worker w's envs are
seeded ``seed + w*E + i`` exactly as env ``w*E + i`` of a local run, so (with batch-invariant forward passes) a
Ray run ends bitwise where the local run with G = K*E ends.

Faults: a worker whose call fails because the actor died (``ray.kill``, a lost node) or which has not answered
within ``rollout_timeout`` seconds is killed, replaced by a new actor whose envs are re-seeded, and asked for the
same share of the iteration again (same weights and noise). Episodic collection resets from the iteration's seed,
so there the repeated share is identical; a PPO worker's envs restart from fresh episodes. Every restart is
recorded in ``events`` and counted in ``restarts``.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any

import numpy as np
import torch

from rltrain.algos.rollout import (
    clip_to,
    collect_episodes,
    collect_steps,
    make_act,
    make_value,
    native_for,
    new_step_buffers,
)
from rltrain.vec import make_vec

__all__ = ["RayRollouts", "RolloutWorker", "ensure_ray"]

_STARTUP_TIMEOUT = 300.0
"""Seconds a new actor may take to start (import torch, build its envs) before it counts as failed."""


def ensure_ray(address: str | None) -> Any:
    """The ``ray`` module, initialised: an already initialised Ray is used as it is; otherwise ``ray.init`` starts or
    joins a local instance (``address=None``) or joins the cluster at ``address`` ("auto" or "host:port")."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("rollout_backend: 'ray' needs Ray, which is not installed: "
                          "pip install 'rltrain[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    return ray


class RolloutWorker:
    """One Ray actor's state: its slice of the vector env, a CPU policy copy and the env's current observations."""

    def __init__(self, env: Any, num_envs: int, backend: str, seed: int, identical_seeds: bool,
                 num_threads: int | None, policy: torch.nn.Module, batch_invariant: bool,
                 torch_threads: int | None) -> None:
        if torch_threads is not None:
            torch.set_num_threads(int(torch_threads))
        self.env = make_vec(env, num_envs, backend=backend, seed=seed, identical_seeds=identical_seeds,
                            num_threads=num_threads)
        self.policy = policy.cpu()
        self.batch_invariant = batch_invariant
        self.act = make_act(self.policy, batch_invariant)
        self.value = make_value(self.policy, batch_invariant)
        self.clip = clip_to(self.env.single_action_space)
        self.obs: np.ndarray | None = None

    def ready(self) -> bool:
        """Answers once the actor is up (its envs built)."""
        return True

    def _load(self, weights: dict[str, torch.Tensor]) -> None:
        self.policy.load_state_dict(weights)
        # rltrain's default MLP policies: the C++ forward on the new weights, as in a local run.
        native = native_for(self.policy)
        self.act = make_act(self.policy, self.batch_invariant, native)
        self.value = make_value(self.policy, self.batch_invariant, native)

    def reset(self, seed: int) -> np.ndarray:
        obs, _ = self.env.reset(seed=seed)
        self.obs = np.array(obs, dtype=np.float32, copy=True)
        return self.obs

    def get_state(self) -> tuple[Any, np.ndarray | None]:
        return self.env.get_state(), self.obs  # type: ignore[attr-defined]  # rltrain vector envs have it

    def set_state(self, state: Any, obs: np.ndarray) -> None:
        self.env.set_state(state)  # type: ignore[attr-defined]  # rltrain vector envs have it
        self.obs = np.array(obs, dtype=np.float32, copy=True)

    def collect_steps(self, weights: dict[str, torch.Tensor], noise: torch.Tensor | None, T: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        self._load(weights)
        assert self.obs is not None, "reset() first"
        space = self.env.single_observation_space
        b = new_step_buffers(T, self.obs.shape[0], tuple(space.shape or ()), self.env.single_action_space)
        obs, episodes, last_values, _ = collect_steps(self.env, self.act, self.value, self.obs, b, noise, self.clip)
        self.obs = obs
        return {"buffers": b, "episodes": episodes, "last_values": last_values, "obs": obs,
                "collect_s": time.perf_counter() - t0}

    def collect_episodes(self, weights: dict[str, torch.Tensor], seed: int, T: int,
                         noise: torch.Tensor | None) -> dict[str, Any]:
        t0 = time.perf_counter()
        self._load(weights)
        b = collect_episodes(self.env, self.act, seed, T, noise, self.clip, self.env.single_action_space)
        return {"batch": b, "collect_s": time.perf_counter() - t0}

    def close(self) -> None:
        self.env.close()


class RayRollouts:
    """The learner's side: spawns the workers, broadcasts weights, gathers results in env order, restarts faulty
    workers (see the module docstring)."""

    def __init__(self, env: Any, num_workers: int, envs_per_worker: int, *, backend: str, seed: int,
                 identical_seeds: bool, num_threads: int | None, policy: torch.nn.Module, batch_invariant: bool,
                 torch_threads: int | None, timeout: float, max_restarts: int, address: str | None,
                 verbose: int = 1) -> None:
        self.ray = ensure_ray(address)
        self.K, self.E = int(num_workers), int(envs_per_worker)
        self.seed, self.identical_seeds = int(seed), bool(identical_seeds)
        self.timeout, self.max_restarts, self.verbose = float(timeout), int(max_restarts), int(verbose)
        self._worker_args = (env, self.E, backend, identical_seeds, num_threads, policy, batch_invariant,
                             torch_threads)
        self._remote = self.ray.remote(num_cpus=1)(RolloutWorker)
        self.restarts = 0
        self.events: list[str] = []
        self.timing: dict[str, float] = {"collect_s": 0.0, "wall_s": 0.0}
        self._reseeds = [0] * self.K
        self.workers = [self._spawn(w) for w in range(self.K)]
        self.ray.get([a.ready.remote() for a in self.workers], timeout=max(self.timeout, _STARTUP_TIMEOUT))

    # --------------------------------------------------------------------------------------------- workers

    def worker_seed(self, w: int, base: int) -> int:
        """The reset seed of worker w for a local run's ``reset(seed=base)``: env ``w*E + i`` gets ``base + w*E + i``,
        or ``base`` for every env with identical seeds."""
        return int(base) if self.identical_seeds else int(base) + w * self.E

    def _spawn(self, w: int) -> Any:
        env, e, backend, identical, threads, policy, bi, tt = self._worker_args
        return self._remote.remote(env, e, backend, self.worker_seed(w, self.seed), identical, threads, policy, bi, tt)

    def _restart(self, w: int, why: str, reseed: bool) -> None:
        self.restarts += 1
        self._reseeds[w] += 1
        with contextlib.suppress(Exception):  # already gone
            self.ray.kill(self.workers[w], no_restart=True)
        self.workers[w] = self._spawn(w)
        msg = f"rollout worker {w} {why}: restarted (restart {self.restarts})"
        startup = max(self.timeout, _STARTUP_TIMEOUT)  # a new actor imports torch and builds its envs first
        if reseed:
            s = self.reseed_value(w)
            self.ray.get(self.workers[w].reset.remote(s), timeout=startup)
            msg += f", envs re-seeded from {s}"
        else:
            self.ray.get(self.workers[w].ready.remote(), timeout=startup)
        msg += "; its share of the iteration is collected again"
        self.events.append(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def reseed_value(self, w: int) -> int:
        """Reset seed of worker w after its n-th restart: drawn from (seed, w, n), so a rerun restarts alike."""
        return int(np.random.SeedSequence([self.seed, w, self._reseeds[w]]).generate_state(1)[0] % (2**31 - self.E))

    def _gather(self, method: str, args: list[tuple[Any, ...]], reseed: bool) -> list[Any]:
        """Calls ``method`` on every worker with its args, restarting dead or hung workers and calling again."""
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError

        t0 = time.perf_counter()
        pending = {getattr(self.workers[w], method).remote(*args[w]): w for w in range(self.K)}
        deadline = {w: time.monotonic() + self.timeout for w in range(self.K)}
        out: list[Any] = [None] * self.K
        restarts = 0
        while pending:
            now = time.monotonic()
            wait = max(0.0, min(deadline[w] for w in pending.values()) - now)
            ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=wait)
            failed: list[tuple[int, str]] = []
            if not ready:
                now = time.monotonic()
                for ref, w in list(pending.items()):
                    if deadline[w] <= now:
                        del pending[ref]
                        failed.append((w, f"did not answer within rollout_timeout={self.timeout:g} s"))
            for ref in ready:
                w = pending.pop(ref)
                try:
                    out[w] = self.ray.get(ref)
                except (RayActorError, ActorUnavailableError, GetTimeoutError) as exc:
                    failed.append((w, f"died ({type(exc).__name__})"))
            for w, why in failed:
                restarts += 1
                if restarts > self.max_restarts:
                    raise RuntimeError(f"rollout worker {w} {why}, and this iteration already restarted workers "
                                       f"{self.max_restarts} times (max_worker_restarts)")
                self._restart(w, why, reseed)
                pending[getattr(self.workers[w], method).remote(*args[w])] = w
                deadline[w] = time.monotonic() + self.timeout
        self.timing["wall_s"] = time.perf_counter() - t0
        worker_s = [float(r["collect_s"]) for r in out if isinstance(r, dict) and "collect_s" in r]
        self.timing["collect_s"] = max(worker_s) if worker_s else 0.0
        return out

    # -------------------------------------------------------------------------------------------- rollouts

    def _weights(self, policy: torch.nn.Module) -> Any:
        return self.ray.put({k: v.detach().cpu() for k, v in policy.state_dict().items()})

    def _noise_slice(self, noise: torch.Tensor | None, w: int) -> torch.Tensor | None:
        return None if noise is None else noise[:, w * self.E:(w + 1) * self.E].contiguous()

    def reset(self, seed: int) -> np.ndarray:
        """Resets every worker's envs as a local ``reset(seed=seed)`` would; the concatenated observations."""
        obs = self._gather("reset", [(self.worker_seed(w, seed),) for w in range(self.K)], reseed=False)
        return np.concatenate(obs)

    def collect_steps(self, policy: torch.nn.Module, noise: torch.Tensor | None, T: int) -> tuple[
            dict[str, np.ndarray], list[tuple[int, int, float, float]], np.ndarray, np.ndarray]:
        """PPO segment of every worker: ``[T, G]`` buffers, finished episodes as (t, env, return, length) in
        (t, env) order, last values and the next raw observations, all in env order."""
        weights = self._weights(policy)
        res = self._gather("collect_steps", [(weights, self._noise_slice(noise, w), T) for w in range(self.K)],
                           reseed=True)
        buffers = {k: np.concatenate([r["buffers"][k] for r in res], axis=1) for k in res[0]["buffers"]}
        episodes = sorted((t, w * self.E + i, ret, n) for w, r in enumerate(res) for t, i, ret, n in r["episodes"])
        last_values = np.concatenate([r["last_values"] for r in res])
        obs = np.concatenate([r["obs"] for r in res])
        return buffers, episodes, last_values, obs

    def collect_episodes(self, policy: torch.nn.Module, seed: int, T: int,
                         noise: torch.Tensor | None) -> dict[str, np.ndarray]:
        """G episodes (worker w's from ``worker_seed(w, seed)``), concatenated in env order."""
        weights = self._weights(policy)
        res = self._gather("collect_episodes", [(weights, self.worker_seed(w, seed), T, self._noise_slice(noise, w))
                                                for w in range(self.K)], reseed=False)
        return {k: np.concatenate([r["batch"][k] for r in res]) for k in res[0]["batch"]}

    # ------------------------------------------------------------------------------------------ snapshots

    def get_state(self) -> list[tuple[Any, np.ndarray]]:
        """Each worker's (env state, current observations)."""
        out: list[tuple[Any, np.ndarray]] = self._gather("get_state", [()] * self.K, reseed=False)
        return out

    def set_state(self, states: list[tuple[Any, np.ndarray]]) -> None:
        if len(states) != self.K:
            raise ValueError(f"states: expected {self.K} worker snapshots, got {len(states)}")
        self._gather("set_state", [tuple(s) for s in states], reseed=False)

    def close(self) -> None:
        for a in self.workers:
            with contextlib.suppress(Exception):  # already gone
                self.ray.kill(a, no_restart=True)
        self.workers = []
