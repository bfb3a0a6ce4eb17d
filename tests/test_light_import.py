"""The light package face: ``import rltrain.kernels`` (and ``rltrain.reference``, ``import rltrain``, native
``make_vec``) costs NumPy, not torch, the trainers or their tooling; ``from rltrain import PPOTrainer`` and every
name in ``rltrain.__all__`` still resolve, loaded on first use.

Each import check runs in a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import rltrain

HEAVY = ("torch", "tensorboard", "tyro", "matplotlib", "rltrain.algos", "rltrain.config")
"""Never loaded by the light entry points (a module or any of its submodules)."""

PUBLIC = {"GRPOBaseTrainer", "GRPOConfig", "HybridAdvGRPOTrainer", "PPOConfig", "PPOTrainer", "PerEpAdvGRPOTrainer",
          "PerStepAdvGRPOTrainer", "ReinforceConfig", "ReinforceTrainer", "__version__", "envs", "kernels",
          "make_vec", "native_envs", "reference", "PolicyGroupConfig", "PolicyGroupTrainer", "SelfPlayConfig",
          "SelfPlayTrainer"}
"""The names ``rltrain`` gave when it imported everything eagerly, and the trainers added since (SPEC §9)."""


def _run(code: str, tmp_path: pathlib.Path, timeout: float = 120) -> str:
    """Runs ``code`` in a fresh interpreter against the rltrain this process imported; returns its stdout."""
    epilogue = (
        "\nimport sys as _sys\n"
        f"assert _sys.modules['rltrain'].__file__ == {rltrain.__file__!r}, _sys.modules['rltrain'].__file__\n"
    )
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + epilogue], capture_output=True, text=True,
                         cwd=tmp_path, env=dict(os.environ), timeout=timeout, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _loaded_after(stmt: str, tmp_path: pathlib.Path, heavy: tuple[str, ...]) -> list[str]:
    code = f"""
        import json, sys
        {stmt}
        heavy = {heavy!r}
        print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
    """
    return json.loads(_run(code, tmp_path).splitlines()[-1])


KERNELS_ON_NUMPY = (
    "import numpy as np, rltrain.kernels as k; "
    "r = np.ones((4, 2), np.float32); "
    "k.gae(r, r, np.zeros((4, 2), bool), np.zeros(2, np.float32), gamma=0.9, lam=0.9); "
    "k.discounted_returns(np.asfortranarray(np.ones((4, 2))), [[0, 1]] * 4, gamma=0.9); "  # the converting path
    "k.group_normalize(np.arange(8.0), group_size=4, ddof=1); "
    "k.episodic_advantages(np.ones((3, 5)), np.array([5, 2, 0])); "
    "s = k.RunningMeanStd(3); s.update(np.ones((5, 3))); s.normalize(np.ones((2, 3))); "
    "k.RewardNormalizer(2).normalize(np.ones(2), np.zeros(2, bool))"
)


@pytest.mark.parametrize(
    "stmt",
    [
        "import rltrain",
        "import rltrain.kernels",
        KERNELS_ON_NUMPY,
        (
            "import numpy as np, rltrain.reference as ref; "
            "ref.gae(np.ones((3, 2)), np.ones((3, 2)), np.zeros((3, 2)), np.zeros(2), gamma=0.9, lam=0.9)"
        ),
        "import rltrain; rltrain.__version__",
        "import rltrain.vec as v; v.native_envs(); v.native_env_spec('CartPole-v1')",
    ],
    ids=["rltrain", "kernels", "kernels-called", "reference-called", "version", "vec-registry"],
)
def test_numpy_only_entry_points(stmt: str, tmp_path: pathlib.Path) -> None:
    # The kernels and their specification need NumPy and the compiled core: not even gymnasium.
    assert _loaded_after(stmt, tmp_path, (*HEAVY, "gymnasium")) == []


@pytest.mark.parametrize(
    "stmt",
    [
        (
            "import rltrain; env = rltrain.make_vec('CartPole-v1', 2, seed=0); env.reset(); "
            "assert type(env).__name__ == 'NativeVectorEnv', type(env); env.close()"
        ),
        "import rltrain; assert 'CartPole-v1' in rltrain.native_envs()",
        "import rltrain.envs",
        "from rltrain import make_vec, native_envs",
    ],
    ids=["make_vec-native", "native_envs", "envs", "from-import-vec"],
)
def test_native_envs_need_no_trainer(stmt: str, tmp_path: pathlib.Path) -> None:
    assert _loaded_after(stmt, tmp_path, HEAVY) == []


def test_configs_are_data(tmp_path: pathlib.Path) -> None:
    assert _loaded_after("from rltrain import GRPOConfig, PPOConfig, ReinforceConfig", tmp_path,
                         ("torch", "tensorboard", "tyro", "matplotlib", "rltrain.algos", "gymnasium")) == []


def test_every_public_name_resolves_lazily(tmp_path: pathlib.Path) -> None:
    out = _run("""
        import json, sys
        import gymnasium
        import rltrain
        assert "torch" not in sys.modules
        from rltrain import GRPOBaseTrainer, GRPOConfig, HybridAdvGRPOTrainer, PPOConfig, PPOTrainer
        from rltrain import PerEpAdvGRPOTrainer, PerStepAdvGRPOTrainer, ReinforceConfig, ReinforceTrainer
        from rltrain.algos.grpo import PerEpAdvGRPOTrainer as Grpo
        from rltrain.algos.ppo import PPOTrainer as Ppo
        from rltrain.config import PPOConfig as Cfg
        from rltrain.vec import make_vec
        assert PPOTrainer is Ppo and PerEpAdvGRPOTrainer is Grpo and PPOConfig is Cfg, "lazy names are the classes"
        assert rltrain.make_vec is make_vec and rltrain.kernels is sys.modules["rltrain.kernels"]
        # Names that build environments register rltrain's ids with gymnasium, as `import rltrain` used to.
        assert "rltrain/DenseLunarLander-v0" in gymnasium.registry
        ns = {}
        exec("from rltrain import *", ns)
        missing = [n for n in rltrain.__all__ if n not in ns or getattr(rltrain, n) is not ns[n]]
        assert not missing, missing
        print(json.dumps(sorted(rltrain.__all__)))
        print(json.dumps(sorted(set(rltrain.__all__) - set(dir(rltrain)))))
    """, tmp_path)
    all_names, not_in_dir = (json.loads(line) for line in out.splitlines()[-2:])
    assert set(all_names) == PUBLIC
    assert not_in_dir == []


def test_dir_lists_lazy_names_before_loading(tmp_path: pathlib.Path) -> None:
    out = _run("""
        import sys, rltrain
        print(sorted(set(rltrain.__all__) - set(dir(rltrain))), "torch" in sys.modules)
    """, tmp_path)
    assert out.split() == ["[]", "False"]


def test_help_renders(tmp_path: pathlib.Path) -> None:
    # pydoc walks every public name, so this loads the trainers too; it must not fail on the lazy face.
    out = _run("import pydoc, rltrain; print(pydoc.render_doc(rltrain, renderer=pydoc.plaintext))", tmp_path,
               timeout=300)
    assert "PPOTrainer" in out and "make_vec" in out


def test_torch_tensors_after_a_light_import(tmp_path: pathlib.Path) -> None:
    # kernels recognises tensors without importing torch: torch, imported later by the caller, still works.
    out = _run("""
        import rltrain.kernels as k
        import torch
        r = torch.ones(4, 2)
        adv, ret = k.gae(r, r, torch.zeros(4, 2, dtype=torch.bool), torch.zeros(2), gamma=0.9, lam=0.9)
        assert isinstance(adv, torch.Tensor) and isinstance(ret, torch.Tensor)
        assert isinstance(k.group_normalize(torch.arange(8.0), group_size=4), torch.Tensor)
        print("ok")
    """, tmp_path)
    assert out.splitlines()[-1] == "ok"


def test_unknown_attribute_names_it() -> None:
    with pytest.raises(AttributeError, match="'rltrain' has no attribute 'no_such_name'"):
        rltrain.no_such_name  # noqa: B018
    with pytest.raises(ImportError, match="no_such_name"):
        from rltrain import no_such_name  # noqa: F401


@pytest.mark.parametrize(
    "stmt",
    [
        # The fork backend, reached without `import rltrain` having registered anything.
        "from rltrain.vec import make_vec; make_vec('rltrain/DenseLunarLander-v0', 1, backend='fork').close()",
        # How trainers, the CLI and the robustness tool build single envs.
        "import rltrain.vec.resolve as e, gymnasium as g; g.make('rltrain/SparseLunarLander-v0').close()",
    ],
    ids=["fork-backend", "vec.resolve"],
)
def test_deep_entry_points_register_rltrain_ids(stmt: str, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("Box2D", reason="the rltrain/* LunarLander ids build gymnasium's LunarLander (pybox2d)")
    _run("import warnings; warnings.simplefilter('ignore', DeprecationWarning)\n" + stmt, tmp_path)
