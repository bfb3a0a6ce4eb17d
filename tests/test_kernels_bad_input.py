"""Bad input raises ValueError/TypeError whose message starts with the argument's name; never a crash.

One case per bad-input path of every kernel argument, through the public wrappers (``rltrain.kernels``) and
directly through the raw ``rltrain._core`` bindings (which must check shapes, dtypes, contiguity and lengths
themselves, so that no call can read or write out of bounds).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import _core
from rltrain import kernels as K

T, N = 4, 3  # GAE / discounted returns: [T, N]
G, L = 3, 5  # group kernels: [G, L]
B = 2


def f64(*shape: int) -> np.ndarray:
    return np.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape)


def readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def objects(*shape: int) -> np.ndarray:
    a = np.empty(shape, object)
    a[...] = 0.5
    return a


# Float arguments: dtypes that are refused (TypeError).
BAD_FLOAT_DTYPES: dict[str, Callable[[tuple[int, ...]], Any]] = {
    "int64": lambda s: np.zeros(s, np.int64),
    "int32": lambda s: np.zeros(s, np.int32),
    "uint8": lambda s: np.zeros(s, np.uint8),
    "bool": lambda s: np.zeros(s, bool),
    "float16": lambda s: np.zeros(s, np.float16),
    "complex128": lambda s: np.zeros(s, np.complex128),
    "object": lambda s: objects(*s),
}
# Flag arguments (dones, terminated) accept bool/uint8/float32/float64 (and integers, read as non-zero).
BAD_FLAG_DTYPES: dict[str, Callable[[tuple[int, ...]], Any]] = {
    "float16": lambda s: np.zeros(s, np.float16),
    "complex64": lambda s: np.zeros(s, np.complex64),
    "object": lambda s: objects(*s),
    "str": lambda s: np.full(s, "x"),
}
BAD_UNIT = [-0.1, 1.0001, float("nan"), float("inf"), -float("inf")]  # gamma, lam: ValueError
BAD_UNIT_TYPE = ["0.9", None, True, 0.5j]  # TypeError
BAD_NONNEG = [-1e-12, -1.0, float("nan"), float("inf")]  # eps, alpha, beta: ValueError
BAD_NONNEG_TYPE = ["1e-8", None, True]


def name_re(arg: str) -> str:
    """The message starts with the argument's name."""
    return "^" + re.escape(arg) + r"(:| |$)"


class Case:
    def __init__(self, id: str, fn: Callable[[], Any], exc: type[Exception], arg: str) -> None:
        self.id, self.fn, self.exc, self.arg = id, fn, exc, arg


CASES: list[Case] = []


