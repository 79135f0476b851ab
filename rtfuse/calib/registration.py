"""Automatic cross-modal registration: one homography IR -> visible from the images alone.

Thermal and visible intensities are unrelated (a warm dark car is bright in IR), but their edges
mostly coincide. Both images (after CLAHE) are turned into a two-channel *structure* field, the
doubled-angle gradient orientation ``(gx^2 - gy^2, 2 gx gy) / (|g|^2 + eps^2)``, normalised to
unit local energy: it ignores edge polarity and contrast and keeps where edges are and which way
they run. The homography is the one that maximises the correlation of the two fields:

1. a robust start: both images at one working size (<= WORK_MAX), the IR frame placed on the
   visible frame (stretched over it; for another aspect ratio also fitted inside and covering it;
   a portrait IR beside a landscape visible, or the reverse, is first turned by 90 deg and tried
   both ways up), rotated (+-15 deg) and scaled (0.8-1.25x) on a grid, each candidate's shift
   found by normalised cross-correlation at <= SEARCH_MAX pixels;
2. the best distinct starts refined there (affine), the best FINE_STARTS of those refined at
   full working resolution as a homography (Levenberg-Marquardt on the standardised field
   difference, ridge prior on the perspective terms);
3. the result is accepted only when it is a clear optimum (its correlation drops by
   MIN_CONTRAST when shifted 8 px) and a plausible camera mapping; otherwise
   :class:`CalibrationError` and the caller writes nothing.

With several frames (video), the structure fields of all frames are averaged per camera before
matching: a fixed rig has one homography for all of them, and moving content makes the field
richer and the optimum sharper.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import cv2
import numpy as np

from rtfuse.agc import make_clahe
from rtfuse.calib.homography import apply_h, implausibility, normalise
from rtfuse.errors import CalibrationError

WORK_MAX = 640  # working resolution (largest side) of the matching
SEARCH_MAX = 320  # the start search runs at the finest pyramid level no larger than this
SIGMA = 1.0  # pre-smoothing of the gray images (pixels of each pyramid level)
FIELD_SMOOTH = 1.5  # smoothing of the structure field: widens the basin of convergence
LOCAL_NORM = 0.1  # window (x the image size) over which the field is normalised to unit RMS
FINE_STARTS = 3  # starts carried from the search level to the finer levels
PERSPECTIVE_PRIOR = 100.0  # ridge weight on the perspective terms (normalised coordinates), see _refine
MIN_CONTRAST = 0.06  # required drop of correlation 8 px away from the optimum (benchmarks/calib_eval.py:
# the shared real pairs 0.062-0.289, unrelated pairs 0.010-0.047)


@dataclass
class Registration:
    H: np.ndarray  # 3x3 IR -> visible, full-resolution pixels
    score: float  # mean correlation of the structure fields at the optimum (-1..1)
    contrast: float  # score minus the mean score 8 px away: how sharp the optimum is
    levels: int
    starts: int  # candidate starts refined


def structure_field(gray: np.ndarray, sigma: float = SIGMA, smooth: float = FIELD_SMOOTH) -> np.ndarray:
    """Polarity- and contrast-invariant edge orientation field, with every region weighted alike.

    gray: (H, W) uint8 or float. Returns float32 (2, H, W): the doubled-angle orientation
    weighted by ``|g|^2 / (|g|^2 + eps^2)``, eps^2 the median of ``|g|^2`` (flat, noisy regions
    count little in either modality), then divided by its local RMS over a window of
    LOCAL_NORM x the image size (dense texture such as foliage would otherwise outweigh the
    sparse outlines of buildings, roads and people that both cameras see; in night scenes those
    are most of what there is).
    """
    g = cv2.GaussianBlur(np.asarray(gray, np.float32), (0, 0), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    m2 = gx * gx + gy * gy
    den = m2 + float(np.median(m2)) + 1e-6
    field = np.stack([(gx * gx - gy * gy) / den, 2 * gx * gy / den])
    if smooth > 0:
        field = np.stack([cv2.GaussianBlur(c, (0, 0), smooth) for c in field])
    win = max(3, int(round(LOCAL_NORM * max(field.shape[1:]))) | 1)
    energy = sum(cv2.blur(c * c, (win, win)) for c in field)
    return (field / np.sqrt(energy + 0.02)).astype(np.float32)


def content_mask(gray: np.ndarray, border: int = 3) -> np.ndarray:
    """uint8 (H, W) mask of image content: exact-zero padding touching the border (from an earlier
    warp or rotation) is excluded, with ``border`` pixels of margin, so its edge is not matched."""
    zero = (np.asarray(gray) == 0).astype(np.uint8)
    n, labels = cv2.connectedComponents(zero)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    pad = np.isin(labels, edge_labels[edge_labels > 0])
    mask = (~pad).astype(np.uint8)
    if border > 0 and pad.any():
        mask = cv2.erode(mask, np.ones((2 * border + 1, 2 * border + 1), np.uint8))
    return mask


def _scale_matrix(kx: float, ky: float) -> np.ndarray:
    """Pixel coordinates scaled by (kx, ky) with pixel centres preserved: x' = k (x + 0.5) - 0.5."""
    return np.array([[kx, 0, 0.5 * kx - 0.5], [0, ky, 0.5 * ky - 0.5], [0, 0, 1.0]])


