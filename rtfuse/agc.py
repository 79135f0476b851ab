"""Automatic gain control: 16-bit thermal counts to 8-bit, stable over time."""

from __future__ import annotations

import cv2
import numpy as np

from rtfuse.errors import InputError

# CLAHE for 8-bit images of either camera (IR after AGC, calibration frames). A clip limit of 2 lifts local
# contrast in dark or flat areas without amplifying sensor noise there (OpenCV's default, 40, barely clips);
# 8x8 tiles adapt to regions an eighth of the frame across, each with pixels enough for a histogram.
CLAHE_CLIP = 2.0
CLAHE_TILES = (8, 8)


def make_clahe() -> cv2.CLAHE:
    """A CLAHE operator with the settings above (``.apply`` takes uint8 (H, W))."""
    return cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=CLAHE_TILES)


class Agc:
    """Map uint16 (H, W) thermal frames to uint8 (H, W).

    Modes: ``percentile`` (stretch between the ``lo``/``hi`` percentiles), ``minmax``, or
    ``fixed:LO:HI`` (raw counts). The percentile/minmax limits are smoothed over frames with an
    exponential moving average (``smoothing`` = weight of the previous limits), so the image does
    not pump when a hot object enters. ``clahe`` adds local contrast (OpenCV CLAHE) afterwards.
    """

    def __init__(
        self,
        mode: str = "percentile",
        lo: float = 1.0,
        hi: float = 99.0,
        smoothing: float = 0.9,
        clahe: bool = False,
    ) -> None:
        self.fixed: tuple[float, float] | None = None
        if mode.startswith("fixed"):
            try:
                _, a, b = mode.split(":")
                self.fixed = (float(a), float(b))
            except ValueError:
                raise InputError(f"AGC mode {mode!r}: write fixed:LO:HI, e.g. fixed:7000:9000") from None
            if not self.fixed[0] < self.fixed[1]:
                raise InputError(f"AGC mode {mode!r}: LO must be below HI")
            mode = "fixed"
        if mode not in ("percentile", "minmax", "fixed"):
            raise InputError(f"AGC mode {mode!r}: choose percentile, minmax or fixed:LO:HI")
        if not 0.0 <= lo < hi <= 100.0:
            raise InputError(f"AGC percentiles must satisfy 0 <= lo < hi <= 100, got {lo}, {hi}")
        if not 0.0 <= smoothing < 1.0:
            raise InputError(f"AGC smoothing must be within [0, 1), got {smoothing}")
        self.mode, self.lo, self.hi, self.smoothing = mode, lo, hi, smoothing
        self._limits: tuple[float, float] | None = None
        self._clahe = make_clahe() if clahe else None

    def _frame_limits(self, ir: np.ndarray) -> tuple[float, float]:
        sample = ir[::2, ::2].ravel()  # a quarter of the pixels is plenty for two percentiles
        if self.mode == "minmax":
            return float(sample.min()), float(sample.max())
        hist = np.bincount(sample, minlength=65536)
        cdf = np.cumsum(hist)
        n = cdf[-1]
        lo = float(np.searchsorted(cdf, n * self.lo / 100.0))
        hi = float(np.searchsorted(cdf, n * self.hi / 100.0))
        return lo, hi

    def reset(self) -> None:
        """Forget the smoothed limits: the next frame starts a new stream."""
        self._limits = None

    def limits(self) -> tuple[float, float] | None:
        """The current (smoothed) raw-count limits mapped to 0 and 255."""
        return self.fixed or self._limits

    def __call__(self, ir: np.ndarray) -> np.ndarray:
        if ir.dtype != np.uint16 or ir.ndim != 2:
            raise InputError(f"AGC expects uint16 (H, W) thermal frames, got {ir.dtype} {ir.shape}")
        if self.fixed:
            lo, hi = self.fixed
        else:
            lo, hi = self._frame_limits(ir)
            if self._limits is not None:
                a = self.smoothing
                lo, hi = a * self._limits[0] + (1 - a) * lo, a * self._limits[1] + (1 - a) * hi
            self._limits = (lo, hi)
        scale = 255.0 / max(hi - lo, 1.0)
        out = np.clip((ir.astype(np.float32) - np.float32(lo)) * np.float32(scale) + 0.5, 0, 255).astype(
            np.uint8
        )
        return self._clahe.apply(out) if self._clahe is not None else out
