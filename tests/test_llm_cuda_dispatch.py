"""The device dispatch of the LLM kernels (``rltrain.kernels._device``), run without a GPU.

``_device.on_device`` is patched to take CPU tensors for device tensors, so a CPU tensor goes through exactly the
code a CUDA tensor goes through: the checks on metadata, the device check, then the torch path
(``_torch_paths``, with resolved arguments) or the host copy path, as ``_torch_paths.CUDA_PATH`` says. Both values
of ``CUDA_PATH`` are tested for every kernel:

- results equal those of the CPU kernels on NumPy inputs (float64 within 1e-10, float32 within 1e-5, relative to
  the largest value) for every preset, override, alias, mask dtype and ``out=``;
- every bad-input case of tests/test_llm_group_kernels.py and tests/test_llm_token_kernels.py raises the same
  exception with the same message, its NumPy arrays passed as tensors;
- the checks read metadata only: on ``meta`` tensors (which have no data: any host copy fails) the unpatched
  dispatch raises the same errors;
- mixed devices raise ValueError naming the argument.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import torch

import test_llm_group_kernels as G
import test_llm_token_kernels as T
from rltrain import _core
from rltrain import kernels as K
from rltrain.kernels import _convert, _device, _torch_paths

MODES = ["torch", "host"]
NAMES = ["group_advantages", "rloo_advantages", "token_returns", "token_gae", "masked_whiten", "kl_estimate"]
DTYPES = [np.float32, np.float64]


class Dispatch:
    """Sets every kernel's CUDA_PATH entry and counts the calls of the torch paths."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch, self.calls = monkeypatch, dict.fromkeys(NAMES, 0)
        self.current = "host"
        for name in NAMES:
            real = getattr(_torch_paths, name)

            def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
                self.calls[_name] += 1
                return _real(*args, **kwargs)

            monkeypatch.setattr(_torch_paths, name, spy)

    def __call__(self, mode: str) -> None:
        self.current = mode
        for name in NAMES:
            self.monkeypatch.setitem(_torch_paths.CUDA_PATH, name, mode)

    def check(self, *names: str) -> None:
        """The torch paths of ``names`` ran in mode "torch", and none ran in mode "host"."""
        for name in names:
            assert (self.calls[name] > 0) == (self.current == "torch"), (name, self.calls)


@pytest.fixture
def as_device(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dispatch]:
    """CPU tensors count as device tensors. The C++ entries of plain calls (``_core.kernels.<name>_fast``) read a
    tensor's own ``is_cpu`` and take every CPU tensor; they are switched off here (a device tensor is never plain:
    ``test_fast_entries_leave_device_tensors_alone``)."""
    monkeypatch.setattr(_device, "on_device", _convert.is_torch)
    for name in NAMES:
        monkeypatch.setattr(_core.kernels, f"{name}_fast", lambda *args: NotImplemented)
    yield Dispatch(monkeypatch)


def tensor(a: Any) -> Any:
    """A NumPy array as a tensor where torch can hold it (writable, a dtype torch has); anything else as it is."""
    if isinstance(a, np.ndarray) and a.flags.writeable and a.dtype != object:
        return torch.from_numpy(a.copy())
    if isinstance(a, tuple):
        return tuple(tensor(x) for x in a)
    return a


