"""Environment snapshots for checkpoints (instead of the action stream since seeding): every native env restores
bitwise mid-episode from ``get_state()`` in O(num_envs); Python envs on the fork backend are pickled in their
workers; a trainer whose envs cannot be snapshotted warns once and resumes from fresh resets; pickled envs in a
checkpoint are restored only when the caller trusts the file."""

from __future__ import annotations

import pathlib
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import rltrain
from rltrain import PPOConfig, PPOTrainer
from rltrain.vec.fork import ForkVectorEnv


def _actions(env: gym.vector.VectorEnv, rng: np.random.Generator, steps: int) -> list[np.ndarray]:
    space = env.single_action_space
    if isinstance(space, gym.spaces.Discrete):
        return [rng.integers(0, space.n, env.num_envs) for _ in range(steps)]
    return [rng.uniform(space.low, space.high, (env.num_envs, *space.shape)).astype(np.float32)
            for _ in range(steps)]


def _run(env: gym.vector.VectorEnv, acts: list[np.ndarray]) -> list[tuple[bytes, ...]]:
    out = []
    for a in acts:
        obs, r, te, tr, info = env.step(a)
        ep = info.get("episode", {})
        out.append((obs.tobytes(), np.asarray(r).tobytes(), te.tobytes(), tr.tobytes(),
                    np.asarray(ep.get("r", [])).tobytes(), np.asarray(ep.get("l", [])).tobytes()))
    return out


NATIVE = list(rltrain.native_envs())


def _run_legal(env: gym.vector.VectorEnv, mask: np.ndarray, rng: np.random.Generator,
               steps: int) -> tuple[list[tuple[bytes, ...]], np.ndarray]:
    """``_run`` for an env that reports ``info["action_mask"]`` (the board games): each step a uniformly drawn legal
    action per env (an illegal one raises), the mask of the next step taken from the step's info."""
    out = []
    for _ in range(steps):
        a = np.array([rng.choice(np.flatnonzero(row)) for row in mask], dtype=np.int64)
        obs, r, te, tr, info = env.step(a)
        mask = np.asarray(info["action_mask"], dtype=bool)
        ep = info.get("episode", {})
        out.append((obs.tobytes(), np.asarray(r).tobytes(), te.tobytes(), tr.tobytes(),
                    np.asarray(ep.get("r", [])).tobytes(), np.asarray(ep.get("l", [])).tobytes()))
    return out, mask


@pytest.mark.parametrize("env_id", NATIVE)
def test_native_snapshot_continues_bitwise_mid_episode(env_id: str) -> None:
    rng = np.random.default_rng(0)
    a = rltrain.make_vec(env_id, 6, seed=3)
    _, info = a.reset()
    if "action_mask" in info:  # a board game: legal moves only, drawn from the same stream in both runs
        _, mask = _run_legal(a, np.asarray(info["action_mask"], dtype=bool), rng, 37)
        state = a.get_state()
        want, _ = _run_legal(a, mask, np.random.default_rng(1), 300)
        b = rltrain.make_vec(env_id, 6, seed=99)
        b.reset()
        b.set_state(state)
        got, _ = _run_legal(b, mask, np.random.default_rng(1), 300)
        assert got == want
    else:
        _run(a, _actions(a, rng, 137))  # mid-episode for most envs, past an episode end for some
        state = a.get_state()
        later = _actions(a, rng, 300)
        want = _run(a, later)
        b = rltrain.make_vec(env_id, 6, seed=99)  # other seeds: everything comes from the state
        b.reset()
        b.set_state(state)
        assert _run(b, later) == want
    assert len(state) < 6 * 64 * 1024  # O(num_envs): LunarLander's is its current episode's actions at most
    a.close()
    b.close()


