"""Running statistics with float64 accumulators (Stable-Baselines3 semantics): ``RunningMeanStd`` for
observations and ``RewardNormalizer`` for rewards, their updates and normalisation done in C++."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rltrain import _core
from rltrain._checks import integer, real, require_shape, shape_str
from rltrain.kernels._convert import FLOATS, Io, as_dtype, flag_array, is_torch


def _stats_array(io: Io, x: Any, name: str) -> np.ndarray:
    """Float32/float64 stay as they are; integers, bool and float16 are widened; the rest is refused."""
    a = io.array(x, name)
    if a.dtype in FLOATS:
        return as_dtype(a, a.dtype)
    if a.dtype.kind in "biu" or a.dtype == np.float16:
        return as_dtype(a, np.dtype(np.float32 if a.dtype == np.float16 else np.float64))
    raise TypeError(f"{name}: expected a real numeric dtype, got {a.dtype}")


def _stat_property(name: str, doc: str) -> property:
    """``mean`` / ``var``: read as the float64 array, assigned through ``RunningMeanStd._stat`` (shape check)."""
    attr = "_" + name

    def get(self: RunningMeanStd) -> np.ndarray:
        value: np.ndarray = getattr(self, attr)
        return value

    def set_(self: RunningMeanStd, value: Any) -> None:
        setattr(self, attr, self._stat(value, name))

    return property(get, set_, doc=doc)


class RunningMeanStd:
    """Running mean and variance with float64 accumulators (Stable-Baselines3 semantics).

    Starts at ``mean=0, var=1, count=epsilon``; ``update(batch)`` merges the batch's mean and population
    variance (two-pass, so a mean of 1e8 with std 1 keeps full precision) with Chan et al.'s parallel formula.
    """

    def __init__(self, shape: Sequence[int] | int = (), epsilon: float = 1e-4) -> None:
        if isinstance(shape, (int, np.integer)):
            shape = (int(shape),)
        self.shape: tuple[int, ...] = tuple(int(s) for s in shape)
        if any(s < 0 for s in self.shape):
            raise ValueError(f"shape: expected non-negative dimensions, got {self.shape}")
        self._mean = np.zeros(self.shape, np.float64)
        self._var = np.ones(self.shape, np.float64)
        self.count = real(epsilon, "epsilon", lo=0.0)

    mean = _stat_property("mean", "Running mean (float64, ``shape``); assigning one checks its shape.")
    var = _stat_property("var", "Running population variance (float64, ``shape``); assigning one checks its shape.")

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self._var)

    def _stat(self, value: Any, name: str) -> np.ndarray:
        a = np.array(value.detach().cpu().numpy() if is_torch(value) else value, dtype=np.float64)
        require_shape(a, name, self.shape)
        return np.ascontiguousarray(a)

    def _dim(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def update(self, batch: Any) -> None:
        """Merges a batch of shape ``(n, *shape)``."""
        x = _stats_array(Io(), batch, "batch")
        if tuple(x.shape[1:]) != self.shape or x.ndim != len(self.shape) + 1:
            raise ValueError(f"batch: expected shape (n, *{self.shape}), got {shape_str(x.shape)}")
        rows = x.reshape(x.shape[0], self._dim())
        self.count = float(_core.kernels.rms_update(self._mean.reshape(-1), self._var.reshape(-1), self.count, rows))

    def merge(self, other: RunningMeanStd) -> None:
        """Merges another RunningMeanStd's statistics into this one."""
        if not isinstance(other, RunningMeanStd):
            raise TypeError(f"other: expected a RunningMeanStd, got {type(other).__name__}")
        if other.shape != self.shape:
            raise ValueError(f"other: expected shape {self.shape}, got {other.shape}")
        delta = other.mean - self._mean
        tot = self.count + other.count
        if other.count == 0:
            return
        m2 = self._var * self.count + other.var * other.count + delta**2 * self.count * other.count / tot
        self._mean = np.ascontiguousarray(self._mean + delta * other.count / tot)
        self._var = np.ascontiguousarray(m2 / tot)
        self.count = tot

    combine = merge  # Stable-Baselines3's name

    def normalize(self, x: Any, clip: float = 10.0, eps: float = 1e-8) -> Any:
        """``clip((x - mean) / sqrt(var + eps), -clip, clip)`` for ``x`` of shape ``(*batch, *shape)``."""
        io = Io()
        a = _stats_array(io, x, "x")
        k = len(self.shape)
        if a.ndim < k or tuple(a.shape[a.ndim - k :]) != self.shape:
            raise ValueError(f"x: expected shape (..., *{self.shape}), got {shape_str(a.shape)}")
        c, e = real(clip, "clip", lo=0.0), real(eps, "eps", lo=0.0)
        out = np.empty(a.shape, a.dtype)
        dim = self._dim()
        rows = int(np.prod(a.shape[: a.ndim - k], dtype=np.int64))
        _core.kernels.rms_normalize(a.reshape(rows, dim), self._mean.reshape(-1), self._var.reshape(-1), c, e,
                            out.reshape(rows, dim))
        return io.wrap(out)

    def copy(self) -> RunningMeanStd:
        new = RunningMeanStd(self.shape, epsilon=self.count)
        new._mean, new._var = self._mean.copy(), self._var.copy()
        return new

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain arrays (no pickle needed): mean, var, count."""
        return {"mean": self._mean.copy(), "var": self._var.copy(), "count": np.array(self.count, np.float64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("mean", "var", "count"):
            if key not in state:
                raise KeyError(f"state: missing key {key!r}")
        count = float(np.asarray(state["count"].detach().cpu() if is_torch(state["count"]) else state["count"]))
        mean, var = self._stat(state["mean"], "mean"), self._stat(state["var"], "var")
        self._mean, self._var, self.count = mean, var, real(count, "count", lo=0.0)

    def __repr__(self) -> str:
        return f"RunningMeanStd(shape={self.shape}, count={self.count:g})"


class RewardNormalizer:
    """Divides rewards by the running std of the discounted return (SB3 ``VecNormalize`` reward path):
    ``ret = ret * gamma + r; stats.update(ret); out = clip(r / sqrt(var + epsilon)); ret[dones] = 0``.
    Set ``training = False`` to freeze the statistics (and, as SB3, the return accumulator) for evaluation."""

    def __init__(self, num_envs: int, gamma: float = 0.99, epsilon: float = 1e-8, clip: float = 10.0) -> None:
        self.num_envs = integer(num_envs, "num_envs", lo=1)
        self.gamma = real(gamma, "gamma", lo=0.0, hi=1.0)
        self.epsilon = real(epsilon, "epsilon", lo=0.0)
        self.clip = real(clip, "clip", lo=0.0)
        self.returns = np.zeros(self.num_envs, np.float64)
        self.stats = RunningMeanStd(shape=())
        self.training = True

    def normalize(self, rewards: Any, dones: Any) -> Any:
        io = Io()
        r = _stats_array(io, rewards, "rewards")
        require_shape(r, "rewards", (self.num_envs,), "[num_envs]")
        d = io.array(dones, "dones")
        require_shape(d, "dones", (self.num_envs,), "[num_envs]")
        d = flag_array(d, "dones").astype(bool, copy=False)
        if self.training:  # as SB3's VecNormalize: the return accumulator and its statistics both freeze
            self.returns *= self.gamma
            self.returns += r
            self.stats.update(self.returns)
        out = np.clip(r / np.sqrt(self.stats.var + self.epsilon), -self.clip, self.clip).astype(r.dtype, copy=False)
        self.returns[d] = 0.0
        return io.wrap(out)

    def state_dict(self) -> dict[str, np.ndarray]:
        s = {f"stats.{k}": v for k, v in self.stats.state_dict().items()}
        s["returns"] = self.returns.copy()
        return s

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stats.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("stats.")})
        ret = np.array(state["returns"], dtype=np.float64)
        if ret.shape != (self.num_envs,):
            raise ValueError(f"returns: expected shape ({self.num_envs},), got {ret.shape}")
        self.returns = ret

    def __repr__(self) -> str:
        return f"RewardNormalizer(num_envs={self.num_envs}, gamma={self.gamma}, clip={self.clip})"

