"""PPO trainer: learning smoke run, fused update == autograd, checkpoints and exact resume, logging, API."""

from __future__ import annotations

import csv
import glob
import os
from typing import Any

import numpy as np
import pytest
import torch

from rltrain import PPOConfig, PPOTrainer
from rltrain.policies import ActorCriticPolicy


def _cfg(tmp_path, **kw) -> PPOConfig:
    base = dict(env="CartPole-v1", G=4, T=32, minibatches=2, epochs=2, seed=3, verbose=0, log_dir=str(tmp_path))
    base.update(kw)
    return PPOConfig(**base)


def _params(tr: PPOTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in tr.policy.parameters()]


def test_cartpole_smoke_improves(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = _cfg(tmp_path, G=8, T=32, minibatches=1, epochs=20, lam=0.8, gamma=0.98, ent_coef=0.0, lr=1e-3)
    tr = PPOTrainer(ActorCriticPolicy(4, 2), cfg)
    before = tr.evaluate(n_episodes=10)["mean_reward"]
    tr.train(iters=40)
    after = tr.evaluate(n_episodes=10)["mean_reward"]
    last = tr.logger.last
    for k in ("train/value_loss", "train/policy_gradient_loss", "train/entropy_loss", "train/approx_kl"):
        assert np.isfinite(last[k]), k
    assert tr.num_timesteps == 40 * 8 * 32
    assert after > before + 50, (before, after)


@pytest.mark.parametrize("continuous", [False, True])
def test_fused_update_matches_autograd(tmp_path, continuous: bool) -> None:
    env = "Pendulum-v1" if continuous else "CartPole-v1"
    obs_dim, n_act = (3, 1) if continuous else (4, 2)
    out = []
    for fused in (True, False):
        torch.manual_seed(1)
        pol = ActorCriticPolicy(obs_dim, n_act, continuous=continuous)
        cfg = _cfg(tmp_path / str(fused), env=env, fused_update=fused, clip_range_vf=0.5, target_kl=None)
        tr = PPOTrainer(pol, cfg)
        assert (tr.fused is not None) == fused
        tr.train(iters=3)
        out.append(_params(tr))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5)


# The fused fast path: "epoch" (one C++ call per epoch, the default) and "step" (one torch-level fused step per
# minibatch) against autograd, over every option the fast path covers: categorical and Gaussian heads, tanh and ReLU
# trunks of unequal widths, per-minibatch advantage normalisation, value clipping, gradient clipping and one whole-
# batch minibatch. Tolerance: the three paths sum the same products in different orders (MKL's GEMMs, the C++
# loops) and tanh differs by a few float ulp, and Adam's first steps divide by sqrt(v) ~ |g|, so parameter changes
# agree to ~1e-6 relative per step, not bitwise; 2e-4 / 2e-5 after three iterations (as the fused step had).
FAST_CASES = {
    "categorical": dict(continuous=False),
    "gaussian": dict(continuous=True),
    "relu-64-32-no-norm-no-gradclip": dict(continuous=False, hidden_sizes=(64, 32), activation="relu",
                                           normalize_advantage=False, max_grad_norm=None),
    "tanh-16-whole-batch": dict(continuous=False, hidden_sizes=(16,), minibatches=1),
    "gaussian-relu-3-layers": dict(continuous=True, hidden_sizes=(32, 32, 16), activation="relu"),
}


@pytest.mark.parametrize("case", sorted(FAST_CASES))
def test_fast_paths_match_autograd(tmp_path, case: str) -> None:
    kw = dict(FAST_CASES[case])
    continuous = kw.pop("continuous")
    pol_kw = {k: kw.pop(k) for k in ("hidden_sizes", "activation") if k in kw}
    env = "Pendulum-v1" if continuous else "CartPole-v1"
    obs_dim, n_act = (3, 1) if continuous else (4, 2)
    out = {}
    for path in ("epoch", "step", "autograd"):
        torch.manual_seed(1)
        pol = ActorCriticPolicy(obs_dim, n_act, continuous=continuous, **pol_kw)
        cfg = _cfg(tmp_path / path, env=env, fused_update=path != "autograd", clip_range_vf=0.5, target_kl=None,
                   **kw)
        tr = PPOTrainer(pol, cfg)
        assert (tr.fused is not None) == (path != "autograd")
        if tr.fused is not None:
            assert tr.fused.native_epoch
            tr.fused.native_epoch = path == "epoch"
        tr.train(iters=3)
        out[path] = (_params(tr), tr.logger.last)
    for path in ("epoch", "step"):
        for a, b in zip(out[path][0], out["autograd"][0]):
            torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5)
        for k in ("train/policy_gradient_loss", "train/value_loss", "train/entropy_loss", "train/n_updates"):
            np.testing.assert_allclose(out[path][1][k], out["autograd"][1][k], rtol=1e-3, atol=1e-6, err_msg=k)


