"""rltrain without its native LunarLander: a build made without the Box2D sources (RLTRAIN_BOX2D=OFF, or no
network and no RLTRAIN_BOX2D_SOURCE at build time) imports, trains, and runs LunarLander through gymnasium.

Run as part of the default suite, the module copies the installed package without its ``_box2d`` extension (so
the import fails exactly as in such a build). CI also runs it against a real ``RLTRAIN_BOX2D=OFF`` build with
``RLTRAIN_EXPECT_NO_BOX2D=1``, where the installed package itself is used and must lack ``_box2d``.
Every check runs in a fresh interpreter with that package first on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

import rltrain

REAL_BUILD = os.environ.get("RLTRAIN_EXPECT_NO_BOX2D") == "1"
HAVE_PYBOX2D = importlib.util.find_spec("Box2D") is not None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A folder whose ``rltrain`` package has no ``_box2d``."""
    pkg = pathlib.Path(rltrain.__file__).resolve().parent
    if REAL_BUILD:
        built = [p for p in pkg.glob("_box2d*") if p.suffix in (".so", ".pyd")]
        assert not built, f"RLTRAIN_EXPECT_NO_BOX2D=1 but {pkg} holds a _box2d extension: {built}"
        return pkg.parent
    root = tmp_path_factory.mktemp("nobox2d")
    shutil.copytree(pkg, root / "rltrain", ignore=shutil.ignore_patterns("__pycache__", "_box2d*"))
    return root


def _python(site: pathlib.Path, code: str, tmp_path: pathlib.Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    prelude = f"import rltrain; assert rltrain.__file__.startswith({str(site)!r}), rltrain.__file__\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )


def test_import_and_classic_envs_stay_native(site: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = _python(site, """
        import rltrain, rltrain.envs, rltrain.kernels
        import rltrain.vec.lunar as lunar
        ids = rltrain.native_envs()
        assert "CartPole-v1" in ids and not any("Lunar" in i for i in ids), ids
        assert not rltrain.envs.native_lunar_available()
        assert lunar.UNAVAILABLE and "built without rltrain._box2d" in lunar.UNAVAILABLE, lunar.UNAVAILABLE
        with rltrain.make_vec("CartPole-v1", 2, seed=0) as env:
            assert type(env).__name__ == "NativeVectorEnv"
            env.reset()
        try:
            rltrain.make_vec("LunarLander-v3", 2, backend="native")
        except ValueError as e:
            assert "no native implementation" in str(e), e
        else:
            raise AssertionError("LunarLander-v3 ran natively without _box2d")
        print("ok")
    """, tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_train_ppo_cartpole(site: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # The README's main command, shortened: this is what crashed before on machines without Box2D.
    out = _python(site, f"""
        import sys
        from rltrain.cli import main
        sys.exit(main(["train", "ppo", "--env", "CartPole-v1", "--G", "4", "--T", "32", "--minibatches", "1",
                       "--epochs", "2", "--iters", "3", "--eval-episodes", "2", "--log-dir", {str(tmp_path)!r},
                       "--seed", "0", "--verbose", "0"]))
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "final evaluation" in out.stdout


@pytest.mark.skipif(not HAVE_PYBOX2D, reason="gymnasium's LunarLander needs pybox2d: pip install 'gymnasium[box2d]'")
def test_lunar_lander_runs_gymnasium_on_the_fork_backend(site: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = _python(site, """
        import warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # pybox2d's SWIG types
        import gymnasium as gym, numpy as np, rltrain
        with rltrain.make_vec("LunarLander-v3", 2, seed=3) as env:
            assert type(env).__name__ == "ForkVectorEnv", type(env)
            obs, _ = env.reset()
            ref = gym.make("LunarLander-v3")
            assert np.array_equal(obs[1], ref.reset(seed=4)[0])
            for _ in range(20):
                obs, *_ = env.step(np.array([2, 2]))
            assert obs.shape == (2, 8)
        print("ok")
    """, tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_lunar_lander_without_pybox2d_names_what_to_install(site: pathlib.Path, tmp_path: pathlib.Path) -> None:
    out = _python(site, """
        import sys
        sys.modules["Box2D"] = None  # as if gymnasium[box2d] were not installed
        import rltrain
        for env_id in ("LunarLander-v3", "LunarLanderContinuous-v3", "rltrain/DenseLunarLander-v0"):
            try:
                rltrain.make_vec(env_id, 2)
            except ValueError as e:
                msg = str(e)
                assert env_id in msg and 'pip install "gymnasium[box2d]"' in msg and "_box2d" in msg, msg
            else:
                raise AssertionError(f"{env_id} did not raise")
        print("ok")
    """, tmp_path)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr

