"""Checkerboard calibration: one homography IR -> visible from a heated board seen by both cameras.

Detection tries several renderings of each image with ``cv2.findChessboardCornersSB`` (then the
classic detector with sub-pixel refinement): gray, inverted (a heated board may show its squares
with either polarity), CLAHE, and each colour channel of pseudo-coloured thermal frames. Small
images (a 160x120 Lepton) are upscaled first so the detector sees squares of a usable size.

A board of ``cols x rows`` inner corners has a 180 deg symmetry (90 deg too if square), so the two
cameras may number the same corners in opposite orders. The order of each pair is resolved
globally: the homography that most pairs agree on decides it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtfuse.agc import make_clahe
from rtfuse.calib.homography import fit_ir_to_vis, ir_errors, rms
from rtfuse.errors import CalibrationError, InputError
from rtfuse.images import list_images
from rtfuse.sync import PAIRING_RULE, pair_stems

DETECT_MIN_SIDE = 480  # images smaller than this (longest side) are upscaled for detection
SB_FLAGS = cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
CLASSIC_FLAGS = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
REJECT_FACTOR = 2.5  # automatic rejection: pair RMS above this x the median pair RMS (and above 1 px)


def parse_pattern(text: str) -> tuple[int, int]:
    """'COLSxROWS' inner corners, e.g. '4x6' -> (4, 6)."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", text)
    if not m or min(int(m[1]), int(m[2])) < 2:
        raise InputError(f"--pattern {text!r}: give the inner corners as COLSxROWS, e.g. 4x6 (both >= 2)")
    return int(m[1]), int(m[2])


