"""Temporal metrics of a fused video: motion-compensated flicker, flowD and mean SF.

Per-image metrics cannot see flicker, the frame-to-frame change a fuser adds on top of scene
motion. Here the motion is taken out first: the backward optical flow of the **visible** luma
(frame t to t-1) warps the fused frame t-1 onto frame t, and only what is left is measured. The
protocol is ``../shared/METRICS.md`` ("Video: motion-compensated flicker") plus an occlusion check;
``docs/flicker.md`` states it for users.

- Flow: OpenCV Farneback with :data:`FARNEBACK`, on the visible luma as uint8. It is computed once
  per frame pair (:func:`estimate_motion`) and shared by every measure and every fused sequence.
- Mask (:attr:`Motion.valid`): the flow lands inside frame t-1; the pixel is at least
  :data:`BORDER` px from every edge; forward-backward consistency (Sundaram et al., ECCV 2010):
  ``|b + f(p + b)|^2 <= FB_ALPHA (|b|^2 + |f(p + b)|^2) + FB_BETA`` with b the backward and f the
  forward flow. Pixels uncovered by a moving object, or entering the view, fail it.
- Flicker: mean |F_t - warp(F_{t-1})| of the luma (the metric convention of :mod:`rtfuse.metrics`,
  levels 0..255) over the mask, averaged over the clip's steps. The same on max(Y, IR) is the
  reference that carries the sources' own noise and motion residue (:func:`max_reference`).
- flowD: mean L2 norm of the BGR difference F_t - warp(F_{t-1}) over the same mask (levels).

Arrays follow the frame conventions: colour frames uint8 (H, W, 3) BGR, gray frames (H, W).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from rtfuse import metrics
from rtfuse.errors import InputError

# Farneback parameters, fixed so that numbers compare across runs and with ../shared/METRICS.md.
# A 4-level pyramid and a 21 px window follow motions of ~20 px per frame at 640x480.
FARNEBACK = {
    "pyr_scale": 0.5,
    "levels": 4,
    "winsize": 21,
    "iterations": 3,
    "poly_n": 5,
    "poly_sigma": 1.1,
    "flags": 0,
}
BORDER = 8  # px masked at every edge: Farneback's window is unreliable there
# Forward-backward consistency (Sundaram et al. 2010): a tolerance growing with the motion, plus
# half a pixel squared for the flow's own sub-pixel error.
FB_ALPHA, FB_BETA = 0.01, 0.5


@dataclass(frozen=True)
class Motion:
    """Where each pixel of frame t was in frame t-1, and which pixels to trust.

    ``map_x``, ``map_y``: float32 (H, W), the position in frame t-1 of pixel (y, x) of frame t
    (``cv2.remap`` maps). ``valid``: bool (H, W), the mask every measure averages over.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    valid: np.ndarray

    @property
    def kept(self) -> float:
        """The share of pixels the mask keeps, 0..1."""
        return float(self.valid.mean())


def luma(img: np.ndarray) -> np.ndarray:
    """float32 (H, W) luma in levels 0..255 of a uint8 (H, W, 3) BGR or (H, W) gray frame:
    the evaluator's gray (:func:`rtfuse.metrics.to_gray`), so flicker and SF share one definition."""
    return metrics.to_gray(img)


def _flow_input(img: np.ndarray) -> np.ndarray:
    return luma(img).astype(np.uint8)  # Farneback takes 8-bit; to_gray is already rounded


