"""Language-model advantage kernels (SPEC §6) against the code TRL's and verl's trainers run, in one process on torch
CPU tensors: B = 1024 sequences x L = 4096 tokens and one 32,768-token sequence (float32), group advantages at
B = 65,536 in groups of 16.

Peers. TRL computes its GRPO and RLOO advantages inline in its trainers
(``GRPOTrainer._generate_and_score_completions``, ``RLOOTrainer``); the functions below run those blocks' torch
operations in the same order with TRL's own ``nanstd`` (imported from ``trl`` when it is installed), minus the
logging-only statistics. verl's estimators are called from ``verl.trainer.ppo.core_algos`` itself when it imports
(it does with ``pip install --no-deps verl`` plus ray, omegaconf, tensordict, codetiming and orjson); otherwise from
a transcription of verl 0.9.1's loops here, and the table says which ("verl 0.9.1" or "verl 0.9.1 (transcribed)").

Like for like: verl's GAE and REINFORCE++ whiten their advantages, so rltrain's row for them is the same composition
(``token_gae`` then ``masked_whiten``; ``token_returns(masked="carry")`` then ``masked_whiten(times_mask=True)``,
which multiplies by the mask in the same pass, as verl's ``masked_whiten(returns, mask) * mask``). The kernel-alone
rows give the share of bandwidth: bytes read + written over the median time, against a copy of the same number of
bytes.

Floors: where a kernel is far from the copy, the bare loops of ``rltrain._core._testing`` (``llm_floor.hpp``,
single-threaded, called on the same arrays) time the work it cannot avoid: ``floor_groups`` (groups of 16: load,
float64 sum, mean, squared deviations, sqrt, divide, store, written plainly), ``floor_roundtrip`` (the float64 round
trip alone: load, convert, one add, one multiply, convert, store: less than any float64-statistics kernel does),
``floor_scatter`` (the groups after a counting sort of scattered dense ids, gathered back), ``floor_permute`` (the
data movement alone of any random-order group-by: a bare random gather of the rewards into group order and the
scatter back, no grouping work and no arithmetic: the scattered-id rows' ``%floor`` is against it),
``floor_divider`` (the divisions and square roots alone that ``scale="group"`` needs per group of 16: var / 15,
sqrt, + eps, 1 / d, four groups per instruction as the kernel's vector clones take them: the "group" row costs
about the "none" row plus this, the divider overlapping little with the passes), ``floor_chain`` (one core's
serial REINFORCE++ recurrence over the row) and, for the one long row, ``floor_pass`` (the bare elementwise
pass ``out = a - b`` over the row, the bytes ``kl_estimate`` and ``masked_whiten`` move: their floor is that pass
plus their own call overhead on a [1, 8] row);
``call overhead`` rows time the kernel on a tiny input of the same kind (argument handling, binding, GIL). A kernel
row's ``%floor`` = floor time / kernel time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rltrain import kernels
from rltrain.bench._timing import copy_seconds, fmt_table, median_seconds

GROUP = 16


# --------------------------------------------------------------------------------------------- peers (torch)


def _nanstd() -> tuple[Callable[..., Any], str]:
    try:
        from trl.trainer.utils import nanstd

        return nanstd, "trl"
    except ImportError:  # the same definition: Bessel-corrected, NaN-ignoring
        import torch

        def nanstd_local(t: Any, dim: Any = None) -> Any:
            mean = torch.nanmean(t, dim=dim, keepdim=True)
            var = torch.nanmean((t - mean) ** 2, dim=dim, keepdim=True)
            count = torch.sum(~torch.isnan(t), dim=dim, keepdim=True)
            var = var * torch.where(count > 1, count / (count - 1), torch.full_like(var, float("nan")))
            std = torch.sqrt(var)
            return std.squeeze() if dim is None else std.squeeze(dim)

        return nanstd_local, "trl (transcribed)"


def trl_grpo_advantages(rewards: Any, k: int, scale: str, nanstd: Callable[..., Any]) -> Any:
    """TRL 1.16 GRPOTrainer, multi_objective_aggregation="sum_then_normalize", one reward column."""
    import torch

    mean = torch.nanmean(rewards.view(-1, k), dim=1).repeat_interleave(k, dim=0)
    if scale in ("group", "none"):
        std = nanstd(rewards.view(-1, k), dim=1).repeat_interleave(k, dim=0)
    else:
        std = nanstd(rewards).expand_as(rewards)
    adv = rewards - mean
    if scale != "none":
        adv = adv / (std + 1e-4)
    return torch.nan_to_num(adv, nan=0.0)


def trl_rloo_advantages(rewards: Any, k: int) -> Any:
    """TRL 1.16 RLOOTrainer's leave-one-out block (normalize_advantages=False)."""
    import torch

    grouped = rewards.view(-1, k)
    counts = (~torch.isnan(grouped)).sum(dim=1, keepdim=True)
    total = torch.nansum(grouped, dim=1, keepdim=True)
    adv = rewards - ((total - grouped) / (counts - 1)).view(-1)
    return torch.nan_to_num(adv, nan=0.0)


