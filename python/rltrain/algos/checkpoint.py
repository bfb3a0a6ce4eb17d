"""Checkpoints: writing them atomically, reading them back into a trainer, and what reading one trusts.

``Checkpointing`` gives every trainer ``save(path)`` and ``load(path)`` (a classmethod). A checkpoint holds the
policy, optimizer, normaliser statistics, RNG states, counters, the config and a snapshot of the rollout
environments for exact resume: native envs export their complete state (physics, counters, RNG) in O(num_envs);
Python envs on the fork backend are pickled in their workers (restored only with
``load(..., trust_pickled_envs=True)``, since unpickling runs code). Envs without a snapshot (pybox2d's cannot be
pickled) resume from fresh resets, as Stable-Baselines3 does, with a warning that this resume is not bitwise.

Trust: a checkpoint stores the dotted names of its trainer, policy and environment classes (and a policy's
backbone) so ``load`` can rebuild them. A file from someone else must not choose what runs: names resolve only to
rltrain's own trainer, policy and environment classes, or to classes the caller hands to
``load(path, classes=[...])``, looked up in a table (``rltrain._checks.class_from_path`` without imports), never by
importing the named module. Stored constructor arguments must be plain data (numbers, strings, bools, None, and
lists/tuples/dicts of those). Anything else is a ``ValueError`` raised before any class is looked up or called.
Environment ids that name a module (``"pkg.mod:Env-v0"``, which ``gymnasium.make`` would import) are refused the
same way unless the caller passes ``env=``.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
import warnings
from collections.abc import Iterable
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch

from rltrain._checks import class_from_path
from rltrain.config import CommonConfig
from rltrain.kernels import RunningMeanStd
from rltrain.policies import BACKBONES

__all__ = ["CHECKPOINT_FORMAT", "Checkpointing", "atomic_torch_save", "check_plain_data", "class_name",
           "resolve_class", "trusted_classes"]

CHECKPOINT_FORMAT = "rltrain-checkpoint-2"  # 2: environment snapshots instead of the action stream

_OWN_CLASSES = {
    "rltrain.algos.ppo": ("PPOTrainer",),
    "rltrain.algos.grpo": ("GRPOBaseTrainer", "PerStepAdvGRPOTrainer", "PerEpAdvGRPOTrainer", "HybridAdvGRPOTrainer"),
    "rltrain.algos.reinforce": ("ReinforceTrainer",),
    "rltrain.algos.policy_groups": ("PolicyGroupTrainer",),
    "rltrain.algos.policy_groups_nets": ("PolicyGroupPolicy",),
    "rltrain.algos.selfplay": ("SelfPlayTrainer",),
    "rltrain.policies": ("ActorCriticPolicy", "SimpleGRPOPolicy", "TransformerBackbone", "CNNBackbone"),
    "rltrain.policies_backbones": ("TransformerBackbone", "CNNBackbone"),
    "rltrain.envs.lunar": ("DenseLunarLander", "SparseLunarLander"),
}
"""rltrain's classes a checkpoint may name without the caller's say-so (a fixed list of rltrain's own modules)."""

_PLAIN = (bool, int, float, str, type(None))


def class_name(cls: type) -> str:
    """The name a checkpoint stores for ``cls``: ``module.QualName``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def trusted_classes(classes: Iterable[type] = ()) -> dict[str, type]:
    """rltrain's own checkpoint classes plus ``classes``, by every name a checkpoint may use for them
    (``module.QualName`` as saved, ``module:QualName`` as a backbone path; rltrain's own classes also under the
    module listed in ``_OWN_CLASSES`` that re-exports them, as older checkpoints named them)."""
    table: dict[str, type] = {}
    for module, names in _OWN_CLASSES.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:  # rltrain.envs.lunar needs pybox2d; without it its classes cannot be in use
            continue
        for n in names:
            table[f"{module}.{n}"] = table[f"{module}:{n}"] = getattr(mod, n)
    for cls in [*table.values(), *classes]:
        if not isinstance(cls, type):
            raise TypeError(f"classes: expected classes, got {cls!r}")
        table[class_name(cls)] = table[f"{cls.__module__}:{cls.__qualname__}"] = cls
    return table


def resolve_class(name: Any, what: str, table: dict[str, type]) -> type:
    """The class ``name`` stands for in ``table``; a ``ValueError`` naming ``what`` when it is not there."""
    if not isinstance(name, str):
        raise ValueError(f"{what}: expected a class name, the checkpoint holds {type(name).__name__} {name!r}")
    return class_from_path(name, what, known=table, allow_import=False, hint=(
        ": loading accepts rltrain's own trainer, policy and environment classes and never imports or calls a "
        "class a file names. If you trust this file and the class, pass it: load(path, classes=[ThatClass])"))


def check_plain_data(value: Any, what: str) -> None:
    """Raises ``ValueError`` unless ``value`` is plain data: numbers, strings, bools, None, and lists, tuples and
    dicts (string keys) of those."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_plain_data(v, f"{what}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{what}: keys must be strings, got {k!r}")
            check_plain_data(v, f"{what}[{k!r}]")
        return
    raise ValueError(f"{what}: stored arguments must be plain data, got {type(value).__name__}")


# ------------------------------------------------------------------------------------------ writing files


def atomic_torch_save(obj: Any, path: str) -> None:
    """Writes ``path`` through a temporary file in the same directory and an atomic rename: a crash leaves
    either the old file or the new one, never a truncated checkpoint."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _as_bytes_tensor(b: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(b), dtype=torch.uint8)


def _snapshot_record(state: bytes | list[bytes], obs: np.ndarray, mask: np.ndarray | None = None) -> dict[str, Any]:
    """An environment snapshot in checkpoint form: native state bytes, or one pickle per Python env; the legal-action
    mask of ``obs`` when the env reports one."""
    obs_t = torch.from_numpy(np.array(obs, copy=True))
    extra = {} if mask is None else {"action_mask": torch.from_numpy(np.array(mask, dtype=np.bool_, copy=True))}
    if isinstance(state, bytes):
        return {"kind": "native", "state": _as_bytes_tensor(state), "obs": obs_t, **extra}
    return {"kind": "pickled", "envs": [_as_bytes_tensor(b) for b in state], "obs": obs_t, **extra}


def _mask_of(snap: dict[str, Any]) -> dict[str, Any]:
    m = snap.get("action_mask")
    return {} if m is None else {"action_mask": m.numpy()}


def _pending_restore(state: dict[str, Any], trust_pickled_envs: bool) -> dict[str, Any] | None:
    """The env snapshot of a loaded checkpoint, as ``_ensure_env`` applies it; None (with a warning when the saved
    run had started) when there is none to apply."""
    snap = state.get("env_state")
    started = int(state.get("iteration", 0)) > 0
    why = None
    if snap is None:
        why = "it holds no environment snapshot" if state.get("format") == CHECKPOINT_FORMAT else \
            "it is of the older format (an action stream)"
    elif snap.get("kind") == "native":
        return {"kind": "native", "state": snap["state"].numpy().tobytes(), "obs": snap["obs"].numpy(),
                **_mask_of(snap)}
    elif snap.get("kind") == "ray":
        workers = [_pending_restore({"env_state": w, "iteration": 0, "format": CHECKPOINT_FORMAT}, trust_pickled_envs)
                   for w in snap["workers"]]
        if all(w is not None for w in workers):
            return {"kind": "ray", "workers": workers, "obs": snap["obs"].numpy()}
        why = "its Ray workers' environments were pickled and unpickling runs code: pass trust_pickled_envs=True"
    elif snap.get("kind") == "pickled":
        if trust_pickled_envs:
            return {"kind": "pickled", "envs": [t.numpy().tobytes() for t in snap["envs"]],
                    "obs": snap["obs"].numpy(), **_mask_of(snap)}
        why = "its environments were pickled and unpickling runs code: pass trust_pickled_envs=True if you trust it"
    else:
        raise ValueError(f"env_state: unknown snapshot kind {snap.get('kind')!r}")
    if started:
        warnings.warn(f"checkpoint: {why}; the run resumes from fresh resets (as Stable-Baselines3 does) and is "
                      "not bitwise identical to an uninterrupted one", stacklevel=4)
    return None


def _env_record(env: Any) -> Any:
    """The config's env as a checkpoint stores it: its id, or rltrain's own env class and its arguments."""
    if isinstance(env, str):
        return env
    cfg = getattr(env, "native_config", None)
    if isinstance(env, gym.Env) and isinstance(cfg, dict):
        return {"class": class_name(type(env)), "kwargs": dict(cfg)}
    return None


def _config_env(cfg_dict: dict[str, Any], env: Any, table: dict[str, type]) -> Any:
    """The env a loaded trainer uses: ``env`` when the caller gives one, else the checkpoint's (checked first)."""
    env_rec = cfg_dict.get("env")
    if env is not None:
        return env
    if isinstance(env_rec, dict):
        env_cls = resolve_class(env_rec.get("class"), "config['env']['class']", table)
        if not isinstance(env_rec.get("kwargs"), dict):
            raise ValueError("config['env']['kwargs']: expected a dict of plain data")
        return env_cls, env_rec["kwargs"]
    if isinstance(env_rec, str):
        if ":" in env_rec:  # gymnasium.make would import the module the id names
            raise ValueError(f"config['env']: {env_rec!r} names a module to import; pass env=... if you trust it")
        return env_rec
    raise ValueError("env: the checkpoint's environment was a factory or custom instance; pass env=...")


_T = TypeVar("_T", bound="Checkpointing")


class Checkpointing:
    """``save`` / ``load`` for ``BaseTrainer`` (see the module docstring). Subclasses add state through
    ``_extra_state()`` / ``_load_extra_state()``."""

    # Set by BaseTrainer.
    algo: str
    config_class: type
    needs_env_snapshot: bool
    cfg: CommonConfig
    policy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    seed: int
    iteration: int
    num_timesteps: int
    train_time: float
    best_mean_reward: float
    ep_info: Any
    eval_history: list[dict[str, float]]
    obs_rms: RunningMeanStd | None
    env: Any
    _obs: np.ndarray | None
    _gen: torch.Generator
    _restore_env: dict[str, Any] | None

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def _sync_rollout_policy(self) -> None:
        raise NotImplementedError

    def _env_snapshot(self) -> dict[str, Any] | None:
        """The rollout environments' state for a checkpoint; a restored snapshot not applied yet (saved again
        before training resumed) as it was; None, with a warning once, when the environments cannot provide one."""
        r = self._restore_env
        if r is not None:
            return _snapshot_record(r["state"] if r["kind"] == "native" else r["envs"], r["obs"], r.get("action_mask"))
        ray_rollouts = getattr(self, "_ray", None)
        if self.needs_env_snapshot and ray_rollouts is not None and self._obs is not None:
            return {"kind": "ray", "workers": [_snapshot_record(st, o) for st, o in ray_rollouts.get_state()],
                    "obs": torch.from_numpy(np.array(self._obs, copy=True))}
        if not self.needs_env_snapshot or self.env is None or self._obs is None:
            return None  # not needed, or not started: a resumed run starts from the same fresh resets
        get_state = getattr(self.env, "get_state", None)
        try:
            if get_state is None:
                raise TypeError(f"{type(self.env).__name__} has no get_state()")
            state = get_state()
        except Exception as exc:  # an env that does not pickle (WorkerError from the worker), or no snapshot
            if not getattr(self, "_warned_snapshot", False):
                self._warned_snapshot = True
                warnings.warn(f"checkpoint: the environments cannot be snapshotted ({str(exc).splitlines()[0]}); "
                              "a run resumed from this file starts from fresh resets (as Stable-Baselines3 does) "
                              "and is not bitwise identical to an uninterrupted one", stacklevel=3)
            return None
        return _snapshot_record(state, self._obs, getattr(self, "_mask", None))

    def save(self, path: str) -> str:
        """Writes one checkpoint file atomically (temp file + rename): policy, optimizer, normaliser
        statistics, RNG states, counters, the config and the environment snapshot needed for exact resume."""
        pol = self.policy
        cfg = self.cfg.to_dict()
        cfg["env"] = _env_record(self.cfg.env)
        obs_rms = None if self.obs_rms is None else self.obs_rms.state_dict()
        state = {
            "format": CHECKPOINT_FORMAT,
            "algo": self.algo,
            "trainer": class_name(type(self)),
            "policy_class": class_name(type(pol)),
            "policy_kwargs": dict(getattr(pol, "init_kwargs", {})),
            "policy": {k: v.detach().cpu() for k, v in pol.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "config": cfg,
            "seed": self.seed,
            "iteration": self.iteration,
            "num_timesteps": self.num_timesteps,
            "train_time": self.train_time,
            "best_mean_reward": self.best_mean_reward,
            "torch_rng": torch.get_rng_state(),
            "shuffle_rng": self._gen.get_state(),
            "ep_info": [list(x) for x in self.ep_info],
            "eval_history": [dict(x) for x in self.eval_history],  # evaluation seeds count on it
            "obs_rms": None if obs_rms is None else {k: (torch.from_numpy(np.asarray(v))
                                                         if isinstance(v, np.ndarray) else v)
                                                     for k, v in obs_rms.items()},
            "env_state": self._env_snapshot(),
            "extra": self._extra_state(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
        }
        atomic_torch_save(state, path)
        return path

    @classmethod
    def load(
        cls: type[_T],
        path: str,
        device: str | torch.device = "cpu",
        env: Any = None,
        *,
        classes: Iterable[type] = (),
        trust_pickled_envs: bool = False,
        **overrides: Any,
    ) -> _T:
        """Restores a trainer saved by ``save`` (``torch.load(..., weights_only=True)``). ``env`` replaces the
        saved environment (needed when it was a factory or an arbitrary instance); ``overrides`` set config fields.

        What it trusts (see the module docstring): the checkpoint's trainer, policy, backbone and environment
        classes must be rltrain's own or among ``classes`` (your own trunk or env class, if you trust the file);
        their stored arguments must be plain data. Anything else raises ``ValueError`` before any class is looked
        up or called; nothing named in the file is ever imported. Python environments snapshotted by pickling
        (fork backend) are restored only with ``trust_pickled_envs=True`` (unpickling runs code); otherwise the
        run resumes from fresh resets, with a warning."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, "rltrain-checkpoint-1"):
            raise ValueError(f"path: {path!r} is not an rltrain checkpoint")
        # Every name and argument is checked before anything is built.
        table = trusted_classes(classes)
        trainer_cls = resolve_class(state.get("trainer"), "trainer", table)
        if not issubclass(trainer_cls, Checkpointing):
            raise ValueError(f"trainer: {state['trainer']!r} is not a trainer class")
        if not issubclass(trainer_cls, cls):
            raise ValueError(f"path: checkpoint holds a {trainer_cls.__name__}, not a {cls.__name__}")
        policy_cls = resolve_class(state.get("policy_class"), "policy_class", table)
        if not issubclass(policy_cls, torch.nn.Module):
            raise ValueError(f"policy_class: {state['policy_class']!r} is not a torch module")
        policy_kwargs, cfg_dict = state.get("policy_kwargs"), state.get("config")
        if not isinstance(policy_kwargs, dict) or not isinstance(cfg_dict, dict):
            raise ValueError(f"path: {path!r} lacks policy_kwargs or config")
        check_plain_data(policy_kwargs, "policy_kwargs")
        check_plain_data(cfg_dict, "config")
        policy_kwargs, cfg_dict = dict(policy_kwargs), dict(cfg_dict)
        for where, record in (("policy_kwargs", policy_kwargs), ("config", cfg_dict)):
            if isinstance(record.get("backbone"), str) and record["backbone"] not in BACKBONES:
                record["backbone"] = resolve_class(record["backbone"], f"{where}['backbone']", table)
        cfg_dict["env"] = _config_env(cfg_dict, env, table)
        if isinstance(cfg_dict["env"], tuple):
            env_cls, env_kwargs = cfg_dict["env"]
            cfg_dict["env"] = env_cls(**env_kwargs)
        names = {f.name for f in dataclasses.fields(trainer_cls.config_class)}
        kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg_dict.items() if k in names}
        kwargs.update(overrides)
        cfg = trainer_cls.config_class(**kwargs)
        cfg.seed = state["seed"]
        policy = policy_cls(**policy_kwargs)
        policy.load_state_dict(state["policy"])
        trainer = trainer_cls(policy, cfg, device=device)  # type: ignore[call-arg]
        trainer._restore_state(state, trust_pickled_envs)
        return trainer

    def _restore_state(self, state: dict[str, Any], trust_pickled_envs: bool) -> None:
        """Everything but the policy's weights, from a checkpoint ``load`` has checked."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.iteration = int(state["iteration"])
        self.num_timesteps = int(state["num_timesteps"])
        self.train_time = float(state["train_time"])
        self.best_mean_reward = float(state["best_mean_reward"])
        torch.set_rng_state(state["torch_rng"])
        self._gen.set_state(state["shuffle_rng"])
        self.ep_info.extend(tuple(x) for x in state["ep_info"])
        self.eval_history = [dict(x) for x in state.get("eval_history", [])]
        st = state["obs_rms"]
        if st is not None:
            self.obs_rms = RunningMeanStd(shape=tuple(np.asarray(st["mean"]).shape))
            self.obs_rms.load_state_dict({k: (v.numpy() if isinstance(v, torch.Tensor) else v)
                                          for k, v in st.items()})
        if self.needs_env_snapshot:
            self._restore_env = _pending_restore(state, trust_pickled_envs)
        self._load_extra_state(state["extra"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self._sync_rollout_policy()