def _resize_matrix(src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates of a (w, h) image resized to ``dst``."""
    return _scale_matrix(dst[0] / src[0], dst[1] / src[1])


def _level_matrix(f: float) -> np.ndarray:
    """Maps pixel coordinates at 1/f resolution to full resolution."""
    return _scale_matrix(f, f)


def _to_level(H: np.ndarray, f: float) -> np.ndarray:
    A = _level_matrix(f)
    return np.linalg.inv(A) @ H @ A


def _from_level(H: np.ndarray, f: float) -> np.ndarray:
    A = _level_matrix(f)
    return A @ H @ np.linalg.inv(A)


@dataclass
class _Level:
    factor: float
    ir: np.ndarray  # (2, h, w) structure field of the IR
    mask: np.ndarray  # (h, w) uint8 IR content
    vis: np.ndarray  # (2, h', w') structure field of the visible


def _resize(img: np.ndarray, f: float, interp=cv2.INTER_AREA) -> np.ndarray:
    if f == 1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (max(8, round(w / f)), max(8, round(h / f))), interpolation=interp)


def _levels(
    ir_frames: list[np.ndarray], ir_masks: list[np.ndarray], vis_frames: list[np.ndarray], n_levels: int
) -> list[_Level]:
    out = []
    for i in range(n_levels):
        f = 2.0 ** (n_levels - 1 - i)
        ir_f = np.mean([structure_field(_resize(g, f)) for g in ir_frames], axis=0)
        vis_f = np.mean([structure_field(_resize(g, f)) for g in vis_frames], axis=0)
        mask = np.min([_resize(m, f, cv2.INTER_NEAREST) for m in ir_masks], axis=0)
        out.append(_Level(f, ir_f.astype(np.float32), mask, vis_f.astype(np.float32)))
    return out


def _warp_vis(vis: np.ndarray, H: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Visible field sampled at H(x) for every IR pixel x, and where that lands inside the image."""
    h, w = shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = np.stack([cv2.warpPerspective(c, H, (w, h), flags=flags) for c in vis])
    inside = cv2.warpPerspective(
        np.ones(vis.shape[1:], np.uint8), H, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    )
    return warped, inside


def _score(lv: _Level, H: np.ndarray) -> float:
    """Mean over channels of the correlation of IR and warped visible fields over the overlap."""
    warped, inside = _warp_vis(lv.vis, H, lv.mask.shape)
    m = (lv.mask > 0) & (inside > 0)
    if m.mean() < 0.2:
        return -1.0
    s = []
    for a, b in zip(lv.ir, warped):
        a, b = a[m] - a[m].mean(), b[m] - b[m].mean()
        s.append(float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12)))
    return float(np.mean(s))


