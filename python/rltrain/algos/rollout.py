"""The rollout loops, shared by the local trainers and the Ray rollout workers so both run the very same code.

``collect_steps`` is PPO's fixed-length segment (T steps of every env, truncation bootstrap values, the last
values for GAE); ``collect_episodes`` is the actor-only trainers' batch of whole episodes from one reset seed.
Both take the iteration's pre-drawn sampling noise (``policy.rollout_noise``) so an action never depends on which
process sampled it, and report finished episodes as ``(t, env, return, length)`` rows the caller merges in
(step, env) order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

__all__ = ["ActFn", "ValueFn", "collect_episodes", "collect_steps", "episode_rows", "make_act", "make_value",
           "native_for", "new_step_buffers", "reports_action_mask"]

ActFn = Callable[[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"], tuple[torch.Tensor, ...]]
"""(observations, noise or None, action mask or None) -> the policy's ``act`` outputs (actions first,
log-probabilities last)."""
ValueFn = Callable[[torch.Tensor], torch.Tensor]


def native_for(policy: Any) -> Any:
    """A :class:`rltrain.algos.fused_mlp.NativeRollout` for rltrain's default MLP policies on CPU (its parameters
    packed now: call again after the policy changed), else None."""
    from rltrain.algos.fused_mlp import NativeRollout, native_rollout_eligible

    return NativeRollout(policy) if native_rollout_eligible(policy) else None


def make_act(policy: Any, batch_invariant: bool, native: Any = None) -> ActFn:
    """``policy.act`` with the noise and batch-invariance arguments when the policy takes them (rltrain's own
    policies); a user policy without them is called as ``act(obs)`` and samples from torch's global generator.
    ``native`` (``native_for(policy)``): unmasked calls run through the C++ forward, whose rows never depend on the
    batch size (``batch_invariant`` holds whatever it says)."""
    from rltrain.policies import _Actor

    if isinstance(policy, _Actor):
        actor: Any = policy  # _Actor declares no act; both subclasses define it with these arguments

        def act(obs: torch.Tensor, noise: torch.Tensor | None,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
            if mask is None:
                if native is not None and obs.dim() == 2:
                    fast: tuple[torch.Tensor, ...] = native.act(obs, noise=noise)
                    return fast
                out: tuple[torch.Tensor, ...] = actor.act(obs, noise=noise, batch_invariant=batch_invariant)
            else:
                out = actor.act(obs, noise=noise, batch_invariant=batch_invariant, action_mask=mask)
            return out
        return act

    def plain(obs: torch.Tensor, noise: torch.Tensor | None,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        out: tuple[torch.Tensor, ...] = policy.act(obs) if mask is None else policy.act(obs, action_mask=mask)
        return out
    return plain


def make_value(policy: Any, batch_invariant: bool, native: Any = None) -> ValueFn:
    """``policy.value`` (``native``: through the C++ forward, as in ``make_act``)."""
    from rltrain.policies import ActorCriticPolicy

    if native is not None and getattr(native, "critic", False):
        def value(obs: torch.Tensor) -> torch.Tensor:
            v: torch.Tensor = native.value(obs)
            return v
        return value
    if isinstance(policy, ActorCriticPolicy):
        return lambda obs: policy.value(obs, batch_invariant=batch_invariant)
    return lambda obs: policy.value(obs)


def action_layout(space: gym.Space[Any]) -> tuple[tuple[int, ...], type]:
    """(shape, dtype) of one action in the rollout buffers."""
    return tuple(space.shape or ()), (np.int64 if isinstance(space, gym.spaces.Discrete) else np.float32)


def new_step_buffers(T: int, n: int, obs_shape: tuple[int, ...], action_space: gym.Space[Any],
                     mask_shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """PPO's ``[T, n]`` rollout arrays (and ``masks``, ``[T, n, *mask_shape]``, for an env that reports
    ``info["action_mask"]``: the rollout and the update then use the same masked distribution)."""
    a_shape, a_dtype = action_layout(action_space)
    b = {
        "obs": np.zeros((T, n) + tuple(obs_shape), np.float32),
        "actions": np.zeros((T, n) + a_shape, a_dtype),
        "logp": np.zeros((T, n), np.float32),
        "values": np.zeros((T, n), np.float32),
        "rewards": np.zeros((T, n), np.float32),
        "dones": np.zeros((T, n), np.bool_),
        "terminated": np.zeros((T, n), np.bool_),
        "final_values": np.zeros((T, n), np.float32),
    }
    if mask_shape is not None:
        b["masks"] = np.zeros((T, n) + tuple(mask_shape), np.bool_)
    return b


def episode_rows(t: int, infos: dict[str, Any]) -> list[tuple[int, int, float, float]]:
    """``(t, env, return, length)`` of the episodes gymnasium's statistics report as finished in ``infos``."""
    ep = infos.get("episode")
    if ep is None or ep.get("_r") is None:
        return []
    return [(t, int(i), float(ep["r"][i]), float(ep["l"][i])) for i in np.flatnonzero(ep["_r"])]


@torch.no_grad()
def collect_steps(env: Any, act: ActFn, value: ValueFn, obs_raw: np.ndarray, b: dict[str, np.ndarray],
                  noise: torch.Tensor | None, clip_actions: Callable[[np.ndarray], np.ndarray], *,
                  normalize: Callable[[np.ndarray], np.ndarray] | None = None,
                  observe: Callable[[np.ndarray], np.ndarray] | None = None,
                  reward_norm: Any = None, mask: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, list[tuple[int, int, float, float]], np.ndarray, np.ndarray | None]:
    """Steps ``env`` for ``len(b["obs"])`` steps from raw observations ``obs_raw``, filling the buffers ``b``
    (``new_step_buffers``). Truncated (not terminated) episodes bootstrap from the value of their true final
    observation. ``normalize`` maps raw observations for the policy; ``observe`` also updates its statistics (on
    each new observation); ``reward_norm`` scales rewards; ``mask``: the legal actions of ``obs_raw`` when the
    buffers hold ``masks`` (then every step's mask comes from ``info["action_mask"]``). Returns the next raw
    observations, the finished episodes, the values of the last observations and their action mask (or None)."""
    obs = obs_raw if normalize is None else normalize(obs_raw)  # already counted in the statistics
    b["final_values"].fill(0.0)
    masks = b.get("masks")
    if (masks is None) != (mask is None):
        raise ValueError("mask: give the current action mask exactly when the buffers hold masks")
    episodes: list[tuple[int, int, float, float]] = []
    for t in range(b["obs"].shape[0]):
        b["obs"][t] = obs
        m_t = None
        if masks is not None:
            masks[t] = mask
            m_t = torch.from_numpy(masks[t])
        out = act(torch.from_numpy(b["obs"][t]), None if noise is None else noise[t], m_t)
        a_np = out[0].numpy()
        b["actions"][t] = a_np
        b["values"][t] = out[1].numpy()
        b["logp"][t] = out[-1].numpy()
        next_raw, rew, term, trunc, infos = env.step(clip_actions(a_np))
        done = np.logical_or(term, trunc)
        b["dones"][t] = done
        b["terminated"][t] = term
        if reward_norm is not None:
            rew = reward_norm.normalize(np.asarray(rew, dtype=np.float32), done)
        b["rewards"][t] = rew
        trunc_only = np.flatnonzero(np.logical_and(trunc, np.logical_not(term)))
        if trunc_only.size:
            final = np.stack([np.asarray(infos["final_obs"][i], dtype=np.float32) for i in trunc_only])
            if normalize is not None:
                final = normalize(final)
            b["final_values"][t, trunc_only] = value(torch.from_numpy(final)).numpy()
        episodes += episode_rows(t, infos)
        if masks is not None:
            mask = np.asarray(infos["action_mask"], dtype=np.bool_)
        obs_raw = np.asarray(next_raw, dtype=np.float32)
        obs = obs_raw if observe is None else observe(obs_raw)
    last_values = value(torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))).numpy()
    return np.array(obs_raw, copy=True), episodes, last_values, None if mask is None else np.array(mask, copy=True)


