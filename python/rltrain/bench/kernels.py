"""Kernel benchmark: rltrain's C++ kernels against NumPy (SB3-style loop, vectorised scans) and, when
installed, Stable-Baselines3's RolloutBuffer / RunningMeanStd and TorchRL's vectorised GAE, in one run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rltrain import kernels
from rltrain.bench._timing import copy_seconds, fmt_table, median_seconds

# ------------------------------------------------------------------------------------------ NumPy peers


def gae_sb3_loop(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray,
                 gamma: float = 0.99, lam: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The Stable-Baselines3 RolloutBuffer loop over T (episode_starts shifted by one, as SB3 stores them)."""
    T = rewards.shape[0]
    adv = np.zeros_like(rewards)
    last: np.ndarray | float = 0
    for step in reversed(range(T)):
        if step == T - 1:
            non_terminal = 1.0 - dones[step]
            next_values = last_values
        else:
            non_terminal = 1.0 - dones[step]
            next_values = values[step + 1]
        delta = rewards[step] + gamma * next_values * non_terminal - values[step]
        last = delta + gamma * lam * non_terminal * last
        adv[step] = last
    return adv, adv + values


def reverse_linear_scan(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Solves ``y[t] = x[t] + c[t] * y[t+1]`` (y[T] = 0) along axis 0 with log2(T) whole-array passes
    (Hillis-Steele scan of the affine maps), no Python loop over T."""
    y, c = x.copy(), c.copy()
    T = x.shape[0]
    k = 1
    while k < T:
        y[:-k] += c[:-k] * y[k:]
        c[:-k] *= c[k:]
        k *= 2
    out: np.ndarray = y
    return out


def gae_numpy_scan(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_values: np.ndarray,
                   gamma: float = 0.99, lam: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    nd = 1.0 - dones
    next_v = np.concatenate([values[1:], last_values[None]], axis=0)
    delta = rewards + gamma * next_v * nd - values
    adv = reverse_linear_scan(delta, (gamma * lam) * nd)
    return adv, adv + values


def _mask(lengths: np.ndarray, T: int) -> np.ndarray:
    return np.arange(T)[None, :] < lengths[:, None]


def episodic_numpy(rewards: np.ndarray, lengths: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    m = _mask(lengths, rewards.shape[1])
    R = np.where(m, rewards, 0).sum(axis=1)
    A = (R - R.mean()) / (R.std() + eps)
    return np.where(m, A[:, None], 0).astype(rewards.dtype)


def per_step_numpy(rewards: np.ndarray, lengths: np.ndarray, gamma: float = 0.99, eps: float = 1e-8) -> np.ndarray:
    m = _mask(lengths, rewards.shape[1])
    cnt = m.sum(axis=0)
    safe = np.maximum(cnt, 1)
    mean = np.where(m, rewards, 0).sum(axis=0) / safe
    var = np.where(m, (rewards - mean) ** 2, 0).sum(axis=0) / safe
    n = np.where(m, (rewards - mean) / (np.sqrt(var) + eps), 0)
    adv: np.ndarray = reverse_linear_scan(n.T, np.where(m, gamma, 0.0).T).T
    return adv.astype(rewards.dtype)


def hybrid_numpy(rewards: np.ndarray, lengths: np.ndarray, gamma: float = 0.99, eps: float = 1e-8,
                 clip: float = 10.0) -> np.ndarray:
    m = _mask(lengths, rewards.shape[1])
    E = episodic_numpy(rewards.astype(np.float64), lengths, eps)
    S = per_step_numpy(rewards.astype(np.float64), lengths, gamma, eps)
    mag = np.minimum(np.abs(E) * np.abs(S), clip)
    H = np.where((E > 0) & (S > 0), mag, -mag)
    v = H[m]
    return np.where(m, (H - v.mean()) / (v.std() + eps), 0).astype(rewards.dtype)


def rms_numpy_update(state: list[Any], x: np.ndarray) -> None:
    """SB3's RunningMeanStd.update on ``state = [mean, var, count]``."""
    mean, var, count = state
    bm, bv, bc = x.mean(axis=0), x.var(axis=0), x.shape[0]
    delta = bm - mean
    tot = count + bc
    state[0] = mean + delta * bc / tot
    state[2] = tot
    state[1] = (var * count + bv * bc + delta**2 * count * bc / tot) / tot


# -------------------------------------------------------------------------------------------- the run


def _row(name: str, shape: str, impl: str, t: float, base: float | None, nbytes: int,
         copy_t: float | None) -> dict[str, Any]:
    row: dict[str, Any] = {"kernel": name, "shape": shape, "impl": impl, "median_us": t * 1e6}
    row["speedup"] = (base / t) if base else None
    row["GB/s"] = nbytes / t / 1e9
    row["%copy"] = (100.0 * copy_t / t) if copy_t else None
    return row


def _gae_section(rows: list[dict[str, Any]], rng: np.random.Generator, quick: bool) -> None:
    for T, N in ((2048, 64), (128, 1024), (1024, 8)):
        _gae_shape(rows, rng, quick, T, N)


def _gae_shape(rows: list[dict[str, Any]], rng: np.random.Generator, quick: bool, T: int, N: int) -> None:
    r = rng.normal(size=(T, N)).astype(np.float32)
    v = rng.normal(size=(T, N)).astype(np.float32)
    d = (rng.random((T, N)) < 0.01).astype(np.float32)
    lv = rng.normal(size=N).astype(np.float32)
    adv, ret = np.empty_like(r), np.empty_like(r)
    nbytes = (4 * T * N + N + 2 * T * N) * 4  # rewards, values, dones, last_values in; adv, returns out
    ct = copy_seconds(nbytes)
    shape = f"({T}, {N})"
    base = median_seconds(lambda: gae_sb3_loop(r, v, d, lv), repeats=3 if quick else 5)
    cands: list[tuple[str, Callable[[], Any] | None]] = [  # None: the baseline, timed above
        ("rltrain", lambda: kernels.gae(r, v, d, lv, out=(adv, ret))),
        ("numpy SB3-style loop", None),
        ("numpy vectorised scan", lambda: gae_numpy_scan(r, v, d, lv)),
    ]
    try:
        import gymnasium as gym
        from stable_baselines3.common.buffers import RolloutBuffer

        buf = RolloutBuffer(T, gym.spaces.Box(-1, 1, (1,)), gym.spaces.Discrete(2), device="cpu", n_envs=N)
        buf.rewards[:], buf.values[:] = r, v
        buf.episode_starts[1:] = d[:-1]
        import torch

        lvt, last_done = torch.from_numpy(lv), d[-1]
        cands.append(("sb3 RolloutBuffer", lambda: buf.compute_returns_and_advantage(lvt, last_done)))
    except ImportError:
        pass
    try:
        import torch
        from torchrl.objectives.value.functional import vec_generalized_advantage_estimate

        tr = torch.from_numpy(r.T.copy()).unsqueeze(-1)
        tv = torch.from_numpy(v.T.copy()).unsqueeze(-1)
        tnv = torch.from_numpy(np.concatenate([v[1:], lv[None]]).T.copy()).unsqueeze(-1)
        td = torch.from_numpy(d.T.copy()).bool().unsqueeze(-1)
        cands.append(
            ("torchrl vec_gae", lambda: vec_generalized_advantage_estimate(0.99, 0.95, tv, tnv, tr, td, td))
        )
    except ImportError:
        pass
    for impl, fn in cands:
        t = base if fn is None else median_seconds(fn, repeats=3 if (quick or impl.startswith("sb3")) else 7)
        rows.append(_row("gae", shape, impl, t, base, nbytes, ct))


def _group_section(rows: list[dict[str, Any]], rng: np.random.Generator) -> None:
    G, T = 64, 1024
    r = rng.normal(size=(G, T)).astype(np.float32)
    lengths = rng.integers(T // 4, T + 1, size=G)
    out = np.empty_like(r)
    shape = f"({G}, {T}) ragged"
    nbytes = 2 * r.nbytes
    for name, ours, peer in (
        ("episodic_advantages", lambda: kernels.episodic_advantages(r, lengths, out=out),
         lambda: episodic_numpy(r, lengths)),
        ("per_step_advantages", lambda: kernels.per_step_advantages(r, lengths, out=out),
         lambda: per_step_numpy(r, lengths)),
        ("hybrid_advantages", lambda: kernels.hybrid_advantages(r, lengths, out=out),
         lambda: hybrid_numpy(r, lengths)),
    ):
        base = median_seconds(peer)
        rows.append(_row(name, shape, "numpy vectorised", base, base, nbytes, None))
        rows.append(_row(name, shape, "rltrain", median_seconds(ours), base, nbytes, None))
    s = rng.normal(size=64 * 16).astype(np.float32)
    so = np.empty_like(s)

    def gn_numpy() -> np.ndarray:
        g = s.reshape(-1, 16)
        out: np.ndarray = ((g - g.mean(1, keepdims=True)) / (g.std(1, keepdims=True) + 1e-8)).reshape(-1)
        return out

    base = median_seconds(gn_numpy)
    rows.append(_row("group_normalize", "(1024,) groups of 16", "numpy vectorised", base, base, 2 * s.nbytes, None))
    t_ours = median_seconds(lambda: kernels.group_normalize(s, group_size=16, out=so))
    rows.append(_row("group_normalize", "(1024,) groups of 16", "rltrain", t_ours, base, 2 * s.nbytes, None))


def _rms_section(rows: list[dict[str, Any]], rng: np.random.Generator) -> None:
    for n, dim in ((4096, 8), (256, 7056)):
        _rms_shape(rows, rng, n, dim)


def _rms_shape(rows: list[dict[str, Any]], rng: np.random.Generator, n: int, dim: int) -> None:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    shape = f"({n}, {dim})"
    state = [np.zeros(dim), np.ones(dim), 1e-4]
    base = median_seconds(lambda: rms_numpy_update(state, x))
    rows.append(_row("RunningMeanStd.update", shape, "numpy vectorised", base, base, x.nbytes, None))
    try:
        from stable_baselines3.common.running_mean_std import RunningMeanStd as SB3RMS

        sb3 = SB3RMS(shape=(dim,))
        rows.append(_row("RunningMeanStd.update", shape, "sb3 RunningMeanStd",
                         median_seconds(lambda: sb3.update(x)), base, x.nbytes, None))
    except ImportError:
        pass
    ours = kernels.RunningMeanStd(shape=(dim,))
    rows.append(_row("RunningMeanStd.update", shape, "rltrain",
                     median_seconds(lambda: ours.update(x)), base, x.nbytes, None))


def run(quick: bool = False) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    _gae_section(rows, rng, quick)
    _group_section(rows, rng)
    _rms_section(rows, rng)
    cols = ["kernel", "shape", "impl", "median_us", "speedup", "GB/s", "%copy"]
    print(f"kernels (threads: {kernels.get_num_threads()}; speedup is against the first row of each block)")
    print(fmt_table(rows, cols))
    return {"threads": kernels.get_num_threads(), "rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Ratios the project's targets are stated in."""
    def t(kernel: str, shape_prefix: str, impl: str) -> float | None:
        for r in rows:
            if r["kernel"] == kernel and r["shape"].startswith(shape_prefix) and r["impl"] == impl:
                return float(r["median_us"])
        return None

    out: dict[str, float] = {}
    ours = t("gae", "(2048, 64)", "rltrain")
    for impl, key in (("numpy SB3-style loop", "gae_2048x64_vs_sb3_loop"),
                      ("numpy vectorised scan", "gae_2048x64_vs_numpy_scan"),
                      ("sb3 RolloutBuffer", "gae_2048x64_vs_sb3_buffer"),
                      ("torchrl vec_gae", "gae_2048x64_vs_torchrl")):
        other = t("gae", "(2048, 64)", impl)
        if ours and other:
            out[key] = other / ours
    for r in rows:
        if r["kernel"] == "gae" and r["shape"] == "(2048, 64)" and r["impl"] == "rltrain":
            out["gae_2048x64_pct_copy"] = r["%copy"]
    for k in ("episodic_advantages", "per_step_advantages", "hybrid_advantages"):
        a, b = t(k, "(64, 1024)", "rltrain"), t(k, "(64, 1024)", "numpy vectorised")
        if a and b:
            out[f"{k}_vs_numpy"] = b / a
    a = t("RunningMeanStd.update", "(4096, 8)", "rltrain")
    b = t("RunningMeanStd.update", "(4096, 8)", "sb3 RunningMeanStd")
    if a and b:
        out["rms_update_4096x8_vs_sb3"] = b / a
    return out