class _VerlTranscribed:
    """verl 0.9.1 ``core_algos`` / ``torch_functional`` loops, transcribed (used only when verl does not import)."""

    @staticmethod
    def masked_whiten(values: Any, mask: Any) -> Any:
        import torch

        def mmean(v: Any, m: Any) -> Any:
            return (v * m).sum() / (m.sum() + 1e-8)

        mean = mmean(values, mask)
        n = mask.sum()
        var = mmean((values - mean) ** 2, mask) * (n / (n - 1))
        return (values - mean) * torch.rsqrt(var + 1e-8)

    def compute_gae_advantage_return(self, r: Any, v: Any, m: Any, gamma: float, lam: float) -> Any:
        import torch

        nextvalues: Any = 0
        lastgaelam: Any = 0
        rev = []
        for t in reversed(range(r.shape[-1])):
            delta = r[:, t] + gamma * nextvalues - v[:, t]
            lg = delta + gamma * lam * lastgaelam
            nextvalues = v[:, t] * m[:, t] + (1 - m[:, t]) * nextvalues
            lastgaelam = lg * m[:, t] + (1 - m[:, t]) * lastgaelam
            rev.append(lastgaelam)
        adv = torch.stack(rev[::-1], dim=1)
        return self.masked_whiten(adv, m), adv + v

    def compute_reinforce_plus_plus_outcome_advantage(self, r: Any, m: Any, gamma: float) -> Any:
        import torch

        returns = torch.zeros_like(r)
        run: Any = 0
        for t in reversed(range(r.shape[1])):
            new = r[:, t] + gamma * run
            returns[:, t] = new * m[:, t]
            run = new * m[:, t] + run * (1 - m[:, t])
        return self.masked_whiten(returns, m) * m, returns

    @staticmethod
    def group_loop(scores: Any, index: Any, std: bool, eps: float = 1e-6) -> Any:
        import torch

        groups: dict[Any, list[Any]] = {}
        for i in range(scores.shape[0]):
            groups.setdefault(index[i], []).append(scores[i])
        stats = {}
        for key, vals in groups.items():
            st = torch.stack(vals)
            stats[key] = (torch.tensor(0.0), torch.tensor(1.0)) if len(vals) == 1 else (st.mean(), st.std())
        for i in range(scores.shape[0]):
            mu, sd = stats[index[i]]
            scores[i] = (scores[i] - mu) / (sd + eps) if std else scores[i] - mu
        return scores

    @staticmethod
    def kl_penalty_forward(logp: Any, ref: Any, kind: str) -> Any:
        import torch

        kl = torch.clamp(ref - logp, min=-20, max=20)
        return torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)


