"""``load_fuser``: one entry point for every fusion backend."""

from __future__ import annotations

import importlib.util
import os
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from rtfuse.errors import InputError

Fuser = Callable[[np.ndarray, np.ndarray], np.ndarray]

# The shipped tables are package data in rtfuse/weights/, so a wheel or sdist install finds them as well as
# a checkout does. A regular (not zipped) install has them on disk, which LutFuser and torch.load need.
# RTFUSE_WEIGHTS points at another folder with the same file names.
WEIGHTS_DIR = Path(os.environ.get("RTFUSE_WEIGHTS") or str(resources.files("rtfuse") / "weights"))
SHIPPED_LUTS = {  # distilled from the teachers (weights/MODEL_CARD.md); *_untrained.npz: analytic start
    "lut": "lut4d_detail.npz",
    "lut3d": "lut3d.npz",
    "lut4d": "lut4d.npz",
    "lut4d-detail": "lut4d_detail.npz",
}
SHIPPED_NETS = {"student": "student.pt"}  # the teacher is not shipped (12 MB): pass path=
SHIPPED_ONNX = {"student": "student.onnx"}  # the same student for ONNX Runtime (`rtfuse export onnx`)
ENGINES = ("torch", "onnx")  # what runs a network: PyTorch, or ONNX Runtime (CPU, no torch needed)
BACKENDS = (*SHIPPED_LUTS, "blend", "student", "teacher")


def load_fuser(backend: str = "lut", path: str | os.PathLike | None = None, **options) -> Fuser:
    """Return a fuser ``f(vis_bgr, ir) -> fused_bgr`` for ``backend``.

    ``vis_bgr`` is uint8 (H, W, 3) BGR, ``ir`` uint8 (H, W); the result is uint8 (H, W, 3) BGR.
    Backends: ``lut`` (the shipped default LUT), ``lut3d``, ``lut4d``, ``lut4d-detail``, ``blend`` (option
    ``alpha``), ``student`` and ``teacher`` (networks; the teacher also takes ``prompt``, a sentence
    describing the input's degradations, which needs the train extra). A network runs on ONNX Runtime
    (the onnx extra; CPU, no torch needed) or on PyTorch (CUDA when available; option ``device``):
    option ``engine`` (``"onnx"`` or ``"torch"``) forces one, else a ``.onnx`` file runs on ONNX
    Runtime, a ``.pt`` on torch, and the shipped student on ONNX Runtime when it is installed (torch
    when asked for CUDA, or when torch sees a CUDA device). ``path`` loads another ``.npz`` LUT,
    ``.pt`` checkpoint or ``.onnx`` network instead of the shipped one (the teacher is not shipped and
    needs it). The lut backends take option ``device``: ``"cpu"`` (default) or ``"cuda"`` (a Numba CUDA
    kernel; RuntimeError without a CUDA device). Contract violations raise ``ValueError``; the lut
    backends never import torch.
    """
    if backend in SHIPPED_LUTS:
        from rtfuse.fusion.lut import LutFuser

        if set(options) - {"device"}:
            raise InputError(f"backend {backend!r} takes only the option 'device', got {sorted(options)}")
        file = Path(path) if path is not None else WEIGHTS_DIR / SHIPPED_LUTS[backend]
        return LutFuser.from_file(file, name=backend, device=options.get("device", "cpu"))
    if backend == "blend":
        from rtfuse.fusion.blend import BlendFuser

        if path is not None:
            raise InputError("the blend backend takes no weights file")
        return BlendFuser(**options)
    if backend in ("student", "teacher"):
        return _net_fuser(backend, path, options)
    raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def _net_fuser(backend: str, path: str | os.PathLike | None, options: dict) -> Fuser:
    """The student or teacher on the engine that ``path``, ``engine``, ``device`` and the installed
    packages call for (see :func:`load_fuser`)."""
    allowed = {"device", "engine", "prompt"} if backend == "teacher" else {"device", "engine"}
    unknown = set(options) - allowed
    if unknown:
        raise InputError(
            f"backend {backend!r} takes only the options {sorted(allowed)}, got {sorted(unknown)}"
        )
    engine, device = options.pop("engine", None), options.get("device")
    if engine is not None and engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose torch (PyTorch) or onnx (ONNX Runtime)")
    if path is None and backend == "teacher":
        raise InputError(
            "the teacher is not shipped: pass the teacher checkpoint you trained "
            "(e.g. runs/teacher/teacher.pt, from `rtfuse train teacher`) as the weights"
        )
    if path is not None:  # the file decides: an exported network or a torch checkpoint
        wants = "onnx" if Path(path).suffix.lower() == ".onnx" else "torch"
        if engine not in (None, wants):
            raise InputError(
                f"{path} is a .onnx network: it runs on the onnx engine, not on torch"
                if wants == "onnx"
                else f"{path} is a torch checkpoint: for the onnx engine, export it first with "
                f"`rtfuse export onnx --backend {backend}` and pass the .onnx"
            )
        engine = wants
    elif engine is None:
        engine = _default_engine(device)
    if engine == "onnx":
        if device not in (None, "cpu"):
            raise InputError(
                f"the onnx engine runs on the CPU; device {device!r} needs engine='torch' and a .pt"
            )
        from rtfuse.fusion.onnxnet import OnnxFuser  # says what to install when ONNX Runtime is missing

        file = Path(path) if path is not None else WEIGHTS_DIR / SHIPPED_ONNX[backend]
        return OnnxFuser(file, name=backend, prompt=options.get("prompt"))
    try:
        from rtfuse.fusion.net import NetFuser
    except ModuleNotFoundError as e:
        also = " or, on a CPU, 'rtfuse[onnx]'" if path is None else ""
        raise InputError(
            f"the {backend} backend needs PyTorch: pip install 'rtfuse[torch]'{also} ({e})"
        ) from None
    file = Path(path) if path is not None else WEIGHTS_DIR / SHIPPED_NETS[backend]
    return NetFuser(file, name=backend, **options)


def _default_engine(device: str | None) -> str:
    """The shipped student's engine: ONNX Runtime (faster on a CPU) when installed and its file is
    there, unless a CUDA device is asked for or torch sees one (checked only where an NVIDIA driver
    is loaded, so the ONNX path does not import torch for nothing)."""
    if device not in (None, "cpu"):
        return "torch"
    if (
        importlib.util.find_spec("onnxruntime") is None
        or not (WEIGHTS_DIR / SHIPPED_ONNX["student"]).is_file()
    ):
        return "torch"
    if device is None and Path("/proc/driver/nvidia").exists() and importlib.util.find_spec("torch"):
        import torch

        if torch.cuda.is_available():
            return "torch"
    return "onnx"
