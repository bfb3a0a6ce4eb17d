"""The package's layers: importing a module never pulls in a module of a higher layer, nor a heavy library its
layer does without. Each module is imported in a fresh interpreter and its ``sys.modules`` inspected.

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


def _loaded_by(module: str) -> list[str]:
    code = f"import importlib, json, sys\nimportlib.import_module({module!r})\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", [m for m in _package_modules() if (_layer_of(m) or 0) < len(LAYERS) - 1])
def test_no_module_of_a_higher_layer(module: str) -> None:
    layer = _layer_of(module)
    assert layer is not None
    loaded = _loaded_by(module)
    higher = [m for m in loaded if m.startswith("rltrain.") and (_layer_of(m) or 0) > layer]
    assert higher == [], f"{module} ({LAYERS[layer][0]}) imports higher layers: {higher}"
    banned = LAYERS[layer][2]
    heavy = sorted({m.split(".")[0] for m in loaded} & set(banned))
    assert heavy == [], f"{module} ({LAYERS[layer][0]}) loads {heavy}"