def _verl() -> tuple[dict[str, Callable[..., Any]], str]:
    """The verl callables the bench times, each taking the bench's arguments."""
    try:
        import verl.trainer.ppo.core_algos as ca
        import verl.utils.torch_functional as vf

        def grpo(scores: Any, index: Any, std: bool) -> Any:
            tlr = scores[:, None]
            return ca.compute_grpo_outcome_advantage(tlr, tlr.new_ones(tlr.shape), index,
                                                     norm_adv_by_std_in_grpo=std)[0][:, 0]

        def rloo(scores: Any, index: Any) -> Any:
            tlr = scores[:, None]
            return ca.compute_rloo_outcome_advantage(tlr, tlr.new_ones(tlr.shape), index)[0][:, 0]

        class _Cfg:
            gamma = 1.0

        return {
            "gae": lambda r, v, m: ca.compute_gae_advantage_return(r, v, m, 1.0, 1.0),
            "reinforce_pp": lambda r, m: ca.compute_reinforce_plus_plus_outcome_advantage(r, m, config=_Cfg()),
            "grpo": grpo,
            "rloo": rloo,
            "whiten": lambda x, m: vf.masked_whiten(x, m),
            "kl": lambda a, b: ca.kl_penalty_forward(a, b, "k3"),
        }, "verl 0.9.1"
    except Exception:  # verl's import chain fails in many ways without its extras
        tv = _VerlTranscribed()

        def rloo_t(scores: Any, index: Any) -> Any:
            import torch

            groups: dict[Any, list[int]] = {}
            for i in range(scores.shape[0]):
                groups.setdefault(index[i], []).append(i)
            out = scores.clone()
            for idx in groups.values():
                n = len(idx)
                if n > 1:
                    mean = torch.stack([scores[i] for i in idx]).mean()
                    for i in idx:
                        out[i] = scores[i] * n / (n - 1) - mean * n / (n - 1)
            return out

        return {
            "gae": lambda r, v, m: tv.compute_gae_advantage_return(r, v, m, 1.0, 1.0),
            "reinforce_pp": lambda r, m: tv.compute_reinforce_plus_plus_outcome_advantage(r, m, 1.0),
            "grpo": lambda s, idx, std: tv.group_loop(s.clone(), idx, std),
            "rloo": rloo_t,
            "whiten": tv.masked_whiten,
            "kl": lambda a, b: tv.kl_penalty_forward(a, b, "k3"),
        }, "verl 0.9.1 (transcribed)"


# ------------------------------------------------------------------------------------------------ the bench


def _maxdiff(a: Any, b: Any) -> float:
    """Largest absolute difference between two results (tensors, or tuples of them: the first is compared)."""
    if isinstance(a, tuple):
        a, b = a[0], b[0]
    return float((a.double() - b.double()).abs().max())


def _row(rows: list[dict[str, Any]], kernel: str, shape: str, impl: str, seconds: float,
         nbytes: int | None = None, base: float | None = None, diff: float | None = None,
         floor: float | None = None) -> None:
    row: dict[str, Any] = {"kernel": kernel, "shape": shape, "impl": impl, "median_ms": seconds * 1e3}
    if floor is not None:
        row["%floor"] = 100.0 * floor / seconds
    if diff is not None:
        row["max_abs_diff"] = diff
    if base is not None:
        row["rltrain_speedup"] = seconds / base
    if nbytes is not None:
        row["GB/s"] = nbytes / seconds / 1e9
        row["%copy"] = 100.0 * copy_seconds(nbytes) / seconds
    rows.append(row)
    print(f"  {kernel:<24} {shape:<14} {impl:<34} {seconds * 1e3:10.3f} ms", flush=True)


def _time(fn: Callable[[], Any], slow: bool = False, quick: bool = False) -> float:
    if slow:
        return median_seconds(fn, min_total=0.0, repeats=1 if quick else 3)
    return median_seconds(fn, min_total=0.05 if quick else 0.3, repeats=3 if quick else 7)


