"""The networks on ONNX Runtime: `rtfuse export onnx`, the shipped student.onnx, and the engine choice."""

import fnmatch
import importlib.util
import subprocess
import sys

import numpy as np
import pytest

import rtfuse
from conftest import REPO, random_pair, real_pairs
from rtfuse.errors import InputError
from rtfuse.fusion.registry import SHIPPED_NETS, SHIPPED_ONNX, WEIGHTS_DIR

ort = pytest.importorskip("onnxruntime")

REAL = ("video_frames/0111_1716", "roadscene", "tno")  # a few real pairs of each, at their own sizes


def _diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b).max())


def _real(n: int = 2):
    return [(vis, ir) for name in REAL for _, vis, ir in real_pairs(name, n)]


# --- the shipped student ----------------------------------------------------------------------------


def test_shipped_student_onnx_matches_student_pt_on_real_frames():
    pytest.importorskip("torch")
    onnx_fuser = rtfuse.load_fuser("student", engine="onnx")
    torch_fuser = rtfuse.load_fuser("student", engine="torch", device="cpu")
    for vis, ir in _real():
        assert _diff(onnx_fuser(vis, ir), torch_fuser(vis, ir)) <= 1, vis.shape


def test_shipped_student_onnx_is_small_package_data():
    path = WEIGHTS_DIR / SHIPPED_ONNX["student"]
    assert path.is_file() and path.stat().st_size < 1_000_000
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch(f"weights/{path.name}", p) for p in patterns["rtfuse"])


@pytest.mark.parametrize("h,w", [(1, 1), (7, 9), (61, 83), (480, 640)])
def test_any_size_and_the_output_contract(rng, h, w):
    fuser = rtfuse.load_fuser("student", engine="onnx")
    vis, ir = random_pair(rng, h, w)
    v0, i0 = vis.copy(), ir.copy()
    out = fuser(vis, ir)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert np.array_equal(vis, v0) and np.array_equal(ir, i0)
    with pytest.raises(ValueError, match="sizes differ"):
        fuser(vis, ir[:, :-1] if w > 1 else ir[:-1])


def test_fast_colour_rule_is_replace_luma(rng):
    from rtfuse.color import replace_luma

    vis, _ = random_pair(rng, 67, 91)
    y, fused = (rng.random((67, 91), dtype=np.float32) for _ in range(2))
    # the saturating OpenCV add gives the integers of int16 arithmetic on every channel
    d = np.rint((fused - y) * np.float32(255.0)).astype(np.int16)
    want = np.clip(vis.astype(np.int16) + d[..., None], 0, 255).astype(np.uint8)
    assert np.array_equal(replace_luma(vis, y, fused, 255.0), want)
    assert np.array_equal(replace_luma(vis, 255 * y, 255 * fused), replace_luma(vis, y, fused, 255.0))


# --- which engine ------------------------------------------------------------------------------------


def test_student_backend_picks_onnx_runtime_when_installed(tmp_path):
    assert rtfuse.load_fuser("student").engine == "onnx"
    assert rtfuse.load_fuser("student", device="cpu").engine == "onnx"
    assert rtfuse.load_fuser("student", path=WEIGHTS_DIR / SHIPPED_ONNX["student"]).engine == "onnx"
    if importlib.util.find_spec("torch"):
        assert rtfuse.load_fuser("student", engine="torch").engine == "torch"
        assert rtfuse.load_fuser("student", path=WEIGHTS_DIR / SHIPPED_NETS["student"]).engine == "torch"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"engine": "tensorrt"}, "unknown engine 'tensorrt'; choose torch (PyTorch) or onnx"),
        ({"engine": "onnx", "device": "cuda"}, "the onnx engine runs on the CPU"),
        ({"engine": "torch", "path": WEIGHTS_DIR / "student.onnx"}, "runs on the onnx engine, not on torch"),
        ({"engine": "onnx", "path": WEIGHTS_DIR / "student.pt"}, "rtfuse export onnx --backend student"),
        ({"threads": 2}, "takes only the options"),
    ],
)
def test_engine_misuse_is_one_line(kwargs, match):
    with pytest.raises(InputError) as info:
        rtfuse.load_fuser("student", **kwargs)
    assert match in str(info.value) and "\n" not in str(info.value)


