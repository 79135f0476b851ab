"""Sharpening a soft visible image before fusion (``--vis-sharpen``): a noise-aware unsharp mask.

A defocused or cheap visible lens, or a night exposure, loses the fine edges that every fusion
backend would otherwise carry into the fused frame, and no backend restores them on its own
(weights/MODEL_CARD.md, "Degraded inputs", fifth round). This stage gives them back on the luma:

    d = Y - G_sigma * Y;   Y' = Y + amount * sign(d) * max(|d| - t, 0);   t = CORE * noise(Y)

``noise(Y)`` is the standard deviation of the frame's sensor noise, estimated from its finest scale
as the IR clean-up estimates it (:func:`rtfuse.irclean.estimate_noise`), so a noisy frame is not
sharpened where its detail is no larger than its noise. The change is added to B, G and R alike (the chroma stays), as the fusion does.
It is stateless, the same for stills, videos and cameras, and opt-in: sharpening a frame that is
already sharp only adds halos. ``docs/vis-sharpen.md`` has the measurements.
"""

from __future__ import annotations

import cv2
import numpy as np

from rtfuse.color import luma_u8, replace_luma

CORE = 2.0  # noise standard deviations of detail that are left alone
SIGMA = 2.0  # pixels: the default blur radius undone (--vis-sharpen-sigma)
MAX_AMOUNT, MAX_SIGMA = 10.0, 20.0  # beyond these a frame is destroyed, or the blur takes seconds


def sharpen_visible(vis: np.ndarray, amount: float, sigma: float = SIGMA) -> np.ndarray:
    """``vis`` uint8 (H, W, 3) BGR with its luma sharpened as above; a new array. ``amount`` in
    [0, MAX_AMOUNT] (0 returns a copy; 1-2 for a soft lens, more for defocus), ``sigma`` in
    (0, MAX_SIGMA] the blur radius in pixels that is undone. A frame under 5x5 pixels, too small
    for the noise estimate, is returned as a copy."""
    if vis.dtype != np.uint8 or vis.ndim != 3 or vis.shape[2] != 3:
        raise ValueError(f"visible frame must be uint8 (H, W, 3) BGR, got {vis.dtype} {vis.shape}")
    if not (0 <= amount <= MAX_AMOUNT and 0 < sigma <= MAX_SIGMA):
        raise ValueError(
            f"need 0 <= amount <= {MAX_AMOUNT:g} and 0 < sigma <= {MAX_SIGMA:g}, got {amount}, {sigma}"
        )
    if amount == 0 or min(vis.shape[:2]) < 5:
        return vis.copy()
    from rtfuse.irclean import estimate_noise  # Numba: loaded when a frame is sharpened, not on import

    y8 = luma_u8(vis)
    y = y8.astype(np.float32)
    d = y - cv2.GaussianBlur(y, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    t = CORE * estimate_noise(y8)
    d -= np.clip(d, -t, t)  # sign(d) max(|d| - t, 0)
    return replace_luma(vis, y, y + np.clip(amount * d, -255.0, 255.0))


class VisSharpener:
    """``sharpener(vis) -> vis``: :func:`sharpen_visible` with fixed settings, as the stage calls it."""

    def __init__(self, amount: float, sigma: float = SIGMA) -> None:
        if not (0 < amount <= MAX_AMOUNT and 0 < sigma <= MAX_SIGMA):
            raise ValueError(
                f"need 0 < amount <= {MAX_AMOUNT:g} and 0 < sigma <= {MAX_SIGMA:g}, got {amount}, {sigma}"
            )
        self.amount, self.sigma = amount, sigma

    def __call__(self, vis: np.ndarray) -> np.ndarray:
        return sharpen_visible(vis, self.amount, self.sigma)