def case(id: str, exc: type[Exception], arg: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    def deco(fn: Callable[[], Any]) -> Callable[[], Any]:
        CASES.append(Case(id, fn, exc, arg))
        return fn

    return deco


def add(id: str, exc: type[Exception], arg: str, fn: Callable[[], Any]) -> None:
    CASES.append(Case(id, fn, exc, arg))


# ---------------------------------------------------------------------------------------------------- gae


def gae_call(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {
        "rewards": f64(T, N),
        "values": f64(T, N),
        "dones": np.zeros((T, N), bool),
        "last_values": f64(N),
        "gamma": 0.99,
        "lam": 0.95,
    }
    args.update(over)
    return lambda: K.gae(**args)


def gae_term_call(**over: Any) -> Callable[[], Any]:
    base: dict[str, Any] = {"terminated": np.zeros((T, N), bool), "final_values": f64(T, N)}
    base.update(over)
    return gae_call(**base)


for shape in [(T,), (T, N, 1), ()]:
    add(f"gae-rewards-ndim{len(shape)}", ValueError, "rewards", gae_call(rewards=np.zeros(shape)))
for dt, mk in BAD_FLOAT_DTYPES.items():
    add(f"gae-rewards-{dt}", TypeError, "rewards", gae_call(rewards=mk((T, N))))
    add(f"gae-values-{dt}", TypeError, "values", gae_call(values=mk((T, N))))
    add(f"gae-last_values-{dt}", TypeError, "last_values", gae_call(last_values=mk((N,))))
    add(f"gae-final_values-{dt}", TypeError, "final_values", gae_term_call(final_values=mk((T, N))))
add("gae-rewards-None", TypeError, "rewards", gae_call(rewards=None))
add("gae-rewards-ragged-list", TypeError, "rewards", gae_call(rewards=[[1.0, 2.0], [3.0]]))
add("gae-rewards-list-of-objects", TypeError, "rewards", gae_call(rewards=[[None] * N] * T))
for shape in [(T, N + 1), (T + 1, N), (T * N,), (N, T)]:
    add(f"gae-values-shape{shape}", ValueError, "values", gae_call(values=np.zeros(shape)))
    add(f"gae-dones-shape{shape}", ValueError, "dones", gae_call(dones=np.zeros(shape, bool)))
    add(
        f"gae-terminated-shape{shape}",
        ValueError,
        "terminated",
        gae_term_call(terminated=np.zeros(shape, bool)),
    )
    add(
        f"gae-final_values-shape{shape}",
        ValueError,
        "final_values",
        gae_term_call(final_values=np.zeros(shape)),
    )
for shape in [(N + 1,), (1, N), (), (T, N)]:
    add(f"gae-last_values-shape{shape}", ValueError, "last_values", gae_call(last_values=np.zeros(shape)))
for dt, mk in BAD_FLAG_DTYPES.items():
    add(f"gae-dones-{dt}", TypeError, "dones", gae_call(dones=mk((T, N))))
    add(f"gae-terminated-{dt}", TypeError, "terminated", gae_term_call(terminated=mk((T, N))))
add("gae-final_values-missing", ValueError, "final_values", gae_call(terminated=np.zeros((T, N), bool)))
for p in ("gamma", "lam"):
    for v in BAD_UNIT:
        add(f"gae-{p}-{v}", ValueError, p, gae_call(**{p: v}))
    for v in BAD_UNIT_TYPE:
        add(f"gae-{p}-{type(v).__name__}", TypeError, p, gae_call(**{p: v}))
add("gae-out-not-a-tuple", TypeError, "out", gae_call(out=np.zeros((T, N))))
add("gae-out-one-buffer", TypeError, "out", gae_call(out=(np.zeros((T, N)),)))
add("gae-out-three-buffers", TypeError, "out", gae_call(out=(np.zeros((T, N)),) * 3))
for i, arg in enumerate(["out[0]", "out[1]"]):

    def pair(x: Any, i: int = i) -> tuple[Any, Any]:
        return (x, np.zeros((T, N))) if i == 0 else (np.zeros((T, N)), x)

    add(f"gae-{arg}-shape", ValueError, arg, gae_call(out=pair(np.zeros((T, N + 1)))))
    add(f"gae-{arg}-transposed-shape", ValueError, arg, gae_call(out=pair(np.zeros((N, T)))))
    add(f"gae-{arg}-float32", TypeError, arg, gae_call(out=pair(np.zeros((T, N), np.float32))))
    add(f"gae-{arg}-int", TypeError, arg, gae_call(out=pair(np.zeros((T, N), np.int64))))
    add(f"gae-{arg}-readonly", ValueError, arg, gae_call(out=pair(readonly(np.zeros((T, N))))))
    add(f"gae-{arg}-list", TypeError, arg, gae_call(out=pair([[0.0] * N] * T)))
    add(
        f"gae-{arg}-torch-dtype", TypeError, arg, gae_call(out=pair(torch.zeros((T, N), dtype=torch.float32)))
    )
    add(
        f"gae-{arg}-torch-shape",
        ValueError,
        arg,
        gae_call(out=pair(torch.zeros((T + 1, N), dtype=torch.float64))),
    )
add("gae-torch-rewards-int", TypeError, "rewards", gae_call(rewards=torch.zeros((T, N), dtype=torch.int64)))
add(
    "gae-torch-values-shape",
    ValueError,
    "values",
    gae_call(values=torch.zeros((T, N + 1), dtype=torch.float64)),
)

# ---------------------------------------------------------------------------------------- discounted_returns


def dr_call(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {"rewards": f64(T, N), "dones": np.zeros((T, N), bool), "gamma": 0.99}
    args.update(over)
    return lambda: K.discounted_returns(**args)


for shape in [(T,), (T, N, 1)]:
    add(f"dr-rewards-ndim{len(shape)}", ValueError, "rewards", dr_call(rewards=np.zeros(shape)))
for dt, mk in BAD_FLOAT_DTYPES.items():
    add(f"dr-rewards-{dt}", TypeError, "rewards", dr_call(rewards=mk((T, N))))
    add(f"dr-last_values-{dt}", TypeError, "last_values", dr_call(last_values=mk((N,))))
for dt, mk in BAD_FLAG_DTYPES.items():
    add(f"dr-dones-{dt}", TypeError, "dones", dr_call(dones=mk((T, N))))
for shape in [(T, N + 1), (T,), (N, T)]:
    add(f"dr-dones-shape{shape}", ValueError, "dones", dr_call(dones=np.zeros(shape, bool)))
for shape in [(N + 1,), (1, N), ()]:
    add(f"dr-last_values-shape{shape}", ValueError, "last_values", dr_call(last_values=np.zeros(shape)))
for v in BAD_UNIT:
    add(f"dr-gamma-{v}", ValueError, "gamma", dr_call(gamma=v))
for v in BAD_UNIT_TYPE:
    add(f"dr-gamma-{type(v).__name__}", TypeError, "gamma", dr_call(gamma=v))
add("dr-out-shape", ValueError, "out", dr_call(out=np.zeros((T + 1, N))))
add("dr-out-float32", TypeError, "out", dr_call(out=np.zeros((T, N), np.float32)))
add("dr-out-readonly", ValueError, "out", dr_call(out=readonly(np.zeros((T, N)))))
add("dr-out-list", TypeError, "out", dr_call(out=[[0.0] * N] * T))
add("dr-out-torch-dtype", TypeError, "out", dr_call(out=torch.zeros((T, N), dtype=torch.float32)))

# ------------------------------------------------------------------------------------------ group_normalize


def gn_call(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {"scores": f64(6), "group_size": 3}
    args.update(over)
    return lambda: K.group_normalize(**args)


for shape in [(), (2, 3)]:
    add(f"gn-scores-ndim{len(shape)}", ValueError, "scores", gn_call(scores=np.zeros(shape)))
for dt, mk in BAD_FLOAT_DTYPES.items():
    add(f"gn-scores-{dt}", TypeError, "scores", gn_call(scores=mk((6,))))
for gs in [0, -3, 4, 12]:
    add(f"gn-group_size-{gs}", ValueError, "group_size", gn_call(group_size=gs))
for gs in [3.0, "3", True]:
    add(f"gn-group_size-{type(gs).__name__}", TypeError, "group_size", gn_call(group_size=gs))
for sc in ["mean", "", None, "GROUP"]:
    add(f"gn-scale-{sc!r}", ValueError, "scale", gn_call(scale=sc))
for v in BAD_NONNEG:
    add(f"gn-eps-{v}", ValueError, "eps", gn_call(eps=v))
for v in BAD_NONNEG_TYPE:
    add(f"gn-eps-{type(v).__name__}", TypeError, "eps", gn_call(eps=v))
add("gn-ddof-negative", ValueError, "ddof", gn_call(ddof=-1))
for v in [1.0, True, "1", None]:
    add(f"gn-ddof-{type(v).__name__}", TypeError, "ddof", gn_call(ddof=v))
add("gn-out-shape", ValueError, "out", gn_call(out=np.zeros(5)))
add("gn-out-float32", TypeError, "out", gn_call(out=np.zeros(6, np.float32)))
add("gn-out-readonly", ValueError, "out", gn_call(out=readonly(np.zeros(6))))

# ------------------------------------------------------------------------------------------- group kernels

GROUP_FNS = {
    "episodic": K.episodic_advantages,
    "per_step": K.per_step_advantages,
    "hybrid": K.hybrid_advantages,
}


def grp_call(kernel: str, **over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {"rewards": f64(G, L), "lengths": np.array([L, 2, 0])}
    args.update(over)
    return lambda: GROUP_FNS[kernel](**args)


for k in GROUP_FNS:
    for shape in [(L,), (1, B, G, L), ()]:
        add(f"{k}-rewards-ndim{len(shape)}", ValueError, "rewards", grp_call(k, rewards=np.zeros(shape)))
    for dt, mk in BAD_FLOAT_DTYPES.items():
        add(f"{k}-rewards-{dt}", TypeError, "rewards", grp_call(k, rewards=mk((G, L))))
    for shape in [(G + 1,), (G, 1), (), (B, G)]:
        add(
            f"{k}-lengths-shape{shape}", ValueError, "lengths", grp_call(k, lengths=np.zeros(shape, np.int64))
        )
    add(
        f"{k}-lengths-3d-shape",
        ValueError,
        "lengths",
        grp_call(k, rewards=f64(B, G, L), lengths=np.zeros(G, np.int64)),
    )
    for dt in [np.float64, np.float32, np.bool_, np.complex128, object]:
        add(
            f"{k}-lengths-{np.dtype(dt).name}",
            TypeError,
            "lengths",
            grp_call(k, lengths=np.array([1, 2, 0]).astype(dt)),
        )
    for bad in [-1, L + 1, 2**40, -(2**62)]:
        add(f"{k}-lengths-{bad}", ValueError, "lengths", grp_call(k, lengths=np.array([1, bad, 0])))
    add(
        f"{k}-lengths-3d-out-of-range",
        ValueError,
        "lengths",
        grp_call(k, rewards=f64(B, G, L), lengths=np.array([[1, 2, 3], [0, L + 1, 1]])),
    )
    add(
        f"{k}-lengths-uint64-huge",
        ValueError,
        "lengths",
        grp_call(k, lengths=np.array([1, 2**63 + 5, 0], np.uint64)),
    )
    for v in BAD_NONNEG:
        add(f"{k}-eps-{v}", ValueError, "eps", grp_call(k, eps=v))
    for v in BAD_NONNEG_TYPE:
        add(f"{k}-eps-{type(v).__name__}", TypeError, "eps", grp_call(k, eps=v))
    add(f"{k}-ddof-negative", ValueError, "ddof", grp_call(k, ddof=-2))
    for v in [1.5, True]:
        add(f"{k}-ddof-{type(v).__name__}", TypeError, "ddof", grp_call(k, ddof=v))
    add(f"{k}-out-shape", ValueError, "out", grp_call(k, out=np.zeros((G, L + 1))))
    add(f"{k}-out-3d-for-2d", ValueError, "out", grp_call(k, out=np.zeros((1, G, L))))
    add(f"{k}-out-float32", TypeError, "out", grp_call(k, out=np.zeros((G, L), np.float32)))
    add(f"{k}-out-readonly", ValueError, "out", grp_call(k, out=readonly(np.zeros((G, L)))))
    add(f"{k}-out-torch-dtype", TypeError, "out", grp_call(k, out=torch.zeros((G, L), dtype=torch.float32)))
    if k != "episodic":
        for v in BAD_UNIT:
            add(f"{k}-gamma-{v}", ValueError, "gamma", grp_call(k, gamma=v))
        for v in BAD_UNIT_TYPE:
            add(f"{k}-gamma-{type(v).__name__}", TypeError, "gamma", grp_call(k, gamma=v))
for v in ["step", "mean", "", None, "Timestep"]:
    add(f"per_step-normalize-{v!r}", ValueError, "normalize", grp_call("per_step", normalize=v))
for p in ("alpha", "beta"):
    for v in BAD_NONNEG:
        add(f"hybrid-{p}-{v}", ValueError, p, grp_call("hybrid", **{p: v}))
    for v in BAD_NONNEG_TYPE:
        add(f"hybrid-{p}-{type(v).__name__}", TypeError, p, grp_call("hybrid", **{p: v}))
for v in [-1.0, -1e-9, float("nan")]:
    add(f"hybrid-clip-{v}", ValueError, "clip", grp_call("hybrid", clip=v))
for v in ["10", True]:
    add(f"hybrid-clip-{type(v).__name__}", TypeError, "clip", grp_call("hybrid", clip=v))

# -------------------------------------------------------------------------------- running statistics


def rms(shape: tuple[int, ...] = (3,)) -> K.RunningMeanStd:
    r = K.RunningMeanStd(shape=shape)
    r.update(f64(4, *shape))
    return r


add("rms-shape-negative", ValueError, "shape", lambda: K.RunningMeanStd(shape=(2, -1)))
add("rms-epsilon-negative", ValueError, "epsilon", lambda: K.RunningMeanStd(epsilon=-1.0))
add("rms-epsilon-nan", ValueError, "epsilon", lambda: K.RunningMeanStd(epsilon=float("nan")))
add("rms-update-trailing-shape", ValueError, "batch", lambda: rms().update(np.zeros((4, 2))))
add("rms-update-ndim", ValueError, "batch", lambda: rms().update(np.zeros(3)))
add("rms-update-extra-dim", ValueError, "batch", lambda: rms().update(np.zeros((4, 3, 1))))
add("rms-update-scalar-stream-2d", ValueError, "batch", lambda: rms(()).update(np.zeros((4, 2))))
add("rms-update-complex", TypeError, "batch", lambda: rms().update(np.zeros((4, 3), np.complex128)))
add("rms-update-object", TypeError, "batch", lambda: rms().update(objects(4, 3)))
add("rms-update-None", TypeError, "batch", lambda: rms().update(None))
add("rms-normalize-shape", ValueError, "x", lambda: rms().normalize(np.zeros((4, 2))))
add("rms-normalize-ndim", ValueError, "x", lambda: rms((2, 3)).normalize(np.zeros(3)))
add("rms-normalize-complex", TypeError, "x", lambda: rms().normalize(np.zeros((4, 3), np.complex64)))
add("rms-normalize-clip-negative", ValueError, "clip", lambda: rms().normalize(np.zeros((4, 3)), clip=-1.0))
add(
    "rms-normalize-clip-nan", ValueError, "clip", lambda: rms().normalize(np.zeros((4, 3)), clip=float("nan"))
)
add("rms-normalize-eps-negative", ValueError, "eps", lambda: rms().normalize(np.zeros((4, 3)), eps=-1e-8))
add("rms-merge-type", TypeError, "other", lambda: rms().merge(object()))  # type: ignore[arg-type]
add("rms-merge-shape", ValueError, "other", lambda: rms().merge(rms((2,))))
add(
    "rms-load-mean-shape",
    ValueError,
    "mean",
    lambda: rms().load_state_dict({"mean": np.zeros(2), "var": np.ones(3), "count": np.array(1.0)}),
)
add(
    "rms-load-var-shape",
    ValueError,
    "var",
    lambda: rms().load_state_dict({"mean": np.zeros(3), "var": np.ones((3, 1)), "count": np.array(1.0)}),
)
add(
    "rms-load-count-negative",
    ValueError,
    "count",
    lambda: rms().load_state_dict({"mean": np.zeros(3), "var": np.ones(3), "count": np.array(-1.0)}),
)
add("rms-load-missing", KeyError, "state", lambda: rms().load_state_dict({"mean": np.zeros(3)}))
for v in [0, -1]:
    add(f"rn-num_envs-{v!r}", ValueError, "num_envs", lambda v=v: K.RewardNormalizer(v))
for v in [2.5, True, "4"]:  # the wrong kind of value (rltrain._checks): TypeError
    add(f"rn-num_envs-{v!r}", TypeError, "num_envs", lambda v=v: K.RewardNormalizer(v))
add("rn-gamma", ValueError, "gamma", lambda: K.RewardNormalizer(2, gamma=1.5))
add("rn-epsilon", ValueError, "epsilon", lambda: K.RewardNormalizer(2, epsilon=-1.0))
add("rn-clip", ValueError, "clip", lambda: K.RewardNormalizer(2, clip=-1.0))
add(
    "rn-rewards-shape",
    ValueError,
    "rewards",
    lambda: K.RewardNormalizer(2).normalize(np.zeros(3), np.zeros(3, bool)),
)
add(
    "rn-rewards-2d",
    ValueError,
    "rewards",
    lambda: K.RewardNormalizer(2).normalize(np.zeros((1, 2)), np.zeros(2, bool)),
)
add(
    "rn-rewards-complex",
    TypeError,
    "rewards",
    lambda: K.RewardNormalizer(2).normalize(np.zeros(2, np.complex128), np.zeros(2, bool)),
)
add(
    "rn-dones-shape",
    ValueError,
    "dones",
    lambda: K.RewardNormalizer(2).normalize(np.zeros(2), np.zeros(3, bool)),
)
add(
    "rn-dones-float16",
    TypeError,
    "dones",
    lambda: K.RewardNormalizer(2).normalize(np.zeros(2), np.zeros(2, np.float16)),
)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_naming_the_argument(c: Case) -> None:
    with pytest.raises(c.exc) as info:
        c.fn()
    # KeyError's str() is the repr of its message; strip the quotes.
    msg = info.value.args[0] if c.exc is KeyError else str(info.value)
    assert re.search(name_re(c.arg), msg), f"message does not start with {c.arg!r}: {msg!r}"


def test_case_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("fn", "detail"),
    [
        (gae_call(values=np.zeros((T, N + 1))), r"\(4, 3\).*\(4, 4\)"),
        (gae_call(last_values=np.zeros(N + 2)), r"\(3,\).*\(5,\)"),
        (gae_call(rewards=np.zeros((T, N), np.int32)), "int32"),
        (gae_call(dones=np.zeros((T, N), np.float16)), "float16"),
        (grp_call("episodic", lengths=np.array([1, L + 1, 0])), r"\[0, 5\].*6"),
        (gn_call(group_size=4), r"6.*4"),
    ],
)
def test_messages_give_expected_and_actual(fn: Callable[[], Any], detail: str) -> None:
    with pytest.raises((ValueError, TypeError), match=detail):
        fn()


def test_bad_input_leaves_out_untouched() -> None:
    out = np.full(6, 7.0)
    with pytest.raises(ValueError):
        K.group_normalize(f64(6), group_size=4, out=out)
    np.testing.assert_array_equal(out, 7.0)
    out2 = (np.full((G, L), 7.0), np.full((G, L), 7.0))
    with pytest.raises(ValueError):
        K.episodic_advantages(f64(G, L), np.array([1, L + 1, 0]), out=out2[0])
    np.testing.assert_array_equal(out2[0], 7.0)


# ------------------------------------------------------------------------------------ raw _core bindings
# The bindings check everything they index with, so a direct call with inconsistent buffers raises.


def core_gae(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {
        "rewards": f64(T, N),
        "values": f64(T, N),
        "dones": np.zeros((T, N), bool),
        "last_values": f64(N),
        "terminated": None,
        "final_values": None,
        "gamma": 0.99,
        "lam": 0.95,
        "adv_out": np.zeros((T, N)),
        "ret_out": np.zeros((T, N)),
    }
    args.update(over)
    return lambda: _core.kernels.gae(**args)


def core_dr(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {
        "rewards": f64(T, N),
        "dones": np.zeros((T, N), bool),
        "last_values": f64(N),
        "gamma": 0.99,
        "out": np.zeros((T, N)),
    }
    args.update(over)
    return lambda: _core.kernels.discounted_returns(**args)


def core_grp(kernel: str, **over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {
        "rewards": f64(B, G, L),
        "lengths": np.array([[L, 2, 0], [1, 1, 1]], np.int64),
        "eps": 1e-8,
        "ddof": 0,
        "out": np.zeros((B, G, L)),
    }
    if kernel == "per_step":
        args.update(gamma=0.9, pooled=0)
    if kernel == "hybrid":
        args.update(gamma=0.9, alpha=1.0, beta=1.0, clip=10.0)
    args.update(over)
    fn = {
        "episodic": _core.kernels.episodic_advantages,
        "per_step": _core.kernels.per_step_advantages,
        "hybrid": _core.kernels.hybrid_advantages,
    }[kernel]
    return lambda: fn(**args)


def core_gn(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {
        "scores": f64(6),
        "group_size": 3,
        "scale": 0,
        "eps": 1e-8,
        "ddof": 0,
        "out": np.zeros(6),
    }
    args.update(over)
    return lambda: _core.kernels.group_normalize(**args)


def core_rms_update(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {"mean": np.zeros(3), "var": np.ones(3), "count": 1e-4, "batch": f64(4, 3)}
    args.update(over)
    return lambda: _core.kernels.rms_update(**args)


def core_rms_normalize(**over: Any) -> Callable[[], Any]:
    args: dict[str, Any] = {
        "x": f64(4, 3),
        "mean": np.zeros(3),
        "var": np.ones(3),
        "clip": 10.0,
        "eps": 1e-8,
        "out": np.zeros((4, 3)),
    }
    args.update(over)
    return lambda: _core.kernels.rms_normalize(**args)


fortran = np.asfortranarray(f64(T, N))


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy whose data pointer is off by one byte (the typed kernels would read it unaligned)."""
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    u[...] = a
    assert u.flags.c_contiguous and not u.flags.aligned
    return u


CORE_CASES: list[Case] = [
    Case("gae-rewards-1d", core_gae(rewards=f64(T)), ValueError, "rewards"),
    Case("gae-rewards-int", core_gae(rewards=np.zeros((T, N), np.int64)), TypeError, "rewards"),
    Case("gae-rewards-list", core_gae(rewards=[[0.0] * N] * T), TypeError, "rewards"),
    Case("gae-rewards-fortran", core_gae(rewards=fortran), ValueError, "rewards"),
    Case("gae-values-float32", core_gae(values=np.zeros((T, N), np.float32)), TypeError, "values"),
    Case("gae-values-short", core_gae(values=f64(T - 1, N)), ValueError, "values"),
    Case("gae-values-strided", core_gae(values=f64(T, 2 * N)[:, ::2]), ValueError, "values"),
    Case("gae-dones-narrow", core_gae(dones=np.zeros((T, N - 1), bool)), ValueError, "dones"),
    Case("gae-dones-int64", core_gae(dones=np.zeros((T, N), np.int64)), TypeError, "dones"),
    Case("gae-dones-int16", core_gae(dones=np.zeros((T, N), np.int16)), TypeError, "dones"),
    Case("gae-last_values-short", core_gae(last_values=f64(N - 1)), ValueError, "last_values"),
    Case("gae-last_values-float32", core_gae(last_values=np.zeros(N, np.float32)), TypeError, "last_values"),
    Case(
        "gae-terminated-short",
        core_gae(terminated=np.zeros((T - 1, N), bool), final_values=f64(T, N)),
        ValueError,
        "terminated",
    ),
    Case("gae-final_values-missing", core_gae(terminated=np.zeros((T, N), bool)), ValueError, "final_values"),
    Case(
        "gae-final_values-short",
        core_gae(terminated=np.zeros((T, N), bool), final_values=f64(T, N - 1)),
        ValueError,
        "final_values",
    ),
    Case("gae-gamma", core_gae(gamma=1.5), ValueError, "gamma"),
    Case("gae-lam-nan", core_gae(lam=float("nan")), ValueError, "lam"),
    Case("gae-adv_out-short", core_gae(adv_out=np.zeros((T, N - 1))), ValueError, "out[0]"),
    Case("gae-adv_out-float32", core_gae(adv_out=np.zeros((T, N), np.float32)), TypeError, "out[0]"),
    Case("gae-adv_out-list", core_gae(adv_out=[0.0] * (T * N)), TypeError, "out[0]"),
    Case("gae-ret_out-readonly", core_gae(ret_out=readonly(np.zeros((T, N)))), ValueError, "out[1]"),
    Case("gae-ret_out-fortran", core_gae(ret_out=np.asfortranarray(np.zeros((T, N)))), ValueError, "out[1]"),
    Case("gae-rewards-misaligned", core_gae(rewards=_misaligned(f64(T, N))), ValueError, "rewards"),
    Case("gae-dones-float-misaligned", core_gae(dones=_misaligned(np.zeros((T, N)))), ValueError, "dones"),
    Case("gae-adv_out-misaligned", core_gae(adv_out=_misaligned(np.zeros((T, N)))), ValueError, "out[0]"),
    Case("dr-out-misaligned", core_dr(out=_misaligned(np.zeros((T, N)))), ValueError, "out"),
    Case("gn-scores-misaligned", core_gn(scores=_misaligned(f64(6))), ValueError, "scores"),
    Case("rms_update-batch-misaligned", core_rms_update(batch=_misaligned(f64(4, 3))), ValueError, "batch"),
    Case("rms_normalize-x-misaligned", core_rms_normalize(x=_misaligned(f64(4, 3))), ValueError, "x"),
    Case("dr-out-short", core_dr(out=np.zeros((T - 1, N))), ValueError, "out"),
    Case("dr-out-readonly", core_dr(out=readonly(np.zeros((T, N)))), ValueError, "out"),
    Case("dr-last_values-short", core_dr(last_values=f64(N - 1)), ValueError, "last_values"),
    Case("dr-dones-short", core_dr(dones=np.zeros((T - 1, N), np.uint8)), ValueError, "dones"),
    Case("dr-gamma", core_dr(gamma=-0.5), ValueError, "gamma"),
    Case("gn-group_size-0", core_gn(group_size=0), ValueError, "group_size"),
    Case("gn-group_size-negative", core_gn(group_size=-3), ValueError, "group_size"),
    Case("gn-group_size-not-dividing", core_gn(group_size=4), ValueError, "group_size"),
    Case("gn-group_size-too-large", core_gn(group_size=12), ValueError, "group_size"),
    Case("gn-scale", core_gn(scale=3), ValueError, "scale"),
    Case("gn-scale-negative", core_gn(scale=-1), ValueError, "scale"),
    Case("gn-scores-2d", core_gn(scores=f64(2, 3)), ValueError, "scores"),
    Case("gn-scores-strided", core_gn(scores=f64(12)[::2]), ValueError, "scores"),
    Case("gn-out-short", core_gn(out=np.zeros(5)), ValueError, "out"),
    Case("gn-out-readonly", core_gn(out=readonly(np.zeros(6))), ValueError, "out"),
    Case("gn-eps", core_gn(eps=-1.0), ValueError, "eps"),
    Case("gn-ddof", core_gn(ddof=-1), ValueError, "ddof"),
    Case("rms_update-mean-short", core_rms_update(mean=np.zeros(2)), ValueError, "mean"),
    Case("rms_update-mean-float32", core_rms_update(mean=np.zeros(3, np.float32)), TypeError, "mean"),
    Case("rms_update-var-long", core_rms_update(var=np.ones(4)), ValueError, "var"),
    Case("rms_update-var-readonly", core_rms_update(var=readonly(np.ones(3))), ValueError, "var"),
    Case("rms_update-count", core_rms_update(count=-1.0), ValueError, "count"),
    Case("rms_update-batch-1d", core_rms_update(batch=f64(3)), ValueError, "batch"),
    Case("rms_update-batch-int", core_rms_update(batch=np.zeros((4, 3), np.int64)), TypeError, "batch"),
    Case("rms_normalize-out-short", core_rms_normalize(out=np.zeros((3, 3))), ValueError, "out"),
    Case("rms_normalize-mean-short", core_rms_normalize(mean=np.zeros(2)), ValueError, "mean"),
    Case("rms_normalize-var-float32", core_rms_normalize(var=np.ones(3, np.float32)), TypeError, "var"),
    Case("rms_normalize-clip", core_rms_normalize(clip=float("nan")), ValueError, "clip"),
    Case("rms_normalize-eps", core_rms_normalize(eps=-1.0), ValueError, "eps"),
    Case("rms_normalize-x-strided", core_rms_normalize(x=f64(4, 6)[:, ::2]), ValueError, "x"),
]
for k in ("episodic", "per_step", "hybrid"):
    CORE_CASES += [
        Case(f"{k}-rewards-1d", core_grp(k, rewards=f64(L)), ValueError, "rewards"),
        Case(f"{k}-rewards-4d", core_grp(k, rewards=f64(1, B, G, L)), ValueError, "rewards"),
        # [G, T] rewards take [G] lengths and a [G, T] out
        Case(f"{k}-2d-lengths-2d", core_grp(k, rewards=f64(G, L), out=None), ValueError, "lengths"),
        Case(
            f"{k}-2d-out-3d",
            core_grp(k, rewards=f64(G, L), lengths=np.array([L, 2, 0])),
            ValueError,
            "out",
        ),
        Case(
            f"{k}-rewards-misaligned",
            core_grp(k, rewards=_misaligned(f64(B, G, L))),
            ValueError,
            "rewards",
        ),
        Case(
            f"{k}-lengths-misaligned",
            core_grp(k, lengths=_misaligned(np.array([[L, 2, 0], [1, 1, 1]]))),
            ValueError,
            "lengths",
        ),
        Case(f"{k}-out-misaligned", core_grp(k, out=_misaligned(np.zeros((B, G, L)))), ValueError, "out"),
        Case(f"{k}-rewards-int", core_grp(k, rewards=np.zeros((B, G, L), np.int64)), TypeError, "rewards"),
        Case(f"{k}-rewards-strided", core_grp(k, rewards=f64(B, G, 2 * L)[..., ::2]), ValueError, "rewards"),
        Case(
            f"{k}-lengths-int32",
            core_grp(k, lengths=np.array([[L, 2, 0], [1, 1, 1]], np.int32)),
            TypeError,
            "lengths",
        ),
        Case(
            f"{k}-lengths-shape", core_grp(k, lengths=np.zeros((B, G + 1), np.int64)), ValueError, "lengths"
        ),
        Case(f"{k}-lengths-1d", core_grp(k, lengths=np.zeros(B * G, np.int64)), ValueError, "lengths"),
        Case(
            f"{k}-lengths-too-long",
            core_grp(k, lengths=np.array([[L, 2, 0], [1, L + 1, 1]])),
            ValueError,
            "lengths",
        ),
        Case(
            f"{k}-lengths-huge",
            core_grp(k, lengths=np.array([[L, 2, 0], [1, 2**62, 1]])),
            ValueError,
            "lengths",
        ),
        Case(
            f"{k}-lengths-negative",
            core_grp(k, lengths=np.array([[L, -1, 0], [1, 1, 1]])),
            ValueError,
            "lengths",
        ),
        Case(
            f"{k}-lengths-fortran",
            core_grp(k, lengths=np.asfortranarray(np.ones((B, G), np.int64))),
            ValueError,
            "lengths",
        ),
        Case(f"{k}-out-short", core_grp(k, out=np.zeros((B, G, L - 1))), ValueError, "out"),
        Case(f"{k}-out-float32", core_grp(k, out=np.zeros((B, G, L), np.float32)), TypeError, "out"),
        Case(f"{k}-out-readonly", core_grp(k, out=readonly(np.zeros((B, G, L)))), ValueError, "out"),
        Case(f"{k}-eps", core_grp(k, eps=float("nan")), ValueError, "eps"),
        Case(f"{k}-ddof", core_grp(k, ddof=-1), ValueError, "ddof"),
    ]
    if k != "episodic":
        CORE_CASES.append(Case(f"{k}-gamma", core_grp(k, gamma=1.01), ValueError, "gamma"))
CORE_CASES += [
    Case("hybrid-alpha", core_grp("hybrid", alpha=-1.0), ValueError, "alpha"),
    Case("hybrid-beta", core_grp("hybrid", beta=float("inf")), ValueError, "beta"),
    Case("hybrid-clip", core_grp("hybrid", clip=float("nan")), ValueError, "clip"),
]


@pytest.mark.parametrize("c", CORE_CASES, ids=[c.id for c in CORE_CASES])
def test_raw_core_rejects_inconsistent_buffers(c: Case) -> None:
    with pytest.raises(c.exc) as info:
        c.fn()
    assert re.search(name_re(c.arg), str(info.value)), f"message does not start with {c.arg!r}: {info.value}"


def test_raw_core_valid_calls_work() -> None:
    """The defaults used above are valid, so each case above fails for its one defect."""
    core_gae()()
    adv, ret = core_gae(adv_out=None, ret_out=None)()  # None: the binding allocates the outputs
    assert adv.shape == ret.shape == (T, N)
    core_gae(terminated=np.zeros((T, N), np.float32), final_values=f64(T, N))()
    for k in ("episodic", "per_step", "hybrid"):
        assert core_grp(k, rewards=f64(G, L), lengths=np.array([L, 2, 0]), out=None)().shape == (G, L)
    core_dr()()
    core_dr(last_values=None)()
    for k in ("episodic", "per_step", "hybrid"):
        core_grp(k)()
    core_grp("hybrid", clip=-1.0)()  # a negative clip means "no clip" at this level
    core_gn()()
    assert core_rms_update()() == pytest.approx(4.0001)
    core_rms_normalize()()


def test_wrapper_valid_calls_work() -> None:
    gae_call()()
    gae_term_call()()
    dr_call()()
    gn_call()()
    for k in GROUP_FNS:
        grp_call(k)()
    # integer flags are read as non-zero = set
    adv_int, _ = gae_call(dones=np.eye(T, N, dtype=np.int32))()
    adv_bool, _ = gae_call(dones=np.eye(T, N, dtype=bool))()
    np.testing.assert_array_equal(adv_int, adv_bool)
