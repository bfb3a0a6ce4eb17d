"""rltrain.kernels.ppo_loss_grad == rltrain.reference.ppo_loss_grad, and both == autograd on the torch loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrain import kernels as K
from rltrain import reference as R


def _batch(rng: np.random.Generator, B: int, A: int, continuous: bool, dtype=np.float64):
    head = rng.normal(size=(B, A)).astype(dtype)
    actions = rng.normal(size=(B, A)).astype(dtype) if continuous else rng.integers(0, A, B).astype(np.int64)
    vecs = [rng.normal(size=B).astype(dtype) for _ in range(5)]
    vecs[0] = vecs[0] - 1.0  # old log-probabilities
    log_std = rng.normal(scale=0.3, size=A).astype(dtype) if continuous else None
    return head, actions, vecs, log_std


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("clip_vf", [None, 0.3])
@pytest.mark.parametrize("normalize_adv", [False, True])
@pytest.mark.parametrize("B", [1, 7, 64])
def test_kernel_matches_reference(continuous: bool, clip_vf, normalize_adv: bool, B: int) -> None:
    rng = np.random.default_rng(B)
    head, actions, vecs, log_std = _batch(rng, B, 3, continuous)
    outs = []
    for impl in (K, R):
        dh, dv = np.empty_like(head), np.empty(B)
        dls = np.empty(3) if continuous else None
        stats = impl.ppo_loss_grad(head, actions, *vecs, clip=0.2, clip_vf=clip_vf, ent_coef=0.01, vf_coef=0.5,
                                   dhead=dh, dvalues=dv, log_std=log_std, dlog_std=dls, normalize_adv=normalize_adv)
        outs.append((np.array(stats), dh, dv, dls))
    for a, b in zip(outs[0], outs[1]):
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("continuous", [False, True])
def test_gradient_equals_autograd(continuous: bool) -> None:
    rng = np.random.default_rng(0)
    B, A = 32, 4
    head, actions, (old_logp, adv, ret, values, old_values), log_std = _batch(rng, B, A, continuous)
    h = torch.tensor(head, requires_grad=True)
    v = torch.tensor(values, requires_grad=True)
    ls = torch.tensor(log_std, requires_grad=True) if continuous else None
    if continuous:
        d = torch.tensor(actions) - h
        logp = (-0.5 * d * d * torch.exp(-2 * ls) - ls).sum(-1) - 0.5 * np.log(2 * np.pi) * A
        ent = (0.5 + 0.5 * np.log(2 * np.pi) + ls).sum().expand(B)
    else:
        lp_all = torch.log_softmax(h, -1)
        logp = lp_all.gather(-1, torch.tensor(actions).unsqueeze(-1)).squeeze(-1)
        ent = -(lp_all.exp() * lp_all).sum(-1)
    ratio = torch.exp(logp - torch.tensor(old_logp))
    a_t = torch.tensor(adv)
    pg = -torch.min(a_t * ratio, a_t * torch.clamp(ratio, 0.8, 1.2)).mean()
    ov = torch.tensor(old_values)
    vpred = ov + torch.clamp(v - ov, -0.3, 0.3)
    loss = pg + 0.01 * (-ent.mean()) + 0.5 * torch.nn.functional.mse_loss(torch.tensor(ret), vpred)
    loss.backward()
    dh, dv = np.empty_like(head), np.empty(B)
    dls = np.empty(A) if continuous else None
    K.ppo_loss_grad(head, actions, old_logp, adv, ret, values, old_values, clip=0.2, clip_vf=0.3, ent_coef=0.01,
                    vf_coef=0.5, dhead=dh, dvalues=dv, log_std=log_std, dlog_std=dls)
    np.testing.assert_allclose(dh, h.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dv, v.grad.numpy(), rtol=1e-9, atol=1e-12)
    if continuous:
        np.testing.assert_allclose(dls, ls.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_bad_input_names_the_argument() -> None:
    rng = np.random.default_rng(1)
    head, actions, vecs, _ = _batch(rng, 8, 3, False)
    dh, dv = np.empty_like(head), np.empty(8)
    bad = actions.copy()
    bad[2] = 3
    with pytest.raises(ValueError, match="actions"):
        K.ppo_loss_grad(head, bad, *vecs, clip=0.2, clip_vf=None, ent_coef=0.0, vf_coef=0.5, dhead=dh, dvalues=dv)
    with pytest.raises(ValueError, match="adv"):
        K.ppo_loss_grad(head, actions, vecs[0], vecs[1][:5], *vecs[2:], clip=0.2, clip_vf=None, ent_coef=0.0,
                        vf_coef=0.5, dhead=dh, dvalues=dv)
    with pytest.raises(TypeError, match="head"):
        K.ppo_loss_grad(head.astype(np.int64), actions, *vecs, clip=0.2, clip_vf=None, ent_coef=0.0, vf_coef=0.5,
                        dhead=dh, dvalues=dv)


def _call(**over):
    """A valid discrete (or, with ``continuous=True``, Gaussian) call with one argument replaced."""
    continuous = over.pop("continuous", False)
    rng = np.random.default_rng(2)
    head, actions, vecs, log_std = _batch(rng, 8, 3, continuous)
    args = dict(head=head, actions=actions, old_logp=vecs[0], adv=vecs[1], returns=vecs[2], values=vecs[3],
                old_values=vecs[4], clip=0.2, clip_vf=0.3, ent_coef=0.01, vf_coef=0.5, dhead=np.empty_like(head),
                dvalues=np.empty(8), log_std=log_std, dlog_std=np.empty(3) if continuous else None)
    args.update(over)
    return lambda: K.ppo_loss_grad(**args)


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


BAD_CALLS = [
    # scalars: finite and >= 0 (clip_vf: None disables value clipping; a negative number is refused)
    *[(name, v, ValueError) for name in ("clip", "ent_coef", "vf_coef", "clip_vf")
      for v in (-0.1, float("nan"), float("inf"))],
    *[(name, v, TypeError) for name in ("clip", "ent_coef", "vf_coef") for v in (None, "0.2", True, [0.2])],
    ("clip_vf", "0.3", TypeError),
    ("normalize_adv", 1, TypeError),
    ("normalize_adv", "yes", TypeError),
    # arrays: shapes, dtypes, ndarray only, C-contiguous, writable outputs of the input dtype
    ("head", np.zeros(8), ValueError),
    ("head", np.zeros((8, 3), np.int64), TypeError),
    ("head", torch.zeros(8, 3, dtype=torch.float64), TypeError),
    ("actions", np.zeros(8, np.int32), TypeError),
    ("actions", np.zeros(7, np.int64), ValueError),
    ("actions", np.full(8, -1, np.int64), ValueError),
    ("old_logp", np.zeros(8, np.float32), TypeError),
    ("returns", np.zeros((8, 1)), ValueError),
    ("values", np.zeros(16)[::2], ValueError),
    ("old_values", [0.0] * 8, TypeError),
    ("dhead", np.zeros((8, 3), np.float32), TypeError),
    ("dhead", np.zeros((3, 8)), ValueError),
    ("dhead", _readonly(np.zeros((8, 3))), ValueError),
    ("dhead", np.asfortranarray(np.zeros((8, 3))), ValueError),
    ("dvalues", _readonly(np.zeros(8)), ValueError),
    ("dvalues", np.zeros(9), ValueError),
    ("dvalues", None, TypeError),
]


@pytest.mark.parametrize(("arg", "value", "exc"), BAD_CALLS, ids=[f"{a}-{i}" for i, (a, _, _) in
                                                                   enumerate(BAD_CALLS)])
def test_bad_argument_is_an_error_naming_it(arg: str, value, exc) -> None:
    with pytest.raises(exc, match=rf"^{arg}: "):
        _call(**{arg: value})()


@pytest.mark.parametrize(
    ("over", "arg"),
    [
        ({"dlog_std": None}, "dlog_std"),  # a Gaussian head without its gradient buffer
        ({"dlog_std": np.zeros(4)}, "dlog_std"),
        ({"dlog_std": np.zeros(3, np.float32)}, "dlog_std"),
        ({"dlog_std": _readonly(np.zeros(3))}, "dlog_std"),
        ({"log_std": None}, "log_std"),  # a gradient buffer without the Gaussian head's log_std
        ({"log_std": np.zeros(4)}, "log_std"),
        ({"actions": np.zeros(8, np.int64)}, "actions"),  # Gaussian actions are float [B, A]
    ],
)
def test_bad_gaussian_argument_is_an_error_naming_it(over, arg: str) -> None:
    with pytest.raises((ValueError, TypeError), match=rf"^{arg}: "):
        _call(continuous=True, **over)()


def test_outputs_sharing_memory_are_refused_and_left_alone() -> None:
    rng = np.random.default_rng(3)
    head, actions, vecs, _ = _batch(rng, 8, 3, False)
    dh, dv = np.full((8, 3), 7.0), np.full(8, 7.0)
    kw = dict(clip=0.2, clip_vf=None, ent_coef=0.0, vf_coef=0.5)
    with pytest.raises(ValueError, match=r"^dvalues: shares memory with dhead"):
        K.ppo_loss_grad(head, actions, *vecs, **kw, dhead=dh, dvalues=dh.reshape(-1)[:8])
    with pytest.raises(ValueError, match=r"^dhead: shares memory with head"):
        K.ppo_loss_grad(head, actions, *vecs, **kw, dhead=head, dvalues=dv)
    with pytest.raises(ValueError, match=r"^dvalues: shares memory with values"):
        K.ppo_loss_grad(head, actions, *vecs, **kw, dhead=dh, dvalues=vecs[3])
    np.testing.assert_array_equal(dh, 7.0)
    np.testing.assert_array_equal(dv, 7.0)


def test_valid_scalars_of_other_numeric_types_are_accepted() -> None:
    """Integers and NumPy scalars are numbers too; clip_vf=0 clips the value change to nothing."""
    ref = _call(clip=0.2, ent_coef=0.0, vf_coef=1.0, clip_vf=0.0)()
    got = _call(clip=np.float32(0.2), ent_coef=0, vf_coef=np.int64(1), clip_vf=0, normalize_adv=np.bool_(False))()
    np.testing.assert_allclose(got, ref, rtol=1e-6)