def test_student_runs_on_onnx_runtime_with_torch_blocked():
    from test_no_torch import BLOCK_TORCH

    script = (
        BLOCK_TORCH
        + """
import numpy as np
import rtfuse
from rtfuse.synthetic import SyntheticScene
vis, ir = SyntheticScene(96, 64, seed=3).render(2)
fuser = rtfuse.load_fuser("student")
out = fuser(vis, ir)
assert fuser.engine == "onnx" and out.shape == vis.shape and out.dtype == np.uint8
assert "torch" not in sys.modules, "the onnx engine imported torch"
print("OK")
"""
    )
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("OK")


def test_missing_onnx_runtime_says_what_to_install():
    script = """
import importlib.abc, sys
class _NoOrt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError("No module named 'onnxruntime' (blocked by test)")
sys.meta_path.insert(0, _NoOrt())
import importlib.util
importlib.util.find_spec = lambda name, *a: None if name.startswith("onnxruntime") else _spec(name, *a)
import rtfuse
from rtfuse.errors import InputError
try:
    rtfuse.load_fuser("student", engine="onnx")
except InputError as e:
    print(e)
"""
    script = "import importlib.util\n_spec = importlib.util.find_spec\n" + script
    r = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "needs ONNX Runtime: pip install 'rtfuse[onnx]'" in r.stdout, r.stdout + r.stderr[-2000:]


# --- bad files ------------------------------------------------------------------------------------


@pytest.fixture
def bad_onnx(tmp_path):
    (tmp_path / "text.onnx").write_text("not a network\n")
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "folder.onnx").mkdir()
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "other.onnx")
    return tmp_path


@pytest.mark.parametrize(
    "name,match",
    [
        ("text.onnx", "not a readable ONNX network ("),
        ("empty.onnx", "not a readable ONNX network ("),
        ("missing.onnx", "does not exist"),
        ("folder.onnx", "is not a file"),
        ("other.onnx", "not an rtfuse fusion network (inputs ['x']"),
    ],
)
def test_bad_onnx_file_is_one_line(bad_onnx, name, match):
    with pytest.raises(InputError) as info:
        rtfuse.load_fuser("student", path=bad_onnx / name)
    msg = str(info.value)
    assert match in msg and str(bad_onnx / name) in msg and "\n" not in msg
    assert "rtfuse export onnx" in msg


def test_cli_fuse_with_a_bad_onnx_file(bad_onnx, rng):
    import cv2

    from conftest import run_cli

    vis, ir = random_pair(rng, 32, 48)
    cv2.imwrite(str(bad_onnx / "v.png"), vis)
    cv2.imwrite(str(bad_onnx / "i.png"), ir)
    code, text = run_cli(
        "fuse", "--vis", bad_onnx / "v.png", "--ir", bad_onnx / "i.png", "-o", bad_onnx / "o.png",
        "--backend", "student", "--weights", bad_onnx / "text.onnx",
    )  # fmt: skip
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert code == 1 and len(lines) == 1 and "not a readable ONNX network" in lines[0], text
    assert "Traceback" not in text


# --- export -------------------------------------------------------------------------------------------


def test_export_refusals_are_one_line(tmp_path, monkeypatch):
    from rtfuse.cli import main
    from rtfuse.fusion import onnxnet

    assert main(["export", "onnx", "-o", str(tmp_path / "x.pt")]) == 1
    assert main(["export", "onnx", "--backend", "teacher", "-o", str(tmp_path / "t.onnx")]) == 1
    monkeypatch.setattr(onnxnet, "_missing_export_packages", lambda: ["onnxscript"])
    with pytest.raises(InputError, match=r"exporting needs onnxscript: pip install 'rtfuse\[export\]'"):
        onnxnet.export_onnx(WEIGHTS_DIR / "student.pt", tmp_path / "s.onnx")
    with pytest.raises(SystemExit):
        main(["export", "onnx", "--backend", "lut", "-o", str(tmp_path / "l.onnx")])


