"""Input contracts of every fuser: checked once, with messages that say what to do."""

from __future__ import annotations

import numpy as np

from rtfuse.errors import InputError


def check_pair(vis: np.ndarray, ir: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (visible, IR) pair and return C-contiguous views (copies only if needed).

    ``vis`` must be uint8 (H, W, 3) BGR and ``ir`` uint8 (H, W), of the same H and W.
    """
    if not isinstance(vis, np.ndarray) or not isinstance(ir, np.ndarray):
        raise InputError("vis and ir must be numpy arrays (uint8 HxWx3 BGR and uint8 HxW)")
    if vis.ndim != 3 or vis.shape[2] != 3:
        raise InputError(f"visible image must be HxWx3 BGR, got shape {vis.shape}{_vis_hint(vis)}")
    if ir.ndim != 2:
        raise InputError(f"IR image must be HxW single-channel, got shape {ir.shape}{_ir_hint(ir)}")
    for name, a in (("visible", vis), ("IR", ir)):
        if a.dtype != np.uint8:
            hint = " (16-bit thermal needs AGC to uint8 first)" if a.dtype == np.uint16 else ""
            raise InputError(f"{name} image must be uint8, got {a.dtype}{hint}")
    if vis.shape[:2] != ir.shape:
        raise InputError(
            f"sizes differ: visible is {vis.shape[1]}x{vis.shape[0]}, IR is {ir.shape[1]}x{ir.shape[0]} "
            "(WxH); align/resize the IR to the visible geometry first"
        )
    if ir.shape[0] < 1 or ir.shape[1] < 1:
        raise InputError(f"empty image of shape {ir.shape}")
    return np.ascontiguousarray(vis), np.ascontiguousarray(ir)


def _channels(a: np.ndarray) -> int | None:
    """1 for HxW or HxWx1, C for HxWxC, None for any other number of dimensions."""
    return 1 if a.ndim == 2 else a.shape[2] if a.ndim == 3 else None


def _vis_hint(vis: np.ndarray) -> str:
    conversion = {1: "GRAY2BGR", 4: "BGRA2BGR"}.get(_channels(vis))
    return f"; convert with cv2.cvtColor(img, cv2.COLOR_{conversion})" if conversion else ""


def _ir_hint(ir: np.ndarray) -> str:
    if _channels(ir) == 1:
        return "; drop the channel axis with img[:, :, 0]"
    conversion = {3: "BGR2GRAY", 4: "BGRA2GRAY"}.get(_channels(ir))
    return f"; convert with cv2.cvtColor(img, cv2.COLOR_{conversion})" if conversion else ""
