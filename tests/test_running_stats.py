"""RunningMeanStd and RewardNormalizer: Stable-Baselines3 semantics, precision, merging, serialization."""

from __future__ import annotations

import copy
import io
import pickle
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rltrain import kernels as K
from rltrain import reference as R

SHAPES = [(), (3,), (2, 2)]


def _sb3_rms() -> Any:
    mod = pytest.importorskip(
        "stable_baselines3.common.running_mean_std", reason="stable_baselines3 is not installed"
    )
    return mod.RunningMeanStd


@st.composite
def batches(
    draw: Any, shape: tuple[int, ...], min_batches: int = 1, max_batches: int = 5
) -> list[np.ndarray]:
    """A sequence of float64 batches of shape (n, *shape), n >= 1: grid values, wide normals or constants."""
    k = draw(st.integers(min_batches, max_batches))
    out = []
    for _ in range(k):
        n = draw(st.integers(1, 12))
        kind = draw(st.sampled_from(["grid", "float", "constant"]))
        if kind == "grid":
            x = draw(hnp.arrays(np.int64, (n, *shape), elements=st.integers(-400, 400))) / 8.0
        elif kind == "float":
            x = draw(hnp.arrays(np.float64, (n, *shape), elements=st.floats(-1e3, 1e3)))
        else:
            x = np.full((n, *shape), draw(st.floats(-1e3, 1e3)))
        out.append(x)
    return out


