"""Synthetic misalignment with ground truth, for measuring `rtfuse calibrate auto`.

A registered IR/visible pair becomes a misaligned one by warping the IR with a known sampling
grid, in the convention of the shared ``align/roadscene_warped`` set: ``grid`` is float32
(H, W, 2), x then y in [-1, 1], PyTorch ``grid_sample`` with ``align_corners=False``, and
``ir_warp(p) = ir(grid(p))`` (zero outside the IR frame). The pixel the grid points to is
``x = ((gx + 1) W - 1) / 2``. Because the IR was registered to the visible image, ``grid(p)``
is also where the warped IR pixel ``p`` belongs in the visible frame: the ground truth a
homography IR_warp -> visible is scored against.

The grid is a random homography (rotation, scale, shear, perspective, translation about the
image centre) plus a mild, smooth non-rigid field (a coarse random lattice, bicubically
upsampled), so that no homography fits it exactly, as with real parallax and lens differences.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class WarpSpec:
    """Ranges of the random warp; the defaults are the ones of the issue-15 benchmark."""

    rotation_deg: float = 5.0  # uniform in +-
    scale: tuple[float, float] = (0.9, 1.1)  # log-uniform
    shear: float = 0.04  # uniform in +- (x per y and y per x)
    perspective: float = 0.01  # projective terms (normalised coordinates; roadscene_warped: <= 0.012)
    translation: float = 0.08  # uniform in +- this x the width (both axes)
    nonrigid_px: float = 1.5  # std of the lattice displacements (pixels)
    lattice: tuple[int, int] = (4, 3)  # control points of the non-rigid field, (x, y)


def random_homography(
    size: tuple[int, int], rng: np.random.Generator, spec: WarpSpec = WarpSpec()
) -> np.ndarray:
    """3x3 homography (warped-image pixels -> source pixels) of a (w, h) image, about its centre."""
    w, h = size
    s = 0.5 * max(w, h)
    # normalised coordinates: centre 0, half-size 1, so the terms are resolution independent
    N = np.array([[1 / s, 0, -(w - 1) / (2 * s)], [0, 1 / s, -(h - 1) / (2 * s)], [0, 0, 1.0]])
    a = np.deg2rad(rng.uniform(-spec.rotation_deg, spec.rotation_deg))
    k = float(np.exp(rng.uniform(*np.log(spec.scale))))
    shx, shy = rng.uniform(-spec.shear, spec.shear, 2)
    px, py = rng.uniform(-spec.perspective, spec.perspective, 2)
    tx, ty = rng.uniform(-spec.translation, spec.translation, 2) * w / s
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    A = np.array([[k, k * shx, tx], [k * shy, k, ty], [px, py, 1.0]])
    return np.linalg.inv(N) @ A @ R @ N


def nonrigid_field(
    size: tuple[int, int], rng: np.random.Generator, spec: WarpSpec = WarpSpec()
) -> np.ndarray:
    """float64 (h, w, 2) smooth displacement in pixels: a random lattice, bicubically upsampled."""
    w, h = size
    gx, gy = spec.lattice
    coarse = rng.normal(0, spec.nonrigid_px, (gy, gx, 2)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)


def random_grid(
    size: tuple[int, int], rng: np.random.Generator, spec: WarpSpec = WarpSpec()
) -> tuple[np.ndarray, np.ndarray]:
    """(grid float32 (h, w, 2) normalised as in the module docstring, homography part 3x3)."""
    w, h = size
    G = random_homography(size, rng, spec)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    q = np.stack([xs, ys, np.ones_like(xs)], -1) @ G.T
    px = q[..., :2] / q[..., 2:3] + nonrigid_field(size, rng, spec)
    grid = np.stack([(2 * px[..., 0] + 1) / w - 1, (2 * px[..., 1] + 1) / h - 1], -1)
    return grid.astype(np.float32), G


def grid_to_pixels(grid: np.ndarray) -> np.ndarray:
    """float64 (h, w, 2) source pixel coordinates of a normalised (h, w, 2) grid."""
    h, w = grid.shape[:2]
    g = np.asarray(grid, np.float64)
    return np.stack([((g[..., 0] + 1) * w - 1) / 2, ((g[..., 1] + 1) * h - 1) / 2], -1)


def apply_grid(img: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``img`` (h, w) or (h, w, c) sampled at the grid (bilinear, zero outside), same dtype.

    The grid must have the image's size (the warped image keeps the frame of the original).
    """
    px = grid_to_pixels(grid).astype(np.float32)
    return cv2.remap(
        img, px[..., 0], px[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def end_point_error(H: np.ndarray, grid: np.ndarray, stride: int = 1) -> float:
    """Mean distance (pixels) between ``H(p)`` and the ground truth ``grid(p)`` over the pixels p."""
    dst = grid_to_pixels(grid)[::stride, ::stride].reshape(-1, 2)
    h, w = grid.shape[:2]
    ys, xs = np.mgrid[0:h:stride, 0:w:stride].astype(np.float64)
    q = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)], 1) @ np.asarray(H, np.float64).T
    return float(np.linalg.norm(q[:, :2] / q[:, 2:3] - dst, axis=1).mean())


def best_homography(grid: np.ndarray, stride: int = 4) -> np.ndarray:
    """Least-squares homography to the ground truth: the floor for any homography estimate."""
    dst = grid_to_pixels(grid)[::stride, ::stride].reshape(-1, 2)
    h, w = grid.shape[:2]
    ys, xs = np.mgrid[0:h:stride, 0:w:stride].astype(np.float64)
    H, _ = cv2.findHomography(np.stack([xs.ravel(), ys.ravel()], 1), dst, 0)
    return H
