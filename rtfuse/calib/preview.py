"""Overlay preview: visible edges drawn over the IR warped into the visible frame."""

from __future__ import annotations

import cv2
import numpy as np

from rtfuse.align import Aligner, Calibration


def overlay(ir: np.ndarray, vis: np.ndarray, calib: Calibration) -> np.ndarray:
    """uint8 (H, W, 3) BGR image for a person to judge a calibration.

    ir: uint8 (h, w) IR frame; vis: uint8 (H, W, 3) BGR visible frame. The IR is warped with the
    calibration's homography and shown with the inferno palette; the visible image's Canny edges
    are drawn on top in cyan. Where they follow the thermal outlines, the mapping is right.
    """
    aligned = Aligner(calib, (ir.shape[1], ir.shape[0]), (vis.shape[1], vis.shape[0]))(ir)
    out = cv2.applyColorMap(aligned, cv2.COLORMAP_INFERNO)
    gray = cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY)
    blur = cv2.GaussianBlur(gray, (0, 0), 1.0 + max(vis.shape[:2]) / 1000)
    med = float(np.median(blur))
    edges = cv2.Canny(blur, max(10.0, 0.66 * med), max(30.0, 1.33 * med))
    if max(vis.shape[:2]) > 800:  # keep the lines visible when the preview is shown scaled down
        edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    out[edges > 0] = (255, 255, 0)
    return out