def test_fast_epoch_kl_early_stop_matches_step(tmp_path) -> None:
    """With a target_kl that fires mid-epoch, the C++ epoch stops before the same minibatch's step as the Python
    fused step (SB3's rule), so both take the same number of updates and end at the same parameters."""
    out = {}
    for path in ("epoch", "step"):
        torch.manual_seed(2)
        cfg = _cfg(tmp_path / path, minibatches=8, epochs=6, lr=3e-3, target_kl=0.002)
        tr = PPOTrainer(ActorCriticPolicy(4, 2), cfg)
        assert tr.fused is not None
        tr.fused.native_epoch = path == "epoch"
        tr.train(iters=3)
        out[path] = (_params(tr), tr.logger.last["train/n_updates"])
    assert out["epoch"][1] == out["step"][1] < 6 * 8, (out["epoch"][1], out["step"][1])
    for a, b in zip(out["epoch"][0], out["step"][0]):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=2e-5)


def _cpu_isas() -> list[str]:
    """The instruction-set copies of the C++ epoch this CPU can run."""
    from rltrain import _core

    out = ["baseline"]
    for isa in ("avx2", "avx512"):
        try:
            _core.kernels.ppo_mlp_epoch(**{**_tiny_epoch_args(), "isa": isa})
        except ValueError:
            continue
        out.append(isa)
    return out


def _tiny_epoch_args() -> dict:
    P = 2 * 4 * (2 + 1) + 2 * 4 + 2 + 4 + 1  # trunks [2, 4] x 2, policy head [2, 4] + [2], value head [1, 4] + [1]
    f = np.zeros(P, np.float32)
    return dict(params=f.copy(), grad=f.copy(), exp_avg=f.copy(), exp_avg_sq=f.copy(), sizes=[2, 4], n_actions=2,
                activation="tanh", gaussian=False, obs=np.zeros((4, 2), np.float32),
                actions=np.zeros(4, np.int64), old_logp=np.zeros(4, np.float32), adv=np.zeros(4, np.float32),
                returns=np.zeros(4, np.float32), old_values=np.zeros(4, np.float32), minibatch=2, clip=0.2,
                clip_vf=-1.0, ent_coef=0.0, vf_coef=0.5, normalize_adv=False, max_grad_norm=-1.0, target_kl=-1.0,
                lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, adam_step=0.0, stats=np.zeros((2, 5)))


# Shapes that exercise every block of the C++ products: the default 64x64 net (LunarLander's obs and actions) with a
# short last minibatch, minibatches whose halves are not multiples of the vector blocks, a 3-layer ReLU Gaussian net
# of odd widths, and one minibatch of a single row (its second half is empty).
EPOCH_SHAPES = {
    "tanh-8-64-64-A4": dict(sizes=[8, 64, 64], A=4, n=250, mb=64, relu=False, gaussian=False),
    "tanh-4-64-64-A2-mb256": dict(sizes=[4, 64, 64], A=2, n=256, mb=256, relu=False, gaussian=False),
    "relu-5-37-19-A3-mb13": dict(sizes=[5, 37, 19], A=3, n=60, mb=13, relu=True, gaussian=False),
    "gauss-relu-3-40-24-17-A2": dict(sizes=[3, 40, 24, 17], A=2, n=97, mb=33, relu=True, gaussian=True),
    "tanh-6-20-A5-mb1": dict(sizes=[6, 20], A=5, n=3, mb=1, relu=False, gaussian=False),
}