def _token_section(rows: list[dict[str, Any]], rng: np.random.Generator, B: int, L: int, quick: bool,
                   verl: dict[str, Callable[..., Any]], verl_name: str) -> None:
    import torch

    shape = f"({B}, {L})"
    r = torch.from_numpy(rng.standard_normal((B, L)).astype(np.float32))
    v = torch.from_numpy(rng.standard_normal((B, L)).astype(np.float32))
    lengths = rng.integers(L // 4, L + 1, size=B)
    m = torch.from_numpy((np.arange(L)[None, :] < lengths[:, None]).astype(np.float32))
    logp = torch.from_numpy(-rng.random((B, L)).astype(np.float32))
    ref = logp + torch.from_numpy(0.1 * rng.standard_normal((B, L)).astype(np.float32))
    adv_o, ret_o, white_o = torch.empty_like(r), torch.empty_like(r), torch.empty_like(r)
    el = B * L

    # token_gae: verl's estimator (with its whitening) vs token_gae + masked_whiten; then the kernel alone
    def ours_gae() -> Any:
        a, ret = kernels.token_gae(r, v, m, gamma=1.0, lam=1.0, out=(adv_o, ret_o))
        return kernels.masked_whiten(a, m, out=white_o), ret

    diff = _maxdiff(verl["gae"](r, v, m), tuple(x.clone() for x in ours_gae()))
    t_ours = _time(ours_gae, quick=quick)
    t_peer = _time(lambda: verl["gae"](r, v, m), slow=True, quick=quick)
    _row(rows, "token_gae + whiten", shape, verl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "token_gae + whiten", shape, "rltrain", t_ours, nbytes=el * 4 * 6, base=t_ours)
    t = _time(lambda: kernels.token_gae(r, v, m, gamma=1.0, lam=1.0, out=(adv_o, ret_o)), quick=quick)
    _row(rows, "token_gae", shape, "rltrain", t, nbytes=el * 4 * 5)

    # token_returns (REINFORCE++): verl's estimator vs token_returns(carry) + whiten * mask
    def ours_rpp() -> Any:
        ret = kernels.token_returns(r, m, gamma=1.0, masked="carry", out=ret_o)
        return kernels.masked_whiten(ret, m, times_mask=True, out=white_o), ret

    diff = _maxdiff(verl["reinforce_pp"](r, m), tuple(x.clone() for x in ours_rpp()))
    t_ours = _time(ours_rpp, quick=quick)
    t_peer = _time(lambda: verl["reinforce_pp"](r, m), slow=True, quick=quick)
    _row(rows, "token_returns + whiten", shape, verl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "token_returns + whiten", shape, "rltrain", t_ours, nbytes=el * 4 * 6, base=t_ours)
    t = _time(lambda: kernels.token_returns(r, m, gamma=1.0, masked="carry", out=ret_o), quick=quick)
    floor = None
    if B == 1:  # one long row: one core's serial recurrence, and the per-call cost on a tiny row
        from rltrain import _core

        rn, mn, on = r.numpy().ravel(), m.numpy().ravel(), ret_o.numpy().ravel()
        floor = _time(lambda: _core._testing.floor_chain(rn, mn, on, 1.0), quick=quick)
        _row(rows, "token_returns", shape, "floor: serial chain", floor)
        tiny = (r[:, :8], m[:, :8], ret_o[:, :8])
        t_call = _time(lambda: kernels.token_returns(tiny[0], tiny[1], gamma=1.0, masked="carry", out=tiny[2]),
                       quick=quick)
        _row(rows, "token_returns", "(1, 8)", "call overhead", t_call)
    _row(rows, "token_returns", shape, "rltrain", t, nbytes=el * 4 * 3, floor=floor)

    # one long row: the elementwise kernels against a bare pass over the same bytes plus their own call overhead
    floor_w = floor_kl = None
    if B == 1:
        from rltrain import _core

        ln, rfn, on = logp.numpy().ravel(), ref.numpy().ravel(), adv_o.numpy().ravel()
        t_pass = _time(lambda: _core._testing.floor_pass(ln, rfn, on), quick=quick)
        _row(rows, "kl_estimate k3", shape, "floor: bare pass", t_pass, nbytes=el * 4 * 3)
        tw = (r[:, :8], m[:, :8], adv_o[:, :8], logp[:, :8], ref[:, :8])
        t_call_w = _time(lambda: kernels.masked_whiten(tw[0], tw[1], out=tw[2]), quick=quick)
        _row(rows, "masked_whiten", "(1, 8)", "call overhead", t_call_w)
        t_call_kl = _time(lambda: kernels.kl_estimate(tw[3], tw[4], kind="k3", clamp=True, out=tw[2]), quick=quick)
        _row(rows, "kl_estimate k3", "(1, 8)", "call overhead", t_call_kl)
        floor_w, floor_kl = t_pass + t_call_w, t_pass + t_call_kl

    # masked_whiten
    diff = _maxdiff(verl["whiten"](r, m), kernels.masked_whiten(r, m))
    t_ours = _time(lambda: kernels.masked_whiten(r, m, out=adv_o), quick=quick)
    t_peer = _time(lambda: verl["whiten"](r, m), quick=quick)
    _row(rows, "masked_whiten", shape, verl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "masked_whiten", shape, "rltrain", t_ours, nbytes=el * 4 * 3, base=t_ours, floor=floor_w)

    # kl_estimate (k3, verl's clamps)
    diff = _maxdiff(verl["kl"](logp, ref), kernels.kl_estimate(logp, ref, kind="k3", clamp=True))
    t_ours = _time(lambda: kernels.kl_estimate(logp, ref, kind="k3", clamp=True, out=adv_o), quick=quick)
    t_peer = _time(lambda: verl["kl"](logp, ref), quick=quick)
    _row(rows, "kl_estimate k3", shape, verl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "kl_estimate k3", shape, "rltrain", t_ours, nbytes=el * 4 * 3, base=t_ours, floor=floor_kl)


def _group_section(rows: list[dict[str, Any]], rng: np.random.Generator, quick: bool,
                   verl: dict[str, Callable[..., Any]], verl_name: str) -> None:
    import torch

    B = 2_048 if quick else 65_536
    nanstd, trl_name = _nanstd()
    shape = f"({B},) / {GROUP}"
    rewards = torch.from_numpy(rng.standard_normal(B).astype(np.float32))
    out = torch.empty_like(rewards)
    from rltrain import _core

    rn, on = rewards.numpy(), out.numpy()
    floor = _time(lambda: _core._testing.floor_groups(rn, on, 1e-4), quick=quick)
    _row(rows, "group_advantages", shape, "floor: bare groups", floor)
    t_rt = _time(lambda: _core._testing.floor_roundtrip(rn, on, 0.5), quick=quick)
    _row(rows, "group_advantages", shape, "floor: float64 round trip", t_rt, nbytes=B * 8)
    t_div = _time(lambda: _core._testing.floor_divider(rn, 1e-4), quick=quick)
    _row(rows, "group_advantages", shape, "floor: divider (group only)", t_div)
    tiny_r, tiny_o = rewards[:GROUP], out[:GROUP]
    t_call = _time(lambda: kernels.group_advantages(tiny_r, group_size=GROUP, preset="trl", out=tiny_o), quick=quick)
    _row(rows, "group_advantages", f"({GROUP},) / {GROUP}", "call overhead", t_call)
    for scale in ("group", "batch", "none"):
        diff = _maxdiff(trl_grpo_advantages(rewards, GROUP, scale, nanstd),
                        kernels.group_advantages(rewards, group_size=GROUP, preset="trl", scale=scale))
        def ours(s: str = scale) -> Any:
            return kernels.group_advantages(rewards, group_size=GROUP, preset="trl", scale=s, out=out)

        def peer(s: str = scale) -> Any:
            return trl_grpo_advantages(rewards, GROUP, s, nanstd)

        t_ours = _time(ours, quick=quick)
        t_peer = _time(peer, quick=quick)
        _row(rows, f"group_advantages {scale}", shape, trl_name, t_peer, base=t_ours, diff=diff)
        _row(rows, f"group_advantages {scale}", shape, "rltrain preset=trl", t_ours, nbytes=B * 8, base=t_ours,
             floor=floor)
    diff = _maxdiff(trl_rloo_advantages(rewards, GROUP), kernels.rloo_advantages(rewards, group_size=GROUP))
    t_ours = _time(lambda: kernels.rloo_advantages(rewards, group_size=GROUP, out=out), quick=quick)
    t_peer = _time(lambda: trl_rloo_advantages(rewards, GROUP), quick=quick)
    _row(rows, "rloo_advantages", shape, trl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "rloo_advantages", shape, "rltrain", t_ours, nbytes=B * 8, base=t_ours, floor=floor)

    # verl groups by an index array (uid strings); ids shuffled so groups are not contiguous
    perm = rng.permutation(B)
    ids = (np.arange(B) // GROUP)[perm]
    uids = np.array([f"uid-{i}" for i in ids], dtype=object)
    ids_t = torch.from_numpy(ids)
    floor_cs = _time(lambda: _core._testing.floor_scatter(ids, rn, on, 1e-4), quick=quick)
    _row(rows, "group_advantages ids", f"({B},) shuffled", "floor: bare counting sort", floor_cs)
    order, tmp = np.argsort(ids, kind="stable").astype(np.int64), np.empty_like(rn)
    floor = _time(lambda: _core._testing.floor_permute(order, rn, tmp, on), quick=quick)
    _row(rows, "group_advantages ids", f"({B},) shuffled", "floor: random gather + scatter", floor, nbytes=B * 8)
    diff = _maxdiff(verl["grpo"](rewards.clone(), uids, True), kernels.group_advantages(rewards, ids_t, preset="verl"))
    t_ours = _time(lambda: kernels.group_advantages(rewards, ids_t, preset="verl", out=out), quick=quick)
    t_peer = _time(lambda: verl["grpo"](rewards.clone(), uids, True), slow=True, quick=quick)
    _row(rows, "group_advantages ids", f"({B},) shuffled", verl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "group_advantages ids", f"({B},) shuffled", "rltrain preset=verl", t_ours, nbytes=B * 16,
         base=t_ours, floor=floor)
    diff = _maxdiff(verl["rloo"](rewards.clone(), uids), kernels.rloo_advantages(rewards, ids_t))
    t_ours = _time(lambda: kernels.rloo_advantages(rewards, ids_t, out=out), quick=quick)
    t_peer = _time(lambda: verl["rloo"](rewards.clone(), uids), slow=True, quick=quick)
    _row(rows, "rloo_advantages ids", f"({B},) shuffled", verl_name, t_peer, base=t_ours, diff=diff)
    _row(rows, "rloo_advantages ids", f"({B},) shuffled", "rltrain", t_ours, nbytes=B * 16, base=t_ours,
         floor=floor)


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    verl, verl_name = _verl()
    print(f"llm kernels (rltrain threads: {kernels.get_num_threads()}, torch threads: {torch.get_num_threads()}; "
          f"peers: TRL {'imported' if _nanstd()[1] == 'trl' else 'transcribed'}, {verl_name})", flush=True)
    shapes = [(64, 512), (1, 4096)] if quick else [(1024, 4096), (1, 32_768)]
    for B, L in shapes:
        _token_section(rows, rng, B, L, quick, verl, verl_name)
    _group_section(rows, rng, quick, verl, verl_name)
    cols = ["kernel", "shape", "impl", "median_ms", "rltrain_speedup", "GB/s", "%copy", "%floor", "max_abs_diff"]
    print("rltrain_speedup = peer time / rltrain time in the same block; %copy = a copy of the same bytes / time; "
          "%floor = the bare loop's time / time")
    print(fmt_table(rows, cols))
    return {"threads": kernels.get_num_threads(), "torch_threads": torch.get_num_threads(), "verl": verl_name,
            "rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The ratios the issue states its targets in."""
    out: dict[str, float] = {}
    for r in rows:
        if r.get("rltrain_speedup") and not r["impl"].startswith("rltrain"):
            key = f"{r['kernel']} {r['shape']} vs {r['impl']}".replace(" ", "_")
            out[key] = float(r["rltrain_speedup"])
        if r["impl"].startswith("rltrain") and "%copy" in r:
            out[f"{r['kernel']} {r['shape']} %copy".replace(" ", "_")] = float(r["%copy"])
        if r["impl"].startswith("rltrain") and "%floor" in r:
            out[f"{r['kernel']} {r['shape']} %floor".replace(" ", "_")] = float(r["%floor"])
    return out