def tensorized(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its NumPy array arguments passed as tensors."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*(tensor(a) for a in args), **{k: tensor(v) for k, v in kwargs.items()})

    return call


def host(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def assert_close(got: Any, want: np.ndarray) -> None:
    assert isinstance(got, torch.Tensor)
    g = host(got)
    assert g.dtype == want.dtype and g.shape == want.shape
    tol = 1e-5 if want.dtype == np.float32 else 1e-10
    scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(g, want, rtol=tol, atol=tol * scale)


# ---------------------------------------------------------------------------------------- groups: results


def _group_inputs(dtype: Any, two_d: bool) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    shape = (12, 3) if two_d else (12,)
    return {
        "rewards": rng.normal(size=shape).astype(dtype),
        # uneven groups, scattered, one singleton (id 9)
        "ids": np.array([3, 1, 3, 2, 1, 1, 3, 2, 9, 2, 3, 1], np.int64),
    }


GROUPINGS = ["all", "size", "ids", "ids_int32"]


def _grouping(kind: str, ids: np.ndarray) -> tuple[Any, Any]:
    if kind == "all":
        return None, None
    if kind == "size":
        return None, 4
    return (ids if kind == "ids" else ids.astype(np.int32)), None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("preset", G.PRESETS)
def test_group_advantages_equal_the_cpu_kernel(preset: str, dtype: Any, mode: str, as_device: Dispatch) -> None:
    as_device(mode)
    calls = 0
    for two_d in (False, True):
        inp = _group_inputs(dtype, two_d)
        combos: list[dict[str, Any]] = [{}]
        if two_d:
            w = np.array([1.0, -0.5, 2.0])
            combos = [{}, {"reward_weights": w}, {"reward_weights": w.astype(np.float32)},
                      {"reward_weights": [1.0, 0.0, 0.25]}, {"combine": "normalize_then_sum"},
                      {"combine": "normalize_then_sum", "reward_weights": w}]
        for kind in GROUPINGS:
            ids, gs = _grouping(kind, inp["ids"])
            for over in ({}, {"scale": "batch"}, {"scale": "none"}, {"scale": "group", "eps_on": "var"},
                         {"ddof": 1, "eps": 1e-3}, {"ddof": 3}):
                for extra in combos:
                    kw = {"group_size": gs, "preset": preset, **over, **extra}
                    want = K.group_advantages(inp["rewards"], ids, **kw)
                    r_t = torch.from_numpy(inp["rewards"])
                    ids_t = None if ids is None else torch.from_numpy(ids)
                    w_kw = dict(kw)
                    if isinstance(w_kw.get("reward_weights"), np.ndarray):
                        w_kw["reward_weights"] = torch.from_numpy(w_kw["reward_weights"])
                    got = K.group_advantages(r_t, ids_t, **w_kw)
                    assert_close(got, want)
                    out = torch.full(want.shape, 7.0, dtype=got.dtype)
                    assert K.group_advantages(r_t, ids_t, out=out, **w_kw) is out
                    assert_close(out, want)
                    calls += 1
    assert calls == 4 * 6 * 7
    as_device.check("group_advantages")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rloo_advantages_equal_the_cpu_kernel(dtype: Any, mode: str, as_device: Dispatch) -> None:
    as_device(mode)
    inp = _group_inputs(dtype, False)
    for kind in GROUPINGS:
        ids, gs = _grouping(kind, inp["ids"])
        want = K.rloo_advantages(inp["rewards"], ids, group_size=gs)
        r_t, ids_t = torch.from_numpy(inp["rewards"]), None if ids is None else torch.from_numpy(ids)
        assert_close(K.rloo_advantages(r_t, ids_t, group_size=gs), want)
        out = torch.empty(want.shape, dtype=r_t.dtype)
        assert K.rloo_advantages(r_t, ids_t, group_size=gs, out=out) is out
        assert_close(out, want)
    as_device.check("rloo_advantages")


@pytest.mark.parametrize("mode", MODES)
def test_group_edge_inputs_equal_the_cpu_kernel(mode: str, as_device: Any) -> None:
    """Empty batches, eps=0 on a constant group (NaN, as on the CPU), GDPO of constant rewards (all zero), and
    rewards large enough that the device test sends them to the host kernel."""
    as_device(mode)
    cases: list[tuple[np.ndarray, dict[str, Any]]] = [
        (np.zeros(0), {}),
        (np.zeros((0, 2)), {"combine": "normalize_then_sum"}),
        (np.array([1.0, 1.0, 2.0, 3.0]), {"group_size": 2, "eps": 0.0}),
        (np.ones((4, 2)), {"combine": "normalize_then_sum"}),
        (np.array([1e200, -1e200, 3.0, 4.0]), {"group_size": 2}),
        (np.array([1e200, -1e200, 3.0, 4.0]), {"group_size": 2, "scale": "none"}),
    ]
    for r, kw in cases:
        want = K.group_advantages(r, **kw)
        got = K.group_advantages(torch.from_numpy(r), **kw)
        np.testing.assert_array_equal(np.isnan(host(got)), np.isnan(want))
        assert_close(torch.nan_to_num(got), np.nan_to_num(want))
    assert host(K.rloo_advantages(torch.zeros(0, dtype=torch.float64))).shape == (0,)


def test_torch_path_gets_resolved_arguments(as_device: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The torch paths receive the resolved settings (not preset=), canonical kinds and integer masks read as
    non-zero, exactly as their signatures say."""
    as_device("torch")
    seen: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
    for name in NAMES:
        real = getattr(_torch_paths, name)

        def spy(*args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            seen[_name] = (args, kwargs)
            return _real(*args, **kwargs)

        monkeypatch.setattr(_torch_paths, name, spy)
    r = torch.linspace(-1, 1, 6, dtype=torch.float64)
    K.group_advantages(r, group_size=3, preset="verl")
    assert seen["group_advantages"][1] == {
        "group_size": 3, "scale": "group", "ddof": 1, "eps": 1e-6, "eps_on": "std", "singleton": "identity",
        "reward_weights": None, "combine": "sum"}
    K.group_advantages(r.reshape(3, 2), preset="dr_grpo", reward_weights=[2, 1], combine="normalize_then_sum")
    kw = seen["group_advantages"][1]
    assert (kw["scale"], kw["ddof"], kw["eps"], kw["singleton"], kw["combine"]) == (
        "none", 0, 1e-8, "center", "normalize_then_sum")
    torch.testing.assert_close(kw["reward_weights"], torch.tensor([2.0, 1.0], dtype=torch.float64))
    K.rloo_advantages(r, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert seen["rloo_advantages"][1] == {"group_size": None}
    m = torch.tensor([[1, 2, 0], [0, 3, 1]])
    x = r.reshape(2, 3)
    K.token_returns(x, m, gamma=0.5, masked="carry")
    args, kw = seen["token_returns"]
    assert kw == {"gamma": 0.5, "masked": "carry"} and args[1].dtype == torch.bool
    K.token_gae(x, x.float(), m.to(torch.uint8), gamma=1, lam=0)
    args, kw = seen["token_gae"]
    assert kw == {"gamma": 1.0, "lam": 0.0} and args[1].dtype == torch.float64 and args[2].dtype == torch.bool
    K.masked_whiten(x, m, shift_mean=False, eps=0)
    assert seen["masked_whiten"][1] == {"shift_mean": False, "eps": 0.0, "times_mask": False}
    for alias, canon in [("kl", "k1"), ("mse", "k2"), ("low_var_kl", "k3"), ("abs", "abs"), ("k3", "k3")]:
        K.kl_estimate(x, x * 0.5, kind=alias, clamp=True)
        assert seen["kl_estimate"][1] == {"kind": canon, "clamp": True}


# ----------------------------------------------------------------------------------------- token: results


MASKS = ["bool", "uint8", "int64_wide", "int32", "float32", "float64"]


def _mask(kind: str, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(3)
    on = rng.random(shape) < 0.7
    on.reshape(-1)[:2] = True
    if kind == "bool":
        return on
    if kind == "uint8":
        return on.astype(np.uint8) * 3  # non-zero integers count as 1
    if kind == "int64_wide":
        return on.astype(np.int64) * np.arange(1, on.size + 1).reshape(shape)
    if kind == "int32":
        return on.astype(np.int32) * -2
    w = on * rng.uniform(0.5, 1.5, shape)  # float masks weigh the values
    return w.astype(np.float32 if kind == "float32" else np.float64)


def _tok(dtype: Any, shape: tuple[int, ...] = (3, 9), seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def _outs(want: Any) -> Any:
    if isinstance(want, tuple):
        return tuple(torch.full(w.shape, 7.0, dtype=torch.from_numpy(w).dtype) for w in want)
    return torch.full(want.shape, 7.0, dtype=torch.from_numpy(want).dtype)


def _check_call(fn: Callable[..., Any], args: tuple[np.ndarray | None, ...], kw: dict[str, Any]) -> None:
    """``fn`` on tensors (with and without out=) == ``fn`` on the NumPy arrays."""
    want = fn(*args, **kw)
    targs = tuple(None if a is None else torch.from_numpy(a) for a in args)
    got = fn(*targs, **kw)
    out = _outs(want)
    res = fn(*targs, out=out, **kw)
    if isinstance(want, tuple):
        for g, r, o, w in zip(got, res, out, want, strict=True):
            assert r is o
            assert_close(g, w)
            assert_close(o, w)
    else:
        assert res is out
        assert_close(got, want)
        assert_close(out, want)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask", MASKS)
def test_token_kernels_equal_the_cpu_kernels(mask: str, dtype: Any, mode: str, as_device: Dispatch) -> None:
    as_device(mode)
    r, v = _tok(dtype), _tok(dtype, seed=6)
    m = _mask(mask, r.shape)
    other = np.float64 if dtype == np.float32 else np.float32
    for masked in ("restart", "carry"):
        for gamma in (1.0, 0.9, 0.0):
            _check_call(K.token_returns, (r, m), {"gamma": gamma, "masked": masked})
    for gamma, lam in ((1.0, 1.0), (0.99, 0.95), (0.5, 0.0)):
        _check_call(K.token_gae, (r, v, m), {"gamma": gamma, "lam": lam})
    _check_call(K.token_gae, (r, v.astype(other), m), {"gamma": 0.9, "lam": 0.9})  # promotion
    for shift_mean in (True, False):
        for eps in (1e-8, 0.0, 0.5):
            _check_call(K.masked_whiten, (r, m), {"shift_mean": shift_mean, "eps": eps})
    _check_call(K.masked_whiten, (r.reshape(-1), m.reshape(-1)), {})  # any shape
    for kind in T.KL_NAMES:
        for clamp in (False, True):
            _check_call(K.kl_estimate, (r, v, m), {"kind": kind, "clamp": clamp})
            _check_call(K.kl_estimate, (r * 30, v, None), {"kind": kind, "clamp": clamp})
    _check_call(K.kl_estimate, (r, v.astype(other), m), {"kind": "low_var_kl"})
    as_device.check("token_returns", "token_gae", "masked_whiten", "kl_estimate")


@pytest.mark.parametrize("mode", MODES)
def test_grad_inputs_give_plain_results(mode: str, as_device: Any) -> None:
    """The host path detaches its inputs; the torch path does too (no graph through an advantage)."""
    as_device(mode)
    r = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    m = torch.ones(2, 5, dtype=torch.bool)
    assert not K.token_returns(r, m).requires_grad
    assert not K.masked_whiten(r, m).requires_grad
    assert not K.kl_estimate(r, r.detach() * 2).requires_grad
    assert not K.group_advantages(r[0], group_size=5).requires_grad


# ------------------------------------------------------------------------------------------- bad input


GROUP_BAD = {c[0]: c for c in G.BAD}
TOKEN_BAD = {c[0]: c for c in T.BAD_CALLS}
# the cases whose error depends on the values, which meta tensors do not have
DATA_CASES = {"rewards-nan", "rewards-inf-ids", "rewards-inf-2d", "rewards-inf-gdpo", "rewards-nan-batch",
              "rewards-nan-rloo", "rewards-overflow", "masked_whiten one token", "masked_whiten empty",
              "masked_whiten nan weights"}


def _error(call: Callable[[], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    return type(info.value), str(info.value)


def _run_case(case: str, monkeypatch: pytest.MonkeyPatch, convert: Callable[..., Any],
              device: Callable[[Any], bool] | None) -> tuple[type[BaseException], str]:
    """The error of bad-input ``case`` with the kernels' array arguments passed through ``convert``, and
    ``_device.on_device`` replaced by ``device`` (None: the real one)."""
    with monkeypatch.context() as mp:
        if device is not None:
            mp.setattr(_device, "on_device", device)
        if case in GROUP_BAD:
            fn = GROUP_BAD[case][3]
            mp.setattr(G, "GA", convert(K.group_advantages))
            mp.setattr(G, "RL", convert(K.rloo_advantages))
            return _error(fn)
        tfn = TOKEN_BAD[case][3]
        for kname in ("token_returns", "token_gae", "masked_whiten", "kl_estimate"):
            mp.setattr(K, kname, convert(getattr(K, kname)))
        return _error(lambda: tfn(T._scan_args()))


def _cpu_error(case: str, monkeypatch: pytest.MonkeyPatch) -> tuple[type[BaseException], str]:
    """The CPU error of ``case``: its arrays as CPU tensors (the checking path; a plain NumPy call meets the
    binding's own checks, worded a little differently), of the type the case expects."""
    want = _run_case(case, monkeypatch, tensorized, lambda x: False)
    c = GROUP_BAD.get(case) or TOKEN_BAD[case]
    assert want[0] is c[1] and re.match(c[2], want[1]), want
    return want


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(GROUP_BAD) + sorted(TOKEN_BAD))
def test_bad_input_same_error_on_device(case: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.setitem(_torch_paths.CUDA_PATH, name, mode)
    want = _cpu_error(case, monkeypatch)
    assert _run_case(case, monkeypatch, tensorized, _convert.is_torch) == want


def meta(a: Any) -> Any:
    """A NumPy array as a ``meta`` tensor (shape and dtype, no data) where torch can hold it."""
    t = tensor(a)
    if isinstance(t, tuple):
        return tuple(meta(x) for x in t)
    return t.to("meta") if isinstance(t, torch.Tensor) else t


def metaized(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        # reward_weights is read on the host by design (and moved to the device): a CPU tensor
        kw = {k: tensor(v) if k == "reward_weights" else meta(v) for k, v in kwargs.items()}
        return fn(*(meta(a) for a in args), **kw)

    return call


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", sorted(set(GROUP_BAD) - DATA_CASES) + sorted(set(TOKEN_BAD) - DATA_CASES))
def test_checks_read_metadata_only(case: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real ``on_device`` with tensors on the ``meta`` device: no data to copy, the same errors."""
    for name in NAMES:
        monkeypatch.setitem(_torch_paths.CUDA_PATH, name, mode)
    want = _cpu_error(case, monkeypatch)
    assert _run_case(case, monkeypatch, metaized, None) == want


def test_data_cases_are_bad_cases() -> None:
    assert set(GROUP_BAD) | set(TOKEN_BAD) >= DATA_CASES


# ------------------------------------------------------------------------------------------ mixed devices


MIXED: list[tuple[str, str, Callable[[Any, Any], Any]]] = [
    ("rewards+numpy ids", "group_ids", lambda d, h: K.group_advantages(d(np.zeros(4)), h(np.zeros(4, np.int64)))),
    ("numpy rewards+ids", "rewards", lambda d, h: K.rloo_advantages(h(np.zeros(4)), d(np.zeros(4, np.int64)))),
    ("group out", "out", lambda d, h: K.group_advantages(d(np.zeros(4)), out=h(np.zeros(4)))),
    ("rloo out", "out", lambda d, h: K.rloo_advantages(d(np.zeros(4)), out=h(np.zeros(4)))),
    ("returns mask", "mask", lambda d, h: K.token_returns(d(np.zeros((2, 3))), h(np.ones((2, 3), bool)))),
    ("gae values", "values",
     lambda d, h: K.token_gae(d(np.zeros((2, 3))), h(np.zeros((2, 3))), d(np.ones((2, 3), bool)))),
    ("gae out[1]", r"out\[1\] \(returns\)",
     lambda d, h: K.token_gae(d(np.zeros((2, 3))), d(np.zeros((2, 3))), d(np.ones((2, 3), bool)),
                              out=(d(np.zeros((2, 3))), h(np.zeros((2, 3)))))),
    ("whiten x", "x", lambda d, h: K.masked_whiten(h(np.zeros((2, 3))), d(np.ones((2, 3), bool)))),
    ("kl ref", "ref_logp", lambda d, h: K.kl_estimate(d(np.zeros(3)), h(np.zeros(3)))),
    ("kl mask", "mask", lambda d, h: K.kl_estimate(d(np.zeros(3)), d(np.zeros(3)), h(np.ones(3, bool)))),
]


@pytest.mark.parametrize("host_kind", ["numpy", "cpu_tensor"])
@pytest.mark.parametrize(("label", "arg", "call"), MIXED, ids=[c[0] for c in MIXED])
def test_mixed_devices_raise_naming_the_argument(label: str, arg: str, call: Callable[..., Any],
                                                 host_kind: str) -> None:
    def on_meta(a: np.ndarray) -> Any:
        return torch.from_numpy(a).to("meta")

    def on_host(a: np.ndarray) -> Any:
        return a if host_kind == "numpy" else torch.from_numpy(a)

    got = "a numpy array" if host_kind == "numpy" else "a tensor on cpu"
    with pytest.raises(ValueError, match=rf"^{arg}: expected a torch tensor on meta \(the device of \w+; .*got {got}"):
        call(on_meta, on_host)


@pytest.mark.parametrize("mode", MODES)
def test_reward_weights_move_to_the_device(mode: str, as_device: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """reward_weights ([R]) may be a list, a NumPy array or a tensor elsewhere: it is read on the host, as on the
    host path, and moved to the rewards' device; ids and out= on another device are refused."""
    as_device(mode)
    r = np.random.default_rng(1).normal(size=(6, 2))
    want = K.group_advantages(r, group_size=3, reward_weights=np.array([1.0, 2.0]))
    for w in ([1.0, 2.0], np.array([1.0, 2.0]), torch.tensor([1.0, 2.0], dtype=torch.float64)):
        assert_close(K.group_advantages(torch.from_numpy(r), group_size=3, reward_weights=w), want)
    monkeypatch.setattr(_device, "on_device", lambda x: _convert.is_torch(x) and x.dtype == torch.float64)
    with pytest.raises(ValueError, match="^group_ids: expected a torch tensor on cpu"):
        K.group_advantages(torch.from_numpy(r), np.zeros(6, np.int64))


def test_host_calls_are_untouched_by_the_dispatch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a device tensor nothing changes: NumPy inputs with a CPU-tensor out= or mask work as before."""
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("torch path taken for a host call")

    for name in NAMES:
        monkeypatch.setitem(_torch_paths.CUDA_PATH, name, "torch")
        monkeypatch.setattr(_torch_paths, name, fail)
    r = np.linspace(-1, 1, 6)
    out = torch.zeros(6, dtype=torch.float64)
    assert K.group_advantages(r, group_size=3, out=out) is out
    np.testing.assert_array_equal(out.numpy(), K.group_advantages(r, group_size=3))
    x = r.reshape(2, 3)
    got = K.token_returns(torch.from_numpy(x), torch.ones(2, 3, dtype=torch.bool))
    np.testing.assert_array_equal(got.numpy(), K.token_returns(x, np.ones((2, 3), bool)))


def test_the_cuda_test_body_on_cpu_tensors(as_device: Dispatch, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_llm_token_kernels.py's CUDA test (skipped without a GPU) checks the real device; its body runs
    here on CPU tensors taken for device ones, so it is known to be right before a GPU runs it."""
    T.check_device_dispatch("cpu", monkeypatch)
    assert all(as_device.calls[name] > 0 for name in NAMES)


def test_fast_entries_leave_device_tensors_alone() -> None:
    """The C++ entries of plain calls answer NotImplemented for tensors off the CPU (``meta`` here: no data), so a
    CUDA call always reaches the device dispatch; the same call on CPU tensors they take whole."""
    fk = _core.kernels
    for dev in ("meta", "cpu"):
        r = torch.zeros(32, device=dev)
        ids = torch.zeros(32, dtype=torch.int64, device=dev)
        x, m = torch.zeros(2, 16, device=dev), torch.ones(2, 16, device=dev)
        got = [
            fk.group_advantages_fast(r, ids, None, "trl", None, None, None, None, None, "sum", None,
                                     {"trl": (0, 1, 1e-4, 0, 0)}),
            fk.rloo_advantages_fast(r, None, 16, None),
            fk.token_returns_fast(x, m, 1.0, "carry", None),
            fk.token_gae_fast(x, x, m, 1.0, 1.0, None),
            fk.masked_whiten_fast(x, m, True, 1e-8, False, None),
            fk.kl_estimate_fast(x, x, m, "k3", True, None),
        ]
        if dev == "meta":
            assert all(g is NotImplemented for g in got)
        else:
            assert not any(g is NotImplemented for g in got)
