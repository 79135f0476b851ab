"""Bring decoded frames to the fusers' contract: visible uint8 BGR, IR uint8 gray."""

from __future__ import annotations

import cv2
import numpy as np

from rtfuse.agc import Agc
from rtfuse.errors import InputError


def to_vis_bgr(img: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) BGR from gray, BGR or BGRA, 8- or 16-bit (16-bit keeps the top 8 bits)."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"visible frames must be 8- or 16-bit, got {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def to_ir_gray(img: np.ndarray, agc: Agc | None = None) -> np.ndarray:
    """uint8 (H, W) from gray or colour IR; 16-bit goes through ``agc`` (a fresh percentile AGC if None)."""
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.dtype == np.uint16:
        return (agc or Agc(smoothing=0.0))(img)
    if img.dtype != np.uint8:
        raise InputError(f"IR frames must be 8- or 16-bit, got {img.dtype}")
    return img