def _contrast(lv: _Level, H: np.ndarray, px: float = 8.0) -> float:
    """Score at H minus the mean score with the IR shifted by ``px`` in 8 directions."""
    shifted = []
    for ang in np.arange(8) * np.pi / 4:
        T = np.array([[1, 0, px * np.cos(ang)], [0, 1, px * np.sin(ang)], [0, 0, 1.0]])
        shifted.append(_score(lv, H @ T))
    return _score(lv, H) - float(np.mean(shifted))


def _residuals(lv: _Level, H: np.ndarray, stride: int):
    """Per channel: standardised (warped visible - IR) field residuals over the overlap, the warped
    visible field and its std; plus the sampled overlap mask. None when the overlap is too small."""
    h, w = lv.mask.shape
    warped, inside = _warp_vis(lv.vis, H, (h, w))
    m = ((lv.mask > 0) & (inside > 0))[::stride, ::stride].ravel()
    if m.mean() < 0.2:
        return None
    out = []
    for t, iw in zip(lv.ir, warped):
        a = iw[::stride, ::stride].ravel()[m]
        b = t[::stride, ::stride].ravel()[m]
        sa, sb = a.std() + 1e-9, b.std() + 1e-9
        out.append(((a - a.mean()) / sa - (b - b.mean()) / sb, iw, sa))
    return m, out


def _cost(res) -> float:
    """Mean squared standardised residual (= 2 - 2 x correlation, averaged over the channels)."""
    if res is None:
        return np.inf
    return float(np.mean([np.mean(r * r) for r, _, _ in res[1]]))


def _perspective(H: np.ndarray, N: np.ndarray) -> np.ndarray:
    """The two perspective coefficients of H in normalised coordinates (resolution independent)."""
    Hn = N @ H @ np.linalg.inv(N)
    return Hn[2, :2] / Hn[2, 2]


def _refine(lv: _Level, H: np.ndarray, model: str, iters: int = 40) -> np.ndarray:
    """Gauss-Newton (Levenberg-Marquardt damped) on the standardised field difference.

    Compositional update ``H <- H N^-1 (I + D(dp)) N`` in normalised coordinates N (centre 0,
    half-size 1), so the 8 (or 6, affine) parameters are equally scaled. The two perspective
    coefficients get a ridge prior (PERSPECTIVE_PRIOR x their square added to the cost): image
    content pins them down poorly, and depth layering (near road below, far trees above) looks
    like a vertical perspective; a rig of two cameras side by side has almost none.
    """
    h, w = lv.mask.shape
    s = 0.5 * max(w, h)
    N = np.array([[1 / s, 0, -(w - 1) / (2 * s)], [0, 1 / s, -(h - 1) / (2 * s)], [0, 0, 1.0]])
    stride = max(1, int(np.ceil(np.sqrt(h * w / 250_000))))
    ys, xs = np.mgrid[0:h:stride, 0:w:stride]
    xn = (xs.ravel() - (w - 1) / 2) / s
    yn = (ys.ravel() - (h - 1) / 2) / s
    # float32: forming the normal equations is most of the registration's time
    xn, yn = xn.astype(np.float32), yn.astype(np.float32)
    npar = 6 if model == "affine" else 8
    prior = PERSPECTIVE_PRIOR if npar == 8 else 0.0

    def total(res, H):
        return _cost(res) + prior * float(np.sum(_perspective(H, N) ** 2))

    lam = 1e-3
    res = _residuals(lv, H, stride)
    best = total(res, H)
    for _ in range(iters):
        if res is None:
            break
        m, chans = res
        JtJ = np.zeros((npar, npar))
        Jtr = np.zeros(npar)
        xm, ym = xn[m], yn[m]
        for r, iw, sa in chans:
            k = np.float32(s / (8 * sa))  # Sobel's 1/8 normalisation, the scale and the field's std at once
            gx = cv2.Sobel(iw, cv2.CV_32F, 1, 0, ksize=3)[::stride, ::stride].ravel()[m] * k
            gy = cv2.Sobel(iw, cv2.CV_32F, 0, 1, ksize=3)[::stride, ::stride].ravel()[m] * k
            # d(residual)/d(params): the image gradient times d(point)/d(params) at the identity in
            # normalised coordinates (x' = (1 + a) x + b y + c, ..., perspective g, h: x' /= 1 + g x + h y)
            cols = [gx * xm, gx * ym, gx, gy * xm, gy * ym, gy]
            if npar == 8:
                radial = cols[0] + cols[4]  # gx x + gy y
                cols += [-radial * xm, -radial * ym]
            J = np.stack(cols, 1)
            JtJ += (J.T @ J).astype(np.float64)
            Jtr += (J.T @ r.astype(np.float32)).astype(np.float64)
        if prior:  # the prior in the same (summed) units as the data term
            kp = prior * len(chans) * int(m.sum())
            JtJ[6:, 6:] += kp * np.eye(2)
            Jtr[6:] += kp * _perspective(H, N)
        while True:
            dp = -np.linalg.solve(JtJ + lam * np.diag(np.diag(JtJ) + 1e-9), Jtr)
            D = np.eye(3)
            D[0, :3] += dp[0:3]
            D[1, :3] += dp[3:6]
            if npar == 8:
                D[2, :2] += dp[6:8]
            cand = normalise(H @ np.linalg.inv(N) @ D @ N)
            cres = _residuals(lv, cand, stride)
            cost = total(cres, cand)
            if cost < best:
                H, best, res, lam = cand, cost, cres, max(lam / 4, 1e-6)
                break
            lam *= 8
            if lam > 1e4:
                return H
        if np.abs(dp).max() * s < 0.005:  # below 1/200 pixel
            break
    return H