def _run_epoch(case: str, isa: str, threads: int, target_kl: float = -1.0) -> tuple[np.ndarray, ...]:
    from rltrain import _core, kernels

    c = EPOCH_SHAPES[case]
    sizes, A, n, mb = c["sizes"], c["A"], c["n"], c["mb"]
    P = sum(2 * o * (i + 1) for i, o in zip(sizes[:-1], sizes[1:])) + A * sizes[-1] + A + sizes[-1] + 1
    P += A if c["gaussian"] else 0
    rng = np.random.default_rng(0)
    params = (rng.standard_normal(P) * 0.3).astype(np.float32)
    init = params.copy()
    grad, m, v = np.zeros(P, np.float32), np.zeros(P, np.float32), np.zeros(P, np.float32)
    obs = (rng.standard_normal((n, sizes[0])) * 2).astype(np.float32)
    if c["gaussian"]:
        acts = rng.standard_normal((n, A)).astype(np.float32)
    else:
        acts = rng.integers(0, A, n).astype(np.int64)
    vecs = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    vecs[0] = -np.abs(vecs[0]) - 1.0  # old log-probabilities
    stats = np.zeros(((n + mb - 1) // mb, 5))
    before = kernels.get_num_threads()
    kernels.set_num_threads(threads)
    try:
        steps, stopped = _core.kernels.ppo_mlp_epoch(
            params, grad, m, v, sizes, A, "relu" if c["relu"] else "tanh", c["gaussian"], obs, acts, *vecs, mb,
            clip=0.2, clip_vf=0.3, ent_coef=0.01, vf_coef=0.5, normalize_adv=True, max_grad_norm=0.5,
            target_kl=target_kl, lr=3e-3, beta1=0.9, beta2=0.999, eps=1e-5, adam_step=2.0, stats=stats, isa=isa,
            threads=min(threads, 2))
    finally:
        kernels.set_num_threads(before)
    if target_kl < 0:
        assert (steps, stopped) == ((n + mb - 1) // mb, False)
    assert not np.array_equal(params, init)
    return params, grad, m, v, stats[:steps + int(stopped)], np.array([steps, stopped])


@pytest.mark.parametrize("case", sorted(EPOCH_SHAPES))
def test_fast_epoch_same_bits_for_every_isa_and_thread_count(case: str) -> None:
    """The baseline, AVX2 and AVX-512 copies of the C++ epoch compute the same operations in the same order, and each
    minibatch is split into two fixed row halves whose gradients are added in a fixed order, so every copy on one
    thread and with its halves on two (kernel pools of 2 and 3 threads) ends at the same bits."""
    ref = _run_epoch(case, "baseline", 1)
    runs = [(isa, t) for isa in _cpu_isas() for t in (1, 2, 3)]
    assert len(runs) >= 3
    for isa, t in runs:
        for a, b in zip(ref, _run_epoch(case, isa, t)):
            np.testing.assert_array_equal(a, b, err_msg=f"{isa}, {t} threads")


def test_fast_epoch_kl_early_stop_on_two_threads() -> None:
    """The KL early stop ends a two-thread epoch (its helper thread is released) at the same minibatch and bits as
    on one thread."""
    kls = _run_epoch("tanh-8-64-64-A4", "baseline", 1)[4][:, 3]
    target = float(kls[0]) / 1.5 * (1 + 1e-6)  # the first minibatch passes, the first with a larger KL stops
    stop_at = int(np.argmax(kls > 1.5 * target))
    assert stop_at > 0, kls
    ref = _run_epoch("tanh-8-64-64-A4", "baseline", 1, target_kl=target)
    assert list(ref[-1]) == [stop_at, 1]
    for a, b in zip(ref, _run_epoch("tanh-8-64-64-A4", _cpu_isas()[-1], 2, target_kl=target)):
        np.testing.assert_array_equal(a, b)


def test_fast_epoch_isa_and_threads_arguments() -> None:
    from rltrain import _core

    with pytest.raises(ValueError, match="isa"):
        _core.kernels.ppo_mlp_epoch(**{**_tiny_epoch_args(), "isa": "neon9"})
    with pytest.raises(ValueError, match="threads"):
        _core.kernels.ppo_mlp_epoch(**{**_tiny_epoch_args(), "threads": 3})


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_fast_act_matches_the_policy(activation: str) -> None:
    """The C++ rollout forward pass draws the same uniforms as ActorCriticPolicy.act and returns its actions, and
    its values and log-probabilities to float rounding (the sums run in another order)."""
    from rltrain.algos.fused_mlp import FusedActorCritic

    torch.manual_seed(0)
    pol = ActorCriticPolicy(8, 4, hidden_sizes=(64, 48), activation=activation)
    fused = FusedActorCritic(pol, lr=1e-3, adam_eps=1e-5)
    assert fused.native_act
    obs = torch.randn(512, 8) * 3
    for det in (False, True):
        torch.manual_seed(7)
        a, v, lp = fused.act(obs, deterministic=det)
        torch.manual_seed(7)
        a0, v0, lp0 = pol.act(obs, deterministic=det)
        assert torch.equal(a, a0)
        torch.testing.assert_close(v, v0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lp, lp0, rtol=1e-5, atol=1e-6)
    # The same random stream: both consume the same number of draws.
    torch.manual_seed(7)
    fused.act(obs)
    after_fast = torch.rand(3)
    torch.manual_seed(7)
    pol.act(obs)
    assert torch.equal(after_fast, torch.rand(3))


def test_fast_epoch_bad_input_names_the_argument() -> None:
    from rltrain import _core

    P = 2 * 4 * (2 + 1) + 2 * 4 + 2 + 4 + 1  # trunks [2, 4] x 2, policy head [2, 4] + [2], value head [1, 4] + [1]
    f = np.zeros(P, np.float32)
    good = dict(params=f.copy(), grad=f.copy(), exp_avg=f.copy(), exp_avg_sq=f.copy(), sizes=[2, 4], n_actions=2,
                activation="tanh", gaussian=False, obs=np.zeros((4, 2), np.float32),
                actions=np.zeros(4, np.int64), old_logp=np.zeros(4, np.float32), adv=np.zeros(4, np.float32),
                returns=np.zeros(4, np.float32), old_values=np.zeros(4, np.float32), minibatch=2, clip=0.2,
                clip_vf=-1.0, ent_coef=0.0, vf_coef=0.5, normalize_adv=False, max_grad_norm=-1.0, target_kl=-1.0,
                lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, adam_step=0.0, stats=np.zeros((2, 5)))
    assert _core.kernels.ppo_mlp_epoch(**good) == (2, False)
    bad = [("params", np.zeros(P + 1, np.float32), ValueError), ("grad", np.zeros(P, np.float64), TypeError),
           ("actions", np.full(4, 2, np.int64), ValueError), ("activation", "gelu", ValueError),
           ("obs", np.zeros((4, 3), np.float32), ValueError), ("stats", np.zeros((3, 5)), ValueError),
           ("minibatch", 0, ValueError), ("sizes", [2], ValueError)]
    for name, value, exc in bad:
        with pytest.raises(exc, match=name):
            _core.kernels.ppo_mlp_epoch(**{**good, name: value})


@pytest.mark.parametrize("fused", [True, False])
def test_resume_is_bitwise_identical(tmp_path, fused: bool) -> None:
    kw = dict(normalize_obs=True, normalize_reward=True, fused_update=fused, lr_schedule="linear", schedule_iters=6)
    torch.manual_seed(5)
    full = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path / "a", **kw))
    full.train(iters=6)
    torch.manual_seed(5)
    first = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path / "b", **kw))
    first.train(iters=3)
    path = first.save(str(tmp_path / "ckpt.pt"))
    first.close()
    resumed = PPOTrainer.load(path)
    assert resumed.iteration == 3 and resumed.num_timesteps == first.num_timesteps
    resumed.train(iters=3)
    for a, b in zip(_params(full), _params(resumed)):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(full.obs_rms.mean, resumed.obs_rms.mean)
    np.testing.assert_array_equal(full.reward_norm.returns, resumed.reward_norm.returns)


