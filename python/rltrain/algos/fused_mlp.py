"""A fused PPO minibatch step on CPU for rltrain's MLP actor-critic: forward, the loss gradient from the C++
kernel, hand-written backward through the trunks, gradient clipping and Adam over one flat parameter buffer, in
about a third of the torch operations autograd needs.

Why: with 64x64 networks and minibatches of 64-256 samples a PPO update is dominated by per-operation overhead
(the autograd graph, Adam's per-tensor loop), not arithmetic. The policy's parameters become views of one flat
tensor (the module keeps working unchanged for rollouts, ``state_dict`` and checkpoints), gradients are written
into one flat buffer, and a single set of element-wise ops clips and applies Adam to all of them.

The PPO loss and its gradient with respect to the head outputs have one definition: the C++ kernel
``rltrain.kernels.ppo_loss_grad`` (specified by ``rltrain.reference.ppo_loss_grad``); this module only
backpropagates it through the MLP trunks, so the fused path runs where that kernel runs, on CPU tensors. The
result equals ``PPOTrainer``'s autograd update (tests compare the two). Adam follows ``torch.optim.Adam`` (no
weight decay, no amsgrad) operation for operation. Public torch API only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeGuard, overload

import numpy as np
import torch
from torch import nn

from rltrain import _core, kernels
from rltrain.policies import ActorCriticPolicy, SimpleGRPOPolicy

EPOCH_THREADS_MIN_ROWS = 128
"""Minibatches of at least this many rows run their two row halves on two threads by default (FusedActorCritic)."""

__all__ = ["FlatAdam", "FusedActorCritic", "NativeRollout", "fused_eligible", "native_rollout_eligible"]


def _linears(seq: nn.Module | None) -> tuple[list[nn.Linear], str] | None:
    """The Linear layers of an ``mlp`` trunk and its activation name, or None if it is anything else."""
    if not isinstance(seq, nn.Sequential):
        return None
    layers = list(seq)
    acts = layers[1::2]
    lins: list[nn.Linear] = []
    for x in layers[0::2]:
        if type(x) is not nn.Linear:
            return None
        lins.append(x)
    if len(lins) != len(acts):
        return None
    kinds = {type(a) for a in acts}
    if kinds == {nn.Tanh}:
        return lins, "tanh"
    if kinds == {nn.ReLU}:
        return lins, "relu"
    if not lins:
        return lins, "tanh"
    return None


def fused_eligible(policy: nn.Module) -> TypeGuard[ActorCriticPolicy]:
    """True for an unmodified ``ActorCriticPolicy`` on CPU (where the C++ loss kernel runs) with separate tanh or
    ReLU MLP trunks over flat observations and a categorical or plain (unsquashed) Gaussian head."""
    if type(policy) is not ActorCriticPolicy or any(p.device.type != "cpu" for p in policy.parameters()):
        return False
    if (policy.vf_trunk is None or policy.backbone != "mlp" or len(policy.obs_shape) != 1 or policy.squash
            or policy.distribution not in ("categorical", "gaussian")):
        return False
    a, v = _linears(policy.pi_trunk), _linears(policy.vf_trunk)
    return a is not None and v is not None


def _native_layout(policy: nn.Module) -> list[tuple[nn.Module, str]] | None:
    """The parameters of ``policy`` in ``rltrain._core.kernels.mlp_act``'s flat order, or None when that forward
    pass cannot serve it: per hidden layer the actor's (and the critic's) weight, then the biases; the policy head;
    the value head (actor-critic only); the log-std (Gaussian only)."""
    if not isinstance(policy, (ActorCriticPolicy, SimpleGRPOPolicy)) or type(policy) not in (ActorCriticPolicy,
                                                                                            SimpleGRPOPolicy):
        return None
    if (policy.backbone != "mlp" or len(policy.obs_shape) != 1 or policy.squash
            or policy.distribution not in ("categorical", "gaussian")):
        return None
    trunks = [_linears(policy.pi_trunk)]
    if isinstance(policy, ActorCriticPolicy):
        if policy.vf_trunk is None:
            return None  # one trunk feeding both heads: not the layout
        trunks.append(_linears(policy.vf_trunk))
    found = [t for t in trunks if t is not None]
    if len(found) != len(trunks) or len({t[1] for t in found}) != 1:
        return None
    lins = [t[0] for t in found]
    if not lins[0] or any([x.weight.shape for x in lin] != [x.weight.shape for x in lins[0]] for lin in lins):
        return None
    order: list[tuple[nn.Module, str]] = []
    for layer in zip(*lins):
        order += [(x, "weight") for x in layer] + [(x, "bias") for x in layer]
    order += [(policy.pi_head, "weight"), (policy.pi_head, "bias")]
    if isinstance(policy, ActorCriticPolicy):
        order += [(policy.vf_head, "weight"), (policy.vf_head, "bias")]
    if policy.distribution == "gaussian":
        order.append((policy, "log_std"))
    tensors = [getattr(m, n) for m, n in order]
    if len(tensors) != len(list(policy.parameters())):
        return None
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return None
    return order


def native_rollout_eligible(policy: nn.Module) -> bool:
    """True for an unmodified ``ActorCriticPolicy`` (separate actor and critic MLP trunks of equal sizes) or
    ``SimpleGRPOPolicy`` with at least one tanh or ReLU hidden layer, flat observations, a categorical or plain
    Gaussian head and float32 parameters on CPU: the policies :class:`NativeRollout` runs."""
    return _native_layout(policy) is not None


class NativeRollout:
    """The rollout forward pass of rltrain's default MLP policies in one C++ call per batch
    (``rltrain._core.kernels.mlp_act``): actions, values (actor-critic) and log-probabilities, with the policy's own
    sampling stream (one ``torch.rand`` uniform per row for a categorical head, one ``torch.randn`` normal per action
    dimension for a Gaussian one, or the pre-drawn ``noise``). Every row is computed on its own in a fixed order, so
    a row's result does not depend on the batch size: a Ray worker's E envs give the bits the local run with all G
    envs gives. Results equal ``policy.act`` to float rounding (the sums run in another order).

    The parameters are packed into one flat float32 buffer when the object is made (``refresh`` packs them again
    after the policy changed), or ``flat`` is a buffer already in that layout whose values track the policy's (the
    fused update's)."""

    def __init__(self, policy: nn.Module, flat: torch.Tensor | None = None) -> None:
        order = _native_layout(policy)
        if order is None:
            raise TypeError("policy: the native rollout needs an unmodified rltrain ActorCriticPolicy or "
                            "SimpleGRPOPolicy with MLP trunks, a categorical or Gaussian head, float32 on CPU")
        assert isinstance(policy, (ActorCriticPolicy, SimpleGRPOPolicy))  # _native_layout checked the type
        self.policy = policy
        self._order = order
        pi = _linears(policy.pi_trunk)
        assert pi is not None  # _native_layout checked the trunk
        lins, self.act_name = pi
        self.sizes = [int(lins[0].in_features)] + [int(x.out_features) for x in lins]
        self.n_out = int(policy.pi_head.out_features)
        self.critic = isinstance(policy, ActorCriticPolicy)
        self.gaussian = policy.distribution == "gaussian"
        size = sum(getattr(m, n).numel() for m, n in order)
        if flat is not None and (flat.dtype != torch.float32 or flat.shape != (size,)):
            raise ValueError(f"flat: expected a float32 tensor of shape ({size},), got {tuple(flat.shape)} "
                             f"{flat.dtype}")
        self._shared = flat is not None
        self.flat = flat if flat is not None else self._pack()
        self._flat_np = self.flat.numpy()  # a view: the shared buffer is updated in place

    def _pack(self) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([getattr(m, n).detach().reshape(-1) for m, n in self._order])

    def refresh(self) -> None:
        """Packs the policy's current parameters (after ``load_state_dict`` or an update)."""
        if not self._shared:
            self.flat = self._pack()
            self._flat_np = self.flat.numpy()

    def _noise(self, n: int, deterministic: bool, noise: torch.Tensor | None) -> np.ndarray | None:
        """The sampling noise as the kernel takes it: [n] uniforms or [n, A] standard normals (None: deterministic)."""
        if deterministic:
            return None
        if noise is None:  # the draws ActorCriticPolicy._sample would make
            noise = torch.randn((n, self.n_out)) if self.gaussian else torch.rand((n, 1))
        u = np.ascontiguousarray(noise.numpy(), dtype=np.float32)
        return u.reshape((n, self.n_out) if self.gaussian else (n,))

    def act(self, obs: torch.Tensor, deterministic: bool = False,
            noise: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``policy.act(obs, deterministic, noise)``: (actions, values, log-probabilities) for an actor-critic,
        (actions, log-probabilities) for an actor alone."""
        x = np.ascontiguousarray(obs.numpy(), dtype=np.float32)
        n = int(x.shape[0])
        u = self._noise(n, deterministic, noise)
        a = np.empty((n, self.n_out), np.float32) if self.gaussian else np.empty(n, np.int64)
        v = np.empty(n, np.float32) if self.critic else None
        lp = np.empty(n, np.float32)
        _core.kernels.mlp_act(self._flat_np, self.sizes, self.n_out, self.act_name, x, u, a, v, lp,
                              gaussian=self.gaussian, critic=self.critic)
        if v is None:
            return torch.from_numpy(a), torch.from_numpy(lp)
        return torch.from_numpy(a), torch.from_numpy(v), torch.from_numpy(lp)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State values (actor-critic only), the same bits ``act`` returns for these rows."""
        if not self.critic:
            raise TypeError("policy: an actor-only policy has no value function")
        return self.act(obs, deterministic=True)[1]


class FlatAdam(torch.optim.Optimizer):
    """Adam on one flat parameter tensor whose gradient is set by the caller (``torch.optim.Adam``'s update)."""

    def __init__(self, flat: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        super().__init__([flat], {"lr": lr, "betas": betas, "eps": eps})

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """``Optimizer.step``: the closure, if any, re-evaluates the loss (with gradients on) before the update."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.apply()
        return loss

    def apply(self) -> None:
        """The update itself, without ``Optimizer.step``'s profiling wrapper (it costs more than the update)."""
        group = self.param_groups[0]
        p = group["params"][0]
        g = p.grad
        st = self.state[p]
        if not st:
            st["step"] = 0.0
            st["exp_avg"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.zeros_like(p)
        b1, b2 = group["betas"]
        t = float(st["step"]) + 1.0
        st["step"] = t
        st["exp_avg"].lerp_(g, 1 - b1)
        st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
        bc1 = 1 - b1**t
        bc2_sqrt = math.sqrt(1 - b2**t)
        denom = st["exp_avg_sq"].sqrt().div_(bc2_sqrt).add_(group["eps"])
        p.addcdiv_(st["exp_avg"], denom, value=-group["lr"] / bc1)


class FusedActorCritic:
    """Owns the flat parameter/gradient buffers of an ``ActorCriticPolicy`` and runs PPO minibatch steps.

    Layout: for each hidden layer k the actor's and the critic's weights are adjacent, then their biases, so
    layer 1 is one ``addmm`` for both networks and every deeper hidden layer one ``baddbmm`` over a stack of two;
    the two heads follow, then the log-std.
    """

    def __init__(self, policy: ActorCriticPolicy, lr: float, adam_eps: float) -> None:
        if not fused_eligible(policy):
            raise TypeError("policy: the fused update needs an unmodified rltrain ActorCriticPolicy (MLP trunks) "
                            "on CPU")
        self.policy = policy
        actor, critic = _linears(policy.pi_trunk), _linears(policy.vf_trunk)
        assert actor is not None and critic is not None  # fused_eligible checked both trunks
        (pa, self.act_name), (pv, _) = actor, critic
        if [lin.weight.shape for lin in pa] != [lin.weight.shape for lin in pv]:
            raise TypeError("policy: the fused update needs actor and critic trunks of the same sizes")
        self.continuous = policy.continuous
        self.depth = len(pa)
        order: list[tuple[nn.Module, str]] = []
        for la, lv in zip(pa, pv):
            order += [(la, "weight"), (lv, "weight"), (la, "bias"), (lv, "bias")]
        order += [(policy.pi_head, "weight"), (policy.pi_head, "bias"), (policy.vf_head, "weight"),
                  (policy.vf_head, "bias")]
        if self.continuous:
            order.append((policy, "log_std"))
        known = {id(getattr(m, n)) for m, n in order}
        if any(id(p) not in known for p in policy.parameters()):
            raise TypeError("policy: it has parameters the fused update does not know")
        total = sum(getattr(m, n).numel() for m, n in order)
        first = getattr(*order[0])
        self.flat = torch.zeros(total, device=first.device, dtype=first.dtype)
        self.flat_grad = torch.zeros_like(self.flat)
        self.flat.grad = self.flat_grad
        slices: dict[tuple[int, str], tuple[int, int]] = {}
        off = 0
        for m, n in order:
            p = getattr(m, n)
            k = p.numel()
            self.flat[off:off + k].copy_(p.detach().reshape(-1))
            setattr(m, n, nn.Parameter(self.flat[off:off + k].view_as(p), requires_grad=p.requires_grad))
            slices[(id(m), n)] = (off, off + k)
            off += k
        self._slices = slices

        def region(m0: nn.Module, n0: str, m1: nn.Module, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
            a, _ = slices[(id(m0), n0)]
            _, b = slices[(id(m1), n0)]
            return self.flat[a:b].view(shape), self.flat_grad[a:b].view(shape)

        # Stacked views per hidden layer: W [2, out, in], b [2, 1, out] (actor, critic).
        self.W: list[torch.Tensor] = []
        self.gW: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []
        self.gb: list[torch.Tensor] = []
        for la, lv in zip(pa, pv):
            o, i = la.weight.shape
            wshape, bshape = (2, o, i), (2, 1, o)
            w, gw = region(la, "weight", lv, wshape)
            b, gb = region(la, "bias", lv, bshape)
            self.W.append(w)
            self.gW.append(gw)
            self.b.append(b)
            self.gb.append(gb)
        self.head: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        for name, mod in (("pi", policy.pi_head), ("vf", policy.vf_head)):
            w0, w1 = slices[(id(mod), "weight")]
            b0, b1 = slices[(id(mod), "bias")]
            self.head[name] = (mod.weight, self.flat_grad[w0:w1].view_as(mod.weight), mod.bias,
                               self.flat_grad[b0:b1].view_as(mod.bias))
        if self.continuous:
            s0, s1 = slices[(id(policy), "log_std")]
            self.g_log_std = self.flat_grad[s0:s1]
        self.optimizer = FlatAdam(self.flat, lr=lr, eps=adam_eps)
        self._act = torch.tanh if self.act_name == "tanh" else torch.relu
        self.sizes = [int(pa[0].in_features)] + [int(lin.out_features) for lin in pa] if pa else []
        self.n_out = int(policy.pi_head.out_features)
        self.native_epoch = self.depth >= 1 and self.flat.dtype == torch.float32
        """Whether :meth:`epoch` can run (float32 and at least one hidden layer); set it False to make the trainer
        run the minibatches through :meth:`step` instead (the tests compare the two)."""
        self.epoch_threads: int | None = None
        """Threads for :meth:`epoch`: 2 computes each minibatch's two fixed row halves on two of the kernel pool's
        threads, 1 one after the other; the parameters come out bitwise the same. None (default): 2 for minibatches
        of at least ``EPOCH_THREADS_MIN_ROWS`` rows when the kernel pool has 2 or more threads
        (``rltrain.kernels.set_num_threads`` / ``RLTRAIN_NUM_THREADS``), else 1: on an idle 2-vCPU machine two
        threads ran CartPole's RL-Zoo update (minibatch 256) 1.24x faster end to end, and LunarLander's (minibatch
        64) 2% slower, the hand-off per minibatch costing what the second core gives (bench/README.md, Floor)."""
        self.native: NativeRollout | None = (NativeRollout(policy, flat=self.flat)
                                             if self.native_epoch and native_rollout_eligible(policy) else None)
        """The C++ rollout forward on this object's flat parameters (:class:`NativeRollout`), or None."""
        self.native_act = self.native is not None
        """Whether :meth:`act` runs in C++ (``rltrain._core.kernels.mlp_act``); False: torch."""

    # --------------------------------------------------------------------------------- forward/backward

    def _trunks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Hidden activations [h_0 = x, h_1, ..., h_L], each h_k of shape [2, B, H]: actor, critic."""
        hs = [x]
        h = x.unsqueeze(0).expand(2, *x.shape)
        for k in range(self.depth):
            h = self._act(torch.baddbmm(self.b[k], h, self.W[k].transpose(1, 2)))
            hs.append(h)
        return hs

    def _split_last(self, hs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.depth == 0:
            return hs[0], hs[0]
        return hs[-1][0], hs[-1][1]

    def _heads(self, hs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        ha, hv = self._split_last(hs)
        wp, _, bp, _ = self.head["pi"]
        wv, _, bv, _ = self.head["vf"]
        return torch.addmm(bp, ha, wp.t()), torch.addmm(bv, hv, wv.t()).squeeze(-1)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False,
            noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Same as ``ActorCriticPolicy.act`` (without ``batch_invariant``): in C++ (:class:`NativeRollout`, whose
        rows do not depend on the batch size) when :attr:`native_act`, else one torch pass through both trunks."""
        if self.native is not None and self.native_act and obs.dtype == torch.float32 and obs.dim() == 2:
            a, v, lp = self.native.act(obs, deterministic, noise)
            return a, v, lp
        out, values = self._heads(self._trunks(obs))
        a, logp = self.policy._sample(out, deterministic, noise)
        return a, values, logp

    def _dact(self, dh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Backward through the activation from its output ``h``: tanh' = 1 - h^2, relu' = [h > 0]."""
        if self.act_name == "tanh":
            return dh * (1 - h * h)
        return dh * (h > 0)

    def _backward(self, hs: list[torch.Tensor], dout: torch.Tensor, dv: torch.Tensor) -> None:
        ha, hv = self._split_last(hs)
        wp, gwp, _, gbp = self.head["pi"]
        wv, gwv, _, gbv = self.head["vf"]
        torch.mm(dout.t(), ha, out=gwp)
        torch.sum(dout, 0, out=gbp)
        dv2 = dv.unsqueeze(-1)
        torch.mm(dv2.t(), hv, out=gwv)
        torch.sum(dv2, 0, out=gbv)
        if self.depth == 0:
            return
        dh = torch.stack([torch.mm(dout, wp), torch.mm(dv2, wv)])  # [2, B, H]
        for k in range(self.depth - 1, -1, -1):
            dz = self._dact(dh, hs[k + 1])
            h_in = hs[k] if k > 0 else hs[0].unsqueeze(0).expand(2, *hs[0].shape)
            torch.bmm(dz.transpose(1, 2), h_in, out=self.gW[k])
            torch.sum(dz, 1, keepdim=True, out=self.gb[k])
            if k > 0:
                dh = torch.bmm(dz, self.W[k])

    # ------------------------------------------------------------------------------------------- step

    @torch.no_grad()
    def step(self, obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
             returns: torch.Tensor, old_values: torch.Tensor, *, clip: float, clip_vf: float | None,
             ent_coef: float, vf_coef: float, max_grad_norm: float | None, target_kl: float | None,
             normalize_adv: bool = False) -> tuple[dict[str, Any], bool]:
        """One minibatch. Returns the step's statistics and whether the KL early stop fired (then nothing was
        updated, as SB3 breaks before the optimiser step). ``normalize_adv`` normalises ``adv`` over the
        minibatch first (SB3's per-minibatch advantage normalisation)."""
        hs = self._trunks(obs)
        out, values = self._heads(hs)
        stats, dout, dv = self._loss_grad(out, values, actions, old_logp, adv, returns, old_values,
                                          clip, clip_vf, ent_coef, vf_coef, normalize_adv)
        if target_kl is not None and float(stats["kl"]) > 1.5 * target_kl:
            return stats, True
        self._backward(hs, dout, dv)
        if max_grad_norm is not None and max_grad_norm > 0:
            norm = torch.linalg.vector_norm(self.flat_grad)
            self.flat_grad.mul_(torch.clamp(max_grad_norm / (norm + 1e-6), max=1.0))
        self.optimizer.apply()
        return stats, False

    @torch.no_grad()
    def epoch(self, obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
              returns: torch.Tensor, old_values: torch.Tensor, *, minibatch: int, clip: float, clip_vf: float | None,
              ent_coef: float, vf_coef: float, max_grad_norm: float | None, target_kl: float | None,
              normalize_adv: bool = False, epochs: int = 1) -> tuple[np.ndarray, int, bool]:
        """Every minibatch of one epoch over already shuffled samples in one C++ call
        (``rltrain._core.kernels.ppo_mlp_epoch``): the same steps as :meth:`step` on consecutive slices of
        ``minibatch`` samples, with Adam's state kept in this optimizer. Returns the statistics rows (pg, vf, ent,
        kl, clipfrac) of the minibatches it evaluated, the number of optimiser steps and whether the KL early stop
        fired (then the last row is the minibatch that stopped it, with no step). ``epochs`` > 1 runs that many
        epochs over the same (unshuffled) samples in the one call, as a loop of calls would."""
        if not self.native_epoch:
            raise TypeError("epoch: needs float32 parameters and at least one hidden layer (use step)")
        group = self.optimizer.param_groups[0]
        st = self.optimizer.state[self.flat]
        if not st:
            st["step"] = 0.0
            st["exp_avg"] = torch.zeros_like(self.flat)
            st["exp_avg_sq"] = torch.zeros_like(self.flat)
        n = int(obs.shape[0])
        stats = np.zeros((epochs * ((n + minibatch - 1) // minibatch), 5))

        def c(t: torch.Tensor) -> np.ndarray:
            return t.detach().contiguous().numpy()

        b1, b2 = group["betas"]
        steps, stopped = _core.kernels.ppo_mlp_epoch(
            self.flat.numpy(), self.flat_grad.numpy(), st["exp_avg"].numpy(), st["exp_avg_sq"].numpy(), self.sizes,
            self.n_out, self.act_name, self.continuous, c(obs), c(actions), c(old_logp), c(adv), c(returns),
            c(old_values), minibatch, clip=clip, clip_vf=-1.0 if clip_vf is None else clip_vf, ent_coef=ent_coef,
            vf_coef=vf_coef, normalize_adv=normalize_adv,
            max_grad_norm=-1.0 if max_grad_norm is None else max_grad_norm,
            target_kl=-1.0 if target_kl is None else target_kl, lr=float(group["lr"]), beta1=b1, beta2=b2,
            eps=float(group["eps"]), adam_step=float(st["step"]), stats=stats, threads=self._threads(minibatch, n),
            epochs=epochs)
        st["step"] = float(st["step"]) + steps
        return stats[:steps + int(stopped)], int(steps), bool(stopped)

    def _threads(self, minibatch: int, n: int) -> int:
        if self.epoch_threads is not None:
            return self.epoch_threads
        return 2 if min(minibatch, n) >= EPOCH_THREADS_MIN_ROWS and kernels.get_num_threads() >= 2 else 1

    def _loss_grad(self, out: torch.Tensor, values: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor,
                   adv: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, clip: float,
                   clip_vf: float | None, ent_coef: float, vf_coef: float,
                   normalize_adv: bool) -> tuple[dict[str, Any], torch.Tensor, torch.Tensor]:
        """The loss statistics and its gradient w.r.t. the head outputs and values in one C++ call
        (``rltrain.kernels.ppo_loss_grad``, written into the flat gradient buffers) instead of ~40 small ops."""
        dout = torch.empty_like(out)
        dv = torch.empty_like(values)

        def n(t: torch.Tensor) -> np.ndarray:
            return t.detach().contiguous().numpy()

        ls = dls = None
        if self.continuous:
            ls, dls = n(self.policy.log_std), self.g_log_std.numpy()
        pg, vl, ent, kl, cf = kernels.ppo_loss_grad(
            n(out), n(actions), n(old_logp), n(adv), n(returns), n(values), n(old_values), clip=clip,
            clip_vf=clip_vf, ent_coef=ent_coef, vf_coef=vf_coef, dhead=dout.numpy(), dvalues=dv.numpy(),
            log_std=ls, dlog_std=dls, normalize_adv=normalize_adv)
        return {"pg": pg, "vf": vl, "ent": -ent, "kl": kl, "clipfrac": cf}, dout, dv
