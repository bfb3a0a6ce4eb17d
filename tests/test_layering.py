"""The package's layers: importing a module never pulls in a module of a higher layer, nor a heavy library its
layer does without. Each module is imported in a forked child of a fresh interpreter that has imported nothing of
rltrain, only the third-party packages its layer may load (numpy; gymnasium from envs up; torch from models up), so
that those are not imported again for every module, and the child's ``sys.modules`` is inspected.

Layers, bottom to top (a module belongs to the first prefix that matches it; every module must match one):
  core        the compiled extensions and the argument checks
  kernels     the kernels' Python face and their NumPy specification
  envs        environments and the rollout engine (vec/ and envs/)
  models      policies, schedules, configs, logging, the board games (players are policies)
  trainers    algos/, llm/ and distributed/
  tools       command line, robustness runner, plots, benchmarks, integrations
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import rltrain

LAYERS: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = [
    # (layer, module prefixes, third-party packages it must not load)
    ("core", ("rltrain._core", "rltrain._box2d", "rltrain._checks"), ("torch", "gymnasium", "scipy", "matplotlib")),
    ("kernels", ("rltrain.kernels", "rltrain.reference"), ("torch", "gymnasium", "scipy", "matplotlib")),
    ("envs", ("rltrain.vec", "rltrain.envs"), ("torch", "scipy", "matplotlib")),
    (
        "models",
        ("rltrain.policies", "rltrain.policies_backbones", "rltrain.schedules", "rltrain.config", "rltrain.logger",
         "rltrain.games"),
        ("scipy", "matplotlib"),
    ),
    ("trainers", ("rltrain.algos", "rltrain.llm", "rltrain.distributed"), ("scipy", "matplotlib")),
    ("tools", ("rltrain.cli", "rltrain.robustness", "rltrain.plot", "rltrain.bench", "rltrain.integrations",
               "rltrain.pipeline"), ()),
]


def _layer_of(module: str) -> int | None:
    for i, (_, prefixes, _) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def _package_modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(rltrain.__path__, "rltrain.")]
    return sorted(n for n in names if not n.endswith("__main__"))


def test_every_module_has_a_layer() -> None:
    unassigned = [m for m in _package_modules() if _layer_of(m) is None]
    assert unassigned == [], f"modules without a layer in tests/test_layering.py: {unassigned}"


# Runs in a fresh interpreter: imports the preloads, then forks one child per module, which imports it and sends
# back its sorted sys.modules (or the error) through a pipe.
_PROBE = """
import importlib, json, os, sys
preload, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in preload:
    importlib.import_module(name)
early = [m for m in sys.modules if m == "rltrain" or m.startswith("rltrain.")]
assert not early, early
results = {}
for module in modules:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(module)
            payload = {"loaded": sorted(sys.modules)}
        except BaseException as e:
            payload = {"error": repr(e)}
        with os.fdopen(w, "w") as f:
            f.write(json.dumps(payload))
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    results[module] = json.loads(data) if data else {"error": "the child sent nothing"}
print(json.dumps(results))
"""

# Third-party packages each layer may load (none of them is banned there), imported once before the forks.
_PRELOAD = {0: ["numpy"], 1: ["numpy"], 2: ["numpy", "gymnasium"], 3: ["numpy", "torch", "gymnasium"],
            4: ["numpy", "torch", "gymnasium"]}
_CHECKED = [m for m in _package_modules() if (_layer_of(m) or 0) < len(LAYERS) - 1]
_cache: dict[str, dict[str, object]] = {}


def _loaded_by(module: str) -> list[str]:
    if module not in _cache:
        batches: dict[tuple[str, ...], list[str]] = {}
        for m in _CHECKED:
            batches.setdefault(tuple(_PRELOAD.get(_layer_of(m) or 0, [])), []).append(m)
        for preload, modules in batches.items():
            out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(preload)), json.dumps(modules)],
                                 capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, out.stderr
            _cache.update(json.loads(out.stdout.strip().splitlines()[-1]))
    result = _cache[module]
    assert "error" not in result, f"importing {module} failed: {result['error']}"
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    return [str(m) for m in loaded]


@pytest.mark.parametrize("module", _CHECKED)
def test_no_module_of_a_higher_layer(module: str) -> None:
    layer = _layer_of(module)
    assert layer is not None
    loaded = _loaded_by(module)
    higher = [m for m in loaded if m.startswith("rltrain.") and (_layer_of(m) or 0) > layer]
    assert higher == [], f"{module} ({LAYERS[layer][0]}) imports higher layers: {higher}"
    banned = LAYERS[layer][2]
    heavy = sorted({m.split(".")[0] for m in loaded} & set(banned))
    assert heavy == [], f"{module} ({LAYERS[layer][0]}) loads {heavy}"
