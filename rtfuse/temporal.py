"""Temporal stability of a fused stream: a motion-adaptive recursive filter on the fused luma.

Every backend maps sensor noise through a contrast gain, so a still scene shimmers more after fusion
than in its sources (``docs/flicker.md``: the default ``lut`` flickers 34-70 % more than max(Y, IR)).
The filter keeps one state per stream, the filtered fused luma ``S``, and per pixel moves it towards
the new fused luma ``Y'`` by a share that grows with the change:

    d = Y' - S;   k = KMIN for |d| <= LO, 1 for |d| >= HI, linear between;   S <- S + k d

A small change (sensor and compression noise) is averaged over a few frames; a large one (motion, a
new object, light switched on) passes at once, so there is no second frame of latency and no trail
behind anything with more than ``HI`` levels of contrast. A scene cut (over ``CUT`` of the sampled
pixels changing by more than ``LO``, more than noise does) restarts the state, so the new scene is
shown as it is; a pan that moves most of the picture does the same. The
output keeps the visible chroma: the luma change is added to B, G and R alike, as the fusion does.

Only streams use it (video files, cameras, ``eval --video``); stills reset the stage before every
pair, which restarts the filter, so a still is fused exactly as without it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from rtfuse.color import luma_fixed

LO = 8.0  # levels: changes up to this are treated as noise and averaged (weight KMIN)
HI = 24.0  # levels: changes from this on pass unfiltered
KMIN = 0.2  # weight of the new frame for noise-sized changes (about 1 / KMIN frames of averaging)
CUT = 0.5  # share of sampled pixels changed by more than LO that marks a scene cut
_SAMPLE = 8  # scene-cut test on every 8th row and column: 1/64 of the pixels

_luma_fixed = njit(inline="always")(luma_fixed)


@njit(cache=True, nogil=True)
def _changed_share(out, state, level, step):
    """Share of pixels on a ``step`` grid whose luma in ``out`` differs from ``state`` by more than ``level``."""
    h, w = state.shape
    n = 0
    big = 0
    for y in range(0, h, step):
        for x in range(0, w, step):
            lum = _luma_fixed(np.int32(out[y, x, 0]), np.int32(out[y, x, 1]), np.int32(out[y, x, 2]))
            n += 1
            if abs(np.float32(lum) - state[y, x]) > level:
                big += 1
    return big / max(n, 1)


@njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _filter(out, state, lo, hi, kmin):
    """In place: ``state`` float32 (H, W) <- the filtered luma; ``out`` uint8 (H, W, 3) BGR gets the
    difference between the filtered and its own luma added to each channel (clipped).

    Per row in three passes that vectorise (luma, state update, BGR update), as the LUT kernels do.
    """
    h, w = state.shape
    flat = out.reshape(h, 3 * w)
    slope = (np.float32(1.0) - kmin) / (hi - lo)
    span = hi - lo
    for y in prange(h):
        orow = flat[y]
        srow = state[y]
        lum = np.empty(w, np.int32)
        dd = np.empty(3 * w, np.int32)
        for x in range(w):
            lum[x] = _luma_fixed(np.int32(orow[3 * x]), np.int32(orow[3 * x + 1]), np.int32(orow[3 * x + 2]))
        for x in range(w):
            s = srow[x]
            d = np.float32(lum[x]) - s
            k = kmin + min(max(abs(d) - lo, np.float32(0.0)), span) * slope
            s = s + k * d
            srow[x] = s
            d = np.int32(s + np.float32(0.5)) - lum[x]
            dd[3 * x] = d
            dd[3 * x + 1] = d
            dd[3 * x + 2] = d
        for i in range(3 * w):
            orow[i] = min(max(np.int32(orow[i]) + dd[i], 0), 255)


@njit(parallel=True, cache=True, nogil=True)
def _start(out, state):
    """``state`` <- the luma of ``out`` (a stream's first frame, or the first after a cut)."""
    h, w = state.shape
    for y in prange(h):
        for x in range(w):
            state[y, x] = np.float32(
                _luma_fixed(np.int32(out[y, x, 0]), np.int32(out[y, x, 1]), np.int32(out[y, x, 2]))
            )


class TemporalFilter:
    """``filter(fused) -> fused``: the recursive filter above over one stream's fused frames.

    ``fused`` is uint8 (H, W, 3) BGR and is filtered in place (the stage owns it). ``lo``, ``hi``
    (levels, 0 <= lo < hi) and ``kmin`` (0 < kmin <= 1) set the response; ``cut`` the scene-cut
    share. A frame of another size restarts the filter. ``cuts`` counts the restarts after the first.
    """

    def __init__(self, lo: float = LO, hi: float = HI, kmin: float = KMIN, cut: float = CUT) -> None:
        if not (0.0 <= lo < hi and 0.0 < kmin <= 1.0 and 0.0 < cut <= 1.0):
            raise ValueError(
                f"need 0 <= lo < hi, 0 < kmin <= 1 and 0 < cut <= 1; got {lo}, {hi}, {kmin}, {cut}"
            )
        self.lo, self.hi, self.kmin, self.cut = np.float32(lo), np.float32(hi), np.float32(kmin), cut
        self.cuts = 0
        self._state: np.ndarray | None = None

    def __call__(self, fused: np.ndarray) -> np.ndarray:
        if fused.dtype != np.uint8 or fused.ndim != 3 or fused.shape[2] != 3 or not fused.flags.c_contiguous:
            raise ValueError(
                f"fused frame must be C-contiguous uint8 (H, W, 3), got {fused.dtype} {fused.shape}"
            )
        st = self._state
        if st is None or st.shape != fused.shape[:2]:
            self._state = np.empty(fused.shape[:2], np.float32)
            _start(fused, self._state)
        elif _changed_share(fused, st, self.lo, _SAMPLE) > self.cut:
            self.cuts += 1
            _start(fused, st)
        else:
            _filter(fused, st, self.lo, self.hi, self.kmin)
        return fused

    def reset(self) -> None:
        """Forget the stream: the next frame passes as it is and starts the filter."""
        self._state = None
