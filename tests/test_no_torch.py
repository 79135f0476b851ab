"""`import rtfuse` and the lut backend work where torch cannot be imported."""

import subprocess
import sys

from conftest import REPO

BLOCK_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError("No module named 'torch' (blocked by test)")
sys.meta_path.insert(0, _NoTorch())
for k in [k for k in sys.modules if k == "torch" or k.startswith("torch.")]:
    del sys.modules[k]
"""

SCRIPT = (
    BLOCK_TORCH
    + """
try:
    import torch
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("torch block failed")
import numpy as np
import rtfuse
from rtfuse.synthetic import SyntheticScene
vis, ir = SyntheticScene(160, 120, seed=3).render(5)
for name in ("lut", "lut3d", "lut4d", "lut4d-detail", "blend"):
    out = rtfuse.load_fuser(name)(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8
from rtfuse.cli import main
assert main(["lut", "info", "rtfuse/weights/lut3d_untrained.npz"]) == 0
import os, tempfile, cv2
from pathlib import Path
d = Path(tempfile.mkdtemp())
for sub, img in (("v", vis), ("i", ir)):
    os.makedirs(d / sub)
    cv2.imwrite(str(d / sub / "a.png"), img)
from rtfuse.evaluate import evaluate_folder
assert evaluate_folder(d / "v", d / "i", fuser=rtfuse.load_fuser("lut"))["mean"]["Qabf"] > 0
from rtfuse.errors import InputError
import importlib.util
try:
    student = rtfuse.load_fuser("student")
except InputError as e:  # one line that says what to install, not a bare ModuleNotFoundError
    assert "rtfuse[torch]" in str(e) and "rtfuse[onnx]" in str(e), e
else:  # with the onnx extra the student runs on ONNX Runtime (tests/test_onnx.py)
    if importlib.util.find_spec("onnxruntime") is None or student.engine != "onnx":
        raise SystemExit("the student backend loaded without torch or ONNX Runtime")
assert "torch" not in sys.modules
print("OK")
"""
)


def test_lut_backend_without_torch():
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT], check=False, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("OK")


def test_twin_import_without_torch_says_what_to_install():
    script = (
        BLOCK_TORCH
        + """
try:
    import rtfuse.fusion.twin
except ModuleNotFoundError as e:
    print("refused:", e)
"""
    )
    r = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "refused" in r.stdout and "rtfuse[torch]" in r.stdout
