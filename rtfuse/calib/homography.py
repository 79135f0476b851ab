"""Homography helpers shared by the calibration methods: fitting, transfer errors, sanity checks.

Convention (as in :class:`rtfuse.align.Calibration`): ``H`` maps IR pixels to visible pixels,
``[x_v, y_v, 1]^T ~ H [x_ir, y_ir, 1]^T``, OpenCV pixel coordinates (integers at pixel centres).
Errors are reported in IR pixels: the visible points are mapped back with ``H^-1`` and compared
with the IR points, which is the unit a user of a 160x120 thermal camera can judge.
"""

from __future__ import annotations

import cv2
import numpy as np

from rtfuse.errors import CalibrationError


def apply_h(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) points through the 3x3 homography ``H``; returns float64 (N, 2)."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    q = np.c_[pts, np.ones(len(pts))] @ np.asarray(H, np.float64).T
    return q[:, :2] / q[:, 2:3]


def normalise(H: np.ndarray) -> np.ndarray:
    """``H`` scaled so that ``H[2, 2] == 1``."""
    return np.asarray(H, np.float64) / H[2, 2]


def ir_errors(H: np.ndarray, ir_pts: np.ndarray, vis_pts: np.ndarray) -> np.ndarray:
    """Per-point distance in IR pixels between ``ir_pts`` and ``H^-1(vis_pts)``; (N,) float64."""
    return np.linalg.norm(
        apply_h(np.linalg.inv(H), vis_pts) - np.asarray(ir_pts, np.float64).reshape(-1, 2), axis=1
    )


def rms(err: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(err)))) if len(err) else float("nan")


def fit_ir_to_vis(
    ir_pts: np.ndarray, vis_pts: np.ndarray, ransac_px: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares homography IR -> visible minimising the error in IR pixels.

    OpenCV minimises the error in the destination image, so the visible -> IR mapping is fitted
    and inverted. ``ransac_px`` (IR pixels) rejects outlying points first; returns (H, inlier mask).
    """
    ir_pts = np.asarray(ir_pts, np.float64).reshape(-1, 2)
    vis_pts = np.asarray(vis_pts, np.float64).reshape(-1, 2)
    if len(ir_pts) < 4:
        raise CalibrationError(f"a homography needs at least 4 point pairs, got {len(ir_pts)}")
    if ransac_px is None:
        G, mask = cv2.findHomography(vis_pts, ir_pts, 0)
    else:
        G, mask = cv2.findHomography(vis_pts, ir_pts, cv2.RANSAC, ransac_px, maxIters=5000, confidence=0.999)
        if G is not None:  # polish on the inliers with plain least squares
            keep = mask.ravel().astype(bool)
            G2, _ = cv2.findHomography(vis_pts[keep], ir_pts[keep], 0)
            G = G2 if G2 is not None else G
    if G is None or not np.isfinite(G).all() or abs(np.linalg.det(G)) < 1e-12:
        raise CalibrationError(
            "the points do not determine a homography (are 4 of them collinear, or repeated?)"
        )
    mask = np.ones(len(ir_pts), bool) if mask is None else mask.ravel().astype(bool)
    return normalise(np.linalg.inv(G)), mask


def implausibility(H: np.ndarray, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> str | None:
    """Why ``H`` cannot be a mapping between two real cameras, or None if it could be.

    Checks that the IR frame maps to a convex, non-flipped quadrilateral in front of the camera
    (no point at infinity) that covers a sensible part of the visible frame.
    """
    w, h = ir_size
    corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
    den = np.c_[corners, np.ones(4)] @ np.asarray(H, np.float64)[2]
    if not np.all(den > 0):
        return "the IR frame would cross the horizon of the homography (a point maps to infinity)"
    q = apply_h(H, corners)
    edges = np.roll(q, -1, axis=0) - q
    cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not (np.all(cross > 0) or np.all(cross < 0)):
        return "the IR frame maps to a twisted or non-convex shape"
    area = 0.5 * abs(np.sum(q[:, 0] * np.roll(q[:, 1], -1) - np.roll(q[:, 0], -1) * q[:, 1]))
    vw, vh = vis_size
    overlap = _overlap_fraction(q, vw, vh)
    if area < 0.01 * vw * vh:
        return f"the IR frame would cover only {100 * area / (vw * vh):.2f} % of the visible frame"
    if overlap < 0.25:
        return f"only {100 * overlap:.0f} % of the IR frame lands inside the visible frame"
    return None


def _overlap_fraction(quad: np.ndarray, vw: int, vh: int) -> float:
    """Share of the quadrilateral's area inside the visible frame (rasterised on a coarse grid)."""
    scale = 256.0 / max(vw, vh, 1)
    lo = np.floor(quad.min(0) * scale).astype(int) - 1
    hi = np.ceil(quad.max(0) * scale).astype(int) + 1
    size = hi - lo
    if size.max() > 4096:
        return 0.0
    canvas = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillConvexPoly(canvas, np.round((quad * scale - lo)).astype(np.int32), 1)
    total = canvas.sum()
    x0, y0 = -lo
    inside = canvas[
        max(y0, 0) : max(y0 + int(vh * scale), 0), max(x0, 0) : max(x0 + int(vw * scale), 0)
    ].sum()
    return float(inside) / max(float(total), 1.0)
