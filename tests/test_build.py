"""The installed package: imported from site-packages (not the source tree), built optimised or sanitized."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import rltrain
from rltrain import _core


def test_imports_installed_package_not_source_tree() -> None:
    src = pathlib.Path(__file__).resolve().parents[1] / "python"
    assert not pathlib.Path(rltrain.__file__).resolve().is_relative_to(src)
    assert pathlib.Path(_core.__file__).suffix == ".so"


def test_import_from_outside_source_tree(tmp_path: pathlib.Path) -> None:
    code = ("import rltrain, rltrain.kernels as k, numpy as np; "
            "print(k.gae(np.ones((2, 1)), np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(1))[0].ravel())")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "1.9405" in out.stdout  # 1 + gamma * lam * 1


def test_build_flavour() -> None:
    info = _core.build_info
    expect = os.environ.get("RLTRAIN_EXPECT_SANITIZED", "")
    if expect == "1":  # the ASan + UBSan build
        assert info["sanitizers"] == "address,undefined"
    elif expect == "thread":  # the ThreadSanitizer build (RLTRAIN_TSAN)
        assert info["sanitizers"] == "thread"
    else:
        assert info["sanitizers"] == ""
        assert info["optimized"] is True


def test_core_submodules_and_no_test_hooks_in_public_namespace() -> None:
    # _core is split by topic; test scaffolding lives in _core._testing only (module.cpp wires the submodules).
    import importlib

    for name in ("kernels", "envs", "sync", "_testing"):
        sub = importlib.import_module(f"rltrain._core.{name}")  # registered in sys.modules, not only an attribute
        assert sub is getattr(_core, name)
    public = {n for n in dir(_core) if not n.startswith("__")}
    assert public == {"build_info", "MAX_THREADS", "default_num_threads", "available_cpus", "kernels", "envs", "sync",
                      "_testing"}
    for mod in (_core, _core.kernels, _core.envs, _core.sync):
        assert not [n for n in dir(mod) if n.startswith("_") and not n.startswith("__") and n != "_testing"], mod
    assert {"SleepEnvVec", "numpy_rng_uniform", "numpy_rng_draws", "numpy_f32_trig"} <= set(dir(_core._testing))
