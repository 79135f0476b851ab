"""The runtime never imports the training package: training imports the runtime, not the reverse."""

import ast
import importlib.util
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "rtfuse"
# The CLI may reach training only from inside the commands that train or distil.
CLI_TRAINING_FUNCS = ("cmd_train", "cmd_distill", "_train")


def _imported(node: ast.AST, package: str) -> list[str]:
    """Module names an import statement (or ``importlib.import_module("...")``) may load."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: resolve against the importing module's package
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            base = f"{parent}.{base}" if base else parent
        return [base] + [f"{base}.{a.name}" for a in node.names]
    if (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def _training_imports(tree: ast.AST, package: str = "rtfuse") -> list[tuple[int, str | None]]:
    """(line, outermost enclosing function or None) of every import of rtfuse.training in ``tree``."""
    found = []

    def visit(node: ast.AST, func: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, func or child.name)
                continue
            if any(
                n == "rtfuse.training" or n.startswith("rtfuse.training.") for n in _imported(child, package)
            ):
                found.append((child.lineno, func))
            visit(child, func)

    visit(tree, None)
    return found


def test_runtime_modules_do_not_import_training():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("rtfuse/training/"):
            continue
        package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
        for line, func in _training_imports(ast.parse(path.read_text(), rel), package):
            if rel == "rtfuse/cli.py" and func is not None and func.startswith(CLI_TRAINING_FUNCS):
                continue
            where = f"in {func}()" if func else "at module level"
            bad.append(f"{rel}:{line} imports rtfuse.training {where}")
    assert not bad, "runtime code imports the training package:\n" + "\n".join(bad)


def test_scan_sees_imports_at_any_depth():
    src = (
        "import rtfuse.training\nfrom rtfuse import training\n"
        "def f():\n    if True:\n        from rtfuse.training.models import ARCHS\n"
        "def cmd_train_x():\n    def inner():\n        from rtfuse.training import train\n"
        "from ..training import data\nfrom . import training\nimportlib.import_module('rtfuse.training.x')\n"
        "from rtfuse import trainings\n"
    )
    found = _training_imports(ast.parse(src), "rtfuse.fusion")
    assert found == [(1, None), (2, None), (5, "f"), (8, "cmd_train_x"), (9, None), (11, None)]
    assert _training_imports(ast.parse("from . import training\n"), "rtfuse") == [(1, None)]


SCRIPT = """
import sys, tempfile
from pathlib import Path
import cv2
import rtfuse
from rtfuse.cli import main
from rtfuse.synthetic import SyntheticScene

assert main(["run", "--vis", "synthetic:160x120", "--ir", "synthetic:160x120", "--synthetic-frames", "4",
             "--no-display", "--backend", "lut"]) == 0
vis, ir = SyntheticScene(160, 120, seed=3).render(2)
d = Path(tempfile.mkdtemp())
for sub, img in (("vis", vis), ("ir", ir)):
    (d / sub).mkdir()
    cv2.imwrite(str(d / sub / "a.png"), img)
assert main(["eval", "--vis", str(d / "vis"), "--ir", str(d / "ir"), "--backend", "lut"]) == 0
if WITH_TORCH:
    out = rtfuse.load_fuser("student")(vis, ir)
    assert out.shape == vis.shape
loaded = sorted(m for m in sys.modules if m == "rtfuse.training" or m.startswith("rtfuse.training."))
assert not loaded, loaded
print("OK")
"""


def test_lut_pipeline_eval_and_student_load_no_training_module():
    with_torch = importlib.util.find_spec("torch") is not None
    script = f"WITH_TORCH = {with_torch}\n" + SCRIPT
    r = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert r.stdout.strip().endswith("OK")
