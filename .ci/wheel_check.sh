#!/usr/bin/env bash
# Wheel check: build an sdist and a wheel from it, install the wheel with the torch and onnx extras into a
# fresh virtual environment outside the checkout, and run the demo and every shipped backend (the student on
# both engines) from a folder where the repository is not importable. Catches what an editable install hides (missing package data).
# Env: PYTHON (interpreter for the fresh venv, default python3); WHEEL_CHECK_TORCH (the torch build to
# accept, default the pinned CPU one, so the check never pulls a multi-GB CUDA torch); KEEP=1 keeps the
# temporary folder.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
BUILD_PY="$repo/.venv/bin/python"  # has setuptools (`make test` sets it up); else the plain interpreter
[ -x "$BUILD_PY" ] || BUILD_PY="$PYTHON"
TORCH_PIN="${WHEEL_CHECK_TORCH:-torch==2.13.0+cpu}"
start=$SECONDS

tmp="$(mktemp -d "${TMPDIR:-/tmp}/rtfuse-wheel-check.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then echo "wheel check: keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
fail() { echo "wheel check FAILED: $*" >&2; exit 1; }

# 1. Build from a copy of the tracked and new (not ignored) files: a stale build/ or egg-info in the
#    checkout cannot leak into the wheel, and the checkout is left untouched.
mkdir "$tmp/src" "$tmp/dist" "$tmp/run"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf -) | tar -C "$tmp/src" -xf -
else
    tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' -cf - . \
        | tar -C "$tmp/src" -xf -
fi
(cd "$tmp/src" && "$BUILD_PY" -c "import sys, setuptools.build_meta as b; b.build_sdist(sys.argv[1])" \
    "$tmp/dist" >"$tmp/build.log" 2>&1) || { cat "$tmp/build.log" >&2; fail "sdist build"; }
sdist="$(ls "$tmp"/dist/rtfuse-*.tar.gz)"
"$BUILD_PY" -m pip wheel -q --no-deps -w "$tmp/dist" "$sdist" >>"$tmp/build.log" 2>&1 \
    || { cat "$tmp/build.log" >&2; fail "wheel build from the sdist"; }
whl="$(ls "$tmp"/dist/rtfuse-*.whl)"

# 2. A fresh venv; the torch extra may only resolve to the pinned CPU build.
"$PYTHON" -m venv "$tmp/venv"
echo "$TORCH_PIN" >"$tmp/constraints.txt"
"$tmp/venv/bin/pip" install -q -c "$tmp/constraints.txt" "rtfuse[torch,onnx] @ file://$whl" \
    >"$tmp/install.log" 2>&1 \
    || { cat "$tmp/install.log" >&2
         fail "installing the wheel with the torch and onnx extras (is $TORCH_PIN available? get it with" \
              "pip download torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu)"; }

# 3. Run from an empty folder so only the installed package can be imported.
cd "$tmp/run"
unset RTFUSE_WEIGHTS PYTHONPATH
"$tmp/venv/bin/rtfuse" demo --no-display --frames 30 -o demo.mp4 >demo.log 2>&1 \
    || { cat demo.log >&2; fail "rtfuse demo"; }
backends="$("$tmp/venv/bin/python" - "$tmp/venv" "$whl" <<'EOF'
import sys
import zipfile
from pathlib import Path

import av
import numpy as np

import rtfuse
from rtfuse.fusion.registry import SHIPPED_LUTS, SHIPPED_NETS, SHIPPED_ONNX, WEIGHTS_DIR
from rtfuse.synthetic import SyntheticScene

venv, whl = Path(sys.argv[1]).resolve(), sys.argv[2]
assert Path(rtfuse.__file__).resolve().is_relative_to(venv), f"imported {rtfuse.__file__}, not the wheel"
assert WEIGHTS_DIR.resolve().is_relative_to(venv), WEIGHTS_DIR
members = set(zipfile.ZipFile(whl).namelist())
shipped = {*SHIPPED_LUTS.values(), *SHIPPED_NETS.values(), *SHIPPED_ONNX.values()}
for name in {*shipped, "lut3d_untrained.npz", "lut4d_untrained.npz"}:
    assert f"rtfuse/weights/{name}" in members, f"{name} is not in the wheel"

with av.open("demo.mp4") as c:
    n = sum(1 for _ in c.decode(video=0))
assert n == 30, f"demo.mp4 has {n} frames, expected 30"

vis, ir = SyntheticScene(96, 64, seed=1).render(2)
backends = [*SHIPPED_LUTS, "blend", *SHIPPED_NETS]
for name in backends:
    out = rtfuse.load_fuser(name, **({"engine": "torch", "device": "cpu"} if name in SHIPPED_NETS else {}))(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8, (name, out.shape, out.dtype)
for name in SHIPPED_ONNX:  # the default engine with the onnx extra: ONNX Runtime, within 1 level of torch
    fuser = rtfuse.load_fuser(name)
    assert fuser.engine == "onnx", fuser
    diff = np.abs(fuser(vis, ir).astype(int) - rtfuse.load_fuser(name, engine="torch", device="cpu")(vis, ir))
    assert diff.max() <= 1, (name, diff.max())
    backends.append(f"{name} (onnx)")
print(",".join(backends))
EOF
)" || fail "the installed package"
echo "wheel check OK: $(basename "$whl") in a fresh venv: demo wrote 30 frames; $backends fused;" \
     "$((SECONDS - start)) s"