def variants(img: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Gray renderings of ``img`` (uint8 gray, BGR or BGRA) to try the detector on, best first."""
    if img.ndim == 3:
        bgr = img[..., :3]
        gray = cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2GRAY)
        channels = [(n, np.ascontiguousarray(bgr[..., i])) for i, n in enumerate("BGR")]
    else:
        gray, channels = img, []
    clahe = make_clahe().apply(gray)
    out = [("gray", gray), ("inverted", 255 - gray), ("clahe", clahe), ("clahe-inverted", 255 - clahe)]
    for name, ch in channels:
        if ch.std() > 1:  # skip empty channels of palettes
            out += [(f"channel-{name}", ch), (f"channel-{name}-inverted", 255 - ch)]
    return out


def detect(img: np.ndarray, pattern: tuple[int, int]) -> tuple[np.ndarray, str] | None:
    """Inner corners of the board in ``img``: ((cols*rows, 2) float64 pixel coordinates of the
    original image, the rendering that worked), or None if no rendering shows the board."""
    if img.dtype != np.uint8:
        raise InputError(f"checkerboard images must be 8-bit, got {img.dtype}")
    scale = max(1.0, DETECT_MIN_SIDE / max(img.shape[:2]))
    if scale > 1:
        scale = float(np.ceil(scale))
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    renders = variants(img)
    found = None
    for name, g in renders:
        ok, corners = cv2.findChessboardCornersSB(g, pattern, flags=SB_FLAGS)
        if ok:
            found = (corners, name)
            break
    if found is None:
        for name, g in renders:
            ok, corners = cv2.findChessboardCorners(g, pattern, flags=CLASSIC_FLAGS)
            if ok:
                win = max(3, int(round(2 * scale)))
                corners = cv2.cornerSubPix(
                    g,
                    corners,
                    (win, win),
                    (-1, -1),
                    (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_COUNT, 50, 0.01),
                )
                found = (corners, f"{name} (classic detector)")
                break
    if found is None:
        return None
    corners, name = found
    pts = corners.reshape(-1, 2).astype(np.float64)
    # back to the original pixel grid (pixel centres preserved by the resize)
    pts = (pts + 0.5) / scale - 0.5
    return pts, name


def orderings(pattern: tuple[int, int]) -> list[np.ndarray]:
    """Index permutations of the corner list under the board's symmetries (identity first)."""
    cols, rows = pattern
    grid = np.arange(cols * rows).reshape(rows, cols)
    perms = [grid, grid[::-1, ::-1]]  # 180 deg
    if cols == rows:
        perms += [np.rot90(grid, 1), np.rot90(grid, 3)]
    return [p.ravel() for p in perms]


def pair_images(ir_dir: str | Path, vis_dir: str | Path) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """[(name, ir file, vis file)] paired as every folder pair is (:func:`rtfuse.sync.pair_stems`: by
    stem, a modality tag, or the digits of a timestamp in the name); plus the files left unpaired."""
    ir, vis = list_images(ir_dir), list_images(vis_dir)
    pairs, vis_only, ir_only = pair_stems(vis, ir)
    if not pairs:
        raise InputError(f"no image in {ir_dir} pairs with one in {vis_dir}: {PAIRING_RULE}")
    return [(name, i, v) for name, (v, i) in pairs.items()], sorted(vis_only + ir_only)


@dataclass
class PairResult:
    name: str
    ir_pts: np.ndarray | None = None
    vis_pts: np.ndarray | None = None
    ir_render: str = ""
    vis_render: str = ""
    order: int = 0  # index into orderings(): how the IR corners were renumbered
    rms: float = float("nan")  # IR pixels, under the final homography
    max: float = float("nan")
    rejected: str = ""  # why the pair is not used ('' = used)


def _pts(pairs: list[PairResult], perms: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    ir = np.concatenate([p.ir_pts[perms[p.order]] for p in pairs])
    vis = np.concatenate([p.vis_pts for p in pairs])
    return ir, vis


def solve(pairs: list[PairResult], pattern: tuple[int, int], max_error: float | None = None) -> np.ndarray:
    """Resolve corner orders, reject inconsistent pairs and fit one homography; fills in the
    pairs' ``order``, ``rms``, ``max`` and ``rejected``. Returns H (IR -> visible).

    ``max_error``: reject pairs whose RMS (IR px) exceeds it; None = robust automatic threshold
    (REJECT_FACTOR x the median pair RMS, at least 1 px), which drops boards held far off the common plane.
    """
    perms = orderings(pattern)
    found = [p for p in pairs if p.ir_pts is not None and p.vis_pts is not None]
    if len(found) < 1:
        raise CalibrationError(
            "the board was not found in both images of any pair; nothing written. "
            "Check --pattern (inner corners, COLSxROWS) and that the board is heated"
        )
    # 1. per pair and ordering: a homography from that pair alone; the one most pairs agree
    #    with (lowest median of every pair's best-ordering RMS) fixes the order of all pairs.
    best = None
    for p in found:
        for o in range(len(perms)):
            try:
                H, _ = fit_ir_to_vis(p.ir_pts[perms[o]], p.vis_pts)
            except CalibrationError:
                continue
            errs = [
                min(rms(ir_errors(H, q.ir_pts[perms[k]], q.vis_pts)) for k in range(len(perms)))
                for q in found
            ]
            med = float(np.median(errs))
            if best is None or med < best[0]:
                best = (med, H)
    if best is None:
        raise CalibrationError("no pair gives a usable homography (degenerate corner sets)")
    H = best[1]
    for _ in range(3):  # assign orders, refit on the kept pairs, repeat until stable
        for p in found:
            errs = [rms(ir_errors(H, p.ir_pts[perms[k]], p.vis_pts)) for k in range(len(perms))]
            p.order = int(np.argmin(errs))
        _, H = _reject(found, perms, max_error)
    for p in found:
        e = ir_errors(H, p.ir_pts[perms[p.order]], p.vis_pts)
        p.rms, p.max = rms(e), float(e.max())
    return H


def _reject(
    found: list[PairResult], perms: list[np.ndarray], max_error: float | None
) -> tuple[list[PairResult], np.ndarray]:
    """Mark pairs far off the homography (parallax: the board at another depth) as rejected;
    iteratively, worst first, refitting after each, so one bad pair cannot hide good ones.
    Returns the kept pairs and the homography fitted on them."""
    for p in found:
        p.rejected = ""
    kept = list(found)
    while True:
        H, _ = fit_ir_to_vis(*_pts(kept, perms))
        if len(kept) <= 2:
            return kept, H
        errs = np.array([rms(ir_errors(H, p.ir_pts[perms[p.order]], p.vis_pts)) for p in kept])
        limit = max_error if max_error is not None else max(1.0, REJECT_FACTOR * float(np.median(errs)))
        worst = int(np.argmax(errs))
        if errs[worst] <= limit:
            return kept, H
        kept[worst].rejected = (
            f"RMS {errs[worst]:.2f} IR px exceeds {limit:.2f} px (board off the common "
            "plane, or a bad detection)"
        )
        kept.pop(worst)
