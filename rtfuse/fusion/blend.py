"""Reference fusions for comparison and tests (plain numpy, same colour handling as the LUT)."""

from __future__ import annotations

import cv2
import numpy as np

from rtfuse.fusion.validate import check_pair


def replace_luma(vis: np.ndarray, luma: np.ndarray, new_luma: np.ndarray) -> np.ndarray:
    """BGR uint8 with luma ``luma`` replaced by ``new_luma`` (float), keeping the visible chroma.

    In BT.601 each of B, G, R is Y plus a chroma term, so this is clip(vis + round(Y' - Y)).
    """
    d = np.rint(new_luma - luma).astype(np.int16)
    return np.clip(vis.astype(np.int16) + d[..., None], 0, 255).astype(np.uint8)


class BlendFuser:
    """Weighted blend of luma: ``Y' = (1 - alpha) Y_vis + alpha IR``, visible chroma kept."""

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"blend alpha must be within [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.name = "blend"

    def __call__(self, vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        vis, ir = check_pair(vis, ir)
        y = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY).astype(np.float32)
        return replace_luma(vis, y, (1.0 - self.alpha) * y + self.alpha * ir.astype(np.float32))

    def __repr__(self) -> str:
        return f"BlendFuser(alpha={self.alpha})"
