"""Temporal stability of a fused stream: a motion-adaptive recursive filter on the fused luma.

Every backend maps sensor noise through a contrast gain, so a still scene shimmers more after fusion
than in its sources (``docs/flicker.md``: the default ``lut`` flickers 34-70 % more than max(Y, IR)).
The filter keeps one state per stream, the filtered fused luma ``S``, and per pixel moves it towards
the new fused luma ``Y'`` by a share that grows with the change:

    d = Y' - S;   k = KMIN for |d| <= LO, 1 for |d| >= HI, linear between;   S <- round(S + k d)

(``S`` is an integer, and a step is at least one level once |d| >= 1.5.)

A small change (sensor and compression noise) is averaged over a few frames; a large one (motion, a
new object, light switched on) passes at once, so there is no second frame of latency and no trail
behind anything with more than ``HI`` levels of contrast. A scene cut (over ``CUT`` of a sample of
the visible pixels changing by more than ``LO``, more than noise does) restarts the state, so the
new scene is shown as it is; a pan that moves most of the picture does the same. The ``lut``
backend runs the filter inside its kernel (:func:`rtfuse.fusion.kernels.fuse_lut4d`, on the fused
luma before it is rounded); every other backend gets it as a pass of its own here. The
output keeps the visible chroma: the luma change is added to B, G and R alike, as the fusion does.

Only streams use it (video files, cameras, ``eval --video``); stills reset the stage before every
pair, which restarts the filter, so a still is fused exactly as without it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from rtfuse.fusion.kernels import _luma, apply_luma, delta_row

LO = 8.0  # levels: changes up to this are treated as noise and averaged (weight KMIN)
HI = 24.0  # levels: changes from this on pass unfiltered
KMIN = 0.2  # weight of the new frame for noise-sized changes (about 1 / KMIN frames of averaging)
CUT = 0.5  # share of sampled visible pixels changed by more than LO that marks a scene cut (or a pan)
_SAMPLE = 16  # scene-cut test on every 16th row and column of the visible frame: 1/256 of the pixels


@njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _pass(out, state, mode, steady):
    """In place, after a fuser that does not filter: ``mode`` 1 restarts ``state`` (uint8 (H, W))
    from the luma of ``out`` (uint8 (H, W, 3) BGR), 2 filters it and moves the luma of ``out`` to the
    result, adding the difference to each channel (clipped). The kernels' own row step
    (:func:`rtfuse.fusion.kernels.delta_row`), on the luma of the fused frame instead of the
    luma before rounding."""
    h, w = state.shape
    flat = out.reshape(h, 3 * w)
    for y in prange(h):
        orow = flat[y]
        lum = np.empty(w, np.int32)
        fv = np.empty(w, np.float32)
        for x in range(w):
            lum[x] = _luma(orow[3 * x], orow[3 * x + 1], orow[3 * x + 2])
            fv[x] = np.float32(lum[x])
        dy = np.empty(w, np.int32)
        delta_row(fv, lum, 0, dy, state[y], mode, steady)
        if mode == 2:
            apply_luma(orow, dy, orow)


@njit(cache=True, nogil=True)
def _changed_share(vis, sample, level, step):
    """Share of the visible pixels on a ``step`` grid whose luma differs from ``sample`` (the last
    frame's, int32) by more than ``level``; ``sample`` takes this frame's."""
    n = 0
    big = 0
    for y in range(sample.shape[0]):
        for x in range(sample.shape[1]):
            lum = _luma(vis[y * step, x * step, 0], vis[y * step, x * step, 1], vis[y * step, x * step, 2])
            if abs(lum - sample[y, x]) > level:
                big += 1
            sample[y, x] = lum
            n += 1
    return big / max(n, 1)


class TemporalFilter:
    """``filter(fused, vis) -> fused``: the recursive filter above over one stream's frames.

    ``fused`` uint8 (H, W, 3) BGR is filtered in place (the stage owns it); ``vis`` is the visible
    frame it was fused from, uint8 (H, W, 3) BGR, which decides scene cuts. The ``lut`` backend runs
    the same filter inside its kernel (:meth:`begin` gives it the state), so it costs no pass of
    its own. ``lo``, ``hi`` (levels, 0 <= lo < hi) and ``kmin`` (0 < kmin <= 1) set the response;
    ``cut`` the scene-cut share. A frame of another size restarts the filter. ``cuts`` counts the
    restarts after the first frame.
    """

    def __init__(self, lo: float = LO, hi: float = HI, kmin: float = KMIN, cut: float = CUT) -> None:
        if not (0.0 <= lo < hi and 0.0 < kmin <= 1.0 and 0.0 < cut <= 1.0):
            raise ValueError(
                f"need 0 <= lo < hi, 0 < kmin <= 1 and 0 < cut <= 1; got {lo}, {hi}, {kmin}, {cut}"
            )
        self.params = np.array([lo, hi, kmin], np.float32)  # as the kernels take them
        self.cut = cut
        self.cuts = 0
        self._state: np.ndarray | None = None
        self._sample: np.ndarray | None = None

    def begin(self, vis: np.ndarray) -> tuple[np.ndarray, int]:
        """``(state, mode)`` for the frame fused from ``vis``: the uint8 (H, W) filtered luma and 1 to
        restart it (first frame, new size, scene cut) or 2 to filter. An integer state, as the
        output is: reading and writing it is most of the filter's cost (2 MB each way at 1080p, half
        of a Q8.8 state); its steps are at least one level once the fused luma is 1.5 levels away
        (:func:`rtfuse.fusion.kernels.delta_row`), so a still pixel settles within 1 level."""
        h, w = vis.shape[:2]
        mode = 2
        if self._state is None or self._state.shape != (h, w):
            self._state = np.empty((h, w), np.uint8)
            self._sample = np.empty(((h + _SAMPLE - 1) // _SAMPLE, (w + _SAMPLE - 1) // _SAMPLE), np.int32)
            mode = 1
        if _changed_share(vis, self._sample, self.params[0], _SAMPLE) > self.cut and mode == 2:
            self.cuts += 1
            mode = 1
        return self._state, mode

    def __call__(self, fused: np.ndarray, vis: np.ndarray) -> np.ndarray:
        if fused.dtype != np.uint8 or fused.ndim != 3 or fused.shape[2] != 3 or not fused.flags.c_contiguous:
            raise ValueError(
                f"fused frame must be C-contiguous uint8 (H, W, 3), got {fused.dtype} {fused.shape}"
            )
        if vis.shape[:2] != fused.shape[:2]:
            raise ValueError(f"visible frame {vis.shape} and fused frame {fused.shape} differ in size")
        state, mode = self.begin(vis)
        _pass(fused, state, mode, self.params)
        return fused

    def reset(self) -> None:
        """Forget the stream: the next frame passes as it is and starts the filter."""
        self._state = self._sample = None
