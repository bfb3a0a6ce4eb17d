"""Native LunarLander through the seeded numpy stream and the batcher: same-seed agreement with gymnasium's
LunarLander-v3, batched == single env, determinism across thread counts, make_vec ids and keyword arguments,
same-step autoreset, bad actions, continuous clipping, and the behaviour without rltrain._box2d."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from rltrain.vec import make_vec, native_envs

try:
    from rltrain import _box2d
except ImportError as exc:  # built without the Box2D sources (RLTRAIN_BOX2D=OFF, or no network at build time)
    _box2d = None
    _BOX2D_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _BOX2D_ERROR = ""

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pybox2d's SWIG types
        from rltrain.envs.lunar import DenseLunarLander, SparseLunarLander
except (ImportError, gym.error.DependencyNotInstalled) as exc:
    _PYBOX2D_ERROR = f"{type(exc).__name__}: {exc}"
else:
    _PYBOX2D_ERROR = ""

LUNAR_IDS = [
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
    "rltrain/DenseLunarLander-v0",
    "rltrain/SparseLunarLander-v0",
]
REQUIRED = os.environ.get("RLTRAIN_REQUIRE_BOX2D") == "1"

needs_box2d = pytest.mark.skipif(
    _box2d is None and not REQUIRED,
    reason=f"rltrain._box2d unavailable ({_BOX2D_ERROR}); set RLTRAIN_REQUIRE_BOX2D=1 to make this fail",
)
needs_pybox2d = pytest.mark.skipif(
    bool(_PYBOX2D_ERROR),
    reason=f"gymnasium's LunarLander unavailable ({_PYBOX2D_ERROR}): pip install 'gymnasium[box2d]'",
)



def random_actions(rng: np.random.Generator, n: int, continuous: bool, steps: int) -> np.ndarray:
    if continuous:
        return rng.uniform(-1, 1, (steps, n, 2)).astype(np.float32)
    return rng.integers(0, 4, (steps, n))


def terrain_of(env: gym.Env) -> list[float]:
    # gymnasium keeps the smoothed terrain heights only in its sky polygons: [(p1, p2, ...), ...], p = (x, y).
    sky = env.unwrapped.sky_polys
    return [p[0][1] for p in sky] + [sky[-1][1][1]]


# --- build / import ---------------------------------------------------------------------------------------------


def test_native_envs_list_lunar_iff_box2d_imports() -> None:
    listed = [i for i in native_envs() if i in LUNAR_IDS]
    if _box2d is None:
        assert not REQUIRED, f"RLTRAIN_REQUIRE_BOX2D=1 but rltrain._box2d failed to import: {_BOX2D_ERROR}"
        assert listed == []
    else:
        assert listed == sorted(LUNAR_IDS)


@needs_box2d
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the ELF dynamic section with readelf")
def test_box2d_is_compiled_in_with_hidden_symbols() -> None:
    # Box2D lives inside the extension: no shared library to find at run time, and none of its symbols exported
    # (so pybox2d, loaded in the same process by gymnasium, never binds to ours or we to its).
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf (binutils) not installed")
    so = _box2d.__file__
    dynamic = subprocess.run([readelf, "-d", so], capture_output=True, text=True, check=True).stdout
    assert "box2d" not in dynamic.lower(), dynamic
    symbols = subprocess.run([readelf, "--dyn-syms", "-W", so], capture_output=True, text=True, check=True).stdout
    exported = [line.split()[-1] for line in symbols.splitlines() if " GLOBAL " in line and " UND " not in line]
    assert exported and all(not name.startswith(("_ZN7b2", "_Z2b2", "b2_")) for name in exported), exported


# --- same seed as gymnasium -------------------------------------------------------------------------------------


@needs_pybox2d
@needs_box2d
@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("LunarLander-v3", {}),
        ("LunarLander-v3", {"continuous": True, "gravity": -5.0}),
        ("LunarLander-v3", {"enable_wind": True, "wind_power": 20.0}),
        ("rltrain/DenseLunarLander-v0", {"randomize_angle": True, "randomize_pos": True}),
    ],
    ids=["discrete", "continuous", "wind", "random-spawn"],
)
def test_same_seed_gives_gymnasium_terrain_and_first_observation(env_id: str, kwargs: dict[str, Any]) -> None:
    ref = gym.make(env_id, **kwargs)
    native_kwargs = ref.unwrapped.native_config if env_id.startswith("rltrain/") else kwargs
    nat = _box2d.LunarLander(**native_kwargs)
    for seed in [0, 1, 7, 123, 2**40 + 5, 2**64 - 1]:
        o_nat = nat.reset(seed=seed)
        o_ref, _ = ref.reset(seed=seed)
        assert nat.terrain_y == terrain_of(ref)
        np.testing.assert_array_equal(o_nat, o_ref)  # the same Box2D: bit for bit


# --- the batcher ------------------------------------------------------------------------------------------------

VEC_CASES = [
    ("LunarLander-v3", {}),
    ("LunarLanderContinuous-v3", {}),
    ("LunarLander-v3", {"enable_wind": True}),
    ("rltrain/DenseLunarLander-v0", {"randomize_angle": True, "randomize_pos": True}),
    ("rltrain/SparseLunarLander-v0", {"continuous": True}),
]
VEC_IDS = ["discrete", "continuous", "wind", "dense-spawn", "sparse"]


def _single_config(env_id: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(kwargs)
    cfg.setdefault("continuous", env_id == "LunarLanderContinuous-v3")
    if env_id == "rltrain/SparseLunarLander-v0":
        cfg["sparse"] = True
    return cfg


@needs_box2d
@pytest.mark.parametrize("env_id, kwargs", VEC_CASES, ids=VEC_IDS)
def test_batched_equals_single_envs_with_same_step_autoreset(env_id: str, kwargs: dict[str, Any]) -> None:
    n, steps, seed = 4, 300, 50
    venv = make_vec(env_id, n, seed=seed, num_threads=2, **kwargs)
    singles = [_box2d.LunarLander(**_single_config(env_id, kwargs)) for _ in range(n)]
    continuous = isinstance(venv.single_action_space, gym.spaces.Box)
    obs, _ = venv.reset()
    np.testing.assert_array_equal(obs, [e.reset(seed=seed + i) for i, e in enumerate(singles)])
    returns, lengths, finished = np.zeros(n), np.zeros(n, dtype=np.int64), 0
    for acts in random_actions(np.random.default_rng(0), n, continuous, steps):
        obs, rew, term, trunc, info = venv.step(acts)
        for i, e in enumerate(singles):
            o, r, te, tr = e.step(acts[i] if continuous else int(acts[i]))
            returns[i] += r
            lengths[i] += 1
            assert (rew[i], term[i], trunc[i]) == (r, te, tr)
            if te or tr:
                finished += 1
                assert info["_final_obs"][i] and info["final_obs"][i].tobytes() == o.tobytes()
                assert info["episode"]["r"][i] == returns[i] and info["episode"]["l"][i] == lengths[i]
                returns[i], lengths[i] = 0.0, 0
                o = e.reset()  # the single env's stream continues, as the batcher's autoreset does
            else:
                assert "final_obs" not in info or not info["_final_obs"][i]
            np.testing.assert_array_equal(obs[i], o)
    assert finished >= 2  # random landers crash within ~100 steps
    venv.close()


@needs_box2d
@pytest.mark.parametrize("env_id, kwargs", [VEC_CASES[0], VEC_CASES[3]], ids=["discrete", "dense-spawn"])
def test_results_do_not_depend_on_num_threads(env_id: str, kwargs: dict[str, Any]) -> None:
    runs = []
    for threads in (1, 2):
        with make_vec(env_id, 6, seed=3, num_threads=threads, **kwargs) as venv:
            out = [venv.reset()[0]]
            for acts in random_actions(np.random.default_rng(9), 6, False, 250):
                obs, rew, term, trunc, info = venv.step(acts)
                out += [obs, rew, term, trunc, info.get("_final_obs", np.zeros(6, bool))]
            runs.append(out)
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()


@needs_box2d
def test_identical_seeds_and_per_env_seeds() -> None:
    with make_vec("LunarLander-v3", 3, seed=11, identical_seeds=True) as venv:
        obs, _ = venv.reset()
        assert (obs == obs[0]).all()
        obs, _ = venv.reset(seed=[0, None, 2])
        single = _box2d.LunarLander()
        np.testing.assert_array_equal(obs[0], single.reset(seed=0))
        np.testing.assert_array_equal(obs[2], single.reset(seed=2))


@needs_box2d
def test_max_episode_steps_truncates_every_env() -> None:
    with make_vec("rltrain/SparseLunarLander-v0", 3, seed=0, max_episode_steps=20) as venv:
        venv.reset()
        assert venv.spec is not None and venv.spec.max_episode_steps == 20
        for _ in range(20):
            _, rew, term, trunc, info = venv.step(np.zeros(3, dtype=np.int64))
        assert trunc.all() and not term.any()
        assert (info["episode"]["l"] == 20).all() and (rew == info["episode"]["r"]).all() and (rew != 0).all()


# --- make_vec ids and keyword arguments -------------------------------------------------------------------------


@needs_pybox2d
@needs_box2d
def test_make_vec_ids_spaces_and_config() -> None:
    ref_d = gym.make("LunarLander-v3")
    ref_c = gym.make("LunarLander-v3", continuous=True)
    cases = [
        ("LunarLander-v3", {}, ref_d, "LunarLanderVec", {}),
        ("LunarLander-v3", {"continuous": True}, ref_c, "LunarLanderContinuousVec", {}),
        ("LunarLanderContinuous-v3", {}, ref_c, "LunarLanderContinuousVec", {}),
        ("LunarLander-v3", {"gravity": -3.0, "enable_wind": True}, ref_d, "LunarLanderVec", {"gravity": -3.0}),
        (
            "rltrain/DenseLunarLander-v0",
            {"randomize_angle": True, "continuous": True},
            ref_c,
            "LunarLanderContinuousVec",
            {"randomize_angle": True, "sparse": False},
        ),
        ("rltrain/SparseLunarLander-v0", {"randomize_pos": True}, ref_d, "LunarLanderVec", {"sparse": True}),
    ]
    for env_id, kwargs, ref, cls_name, expect in cases:
        with make_vec(env_id, 2, seed=0, **kwargs) as venv:
            assert type(venv.core).__name__ == cls_name and venv.num_envs == 2
            assert venv.single_observation_space == ref.observation_space
            assert venv.single_action_space == ref.action_space
            assert venv.spec is not None and venv.spec.id == env_id
            assert expect.items() <= venv.core.config.items()
    with make_vec("LunarLander-v3", 2, backend="native") as venv:
        assert venv.core.config["enable_wind"] is False


@needs_box2d
def test_make_vec_rejects_unknown_or_misplaced_kwargs() -> None:
    with pytest.raises(TypeError, match="randomize_angle.*DenseLunarLander"):
        make_vec("LunarLander-v3", 2, randomize_angle=True)
    with pytest.raises(TypeError, match="sparse"):
        make_vec("LunarLander-v3", 2, sparse=True)
    with pytest.raises(TypeError, match="sparse"):
        make_vec("rltrain/DenseLunarLander-v0", 2, sparse=True)  # the id decides
    with pytest.raises(TypeError, match="'g'"):
        make_vec("rltrain/SparseLunarLander-v0", 2, g=1.0)
    with pytest.raises(ValueError, match="gravity"):
        make_vec("LunarLander-v3", 2, gravity=-13.0)
    with pytest.raises(ValueError, match="max_episode_steps"):
        make_vec("LunarLander-v3", 2, max_episode_steps=0)


@needs_pybox2d
@needs_box2d
@pytest.mark.parametrize("cls", ["dense", "sparse"])
def test_gymnasium_instance_native_id_and_config_rebuild_it_natively(cls: str) -> None:
    env_id = f"rltrain/{cls.capitalize()}LunarLander-v0"
    inst = gym.make(env_id, randomize_angle=True, randomize_pos=True, enable_wind=True).unwrapped
    assert isinstance(inst, SparseLunarLander if cls == "sparse" else DenseLunarLander)
    assert inst.native_id == env_id
    with make_vec(inst.native_id, 2, seed=4, **inst.native_config) as venv:
        assert type(venv.core).__name__ == "LunarLanderVec"
        cfg = venv.core.config
        assert {k: cfg[k] for k in inst.native_config if k != "continuous"} == {
            k: v for k, v in inst.native_config.items() if k != "continuous"
        }
        assert cfg["sparse"] is (cls == "sparse")
        obs, _ = venv.reset()
        # Same seed, same random spawn as the gymnasium-side class, bit for bit.
        np.testing.assert_array_equal(obs[0], inst.reset(seed=4)[0])


# --- actions ----------------------------------------------------------------------------------------------------


@needs_box2d
def test_bad_actions_raise_naming_the_env_and_step_nothing() -> None:
    with make_vec("LunarLander-v3", 3, seed=0) as venv, make_vec("LunarLander-v3", 3, seed=0) as twin:
        venv.reset()
        twin.reset()
        for bad, match in [
            (np.array([0, 4, 1]), "env 1|index 1"),
            (np.array([0, 1, -1]), "env 2|index 2"),
            (np.zeros(2, dtype=np.int64), "shape"),
            (np.zeros((3, 1), dtype=np.int64), "shape"),
            (np.zeros(3, dtype=np.float32), "integer"),
        ]:
            with pytest.raises(ValueError, match=match):
                venv.step(bad)
        a = np.array([2, 1, 3])
        np.testing.assert_array_equal(venv.step(a)[0], twin.step(a)[0])  # the failed calls stepped nothing
    with make_vec("LunarLanderContinuous-v3", 2, seed=0) as cont:
        cont.reset()
        with pytest.raises(ValueError, match="env 1|index 1"):
            cont.step(np.array([[0.0, 0.0], [np.nan, 0.0]], dtype=np.float32))
        with pytest.raises(ValueError, match="shape"):
            cont.step(np.zeros((2, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="float"):
            cont.step(np.zeros((2, 2), dtype=np.int64))


@needs_box2d
def test_continuous_actions_are_clipped_to_the_box() -> None:
    wide = np.array([[5.0, -7.0], [np.inf, 0.7], [-3.0, -np.inf], [0.2, 1e30]], dtype=np.float32)
    clipped = np.clip(wide, -1.0, 1.0)
    with make_vec("LunarLanderContinuous-v3", 4, seed=8) as a, make_vec("LunarLanderContinuous-v3", 4, seed=8) as b:
        a.reset()
        b.reset()
        for _ in range(40):
            out_a, out_b = a.step(wide), b.step(clipped)
            for x, y in zip(out_a[:4], out_b[:4]):
                np.testing.assert_array_equal(x, y)