@torch.no_grad()
def collect_episodes(env: Any, act: ActFn, seed: int, T: int, noise: torch.Tensor | None,
                     clip_actions: Callable[[np.ndarray], np.ndarray], action_space: gym.Space[Any],
                     normalize: Callable[[np.ndarray], np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """One episode per env of ``env`` (at most ``T`` steps), all reset with ``env.reset(seed=seed)``: padded
    ``[n, T]`` arrays ``obs``, ``actions``, ``logp``, ``rewards``, the ``lengths`` and ``first_obs``. Steps past
    an episode's end (the next episode's, until every env is done) are not part of it. An env that reports
    ``info["action_mask"]`` gets a masked policy and a ``masks`` array ``[n, T, *mask_shape]``."""
    obs, infos = env.reset(seed=seed)
    mask = infos.get("action_mask")
    obs = np.asarray(obs, np.float32)
    n = obs.shape[0]
    a_shape, a_dtype = action_layout(action_space)
    b: dict[str, np.ndarray] = {
        "obs": np.zeros((n, T) + tuple(obs.shape[1:]), np.float32),
        "actions": np.zeros((n, T) + a_shape, a_dtype),
        "logp": np.zeros((n, T), np.float32),
        "rewards": np.zeros((n, T), np.float32),
    }
    if mask is not None:
        b["masks"] = np.zeros((n, T) + np.shape(mask)[1:], np.bool_)
    first_obs = obs.copy()
    lengths = np.zeros(n, np.int64)
    alive = np.ones(n, bool)
    for t in range(T):
        m_t = None
        if mask is not None:
            b["masks"][:, t] = np.asarray(mask, dtype=np.bool_)
            m_t = torch.from_numpy(np.ascontiguousarray(b["masks"][:, t]))
        out = act(torch.from_numpy(obs if normalize is None else normalize(obs)), None if noise is None else noise[t],
                  m_t)
        a, logp = out[0].numpy(), out[-1].numpy()
        b["obs"][:, t] = obs
        b["actions"][:, t] = a
        b["logp"][:, t] = logp
        obs, rew, term, trunc, infos = env.step(clip_actions(a))
        if mask is not None:
            mask = infos["action_mask"]
        obs = np.asarray(obs, np.float32)
        b["rewards"][alive, t] = np.asarray(rew, np.float32)[alive]
        lengths[alive] += 1
        alive &= ~np.logical_or(term, trunc)
        if not alive.any():
            break
    b["lengths"] = lengths
    b["first_obs"] = first_obs
    return b


def reports_action_mask(env: Any) -> bool:
    """Whether ``env`` is known to report ``info["action_mask"]`` (the board games, native or on the Python path)."""
    from rltrain.vec.registry import is_native, native_env_spec

    if isinstance(env, str):
        return is_native(env) and native_env_spec(env).action_mask is not None
    return isinstance(getattr(env, "native_id", getattr(env, "env_id", None)), str) and reports_action_mask(
        getattr(env, "native_id", getattr(env, "env_id", "")))


def clip_to(space: gym.Space[Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Actions clipped into a Box action space (unsquashed Gaussian samples can leave it); others unchanged."""
    if isinstance(space, gym.spaces.Box):
        low, high, dtype = space.low, space.high, space.dtype

        def clip(a: np.ndarray) -> np.ndarray:
            out: np.ndarray = np.clip(a, low, high).astype(dtype, copy=False)
            return out
        return clip
    return lambda a: a