def test_native_snapshot_rejects_foreign_bytes() -> None:
    a = rltrain.make_vec("CartPole-v1", 4, seed=0)
    a.reset()
    state = a.get_state()
    with rltrain.make_vec("CartPole-v1", 3, seed=0) as other, pytest.raises(ValueError, match="4 envs"):
        other.set_state(state)
    with rltrain.make_vec("Acrobot-v1", 4, seed=0) as other, pytest.raises(ValueError, match="not a Acrobot-v1"):
        other.set_state(state)
    with pytest.raises(ValueError, match="truncated"):
        a.set_state(state[:-3])
    a.close()


def test_fork_snapshot_pickles_envs_in_their_workers() -> None:
    rng = np.random.default_rng(1)
    with ForkVectorEnv([lambda: gym.make("CartPole-v1")] * 4, num_workers=2, seed=0) as a:
        a.reset()
        _run(a, _actions(a, rng, 40))
        state = a.get_state()
        later = _actions(a, rng, 100)
        want = _run(a, later)
    with ForkVectorEnv([lambda: gym.make("CartPole-v1")] * 4, num_workers=2, seed=7) as b:
        b.reset()
        b.set_state(state)
        assert _run(b, later) == want


def _ppo(tmp_path: pathlib.Path, env: str, **kw: object) -> PPOTrainer:
    kw = {"G": 4, "T": 32, **kw}
    cfg = PPOConfig(env=env, minibatches=2, epochs=2, seed=0, verbose=0, log_dir=str(tmp_path), loggers=("csv",),
                    **kw)
    return PPOTrainer(None, cfg)


def _params(t: PPOTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in t.policy.parameters()]


@pytest.mark.parametrize("env, backend", [("LunarLander-v3", "native"), ("Acrobot-v1", "fork")])
def test_trainer_resumes_bitwise_from_env_snapshots(tmp_path: pathlib.Path, env: str, backend: str) -> None:
    full = _ppo(tmp_path / "a", env, backend=backend)
    full.train(iters=4)
    part = _ppo(tmp_path / "b", env, backend=backend)
    part.train(iters=2)
    path = part.save(str(tmp_path / "ck.pt"))
    part.close()
    state = torch.load(path, weights_only=True)
    assert "actions" not in state and state["env_state"]["kind"] == ("native" if backend == "native" else "pickled")
    back = PPOTrainer.load(path, trust_pickled_envs=True)
    back.train(iters=2)
    assert all(torch.equal(x, y) for x, y in zip(_params(full), _params(back)))
    full.close()
    back.close()


def test_pickled_envs_need_the_callers_trust(tmp_path: pathlib.Path) -> None:
    part = _ppo(tmp_path, "Acrobot-v1", backend="fork")
    part.train(iters=1)
    path = part.save(str(tmp_path / "ck.pt"))
    part.close()
    with pytest.warns(UserWarning, match="trust_pickled_envs=True"):
        back = PPOTrainer.load(path)
    back.train(iters=1)  # from fresh resets
    back.close()


def test_unpicklable_envs_warn_once_and_resume_from_fresh_resets(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("Box2D")
    t = _ppo(tmp_path, "BipedalWalker-v3", backend="fork", T=8)
    t.train(iters=1)
    with pytest.warns(UserWarning, match="cannot be snapshotted.*not bitwise"):
        path = t.save(str(tmp_path / "a.pt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t.save(str(tmp_path / "b.pt"))  # once only
    t.close()
    with pytest.warns(UserWarning, match="no environment snapshot.*fresh resets"):
        back = PPOTrainer.load(path)
    back.train(iters=1)
    back.close()


def test_a_checkpoint_does_not_grow_with_training(tmp_path: pathlib.Path) -> None:
    t = _ppo(tmp_path, "CartPole-v1")
    t.train(iters=1)
    small = pathlib.Path(t.save(str(tmp_path / "a.pt"))).stat().st_size
    t.train(iters=20)
    big = pathlib.Path(t.save(str(tmp_path / "b.pt"))).stat().st_size
    t.close()
    assert big <= small * 1.05