def assert_stats(rms: Any, mean: Any, var: Any, count: float, rtol: float = 1e-12) -> None:
    scale = max(1.0, float(np.max(np.abs(mean)))) if np.size(mean) else 1.0
    np.testing.assert_allclose(rms.mean, mean, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(rms.var, var, rtol=rtol, atol=rtol)
    assert rms.count == pytest.approx(count, rel=1e-15)


# ------------------------------------------------------------------------------------------ RunningMeanStd


def test_initial_state() -> None:
    rms = K.RunningMeanStd(shape=(3,))
    assert rms.shape == (3,)
    np.testing.assert_array_equal(rms.mean, np.zeros(3))
    np.testing.assert_array_equal(rms.var, np.ones(3))
    np.testing.assert_array_equal(rms.std, np.ones(3))
    assert rms.count == 1e-4
    assert rms.mean.dtype == rms.var.dtype == np.float64
    assert K.RunningMeanStd(shape=4).shape == (4,)
    assert K.RunningMeanStd(epsilon=0.5).count == 0.5


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@given(data=st.data())
def test_update_matches_sb3_and_reference(shape: tuple[int, ...], data: st.DataObject) -> None:
    sb3 = _sb3_rms()(shape=shape)
    ref = R.RunningMeanStd(shape=shape)
    rms = K.RunningMeanStd(shape=shape)
    as_f32 = data.draw(st.booleans(), label="float32 batches")
    for x in data.draw(batches(shape)):
        if as_f32:
            x = x.astype(np.float32)
        rms.update(x)
        sb3.update(x.astype(np.float64))  # the kernel accumulates float32 input in float64
        ref.update(x)
    assert_stats(rms, sb3.mean, sb3.var, sb3.count)
    assert_stats(rms, ref.mean, ref.var, ref.count)
    np.testing.assert_allclose(rms.std, np.sqrt(sb3.var), rtol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@given(data=st.data())
def test_merge_matches_sb3_combine(shape: tuple[int, ...], data: st.DataObject) -> None:
    Sb3 = _sb3_rms()
    a, b = K.RunningMeanStd(shape=shape), K.RunningMeanStd(shape=shape)
    sa, sb = Sb3(shape=shape), Sb3(shape=shape)
    for x in data.draw(batches(shape), label="a"):
        a.update(x)
        sa.update(x)
    for x in data.draw(batches(shape), label="b"):
        b.update(x)
        sb.update(x)
    a.merge(b)
    sa.combine(sb)
    assert_stats(a, sa.mean, sa.var, sa.count)
    assert K.RunningMeanStd.combine is K.RunningMeanStd.merge


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@given(data=st.data())
def test_merge_equals_update_on_concatenation(shape: tuple[int, ...], data: st.DataObject) -> None:
    # epsilon = 0: no pseudo-count, so the merged statistics are exactly those of all the data.
    first = data.draw(batches(shape, min_batches=0), label="first")
    second = data.draw(batches(shape), label="second")
    a, b, whole = (K.RunningMeanStd(shape=shape, epsilon=0.0) for _ in range(3))
    for x in first:
        a.update(x)
    for x in second:
        b.update(x)
    a.merge(b)
    allx = np.concatenate(first + second, axis=0)
    whole.update(allx)
    scale = max(1.0, float(np.max(np.abs(allx))))
    np.testing.assert_allclose(a.mean, whole.mean, rtol=1e-10, atol=1e-12 * scale)
    np.testing.assert_allclose(a.var, whole.var, rtol=1e-9, atol=1e-12 * scale**2)
    assert a.count == whole.count == allx.shape[0]
    np.testing.assert_allclose(whole.mean, allx.mean(axis=0), rtol=1e-12, atol=1e-13 * scale)
    np.testing.assert_allclose(whole.var, allx.var(axis=0), rtol=1e-10, atol=1e-12 * scale**2)


def _exact_updates(batches: np.ndarray, epsilon: float) -> tuple[Fraction, Fraction, Fraction]:
    """The same update sequence (SB3's Chan merge of population moments) in exact rational arithmetic."""
    mean, var, count = Fraction(0), Fraction(1), Fraction(epsilon)
    for b in batches:
        xs = [Fraction(float(x)) for x in b]
        n = len(xs)
        bm = sum(xs) / n
        bv = sum((x - bm) ** 2 for x in xs) / n
        delta = bm - mean
        tot = count + n
        m2 = var * count + bv * n + delta * delta * count * n / tot
        mean, var, count = mean + delta * n / tot, m2 / tot, tot
    return mean, var, count


@pytest.mark.parametrize(("epsilon", "var_rtol"), [(0.0, 1e-8), (1e-4, 1e-12)])
def test_precision_with_large_mean(epsilon: float, var_rtol: float) -> None:
    """Mean 1e8, std 1 over 50 batches: matches exact arithmetic (a one-pass sum of squares does not:
    its variance is off by ~10% with epsilon = 0 and by ~1e-9 relative with epsilon = 1e-4)."""
    data = np.random.default_rng(7).normal(1e8, 1.0, size=(50, 200))
    rms = K.RunningMeanStd(epsilon=epsilon)
    for b in data:
        rms.update(b)
    mean, var, count = _exact_updates(data, epsilon)
    assert float(rms.mean) == pytest.approx(float(mean), rel=1e-15)
    assert float(rms.var) == pytest.approx(float(var), rel=var_rtol)
    assert rms.count == pytest.approx(float(count), rel=1e-15)
    if epsilon == 0.0:
        assert float(rms.var) == pytest.approx(1.0, abs=0.05)  # the data's own variance survives


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@given(data=st.data())
def test_normalize_formula_and_clip(shape: tuple[int, ...], data: st.DataObject) -> None:
    rms = K.RunningMeanStd(shape=shape)
    for x in data.draw(batches(shape)):
        rms.update(x)
    lead = data.draw(st.sampled_from([(), (4,), (2, 3)]), label="batch dims")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    x = data.draw(hnp.arrays(np.float64, lead + shape, elements=st.floats(-1e3, 1e3)), label="x").astype(
        dtype
    )
    clip = data.draw(st.sampled_from([10.0, 0.5, 0.0, 1e6]), label="clip")
    eps = data.draw(st.sampled_from([1e-8, 0.1]), label="eps")
    use_torch = data.draw(st.booleans(), label="torch")
    got = rms.normalize(torch.from_numpy(x) if use_torch else x, clip=clip, eps=eps)
    if use_torch:
        assert isinstance(got, torch.Tensor)
        got = got.numpy()
    assert isinstance(got, np.ndarray) and got.dtype == dtype and got.shape == x.shape
    want = np.clip((x.astype(np.float64) - rms.mean) / np.sqrt(rms.var + eps), -clip, clip).astype(dtype)
    np.testing.assert_array_equal(got, want)
    ref = R.RunningMeanStd(shape=shape)
    ref.mean, ref.var, ref.count = rms.mean.copy(), rms.var.copy(), rms.count
    np.testing.assert_array_equal(got, ref.normalize(x, clip=clip, eps=eps))


def test_float32_in_float32_out() -> None:
    rms = K.RunningMeanStd(shape=(2,))
    rms.update(np.array([[1.0, 2.0], [3.0, 5.0]], np.float32))
    assert rms.mean.dtype == np.float64  # float64 accumulators
    out = rms.normalize(np.array([[1.0, 2.0]], np.float32))
    assert out.dtype == np.float32
    t = rms.normalize(torch.tensor([[1.0, 2.0]], dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), out)


def test_scalar_shape() -> None:
    rms = K.RunningMeanStd()
    assert rms.shape == () and rms.mean.shape == () and rms.var.shape == ()
    rms.update(np.array([1.0, 2.0, 3.0, 4.0]))
    ref = R.RunningMeanStd()
    ref.update(np.array([1.0, 2.0, 3.0, 4.0]))
    assert_stats(rms, ref.mean, ref.var, ref.count)
    assert rms.mean.shape == () and rms.var.shape == ()
    z = rms.normalize(3.0)
    assert np.shape(z) == ()
    assert float(z) == pytest.approx((3.0 - float(ref.mean)) / np.sqrt(float(ref.var) + 1e-8), rel=1e-12)
    with pytest.raises(ValueError, match="batch"):
        rms.update(np.ones((4, 1)))  # a scalar stream takes batches of shape (n,)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_update_with_empty_batch_is_a_noop(shape: tuple[int, ...]) -> None:
    rms = K.RunningMeanStd(shape=shape)
    rms.update(np.arange(6.0 * max(1, int(np.prod(shape)))).reshape((-1, *shape)))
    before = rms.state_dict()
    rms.update(np.zeros((0, *shape)))
    after = rms.state_dict()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_zero_size_feature_shape() -> None:
    rms = K.RunningMeanStd(shape=(0,))
    rms.update(np.zeros((3, 0)))
    assert rms.count == pytest.approx(3.0001)
    assert rms.normalize(np.zeros((3, 0))).shape == (3, 0)


def _trained(shape: tuple[int, ...] = (3,)) -> K.RunningMeanStd:
    rms = K.RunningMeanStd(shape=shape)
    rng = np.random.default_rng(11)
    for _ in range(3):
        rms.update(rng.normal(2.0, 3.0, size=(7, *shape)))
    return rms


def _same_stats(a: K.RunningMeanStd, b: K.RunningMeanStd) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_array_equal(a.var, b.var)
    assert a.count == b.count


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_state_dict_round_trip(shape: tuple[int, ...]) -> None:
    rms = _trained(shape)
    state = rms.state_dict()
    assert set(state) == {"mean", "var", "count"}
    assert all(isinstance(v, np.ndarray) for v in state.values())
    # Plain arrays: they survive np.savez / np.load without pickle.
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    loaded = dict(np.load(buf, allow_pickle=False))
    new = K.RunningMeanStd(shape=shape)
    new.load_state_dict(loaded)
    _same_stats(new, rms)
    # torch tensors are accepted too (e.g. a state that went through torch.save)
    new_t = K.RunningMeanStd(shape=shape)
    new_t.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    _same_stats(new_t, rms)
    # The state is a copy: changing it does not change the statistics, nor the other way round.
    state["mean"][...] = 123.0
    assert not np.any(rms.mean == 123.0)
    rms.update(np.ones((2, *shape)))
    _same_stats(new, new_t)
    with pytest.raises(KeyError, match="count"):
        K.RunningMeanStd(shape=shape).load_state_dict({"mean": state["mean"], "var": state["var"]})
    with pytest.raises(ValueError, match="mean"):
        K.RunningMeanStd(shape=(5,)).load_state_dict(loaded)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("how", ["pickle", "deepcopy", "copy_method"])
def test_pickle_and_deepcopy(shape: tuple[int, ...], how: str) -> None:
    rms = _trained(shape)
    if how == "pickle":
        other = pickle.loads(pickle.dumps(rms))
    elif how == "deepcopy":
        other = copy.deepcopy(rms)
    else:
        other = rms.copy()
    _same_stats(other, rms)
    x = np.linspace(-1, 1, 2 * max(1, int(np.prod(shape)))).reshape((-1, *shape))
    np.testing.assert_array_equal(other.normalize(x), rms.normalize(x))
    other.update(np.ones((2, *shape)))  # independent copies
    assert rms.count != other.count
    other2 = copy.deepcopy(rms)
    rms.update(np.ones((2, *shape)))
    _same_stats(rms, other)
    assert other2.count != rms.count


def test_mean_var_setters() -> None:
    rms = K.RunningMeanStd(shape=(2,))
    rms.mean = [1.0, 2.0]
    rms.var = np.array([4.0, 9.0], np.float32)
    assert rms.mean.dtype == rms.var.dtype == np.float64
    np.testing.assert_array_equal(rms.std, [2.0, 3.0])
    with pytest.raises(ValueError, match="var"):
        rms.var = np.ones(3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rms_identical_for_any_thread_count(dtype: Any, restore_threads: None) -> None:
    """dim = 2048 feature columns and 64 rows: split over several column / row ranges."""
    x = np.random.default_rng(12).normal(5.0, 2.0, size=(64, 2048)).astype(dtype)
    res = {}
    for k in (1, 2):
        K.set_num_threads(k)
        rms = K.RunningMeanStd(shape=(2048,))
        rms.update(x)
        rms.update(x[:17] * 2)
        res[k] = (rms.mean.copy(), rms.var.copy(), rms.normalize(x))
    for a, b in zip(res[1], res[2]):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    ref = R.RunningMeanStd(shape=(2048,))
    ref.update(x)
    ref.update(x[:17] * 2)
    np.testing.assert_allclose(res[2][0], ref.mean, rtol=1e-12)
    np.testing.assert_allclose(res[2][1], ref.var, rtol=1e-10)


# ----------------------------------------------------------------------------------------- RewardNormalizer


class _Sb3RewardTranscription:
    """Stable-Baselines3 VecNormalize's reward path (step_wait with norm_reward=True), line by line."""

    def __init__(self, num_envs: int, gamma: float, epsilon: float, clip_reward: float) -> None:
        self.gamma, self.epsilon, self.clip_reward, self.training = gamma, epsilon, clip_reward, True
        self.returns = np.zeros(num_envs)
        self.mean, self.var, self.count = np.zeros(()), np.ones(()), 1e-4

    def _rms_update(self, arr: np.ndarray) -> None:
        batch_mean, batch_var, batch_count = np.mean(arr, axis=0), np.var(arr, axis=0), arr.shape[0]
        delta = batch_mean - self.mean
        tot_count = self.count + batch_count
        new_mean = self.mean + delta * batch_count / tot_count
        m_2 = (
            self.var * self.count
            + batch_var * batch_count
            + np.square(delta) * self.count * batch_count / tot_count
        )
        self.mean, self.var, self.count = new_mean, m_2 / tot_count, batch_count + self.count

    def step(self, rewards: np.ndarray, dones: np.ndarray) -> np.ndarray:
        if self.training:
            self.returns = self.returns * self.gamma + rewards
            self._rms_update(self.returns)
        out = np.clip(rewards / np.sqrt(self.var + self.epsilon), -self.clip_reward, self.clip_reward)
        self.returns[dones] = 0
        return out


def _reward_stream(num_envs: int, steps: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(0.5, 2.0, num_envs), rng.random(num_envs) < 0.1) for _ in range(steps)]


@pytest.mark.parametrize(("gamma", "clip"), [(0.99, 10.0), (0.9, 0.5), (1.0, 10.0), (0.0, 3.0)])
def test_reward_normalizer_matches_sb3_transcription(gamma: float, clip: float) -> None:
    num_envs = 4
    rn = K.RewardNormalizer(num_envs, gamma=gamma, epsilon=1e-8, clip=clip)
    sb3 = _Sb3RewardTranscription(num_envs, gamma, 1e-8, clip)
    ref = R.RewardNormalizer(num_envs, gamma=gamma, epsilon=1e-8, clip=clip)
    for r, d in _reward_stream(num_envs, 60, seed=int(gamma * 100)):
        got = rn.normalize(r, d)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, sb3.step(r, d), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got, ref.normalize(r, d), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rn.returns, sb3.returns, rtol=1e-12, atol=1e-12)
    assert_stats(rn.stats, sb3.mean, sb3.var, sb3.count)


def test_reward_normalizer_matches_sb3_vec_normalize() -> None:
    vec_env = pytest.importorskip(
        "stable_baselines3.common.vec_env", reason="stable_baselines3 is not installed"
    )
    import gymnasium as gym

    num_envs, gamma = 3, 0.99
    venv = vec_env.DummyVecEnv([lambda: gym.make("CartPole-v1")] * num_envs)
    vn = vec_env.VecNormalize(
        venv, norm_obs=False, norm_reward=True, clip_reward=10.0, gamma=gamma, epsilon=1e-8
    )
    rn = K.RewardNormalizer(num_envs, gamma=gamma, epsilon=1e-8, clip=10.0)
    try:
        for r, d in _reward_stream(num_envs, 80, seed=3):
            r32 = r.astype(np.float32)  # VecEnv rewards are float32
            vn._update_reward(r32)  # what VecNormalize.step_wait does with the rewards and dones
            want = vn.normalize_reward(r32)
            vn.returns[d] = 0
            got = rn.normalize(r32, d)
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        assert_stats(rn.stats, vn.ret_rms.mean, vn.ret_rms.var, vn.ret_rms.count)
        np.testing.assert_allclose(rn.returns, vn.returns, rtol=1e-12, atol=1e-12)
    finally:
        vn.close()


def test_reward_normalizer_training_false_freezes_statistics() -> None:
    num_envs = 3
    rn = K.RewardNormalizer(num_envs, gamma=0.9)
    ref = R.RewardNormalizer(num_envs, gamma=0.9)
    stream = _reward_stream(num_envs, 30, seed=5)
    for r, d in stream[:20]:
        rn.normalize(r, d)
        ref.normalize(r, d)
    frozen = rn.stats.state_dict()
    rn.training = ref.training = False
    for r, d in stream[20:]:
        got = rn.normalize(r, d)
        np.testing.assert_array_equal(got, np.clip(r / np.sqrt(frozen["var"] + 1e-8), -10.0, 10.0))
        np.testing.assert_allclose(got, ref.normalize(r, d), rtol=1e-12)
    for k, v in rn.stats.state_dict().items():
        np.testing.assert_array_equal(v, frozen[k])


@pytest.mark.parametrize("flag_dtype", [np.bool_, np.uint8, np.float32, np.float64])
def test_reward_normalizer_dtypes_and_torch(flag_dtype: Any) -> None:
    stream = _reward_stream(2, 20, seed=6)
    a, b, ref = K.RewardNormalizer(2), K.RewardNormalizer(2), R.RewardNormalizer(2)
    for r, d in stream:
        r32 = r.astype(np.float32)
        want = ref.normalize(r32, d)
        got = a.normalize(r32, d.astype(flag_dtype))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        got_t = b.normalize(torch.from_numpy(r32), torch.from_numpy(d.astype(flag_dtype)))
        assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.float32
        np.testing.assert_array_equal(got_t.numpy(), got)


def test_reward_normalizer_state_round_trip() -> None:
    stream = _reward_stream(4, 40, seed=8)
    rn = K.RewardNormalizer(4, gamma=0.95)
    for r, d in stream[:25]:
        rn.normalize(r, d)
    state = rn.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    restored = K.RewardNormalizer(4, gamma=0.95)
    restored.load_state_dict(state)
    clone = pickle.loads(pickle.dumps(rn))
    deep = copy.deepcopy(rn)
    for r, d in stream[25:]:
        want = rn.normalize(r, d)
        for other in (restored, clone, deep):
            np.testing.assert_array_equal(other.normalize(r, d), want)
    np.testing.assert_array_equal(restored.returns, rn.returns)
    with pytest.raises(ValueError, match="returns"):
        K.RewardNormalizer(5).load_state_dict(state)
