"""The ``lut`` backend: context net + baked LUT, all in Numba, no torch."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from rtfuse.fusion import kernels
from rtfuse.fusion.bake import bake, ir_grid, pair_view
from rtfuse.fusion.lutfile import LutModel, load_lut
from rtfuse.fusion.validate import check_pair
from rtfuse.temporal import TemporalFilter

# Numba's fallback "workqueue" threading layer aborts on concurrent parallel launches, and each
# launch already uses every core, so kernel calls from several Python threads take turns.
_LAUNCH = threading.Lock()


def context_map(vis: np.ndarray, ir: np.ndarray, model: LutModel) -> np.ndarray:
    """Context in [0, 1], float32 (ceil(H/stride), ceil(W/stride)), from the model's tiny net.

    ``vis`` uint8 (H, W, 3) BGR and ``ir`` uint8 (H, W), already validated and contiguous.
    """
    x = kernels.context_stats(vis, ir, model.ctx_stride)
    last = len(model.ctx_layers) - 1
    for i, (w, b) in enumerate(model.ctx_layers):
        x = kernels.conv2d_replicate(x, w, b, 2 if i == last else 1)
    return x[0, 1:-1, 1:-1]


class LutFuser:
    """Fuse with a LUT of any kind (:data:`rtfuse.fusion.lutfile.KINDS`): ``fuser(vis_bgr, ir) -> fused_bgr``.

    Inputs: ``vis`` uint8 (H, W, 3) BGR, ``ir`` uint8 (H, W). Output: uint8 (H, W, 3) BGR with
    the visible chroma and the LUT's fused luma. Safe to call from several threads. ``device``:
    ``"cpu"`` (Numba kernels) or ``"cuda"`` (:mod:`rtfuse.fusion.kernels_cuda`, the same table and
    rules; the context net stays on the CPU); ``"cuda"`` without a CUDA device raises RuntimeError.
    """

    takes_temporal = True  # __call__ runs a stream's temporal filter itself (rtfuse.stage)

    def __init__(self, model: LutModel, name: str = "lut", device: str = "cpu") -> None:
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        self.model = model
        self.name = name
        self.device = device
        self.table = bake(model)
        self.pairs = pair_view(self.table)
        self.ir_grid = ir_grid(model)
        if model.kind != "3d":
            second = model.axes[1]  # vis_grad or max_detail
            lo, hi = model.axis_range(second)
            self.axis = ((model.table.shape[1] - 1) / (hi - lo), lo, second == "max_detail")
        self._cuda = None
        if device == "cuda":
            from rtfuse.fusion.kernels_cuda import CudaLutKernel

            self._cuda = CudaLutKernel(self.table, self.ir_grid, None if model.kind == "3d" else self.axis)

    @classmethod
    def from_file(cls, path: str | Path, name: str = "lut", device: str = "cpu") -> "LutFuser":
        return cls(load_lut(path), name=name, device=device)

    def compiled(self) -> bool | None:
        """Whether Numba's on-disk cache already holds machine code of this fuser's kernels for this
        version of them and this CPU: if not, the first call compiles them (10-30 s, once after
        installing or upgrading rtfuse, or on another CPU). None when it cannot tell (the CUDA
        device, or a Numba whose cache is laid out otherwise: its private API is read here)."""
        if self._cuda is not None:
            return None
        fuse = kernels.fuse_lut3d if self.model.kind == "3d" else kernels.fuse_lut4d
        try:
            cpu = fuse.targetctx.codegen().magic_tuple()  # the target part of each cache entry's key
            return all(
                any(key[1] == cpu for key in k._cache._cache_file._load_index())
                for k in (fuse, kernels.context_stats)
            )
        except Exception:  # Numba's private cache API moved: say nothing rather than fail a run
            return None

    def context(self, vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        vis, ir = check_pair(vis, ir)
        with _LAUNCH:
            return context_map(vis, ir, self.model)

    def __call__(
        self,
        vis: np.ndarray,
        ir: np.ndarray,
        out: np.ndarray | None = None,
        temporal: TemporalFilter | None = None,
    ) -> np.ndarray:
        """``temporal``: the stream's filter (:mod:`rtfuse.temporal`), run inside the kernel on the CPU
        (a separate pass after the CUDA kernel)."""
        vis, ir = check_pair(vis, ir)
        if out is None:
            out = np.empty_like(vis)
        elif out.shape != vis.shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint8 array of shape {vis.shape}")
        state, mode = (
            (kernels.NO_STATE, 0) if temporal is None or self._cuda is not None else temporal.begin(vis)
        )
        steady = temporal.params if temporal is not None else kernels.NO_STEADY
        with _LAUNCH:
            ctx = context_map(vis, ir, self.model)
            if self._cuda is not None:
                self._cuda(vis, ir, ctx, out)
            elif self.model.kind == "3d":
                kernels.fuse_lut3d(
                    vis, ir, ctx, self.table, self.pairs, *self.ir_grid, out, state, mode, steady
                )
            else:
                kernels.fuse_lut4d(
                    vis, ir, ctx, self.table, self.pairs, *self.ir_grid, *self.axis, out, state, mode, steady
                )
        if temporal is not None and self._cuda is not None:
            temporal(out, vis)
        return out

    def __repr__(self) -> str:
        state = "UNTRAINED" if self.model.untrained else "trained"
        return f"LutFuser({self.model.kind}, table {self.model.table.shape}, {state}, {self.device})"