def _other_shape(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (w, h) frames' aspect ratios are more than 3 % apart."""
    return abs(np.log((a[0] / a[1]) / (b[0] / b[1]))) > 0.03


def placements(
    ir_size: tuple[int, int], vis_size: tuple[int, int], half_turn: bool = False
) -> list[np.ndarray]:
    """Where the IR frame may sit on the visible one before the search: homographies IR -> visible.

    The IR frame stretched over the visible frame; with another shape (aspect ratios more than 3 %
    apart, e.g. a 4:3 thermal core beside a 16:9 camera) also scaled evenly to fit inside it and to
    cover it, centred. ``half_turn``: each of those turned by 180 deg as well.
    """
    (wi, hi), (wv, hv) = ir_size, vis_size
    out = [_resize_matrix(ir_size, vis_size)]
    if _other_shape(ir_size, vis_size):
        for k in (min(wv / wi, hv / hi), max(wv / wi, hv / hi)):
            out.append(
                np.array(
                    [[k, 0, ((wv - 1) - k * (wi - 1)) / 2], [0, k, ((hv - 1) - k * (hi - 1)) / 2], [0, 0, 1]]
                )
            )
    if half_turn:
        out += [P @ np.array([[-1, 0, wi - 1], [0, -1, hi - 1], [0, 0, 1.0]]) for P in out]
    return out


def _quarter_turn(size: tuple[int, int]) -> np.ndarray:
    """Pixel coordinates of a (w, h) image -> those of ``np.rot90`` of it (counter-clockwise)."""
    w, _ = size
    return np.array([[0, 1, 0], [-1, 0, w - 1], [0, 0, 1.0]])


def _starts(
    lv: _Level, ir_size: tuple[int, int], vis_size: tuple[int, int], keep: int, half_turn: bool = False
) -> list[np.ndarray]:
    """Candidate full-resolution homographies: placements x similarity grid x NCC translation search."""
    h, w = lv.mask.shape
    hv, wv = lv.vis.shape[1:]
    wi, hi = ir_size
    Wv, Hv = vis_size
    margin = max(4, round(0.12 * max(wv, hv)))  # translation searched: +-12 % of the frame
    search = np.pad(lv.vis.transpose(1, 2, 0), ((margin, margin), (margin, margin), (0, 0)))
    c = np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
    found = []
    for P in placements(ir_size, vis_size, half_turn):
        base = _to_level(P, lv.factor)
        for scale, ang in product((0.8, 0.9, 1.0, 1.12, 1.25), np.arange(-15, 15.1, 2.5)):
            R = np.vstack([cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(ang), scale), [0, 0, 1]])
            Hs = base @ R
            img = np.stack([cv2.warpPerspective(ch, Hs, (wv, hv)) for ch in lv.ir], -1)
            cover = cv2.warpPerspective(lv.mask, Hs, (wv, hv), flags=cv2.INTER_NEAREST)
            ys, xs = np.nonzero(cover)
            if len(ys) < 0.1 * wv * hv:
                continue
            # template: the central part of the warped IR that is fully covered
            y0, y1 = np.percentile(ys, [15, 85]).astype(int)
            x0, x1 = np.percentile(xs, [15, 85]).astype(int)
            tmpl = np.ascontiguousarray(img[y0:y1, x0:x1])
            if min(tmpl.shape[:2]) < 8:
                continue
            res = cv2.matchTemplate(search, tmpl, cv2.TM_CCOEFF_NORMED)
            _, val, _, (mx, my) = cv2.minMaxLoc(res)
            dx, dy = mx - margin - x0, my - margin - y0
            T = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1.0]])
            found.append((val, _from_level(T @ Hs, lv.factor)))
    # the best `keep` starts that differ (frame corners > 3 % of the diagonal apart): neighbouring
    # grid cells usually find the same basin, and refining it twice wastes a start
    found.sort(key=lambda t: -t[0])
    corners = np.array([[0, 0], [wi - 1, 0], [wi - 1, hi - 1], [0, hi - 1]], np.float64)
    min_dist = 0.03 * np.hypot(Wv, Hv)
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    for _, H in found:
        q = apply_h(H, corners)
        if all(np.abs(q - k).max() > min_dist for _, k in kept):
            kept.append((H, q))
            if len(kept) == keep:
                break
    return [H for H, _ in kept]


