"""Frames for calibration: a still image, or several simultaneous frames of two videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtfuse.errors import InputError
from rtfuse.images import IMAGE_EXTS, read_ir, read_vis
from rtfuse.prepare import to_ir_gray, to_vis_bgr
from rtfuse.sources.base import DEFAULT_FPS
from rtfuse.sources.video import VideoFileSource
from rtfuse.sync import pair_nearest


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTS


def read_frame_pairs(
    ir: str | Path, vis: str | Path, count: int = 8
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(IR uint8 (h, w) frames, visible uint8 (H, W, 3) BGR frames), simultaneous pairs.

    Two images give one pair. Two videos are paired by timestamp (nearest IR frame per visible
    frame) and ``count`` pairs spread evenly over the overlap are returned.
    """
    if is_image(ir) != is_image(vis):
        raise InputError("give two images or two videos (--ir and --vis of the same kind)")
    if is_image(ir):
        return [read_ir(ir)], [read_vis(vis)]
    if count < 1:
        raise InputError(f"--frames must be >= 1, got {count}")
    # A calibration needs a few frames spread over the clip: one cut short is still usable.
    with (
        VideoFileSource(ir, "IR", allow_truncated=True) as si,
        VideoFileSource(vis, "visible", allow_truncated=True) as sv,
    ):
        period = 1.0 / (sv.fps or DEFAULT_FPS)
        kept: list[tuple] = []
        stride, n = 1, 0
        # keep every stride-th pair, doubling the stride when the list gets long: bounded memory
        # for any video length, and an even spread at the end
        for fv, fi in pair_nearest(sv.frames(), si.frames(), tolerance=0.5 * period):
            if n % stride == 0:
                kept.append((fi.image, fv.image))
                if len(kept) >= 4 * count:
                    kept, stride = kept[::2], stride * 2
            n += 1
    if not kept:
        raise InputError(f"{ir} and {vis} have no frames at common times")
    idx = np.unique(np.linspace(0, len(kept) - 1, min(count, len(kept))).round().astype(int))
    return [to_ir_gray(kept[i][0]) for i in idx], [to_vis_bgr(kept[i][1]) for i in idx]
