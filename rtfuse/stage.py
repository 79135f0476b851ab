"""The fusion stage: one pair of frames through prepare -> AGC -> align -> fuse.

Every way into rtfuse ends here: live cameras and files (the pipeline's worker thread), still
pairs and folders (``rtfuse fuse`` on images), ``rtfuse eval --backend`` and the benchmarks. So a
calibration, an AGC mode or CLAHE means the same thing everywhere.

A stage belongs to one stream of pairs: it keeps that stream's state (the AGC limits smoothed
over time, the IR clean-up's stripe estimate, the last prepared IR frame for a slower IR camera).
Unrelated stills call :meth:`FusionStage.reset` between pairs.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

import numpy as np

from rtfuse.agc import Agc
from rtfuse.align import Aligner, Calibration
from rtfuse.errors import InputError
from rtfuse.fusion.registry import Fuser
from rtfuse.prepare import to_ir_gray, to_vis_bgr

if TYPE_CHECKING:  # imported by whoever makes one: numba loads only when the clean-up is used
    from rtfuse.irclean import IrCleaner
    from rtfuse.temporal import TemporalFilter
    from rtfuse.vissharpen import VisSharpener


class FusionStage:
    """``stage(vis, ir) -> (fused, vis, ir)``: raw frames in, the fused frame and the inputs as fused.

    ``vis``: uint8 or uint16, gray, BGR or BGRA; ``ir``: uint8 or uint16, gray or colour (16-bit
    goes through ``agc``), or None when a live IR is lost (the visible image is passed through).
    Out: fused uint8 (H, W, 3) BGR at the visible geometry, the visible image as uint8 BGR and the
    IR aligned to it as uint8 (H, W).

    ``fuser`` None makes a stage that only prepares pairs (scoring fused images made elsewhere).
    ``calib`` maps IR pixels to visible pixels (None: the identity). Without a calibration, an IR
    of another size is resized to the visible size when ``resize_ir``, else refused with a
    message that says so. ``ir_clean`` (:class:`rtfuse.irclean.IrCleaner`) destripes and denoises
    the IR after AGC and before alignment, where its stripes are still sensor columns and rows.
    ``vis_sharpen`` (:class:`rtfuse.vissharpen.VisSharpener`) sharpens a soft visible image; the
    sharpened image is the visible input as fused (and as returned).
    ``temporal`` (:class:`rtfuse.temporal.TemporalFilter`) steadies the fused luma over a stream's
    frames; :meth:`reset` restarts it, so stills fuse exactly as without it.
    """

    def __init__(
        self,
        fuser: Fuser | None,
        calib: Calibration | None = None,
        agc: Agc | None = None,
        calib_name: str = "calibration",
        resize_ir: bool = True,
        ir_clean: IrCleaner | None = None,
        temporal: TemporalFilter | None = None,
        vis_sharpen: VisSharpener | None = None,
    ) -> None:
        self.fuser, self.calib, self.calib_name, self.resize_ir = fuser, calib, calib_name, resize_ir
        self.agc = agc or Agc()
        self.ir_clean = ir_clean
        self.vis_sharpen = vis_sharpen
        self.temporal = temporal
        self._aligner: Aligner | None = None
        self._ir_cache: tuple[Hashable, np.ndarray] | None = None

    def check(self, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> None:
        """Set up the aligner for these (width, height) sizes now: a calibration made for other
        sizes fails here, before any frame, with :class:`rtfuse.errors.CalibrationError`."""
        self._aligner_for(tuple(ir_size), tuple(vis_size))

    def _aligner_for(self, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> Aligner:
        a = self._aligner
        if a is None or a.ir_size != ir_size or a.vis_size != vis_size:
            if self.calib is None and ir_size != vis_size and not self.resize_ir:
                raise InputError(
                    f"the visible image is {vis_size[0]}x{vis_size[1]} but the IR is "
                    f"{ir_size[0]}x{ir_size[1]} (WxH) and no calibration maps one onto the other; "
                    "give a calibration or let the IR be resized to the visible size"
                )
            a = self._aligner = Aligner(self.calib, ir_size, vis_size, self.calib_name)
        return a

    def prepare(
        self, vis: np.ndarray, ir: np.ndarray | None, ir_key: Hashable | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(visible uint8 BGR, IR uint8 aligned to it, or None). ``ir_key`` identifies the IR frame
        (e.g. its index): the same key again reuses the prepared frame (a slower IR camera)."""
        vis = to_vis_bgr(vis)
        if self.vis_sharpen is not None:
            vis = self.vis_sharpen(vis)
        if ir is None:
            return vis, None
        if ir_key is not None and self._ir_cache is not None and self._ir_cache[0] == ir_key:
            return vis, self._ir_cache[1]
        gray = to_ir_gray(ir, self.agc)
        if self.ir_clean is not None:
            gray = self.ir_clean(gray)
        aligned = self._aligner_for((gray.shape[1], gray.shape[0]), (vis.shape[1], vis.shape[0]))(gray)
        self._ir_cache = (ir_key, aligned) if ir_key is not None else None
        return vis, aligned

    def fuse(self, vis: np.ndarray, ir: np.ndarray | None) -> np.ndarray:
        """The fused frame of a prepared pair; the visible image alone when the IR is lost."""
        if self.temporal is not None and ir is not None and getattr(self.fuser, "takes_temporal", False):
            return self.fuser(vis, ir, temporal=self.temporal)  # the lut kernels filter as they fuse
        fused = self.fuser(vis, ir) if ir is not None else vis.copy()
        return self.temporal(np.ascontiguousarray(fused), vis) if self.temporal is not None else fused

    def __call__(
        self, vis: np.ndarray, ir: np.ndarray | None, ir_key: Hashable | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        vis, aligned = self.prepare(vis, ir, ir_key)
        fused = self.fuse(vis, aligned)
        return fused, vis, aligned if aligned is not None else np.zeros(vis.shape[:2], np.uint8)

    def reset(self) -> None:
        """Forget the stream's state (AGC limits, IR clean-up, temporal filter, cached IR): the next
        pair starts anew."""
        self.agc.reset()
        if self.ir_clean is not None:
            self.ir_clean.reset()
        if self.temporal is not None:
            self.temporal.reset()
        self._ir_cache = None


def as_stage(stage: FusionStage | Fuser, resize_ir: bool = True) -> FusionStage:
    """``stage`` itself, or a bare fuser in a stage of its own (identity alignment, percentile AGC)."""
    return stage if isinstance(stage, FusionStage) else FusionStage(stage, resize_ir=resize_ir)