def test_checkpoint_is_atomic_and_weights_only(tmp_path) -> None:
    tr = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path))
    tr.train(iters=1)
    path = str(tmp_path / "sub" / "model.pt")
    tr.save(path)
    tr.save(path)  # overwrite in place
    assert os.listdir(tmp_path / "sub") == ["model.pt"]
    state = torch.load(path, weights_only=True)
    assert state["iteration"] == 1 and state["algo"] == "ppo"
    with pytest.raises(ValueError, match="path"):
        torch.save({"x": 1}, str(tmp_path / "other.pt"))
        PPOTrainer.load(str(tmp_path / "other.pt"))


def test_truncated_steps_bootstrap_from_final_observation(tmp_path) -> None:
    tr = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path, G=2, T=16))
    tr.cfg.env = "CartPole-v1"
    tr._ensure_env()
    tr.env.close()
    from rltrain import make_vec

    tr.env = make_vec("CartPole-v1", 2, seed=0, max_episode_steps=5)
    obs, _ = tr.env.reset(seed=0)
    tr._obs = obs
    tr._collect()
    b = tr._buffers
    trunc_only = b["dones"] & ~b["terminated"]
    assert trunc_only.any()
    assert np.all(b["final_values"][~trunc_only] == 0)
    assert np.all(b["final_values"][trunc_only] != 0)


