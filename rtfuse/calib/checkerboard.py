"""Checkerboard calibration: a lens model and one homography IR -> visible from a heated board
seen by both cameras.

Detection tries several renderings of each image with ``cv2.findChessboardCornersSB`` (then the
classic detector with sub-pixel refinement): gray, inverted (a heated board may show its squares
with either polarity), CLAHE, and each colour channel of pseudo-coloured thermal frames. Small
images (a 160x120 Lepton) are upscaled first so the detector sees squares of a usable size.

A board of ``cols x rows`` inner corners has a 180 deg symmetry (90 deg too if square), so the two
cameras may number the same corners in opposite orders. The order of each pair is resolved
globally: the homography that most pairs agree on decides it.

The thermal camera's intrinsics and distortion (optionally the visible camera's too) come from the
same board views (:func:`fit_lens`); the corners are undistorted before the homography is fitted,
and pairs off the common plane are rejected by a robust rule (:func:`_reject`), each with its
reason. Errors are in raw IR pixels under the whole model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from rtfuse.agc import make_clahe
from rtfuse.align import Lens
from rtfuse.calib.homography import apply_h, fit_ir_to_vis, rms
from rtfuse.errors import CalibrationError, InputError
from rtfuse.images import list_images
from rtfuse.sync import PAIRING_RULE, pair_stems

DETECT_MIN_SIDE = 480  # images smaller than this (longest side) are upscaled for detection
SB_FLAGS = cv2.CALIB_CB_EXHAUSTIVE | cv2.CALIB_CB_ACCURACY
CLASSIC_FLAGS = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
# Robust pair rejection: RMS above median + REJECT_K x MAD of the kept pairs, and REJECT_FLOOR px
REJECT_K = 3.0
REJECT_FLOOR = 1.5  # IR px: a pair fitting this well is never rejected (the accuracy issue 15 asks for)
REJECT_MIN_PAIRS = 4  # below this the spread cannot be estimated: nothing rejected (unless --max-error)
LENS_MIN_VIEWS = 5  # board views needed to fit a lens model (intrinsics + distortion)
LENS_MAX_F_STD = 0.05  # refuse the lens model when the focal length is uncertain by more (relative)
LENS_VIEW_FLOOR = 0.5  # px: a view reprojecting this well is never left out of the lens fit


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
    rms: float = float("nan")  # IR pixels, under the final model (lens + homography)
    max: float = float("nan")
    rejected: str = ""  # why the pair is not used ('' = used)
    distance: float = float("nan")  # board distance from the IR camera in board squares (lens fit)


@dataclass
class LensFit:
    """What ``fit_lens`` found: the model (None when the views do not pin it down), one line
    saying so, the reprojection RMS over the views used, and per view its board distance."""

    lens: Lens | None
    message: str
    rms: float = float("nan")
    distances: list[float] = field(default_factory=list)


def object_points(pattern: tuple[int, int]) -> np.ndarray:
    """(cols*rows, 3) float32 board corners in squares (z = 0), in :func:`detect`'s order: row by
    row, ``cols`` per row. The square size is unknown and irrelevant for intrinsics."""
    cols, rows = pattern
    grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2)
    return np.c_[grid, np.zeros(len(grid))].astype(np.float32)


def fit_lens(
    views: list[np.ndarray], pattern: tuple[int, int], size: tuple[int, int], camera: str
) -> LensFit:
    """Intrinsics and distortion (k1, k2, p1, p2; k3 fixed: a few boards cannot pin it down) of
    one camera from its board views, ``cv2.calibrateCamera`` on unit squares.

    ``views``: (cols*rows, 2) float pixel corners each, in detect order; ``size``: (width, height).
    Views far off the others (reprojection above median + REJECT_K x MAD, and LENS_VIEW_FLOOR px)
    are left out and the fit repeated once. The model is refused (lens None) with fewer than
    LENS_MIN_VIEWS views, when the focal length is uncertain by more than LENS_MAX_F_STD (boards
    all facing the camera square-on), or when the model folds inside the frame.
    """
    if len(views) < LENS_MIN_VIEWS:
        return LensFit(None, f"{camera} lens not modelled: {len(views)} boards, need {LENS_MIN_VIEWS}")
    obj = object_points(pattern)
    use = list(range(len(views)))
    for attempt in range(2):
        try:
            rms_, K, D, rvecs, tvecs, std, _, per_view = cv2.calibrateCameraExtended(
                [obj] * len(use),
                [views[i].astype(np.float32).reshape(-1, 1, 2) for i in use],
                size,
                None,
                None,
                flags=cv2.CALIB_FIX_K3,
            )
        except cv2.error as e:
            return LensFit(None, f"{camera} lens not modelled: calibrateCamera failed ({e.err})")
        if attempt:
            break
        per_view = per_view.ravel()
        limit = max(LENS_VIEW_FLOOR, _robust_limit(per_view)[0])
        if (per_view <= limit).all() or len(use) - (per_view > limit).sum() < LENS_MIN_VIEWS:
            break
        use = [i for i, e in zip(use, per_view) if e <= limit]  # refit once without them
    f_std = float(max(std[0, 0] / K[0, 0], std[1, 0] / K[1, 1]))
    dropped = len(views) - len(use)
    note = f", {dropped} view(s) left out (reprojection above {limit:.2f} px)" if dropped else ""
    if not np.isfinite(f_std) or f_std > LENS_MAX_F_STD:
        return LensFit(
            None,
            f"{camera} lens not modelled: the focal length is uncertain by {100 * f_std:.0f} % "
            "(tilt the board more between shots)",
        )
    lens = Lens(K.astype(np.float64), D.ravel()[:5].astype(np.float64), tuple(size))
    why = lens.problem()
    if why:
        return LensFit(None, f"{camera} lens not modelled: {why}")
    # board distances in squares, per input view (nan where a view was left out)
    dist = [float("nan")] * len(views)
    for i, t in zip(use, tvecs):
        dist[i] = float(np.linalg.norm(t))
    k = lens.dist_coeffs
    msg = (
        f"{camera} lens from {len(use)} boards: fx {K[0, 0]:.1f} fy {K[1, 1]:.1f} (+-{100 * f_std:.1f} %), "
        f"centre ({K[0, 2]:.1f}, {K[1, 2]:.1f}), k1 {k[0]:.3f} k2 {k[1]:.3f} p1 {k[2]:.4f} p2 {k[3]:.4f}; "
        f"reprojection RMS {rms_:.3f} px{note}"
    )
    return LensFit(lens, msg, float(rms_), dist)


def _robust_limit(err: np.ndarray, k: float | None = None) -> tuple[float, float, float]:
    """(median + k x MAD, median, MAD) of ``err``; MAD scaled to a standard deviation (x1.4826)."""
    med = float(np.median(err))
    mad = 1.4826 * float(np.median(np.abs(err - med)))
    return med + (REJECT_K if k is None else k) * mad, med, mad


class _Model:
    """Lens-corrected corner sets of the pairs and the error of a homography in raw IR pixels."""

    def __init__(
        self, pairs: list[PairResult], perms: list[np.ndarray], ir_lens: Lens | None, vis_lens: Lens | None
    ):
        self.perms, self.ir_lens, self.vis_lens = perms, ir_lens, vis_lens
        self.ir_u = {id(p): ir_lens.undistort(p.ir_pts) if ir_lens else p.ir_pts for p in pairs}
        self.vis_u = {id(p): vis_lens.undistort(p.vis_pts) if vis_lens else p.vis_pts for p in pairs}

    def fit(self, pairs: list[PairResult], orders: list[int] | None = None) -> np.ndarray:
        orders = [p.order for p in pairs] if orders is None else orders
        ir = np.concatenate([self.ir_u[id(p)][self.perms[o]] for p, o in zip(pairs, orders)])
        vis = np.concatenate([self.vis_u[id(p)] for p in pairs])
        return fit_ir_to_vis(ir, vis)[0]

    def errors(self, H: np.ndarray, p: PairResult, order: int | None = None) -> np.ndarray:
        """(N,) distances in raw IR pixels: visible corners through the whole model vs IR corners."""
        order = p.order if order is None else order
        back = apply_h(np.linalg.inv(H), self.vis_u[id(p)])
        if self.ir_lens is not None:
            back = self.ir_lens.distort(back)[0]
        return np.linalg.norm(back - p.ir_pts[self.perms[order]], axis=1)


def solve(
    pairs: list[PairResult],
    pattern: tuple[int, int],
    max_error: float | None = None,
    ir_lens: Lens | None = None,
    vis_lens: Lens | None = None,
) -> np.ndarray:
    """Resolve corner orders, reject inconsistent pairs and fit one homography; fills in the
    pairs' ``order``, ``rms``, ``max`` and ``rejected``. Returns H (IR -> visible; between
    undistorted pixels of the cameras that have a lens model).

    Rejection (:func:`_reject`): ``max_error`` px, or None for the robust rule. Errors are in raw
    IR pixels under the whole model (visible corners undistorted, mapped with ``H^-1``, distorted
    with the IR lens), the unit a user of the thermal camera judges.
    """
    perms = orderings(pattern)
    found = [p for p in pairs if p.ir_pts is not None and p.vis_pts is not None]
    if len(found) < 1:
        raise CalibrationError(
            "the board was not found in both images of any pair; nothing written. "
            "Check --pattern (inner corners, COLSxROWS) and that the board is heated"
        )
    model = _Model(found, perms, ir_lens, vis_lens)
    # 1. per pair and ordering: a homography from that pair alone; the one most pairs agree
    #    with (lowest median of every pair's best-ordering RMS) fixes the order of all pairs.
    best = None
    for p in found:
        for o in range(len(perms)):
            try:
                H = model.fit([p], [o])
            except CalibrationError:
                continue
            errs = [min(rms(model.errors(H, q, k)) for k in range(len(perms))) for q in found]
            med = float(np.median(errs))
            if best is None or med < best[0]:
                best = (med, H)
    if best is None:
        raise CalibrationError("no pair gives a usable homography (degenerate corner sets)")
    H = best[1]
    for _ in range(3):  # assign orders, refit on the kept pairs, repeat until stable
        for p in found:
            p.order = int(np.argmin([rms(model.errors(H, p, k)) for k in range(len(perms))]))
        H = _reject(found, model, max_error)
    for p in found:
        e = model.errors(H, p)
        p.rms, p.max = rms(e), float(e.max())
    return H


def _reject(found: list[PairResult], model: _Model, max_error: float | None) -> np.ndarray:
    """Mark the pairs off the common homography as rejected (``rejected`` = one line why) and
    return the homography fitted on the others.

    Start from the half of the pairs that agree best (least trimmed squares: refit on the best
    half until it stops changing), so that a large group of boards at another distance can
    neither pull the fit nor inflate the scale; then keep every pair whose RMS is at most the
    limit, refit, and repeat until the kept set is stable (a pair may come back). The limit is
    ``max_error`` px, or the robust rule: median + REJECT_K x MAD of the kept pairs' RMS, at least
    REJECT_FLOOR px. With fewer than REJECT_MIN_PAIRS pairs only ``max_error`` rejects.
    """
    n = len(found)
    rms_of = lambda H: np.array([rms(model.errors(H, p)) for p in found])  # noqa: E731
    kept = np.ones(n, bool)
    H = model.fit(found)
    if n >= REJECT_MIN_PAIRS or max_error is not None:
        e = rms_of(H)
        if n >= REJECT_MIN_PAIRS:
            h = (n + 1) // 2
            for _ in range(20):
                core = np.zeros(n, bool)
                core[np.argsort(e)[:h]] = True
                if (core == kept).all():
                    break
                kept = core
                H = model.fit([p for p, k in zip(found, kept) if k])
                e = rms_of(H)
        for _ in range(20):
            limit = max_error if max_error is not None else max(REJECT_FLOOR, _robust_limit(e[kept])[0])
            new = e <= limit
            if new.sum() < 2:
                new = e <= np.sort(e)[1]
            if (new == kept).all():
                break
            kept = new
            H = model.fit([p for p, k in zip(found, kept) if k])
            e = rms_of(H)
    for p in found:
        p.rejected = ""
    if kept.all():
        return H
    _, med, mad = _robust_limit(e[kept])
    rule = (
        f"--max-error {max_error:g} px"
        if max_error is not None
        else f"the limit {max(REJECT_FLOOR, med + REJECT_K * mad):.2f} px (median {med:.2f} + {REJECT_K:g} x MAD "
        f"{mad:.2f} of the kept pairs)"
    )
    # with the IR lens fitted every board's distance is known: outside the kept boards' range of
    # distances, parallax explains the misfit; inside it, it cannot
    dists = np.array([p.distance for p, k in zip(found, kept) if k and np.isfinite(p.distance)])
    ref = float(np.median(dists)) if len(dists) else float("nan")
    lo, hi = (dists.min() / ref, dists.max() / ref) if len(dists) else (np.nan, np.nan)
    for p, k, err in zip(found, kept, e):
        if k:
            continue
        why = f"RMS {err:.2f} IR px exceeds {rule}"
        ratio = p.distance / ref
        if not np.isfinite(ratio):
            why += " (board off the common plane, or a bad detection)"
        elif ratio < 0.97 * lo or ratio > 1.03 * hi:
            why += (
                f"; the board was at {ratio:.2f}x the kept boards' median distance (they span "
                f"{lo:.2f}-{hi:.2f}x): parallax"
            )
        else:
            why += (
                f"; at {ratio:.2f}x, within the kept boards' distances ({lo:.2f}-{hi:.2f}x): the board "
                "moved between the shots, or a bad detection"
            )
        p.rejected = why
    return H
