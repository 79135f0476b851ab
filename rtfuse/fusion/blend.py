"""Reference fusions for comparison and tests (plain numpy, same colour handling as the LUT)."""

from __future__ import annotations

import numpy as np

from rtfuse.color import luma_u8, replace_luma
from rtfuse.fusion.validate import check_pair


class BlendFuser:
    """Weighted blend of luma: ``Y' = (1 - alpha) Y_vis + alpha IR``, visible chroma kept."""

    def __init__(self, alpha: float = 0.5) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"blend alpha must be within [0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.name = "blend"

    def __call__(self, vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
        vis, ir = check_pair(vis, ir)
        y = luma_u8(vis).astype(np.float32)
        return replace_luma(vis, y, (1.0 - self.alpha) * y + self.alpha * ir.astype(np.float32))

    def __repr__(self) -> str:
        return f"BlendFuser(alpha={self.alpha})"