def _gray8(img: np.ndarray) -> np.ndarray:
    if img.ndim != 2 or img.dtype != np.uint8:
        raise CalibrationError(f"registration needs uint8 (H, W) gray frames, got {img.dtype} {img.shape}")
    return img


def register(ir_frames: list[np.ndarray], vis_frames: list[np.ndarray], starts: int = 12) -> Registration:
    """Estimate the IR -> visible homography from one or more simultaneous frame pairs.

    ir_frames, vis_frames: lists of (H, W) uint8 gray images (all IR frames one size, all
    visible frames one size). The two cameras should look the same way with roughly the same
    field of view (the search covers 0.8-1.25x scale, +-15 deg and +-12 % shift around each of
    :func:`placements`; an IR stream turned by 90 deg, portrait beside a landscape visible, is
    turned back first). Raises :class:`CalibrationError` when no clear, plausible optimum is found.
    """
    if not ir_frames or len(ir_frames) != len(vis_frames):
        raise CalibrationError("auto registration needs the same number (>= 1) of IR and visible frames")
    hi, wi = ir_frames[0].shape[:2]
    hv, wv = vis_frames[0].shape[:2]
    # A portrait IR frame beside a landscape visible one (or the reverse): a camera turned by 90 deg,
    # or a stream stored turned (a Lepton). The IR is turned back first, so its edge orientations
    # match the visible's (the structure field is not invariant to turning), then matched both ways
    # up; T maps the IR's own pixels to the turned ones.
    turned = wi != hi and wv != hv and (wi > hi) != (wv > hv)
    T = np.eye(3)
    if turned:
        T = _quarter_turn((wi, hi))
        ir_frames = [np.ascontiguousarray(np.rot90(_gray8(g))) for g in ir_frames]
    size_ir = (hi, wi) if turned else (wi, hi)
    if min(hi, wi, hv, wv) < 48:
        raise CalibrationError(f"images too small to register ({wi}x{hi} IR, {wv}x{hv} visible; need 48 px)")
    # The visible image at most WORK_MAX across; H_full = S_vis^-1 H_work S_ir.
    k = min(1.0, WORK_MAX / max(wv, hv))
    work = (max(48, round(wv * k)), max(48, round(hv * k)))
    # The IR resized onto it (the start hypothesis "same field of view"); with another shape than
    # the visible, kept at its own shape and the visible's area, and placed by `placements`.
    ir_work = work
    if _other_shape(size_ir, (wv, hv)):
        ki = np.sqrt(work[0] * work[1] / (wi * hi))
        ir_work = (max(48, round(size_ir[0] * ki)), max(48, round(size_ir[1] * ki)))
    S_ir, S_vis = _resize_matrix(size_ir, ir_work) @ T, _resize_matrix((wv, hv), work)
    # CLAHE first: night visible frames and flat thermal scenes keep their edges in dark areas
    clahe = make_clahe()
    ir_w = [
        clahe.apply(
            cv2.resize(
                _gray8(g),
                ir_work,
                interpolation=cv2.INTER_AREA if g.shape[1] > ir_work[0] else cv2.INTER_LINEAR,
            )
        )
        for g in ir_frames
    ]
    vis_w = [clahe.apply(cv2.resize(_gray8(g), work, interpolation=cv2.INTER_AREA)) for g in vis_frames]
    masks = [cv2.resize(content_mask(g), ir_work, interpolation=cv2.INTER_NEAREST) for g in ir_frames]
    n_levels = 1 + max(0, int(np.ceil(np.log2(max(work) / SEARCH_MAX))))
    levels = _levels(ir_w, masks, vis_w, n_levels)
    # Refine every start at the search level (cheap), then only the best few at the finer levels.
    coarse = []
    for H in _starts(levels[0], ir_work, work, starts, half_turn=turned):
        Hl = _refine(levels[0], _to_level(H, levels[0].factor), "affine" if n_levels > 1 else "homography")
        coarse.append((_score(levels[0], Hl), _from_level(Hl, levels[0].factor)))
    coarse.sort(key=lambda t: -t[0])
    best = None
    for _, H in coarse[:FINE_STARTS]:
        for lv in levels[1:]:
            H = _from_level(_refine(lv, _to_level(H, lv.factor), "homography"), lv.factor)
        sc = _score(levels[-1], H)
        if best is None or sc > best[0]:
            best = (sc, H)
    if best is None:
        raise CalibrationError(
            "auto registration found no start where the two images overlap; "
            "are these frames of the same scene? Use `rtfuse calibrate points` instead"
        )
    score, H_work = best
    contrast = _contrast(levels[-1], H_work)
    H = normalise(np.linalg.inv(S_vis) @ H_work @ S_ir)
    why = implausibility(H, (wi, hi), (wv, hv))
    if why is not None:
        raise CalibrationError(
            f"auto registration gave an implausible mapping: {why}. Nothing written; "
            "try more frames, or `rtfuse calibrate points` / `checkerboard`"
        )
    if contrast < MIN_CONTRAST:
        raise CalibrationError(
            f"auto registration did not converge to a clear optimum (edge correlation {score:.3f}, only "
            f"{contrast:.3f} above its surroundings; need {MIN_CONTRAST}"
            f"{'; the IR frame was tried turned by 90 deg, both ways up' if turned else ''}). "
            "The images may share too few "
            "edges (fog, night, a featureless scene), show different scenes, or the fields of view differ by more "
            "than the search covers (0.8-1.25x). Nothing written; try frames "
            "with more structure, or `rtfuse calibrate points` / `checkerboard`"
        )
    return Registration(H=H, score=score, contrast=contrast, levels=n_levels, starts=starts)
