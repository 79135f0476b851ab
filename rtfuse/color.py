"""BT.601 luma and "replace luma, keep chroma": the single definitions every fusion path uses.

Every backend fuses luma only and keeps the visible chroma (YCbCr in and out, as in LUT-Fuse). In
BT.601 each of B, G and R is ``Y`` plus a chroma term, so replacing ``Y`` by ``Y'`` while keeping Cb/Cr
is ``clip(BGR + Y' - Y)``: no chroma planes are ever formed.

Frames are BGR (OpenCV order), so coefficients are listed B, G, R. This module never imports torch:
the ``*_nchw`` functions only use tensor methods, so the lut runtime stays torch-free.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, TypeVar

import cv2
import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

_T = TypeVar("_T")

LUMA_B, LUMA_G, LUMA_R = 0.114, 0.587, 0.299  # BT.601 luma weights of B, G, R

# Fixed point for uint8 frames (the Numba kernels, the torch twin, the blend backend): Q15 as in OpenCV 5's
# COLOR_BGR2GRAY. G and R are rounded, B takes the rest, so the weights sum to exactly 1 << 15 and a grey
# pixel keeps its value. Within one level of round(LUMA_B B + LUMA_G G + LUMA_R R).
LUMA_SHIFT = 15
LUMA_Q_G = round(LUMA_G * (1 << LUMA_SHIFT))  # 19235
LUMA_Q_R = round(LUMA_R * (1 << LUMA_SHIFT))  # 9798
LUMA_Q_B = (1 << LUMA_SHIFT) - LUMA_Q_G - LUMA_Q_R  # 3735
_LUMA_HALF = 1 << (LUMA_SHIFT - 1)  # rounds to nearest


def luma_fixed(b: _T, g: _T, r: _T) -> _T:
    """Fixed-point luma of integer B, G, R (numpy or torch int32 arrays, or Numba int32 scalars).

    The one expression the kernels (compiled by Numba), the twin and :func:`luma_u8` evaluate.
    """
    return (b * LUMA_Q_B + g * LUMA_Q_G + r * LUMA_Q_R + _LUMA_HALF) >> LUMA_SHIFT


@functools.cache
def _opencv_matches() -> bool:
    """Whether this OpenCV's BGR2GRAY computes :func:`luma_fixed` (OpenCV 5 does; 4.x rounds to Q14)."""
    probe = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    return np.array_equal(cv2.cvtColor(probe, cv2.COLOR_BGR2GRAY), _luma_u8_numpy(probe))


def _luma_u8_numpy(vis: np.ndarray) -> np.ndarray:
    v = vis.astype(np.int32)
    return luma_fixed(v[..., 0], v[..., 1], v[..., 2]).astype(np.uint8)


def luma_u8(vis: np.ndarray) -> np.ndarray:
    """Luma of BGR uint8 (H, W, 3) as uint8 (H, W), exactly as the kernels compute it.

    Uses OpenCV's conversion (several times faster) where it gives the same integers.
    """
    if _opencv_matches():
        return cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)
    return _luma_u8_numpy(vis)


def replace_luma(vis: np.ndarray, luma: np.ndarray, new_luma: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """BGR uint8 (H, W, 3) with its luma ``luma`` (H, W) replaced by ``new_luma`` (float), chroma kept.

    ``clip(vis + round((Y' - Y) * scale))``; ``scale`` 255 takes lumas in [0, 1] (the networks').
    The difference is rounded to int16 and added by OpenCV's saturating add: the same integers as
    int16 arithmetic on all three channels, several times faster.
    """
    d = np.rint((new_luma - luma) * scale).astype(np.int16)
    return cv2.add(vis, cv2.merge([d, d, d]), dtype=cv2.CV_8U)


def luma_nchw(bgr: Tensor) -> Tensor:
    """Float luma (B, 1, H, W) of a float BGR tensor (B, 3, H, W), any scale (0..1 or 0..255)."""
    return LUMA_B * bgr[:, 0:1] + LUMA_G * bgr[:, 1:2] + LUMA_R * bgr[:, 2:3]


def luma_fixed_nchw(vis: Tensor) -> Tensor:
    """Fixed-point luma, int32 (B, 1, H, W), of an integer-valued BGR tensor (B, 3, H, W) in 0..255."""
    v = vis.int()
    return luma_fixed(v[:, 0:1], v[:, 1:2], v[:, 2:3])


def replace_luma_nchw(bgr: Tensor, luma: Tensor, new_luma: Tensor, peak: float = 1.0) -> Tensor:
    """Float BGR (B, 3, H, W) with luma ``luma`` replaced by ``new_luma`` (B, 1, H, W), chroma kept.

    ``clip(bgr + (Y' - Y), 0, peak)``, not rounded (differentiable); ``peak`` is 1.0 or 255.0.
    """
    return (bgr + (new_luma - luma)).clamp(0.0, peak)
