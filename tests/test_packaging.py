"""The shipped tables are package data: found inside ``rtfuse`` from any folder, and carried by the wheel.

A checkout hides a missing package-data entry (the files sit next to the code either way), so the wheel
itself is built and listed here; ``.ci/wheel_check.sh`` goes further and installs it in a fresh venv.
"""

import fnmatch
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import pytest

import rtfuse
from conftest import REPO
from rtfuse.fusion.registry import SHIPPED_LUTS, SHIPPED_NETS

UNTRAINED = ("lut3d_untrained.npz", "lut4d_untrained.npz")
SHIPPED = sorted({*SHIPPED_LUTS.values(), *SHIPPED_NETS.values(), *UNTRAINED})


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RTFUSE_WEIGHTS", "PYTHONPATH")}
    return {**env, **extra}


def test_shipped_files_are_resources_of_the_package():
    folder = resources.files("rtfuse") / "weights"
    for name in SHIPPED:
        assert (folder / name).is_file(), f"{name} is not package data of rtfuse"


def test_backends_load_from_another_working_directory(tmp_path):
    script = """
import sys
from pathlib import Path
import numpy as np
import rtfuse
from rtfuse.cli import main
from rtfuse.fusion.registry import SHIPPED_LUTS, WEIGHTS_DIR
assert WEIGHTS_DIR == Path(rtfuse.__file__).parent / "weights", WEIGHTS_DIR
vis, ir = np.full((24, 32, 3), 90, np.uint8), np.full((24, 32), 200, np.uint8)
for name in (*SHIPPED_LUTS, "blend"):
    out = rtfuse.load_fuser(name)(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8, name
assert main(["lut", "info", str(WEIGHTS_DIR / "lut3d_untrained.npz")]) == 0
print("OK")
"""
    r = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("OK")


def test_environment_override_still_wins(tmp_path):
    # An untrained table under a shipped name tells which folder was read.
    shutil.copy(resources.files("rtfuse") / "weights" / "lut3d_untrained.npz", tmp_path / "lut3d.npz")
    script = "import rtfuse; assert rtfuse.load_fuser('lut3d').model.untrained; print('OK')"
    r = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=_env(RTFUSE_WEIGHTS=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr


def test_pyproject_package_data_covers_the_shipped_files():
    tomllib = pytest.importorskip("tomllib")
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["rtfuse"]
    for name in SHIPPED:
        assert any(fnmatch.fnmatch(f"weights/{name}", g) for g in globs), f"no package-data entry for {name}"


def test_wheel_carries_the_weights(tmp_path):
    pytest.importorskip("setuptools.build_meta")  # built in a subprocess: setuptools writes to its cwd
    # A copy of what the wheel is built from, so the checkout gets no build/ or egg-info.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    pkg = Path(rtfuse.__file__).parent
    shutil.copytree(pkg, src / "rtfuse", ignore=shutil.ignore_patterns("__pycache__"))
    build = "import setuptools.build_meta as b; print(b.build_wheel('dist'))"
    r = subprocess.run(
        [sys.executable, "-c", build], cwd=src, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = src / "dist" / r.stdout.strip().splitlines()[-1]
    members = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in SHIPPED if f"rtfuse/weights/{name}" not in members]
    assert not missing, f"the wheel lacks {missing}"
