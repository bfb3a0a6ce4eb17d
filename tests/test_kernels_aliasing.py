"""``out=`` buffers that overlap an input: every kernel computes through scratch and returns the reference's
numbers (so in-place use such as ``out=rewards`` works); two outputs sharing memory raise ValueError. The C++ rows
are ``__restrict``: before this, ``gae(..., out=(values, buf))`` returned errors up to ~1e7 silently."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import kernels, reference

T, N, G = 48, 6, 5
RNG = np.random.default_rng(7)


def _gae_inputs() -> dict[str, np.ndarray]:
    return {
        "rewards": RNG.standard_normal((T, N)),
        "values": RNG.standard_normal((T, N)),
        "dones": (RNG.random((T, N)) < 0.1).astype(np.float64),  # float flags: the same dtype as an output
        "last_values": RNG.standard_normal(N),
        "terminated": (RNG.random((T, N)) < 0.05).astype(np.float64),
        "final_values": RNG.standard_normal((T, N)),
    }


def _gae(mod: Any, x: dict[str, Any], out: Any = None) -> Any:
    return mod.gae(x["rewards"], x["values"], x["dones"], x["last_values"], gamma=0.97, lam=0.9,
                   terminated=x["terminated"], final_values=x["final_values"], **({"out": out} if out else {}))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("name", ["rewards", "values", "dones", "terminated", "final_values"])
def test_gae_output_over_an_input(name: str, which: int) -> None:
    x = _gae_inputs()
    want = _gae(reference, {k: v.copy() for k, v in x.items()})
    out = [np.empty((T, N)), np.empty((T, N))]
    out[which] = x[name]
    got = _gae(kernels, x, out=tuple(out))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)
    assert got[which] is x[name]


def test_gae_output_partly_over_last_values() -> None:
    x = _gae_inputs()
    base = RNG.standard_normal(T * N + N)
    x["last_values"] = base[T * N - N // 2: T * N + N - N // 2]  # its first half is out[0]'s last row
    want = _gae(reference, {k: v.copy() for k, v in x.items()})
    got = _gae(kernels, x, out=(base[: T * N].reshape(T, N), np.empty((T, N))))
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("second", ["same", "shifted"])
def test_gae_outputs_sharing_memory_raise(second: str) -> None:
    x = _gae_inputs()
    base = np.empty(T * N + 3)
    a = base[: T * N].reshape(T, N)
    b = a if second == "same" else base[3:].reshape(T, N)
    with pytest.raises(ValueError, match=r"out\[0\] \(advantages\) and out\[1\] \(returns\) share memory"):
        _gae(kernels, x, out=(a, b))


def test_interleaved_outputs_do_not_overlap() -> None:
    x = _gae_inputs()
    base = np.empty((T, 2 * N))
    got = _gae(kernels, x, out=(base[:, ::2], base[:, 1::2]))  # one buffer, no shared element
    want = _gae(reference, x)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["rewards", "dones", "last_values"])
def test_discounted_returns_output_over_an_input(name: str) -> None:
    r, d = RNG.standard_normal((T, N)), (RNG.random((T, N)) < 0.1).astype(np.float64)
    base = RNG.standard_normal(T * N + N)
    lv = base[T * N - 2: T * N - 2 + N]
    x = {"rewards": r, "dones": d, "last_values": lv}
    want = reference.discounted_returns(r.copy(), d.copy(), gamma=0.9, last_values=lv.copy())
    out = base[: T * N].reshape(T, N) if name == "last_values" else x[name]
    got = kernels.discounted_returns(r, d, gamma=0.9, last_values=lv, out=out)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert got is out


GROUP: dict[str, Callable[..., Any]] = {
    "episodic_advantages": lambda m, r, n, **o: m.episodic_advantages(r, n, ddof=1, **o),
    "per_step_advantages": lambda m, r, n, **o: m.per_step_advantages(r, n, gamma=0.9, **o),
    "per_step_advantages-pooled": lambda m, r, n, **o: m.per_step_advantages(r, n, normalize="pooled", **o),
    "hybrid_advantages": lambda m, r, n, **o: m.hybrid_advantages(r, n, gamma=0.9, clip=3.0, **o),
}


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("fn", list(GROUP.values()), ids=list(GROUP))
def test_group_kernels_in_place(fn: Callable[..., Any], kind: str) -> None:
    r = RNG.standard_normal((G, T))
    lengths = np.array([T, 3, 0, T - 5, 17])
    want = fn(reference, r.copy(), lengths)
    rr = torch.from_numpy(r) if kind == "torch" else r
    got = fn(kernels, rr, lengths, out=rr)
    assert got is rr
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_group_normalize_in_place(kind: str) -> None:
    s = RNG.standard_normal(32)
    want = reference.group_normalize(s.copy(), group_size=8, ddof=1)
    ss = torch.from_numpy(s) if kind == "torch" else s
    got = kernels.group_normalize(ss, group_size=8, ddof=1, out=ss)
    assert got is ss
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


def test_torch_gae_output_over_values() -> None:
    x = {k: torch.from_numpy(v) for k, v in _gae_inputs().items()}
    want = _gae(reference, {k: v.numpy().copy() for k, v in x.items()})
    got = _gae(kernels, x, out=(x["values"], torch.empty(T, N, dtype=torch.float64)))
    assert got[0] is x["values"]
    np.testing.assert_allclose(got[0].numpy(), want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1].numpy(), want[1], rtol=1e-12, atol=1e-12)


def test_scratch_path_still_checks_the_output() -> None:
    s = RNG.standard_normal(32)
    with pytest.raises(ValueError, match="out: expected shape"):
        kernels.group_normalize(s, group_size=8, out=s.reshape(4, 8))
    ro = s.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        kernels.group_normalize(ro, group_size=8, out=ro)