def estimate_motion(
    prev: np.ndarray, cur: np.ndarray, border: int = BORDER, occlusion: bool = True
) -> Motion:
    """The motion from visible frame ``cur`` (t) back to ``prev`` (t-1), and its mask.

    ``prev``, ``cur``: uint8 (H, W, 3) BGR or (H, W) gray of the same size; their luma is used.
    ``border``: px masked at every edge. ``occlusion``: apply the forward-backward check (two
    flows instead of one); without it the mask is only "inside the frame" and the border, as in
    ../shared/METRICS.md.
    """
    if prev.shape[:2] != cur.shape[:2]:
        raise InputError(f"frames t-1 {prev.shape[:2]} and t {cur.shape[:2]} differ in size")
    y0, y1 = _flow_input(prev), _flow_input(cur)
    h, w = y1.shape
    back = cv2.calcOpticalFlowFarneback(y1, y0, None, **FARNEBACK)  # y1(p) ~ y0(p + back(p))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + back[..., 0], gy + back[..., 1]
    # Both ends of the flow at least ``border`` px inside their frames: near any edge, of t or of
    # t-1, Farneback's window sees padding, and content entering the view would leak in.
    b = float(border)
    valid = (map_x >= b) & (map_x <= w - 1 - b) & (map_y >= b) & (map_y <= h - 1 - b)
    if border:
        edge = np.zeros_like(valid)
        edge[border : h - border, border : w - border] = True
        valid &= edge
    if occlusion:
        fwd = cv2.calcOpticalFlowFarneback(y0, y1, None, **FARNEBACK)
        # The forward flow where each pixel lands in t-1: a consistent pair cancels out.
        fw = cv2.remap(fwd, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.sum((back + fw) ** 2, axis=2)
        valid &= err <= FB_ALPHA * (np.sum(back**2, axis=2) + np.sum(fw**2, axis=2)) + FB_BETA
    return Motion(map_x, map_y, valid)


def warp(prev: np.ndarray, motion: Motion) -> np.ndarray:
    """``prev`` (frame t-1; (H, W) or (H, W, C), any dtype cv2.remap takes) resampled onto frame t,
    bilinear. Pixels outside :attr:`Motion.valid` hold edge-replicated values: mask them."""
    return cv2.remap(prev, motion.map_x, motion.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def flicker(prev: np.ndarray, cur: np.ndarray, motion: Motion) -> float:
    """Mean |F_t - warp(F_{t-1})| of the luma (levels) over the mask; NaN when the mask is empty.

    ``prev``, ``cur``: fused frames t-1, t, uint8 (H, W, 3) BGR or (H, W) gray."""
    if not motion.valid.any():
        return float("nan")
    d = np.abs(luma(cur) - warp(luma(prev), motion))
    return float(d[motion.valid].mean())


def _bgr_float(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img, np.float32)
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def flow_distance(prev: np.ndarray, cur: np.ndarray, motion: Motion) -> float:
    """flowD of one step: mean L2 norm over B, G, R of F_t - warp(F_{t-1}) (levels) over the mask.

    As VideoFusion and TemCoCo publish it, except for the flow: they use SEA-RAFT, this uses the
    Farneback flow of the visible luma (:data:`FARNEBACK`), so the numbers do not compare with
    theirs directly. ``prev``, ``cur``: uint8 (H, W, 3) BGR; a gray (H, W) frame counts as three
    equal channels. NaN when the mask is empty.
    """
    if not motion.valid.any():
        return float("nan")
    d = _bgr_float(cur) - warp(_bgr_float(prev), motion)
    return float(np.sqrt(np.sum(d * d, axis=2))[motion.valid].mean())


def max_reference(vis: np.ndarray, ir: np.ndarray) -> np.ndarray:
    """max(Y, IR) as uint8 (H, W): the visible luma ``vis`` (uint8 (H, W, 3) BGR) against the IR
    aligned to it (uint8 (H, W)). The reference flicker is measured on it."""
    y = luma(vis)
    if ir.shape != y.shape:
        raise InputError(f"IR {ir.shape} and visible {y.shape} differ in size")
    return np.maximum(y, ir.astype(np.float32)).astype(np.uint8)


class SequenceScore:
    """Accumulates one fused sequence, frame by frame: :meth:`result` gives
    ``{"flicker", "flowD", "SF", "frames"}`` (clip means; flicker and flowD over the steps whose mask
    is not empty)."""

    def __init__(self) -> None:
        self._prev: np.ndarray | None = None
        self._flicker: list[float] = []
        self._flowd: list[float] = []
        self._sf: list[float] = []

    def add(self, frame: np.ndarray, motion: Motion | None) -> None:
        """Frame t (uint8 (H, W, 3) BGR or (H, W) gray) with the motion from the visible frame t to
        t-1; None for the first frame of the clip (nothing to compare with)."""
        frame = np.asarray(frame)
        if self._prev is not None:
            if motion is None:
                raise ValueError("every frame after the first needs its motion")
            if frame.shape[:2] != self._prev.shape[:2]:
                raise InputError(
                    f"frame {len(self._sf)} is {frame.shape[:2]}, the clip {self._prev.shape[:2]}"
                )
            self._flicker.append(flicker(self._prev, frame, motion))
            self._flowd.append(flow_distance(self._prev, frame, motion))
        self._sf.append(metrics.sf(luma(frame)))
        self._prev = frame

    def result(self) -> dict[str, float]:
        def mean(v: list[float]) -> float:
            v = [x for x in v if not np.isnan(x)]
            return float(np.mean(v)) if v else float("nan")

        return {
            "flicker": mean(self._flicker),
            "flowD": mean(self._flowd),
            "SF": mean(self._sf),
            "frames": len(self._sf),
        }


class TemporalScorer:
    """Scores several fused sequences of one clip with one flow per frame pair.

    Feed :meth:`add` the visible frame t and every sequence's frame t (a mapping name -> frame;
    the same names each time). :meth:`results` gives each name's :meth:`SequenceScore.result`, with
    ``flicker_ratio`` = its flicker / the ``reference`` sequence's when that name is given.
    ``border`` and ``occlusion``: as :func:`estimate_motion`.
    """

    def __init__(self, reference: str | None = None, border: int = BORDER, occlusion: bool = True) -> None:
        self.reference, self.border, self.occlusion = reference, border, occlusion
        self.scores: dict[str, SequenceScore] = {}
        self._vis: np.ndarray | None = None
        self._kept: list[float] = []

    def add(self, vis: np.ndarray, frames: Mapping[str, np.ndarray]) -> None:
        motion = None
        if self._vis is not None:
            motion = estimate_motion(self._vis, vis, self.border, self.occlusion)
            self._kept.append(motion.kept)
        for name, frame in frames.items():
            self.scores.setdefault(name, SequenceScore()).add(frame, motion)
        self._vis = vis

    @property
    def kept(self) -> float:
        """Mean share of pixels the mask kept over the steps so far (NaN before the second frame)."""
        return float(np.mean(self._kept)) if self._kept else float("nan")

    def results(self) -> dict[str, dict[str, float]]:
        rows = {name: s.result() for name, s in self.scores.items()}
        ref = rows.get(self.reference, {}).get("flicker") if self.reference else None
        for r in rows.values():
            if ref is not None:
                r["flicker_ratio"] = r["flicker"] / ref if ref > 0 else float("nan")
            r["kept"] = self.kept
        return rows


def score_sequence(
    vis: Iterable[np.ndarray], fused: Iterable[np.ndarray], border: int = BORDER, occlusion: bool = True
) -> dict[str, float]:
    """:meth:`SequenceScore.result` of one fused sequence against its visible frames (paired in
    order), plus ``kept``. Both: uint8 (H, W, 3) BGR or (H, W) gray, one size."""
    scorer = TemporalScorer(border=border, occlusion=occlusion)
    for v, f in zip(vis, fused, strict=True):
        scorer.add(v, {"fused": f})
    return scorer.results()["fused"]