def test_logs_with_sb3_keys(tmp_path) -> None:
    tr = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path, T=64))
    tr.train(iters=2)
    with open(os.path.join(tr.run_dir, "progress.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2
    for key in ("rollout/ep_rew_mean", "rollout/ep_len_mean", "train/approx_kl", "train/clip_fraction",
                "train/entropy_loss", "train/value_loss", "train/policy_gradient_loss",
                "train/explained_variance", "train/learning_rate", "time/fps"):
        assert key in rows[-1], key
    assert glob.glob(os.path.join(tr.run_dir, "events.out.tfevents.*"))


def test_predict_and_evaluate(tmp_path) -> None:
    tr = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path))
    one = tr.predict(np.zeros(4, np.float32))
    many = tr.predict(np.zeros((5, 4), np.float32))
    assert np.ndim(one) == 0 and many.shape == (5,)
    res = tr.evaluate(n_episodes=3)
    assert {"mean_reward", "std_reward", "mean_length"} <= set(res)
    with pytest.raises(ValueError, match="obs"):
        tr.predict(np.zeros(3))


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"lr": -1.0}, "lr"), ({"minibatches": 7}, "minibatches"), ({"gamma": 1.5}, "gamma"),
     ({"G": 0}, "G"), ({"backend": "gpu"}, "backend"), ({"lam": -0.1}, "lam")],
)
def test_bad_config_is_rejected_before_work(tmp_path, kw, field) -> None:
    with pytest.raises(ValueError, match=field):
        PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path, **kw))


def test_unknown_env_is_a_clear_error(tmp_path) -> None:
    tr = PPOTrainer(ActorCriticPolicy(4, 2), _cfg(tmp_path, env="NoSuchEnv-v9"))
    with pytest.raises(ValueError, match="env"):
        tr.train(iters=1)


def test_users_script_runs_unchanged_with_eval_and_video(tmp_path) -> None:
    from rltrain.envs import DenseLunarLander

    env = DenseLunarLander(randomize_angle=True, randomize_pos=True)
    tr = PPOTrainer(ActorCriticPolicy(8, 4), PPOConfig(env=env, G=4, T=64, minibatches=4, epochs=1, seed=0, verbose=0,
                                                       log_dir=str(tmp_path / "runs")), device="cpu")
    assert tr.env is None
    tr.train(iters=2, eval_env=DenseLunarLander(randomize_angle=True, randomize_pos=True), eval_interval=1,
             eval_episodes=2, video_dir=str(tmp_path / "videos"), video_episodes=1)
    from rltrain.vec.native import NativeVectorEnv

    assert isinstance(tr.env, NativeVectorEnv)  # the instance was mapped onto the native batcher
    assert len(tr.eval_history) == 2
    assert os.path.isfile(os.path.join(tr.run_dir, "best_model.pt"))
    videos = glob.glob(str(tmp_path / "videos" / "*.mp4"))
    assert len(videos) == 1
    with open(videos[0], "rb") as f:
        head = f.read(12)
    assert head[4:8] == b"ftyp" and os.path.getsize(videos[0]) > 1000


@pytest.mark.parametrize("target_kl", [None, 0.002])
def test_fast_epoch_many_epochs_in_one_call_equal_a_loop_of_calls(target_kl: float | None) -> None:
    """epochs=K over the same samples (PPO's single-minibatch case) gives the bits of K one-epoch calls, also when
    the KL early stop ends it part way (0.002 stops these data after a few epochs)."""
    from rltrain.algos.fused_mlp import FusedActorCritic

    def run(multi: bool) -> tuple[torch.Tensor, np.ndarray, int, bool]:
        torch.manual_seed(0)
        fused = FusedActorCritic(ActorCriticPolicy(4, 2), lr=1e-3, adam_eps=1e-5)
        g = torch.Generator().manual_seed(1)
        n = 256
        data = (torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g), torch.full((n,), -0.69),
                torch.randn(n, generator=g), torch.randn(n, generator=g), torch.randn(n, generator=g))
        kw: dict[str, Any] = {"minibatch": n, "clip": 0.2, "clip_vf": None, "ent_coef": 0.0, "vf_coef": 0.5,
                              "max_grad_norm": 0.5, "target_kl": target_kl}
        if multi:
            rows, done, stopped = fused.epoch(*data, epochs=20, **kw)
            return fused.flat.clone(), rows, done, stopped
        parts, done, stopped = [], 0, False
        for _ in range(20):
            rows, d, stopped = fused.epoch(*data, **kw)
            parts.append(rows)
            done += d
            if stopped:
                break
        return fused.flat.clone(), np.concatenate(parts), done, stopped

    a, b = run(True), run(False)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2:] == b[2:]
    assert a[3] == (target_kl is not None) and (a[2] < 20) == a[3]