def test_the_student_takes_no_prompt():
    from rtfuse.fusion.onnxnet import OnnxFuser

    with pytest.raises(InputError, match="a student-restore takes no prompt"):
        OnnxFuser(WEIGHTS_DIR / "student.onnx", prompt="the visible image is dark")


@pytest.fixture(scope="module")
def exporter():
    for m in ("torch", "onnx", "onnxscript"):
        pytest.importorskip(m)


@pytest.mark.slow
def test_export_student_round_trip_reproduces_the_shipped_file(tmp_path, exporter):
    from rtfuse.cli import main

    out = tmp_path / "student.onnx"
    assert main(["export", "onnx", "-o", str(out)]) == 0
    fresh = rtfuse.load_fuser("student", path=out)
    shipped = rtfuse.load_fuser("student", engine="onnx")
    torch_fuser = rtfuse.load_fuser("student", engine="torch", device="cpu")
    for vis, ir in _real(1):
        a = fresh(vis, ir)
        assert np.array_equal(a, shipped(vis, ir))  # the shipped file is this command's output
        assert _diff(a, torch_fuser(vis, ir)) <= 1
    assert main(["export", "onnx", "--backend", "teacher", "--weights", str(WEIGHTS_DIR / "student.pt"),
                 "-o", str(tmp_path / "t.onnx")]) == 1  # fmt: skip


@pytest.mark.slow
def test_export_teacher_round_trip_with_and_without_text(tmp_path, exporter):
    import torch

    from rtfuse.cli import main
    from rtfuse.fusion.checkpoint import load_model
    from rtfuse.fusion.nets import teacher

    torch.manual_seed(0)
    net = teacher()
    with torch.no_grad():  # the text path starts as the identity: make it matter
        for film in net.film:
            torch.nn.init.normal_(film.mlp[-1].weight, std=0.05)
            torch.nn.init.normal_(film.mlp[-1].bias, std=0.05)
        torch.nn.init.normal_(net.head.weight, std=0.02)
        net.clean_text.copy_(torch.randn(384) * 0.1)
    torch.save({"arch": "teacher", "model": net.state_dict()}, tmp_path / "teacher.pt")
    out = tmp_path / "teacher.onnx"
    assert main(["export", "onnx", "--backend", "teacher", "--weights", str(tmp_path / "teacher.pt"),
                 "-o", str(out)]) == 0  # fmt: skip
    onnx_fuser = rtfuse.load_fuser("teacher", path=out)
    torch_fuser = rtfuse.load_fuser("teacher", path=tmp_path / "teacher.pt", device="cpu")
    assert onnx_fuser.engine == "onnx" and onnx_fuser.arch == "teacher"
    for vis, ir in _real(1):
        assert _diff(onnx_fuser(vis, ir), torch_fuser(vis, ir)) <= 1, vis.shape
    # The text input: one embedding per image, or one for the batch; absent, the stored "clean" one.
    ref, _ = load_model(tmp_path / "teacher.pt")
    gen = np.random.default_rng(0)
    y, i = (gen.random((2, 1, 45, 70), dtype=np.float32) for _ in range(2))
    text = gen.standard_normal((2, 384)).astype(np.float32)
    with torch.inference_mode():
        for t in (None, text, text[:1]):
            want = ref(torch.from_numpy(y), torch.from_numpy(i), None if t is None else torch.from_numpy(t))[
                0
            ]
            onnx_fuser.feeds = {} if t is None else {"text": t}
            got = onnx_fuser.fuse_luma(y, i)
            assert np.abs(got - want.numpy()).max() * 255 < 0.5
