"""Homography from hand-picked point pairs (``rtfuse calibrate points``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from rtfuse.calib.homography import fit_ir_to_vis, ir_errors
from rtfuse.errors import CalibrationError

COLUMNS = ("x_ir", "y_ir", "x_vis", "y_vis")


def read_points(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Point pairs from a CSV with columns ``x_ir, y_ir, x_vis, y_vis`` (pixels; a header row
    naming them is optional, ``#`` starts a comment). Returns (ir (N, 2), vis (N, 2)) float64."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"{path}: no such file")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: cannot read ({e})") from None
    rows = [r for r in csv.reader(line.split("#", 1)[0] for line in lines) if any(c.strip() for c in r)]
    if rows and [c.strip().lower() for c in rows[0]] == list(COLUMNS):
        rows = rows[1:]
    pts = []
    for i, r in enumerate(rows, 1):
        try:
            vals = [float(c) for c in r]
        except ValueError:
            raise CalibrationError(
                f"{path}: row {i} {r!r} is not four numbers ({', '.join(COLUMNS)})"
            ) from None
        if len(vals) != 4 or not np.all(np.isfinite(vals)):
            raise CalibrationError(f"{path}: row {i} has {len(vals)} values; need {', '.join(COLUMNS)}")
        pts.append(vals)
    if len(pts) < 4:
        raise CalibrationError(
            f"{path}: {len(pts)} point pairs; a homography needs at least 4 (better 8+, spread "
            "over the image)"
        )
    a = np.array(pts, np.float64)
    return a[:, :2], a[:, 2:]


def fit_points(ir_pts: np.ndarray, vis_pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares homography and each point's residual in IR pixels (N,)."""
    H, _ = fit_ir_to_vis(ir_pts, vis_pts)
    return H, ir_errors(H, ir_pts, vis_pts)


def suspects(residuals: np.ndarray) -> np.ndarray:
    """Indices of points that look mistyped or mis-clicked: residual above 3x the median and 2 px."""
    if len(residuals) <= 4:  # an exact fit: nothing to compare against
        return np.array([], int)
    limit = max(2.0, 3.0 * float(np.median(residuals)))
    return np.nonzero(residuals > limit)[0]
