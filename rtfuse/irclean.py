"""IR clean-up: remove the fixed column/row stripe pattern of thermal cores, then denoise.

Uncooled thermal cores add a fixed offset per column (their readout amplifiers), a weaker one per
row, and white noise. The ``lut`` fuser sharpens pixel-scale detail and would amplify all three, so
:class:`rtfuse.stage.FusionStage` runs this on the IR after AGC and before alignment, where the
stripes are still sensor columns and rows.

Array contract: every function takes a uint8 (H, W) frame, H and W at least 5; frames come out
uint8 (H, W); offsets are float32, (W,) for columns and (H,) for rows, to subtract.

- :func:`estimate_noise`: the white-noise sigma (Immerkaer's operator, blind to shading and to pure
  column and row patterns; a median, so edges do not count).
- :func:`estimate_stripes`: per column, a robust (Huber) mean over rows of the frame minus its 5-tap
  horizontal median; rows likewise; refined a few times. A median keeps step edges, so a real
  vertical edge (a pole three or more pixels wide) leaves no residual and is not taken for a stripe.
- :func:`remove_stripes`: subtracts the offsets and, given a noise sigma, denoises in the same pass
  with a separable 5x5 bilateral-type filter whose range kernel scales with that sigma (a clean
  frame is barely touched).
- :func:`clean_ir`: the three for one frame. :class:`IrCleaner`: the same for a stream; the pattern is
  fixed in time, so the per-frame estimates are averaged (less noisy, and flicker-free).

The kernels are serial (``nogil``): the stage's thread runs them beside the parallel fusion kernel,
and on 2 cores a second thread pool per frame costs more than it saves.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rtfuse.errors import InputError

# Huber clip of the residuals, in their own standard deviations (at least 1 level): stripes and noise
# pass almost whole, while a thin line in the scene moves an offset by at most this much per refinement.
HUBER_K = 2.0
# Scale (in columns or rows) of a pattern's smooth part, which the residual cannot see (it is scene
# shading as much as stripes): the offsets are kept free of it.
SMOOTH_SIGMA = 8.0
# Refinements of the estimate per frame: each is ~0.15 ms at 640x480; more remove a little more of the
# pattern but also more of thin vertical lines.
FRAME_ITERATIONS = 3
# IrCleaner: weight of each new frame in the running offsets and noise level (after the first 1/n).
MOMENTUM = 0.2
# Denoise: neighbours differing by this many noise sigmas or more get no weight (triangular range
# kernel), within a 5-tap Gaussian of this sigma along each axis.
RANGE_K = 5.0
SPATIAL_SIGMA = 1.5
_TAPS = np.exp(-0.5 * (np.arange(-2, 3) / SPATIAL_SIGMA) ** 2).astype(np.float32)


@njit(inline="always")
def _med5(a, b, c, d, e):
    """Median of five values with six comparisons: drop the least of four, twice."""
    if b < a:
        a, b = b, a
    if d < c:
        c, d = d, c
    if c < a:
        a, b, c, d = c, d, a, b
    a = e  # the old a is the least of four: not the median
    if b < a:
        a, b = b, a
    if c < a:
        a, b, c, d = c, d, a, b
    return min(b, c)


@njit(inline="always")
def _clip(v, t):
    return -t if v < -t else (t if v > t else v)


@njit(cache=True, nogil=True)
def _column_update(x, col, row, t):
    """Per column: mean over rows of the Huber-clipped (``t``) residual of ``y = x - col - row`` minus
    its 5-tap horizontal median (borders reflected)."""
    h, w = x.shape
    acc = np.zeros(w, np.float32)
    y = np.empty(w + 4, np.float32)
    for i in range(h):
        ri = row[i]
        for j in range(w):
            y[j + 2] = np.float32(x[i, j]) - col[j] - ri
        y[0], y[1] = y[4], y[3]
        y[w + 2], y[w + 3] = y[w], y[w - 1]
        for j in range(w):
            acc[j] += _clip(y[j + 2] - _med5(y[j], y[j + 1], y[j + 2], y[j + 3], y[j + 4]), t)
    return acc / np.float32(h)


@njit(cache=True, nogil=True, fastmath=True)
def _row_update(x, col, row, t):
    """Per row: mean over columns of the Huber-clipped residual of ``y`` minus its 5-tap vertical
    median (borders reflected). Rows are read whole, so the inner loop vectorises."""
    h, w = x.shape
    out = np.empty(h, np.float32)
    for i in range(h):
        i0, i1 = abs(i - 2), abs(i - 1)
        i3 = i + 1 if i + 1 < h else 2 * h - 3 - i
        i4 = i + 2 if i + 2 < h else 2 * h - 4 - i
        r0, r1, r2, r3, r4 = row[i0], row[i1], row[i], row[i3], row[i4]
        s = np.float32(0.0)
        for j in range(w):
            cj = col[j]
            y2 = np.float32(x[i, j]) - cj - r2
            m = _med5(
                np.float32(x[i0, j]) - cj - r0,
                np.float32(x[i1, j]) - cj - r1,
                y2,
                np.float32(x[i3, j]) - cj - r3,
                np.float32(x[i4, j]) - cj - r4,
            )
            s += _clip(y2 - m, t)
        out[i] = s / np.float32(w)
    return out


@njit(cache=True, nogil=True)
def _residual_scales(x, col, row, step):
    """Medians of |horizontal| and |vertical| 5-tap median residuals of ``y = x - col - row`` over every
    ``step``-th row (interior pixels), to 1/8 level: the spread the Huber clips are scaled to."""
    h, w = x.shape
    bins = 2048
    hists = np.zeros((2, bins), np.int64)
    r = np.empty((2, w), np.float32)
    y = np.empty((5, w), np.float32)  # rows i-2 .. i+2, destriped
    n = 0
    for i in range(2, h - 2, step):
        for k in range(5):
            rk = row[i + k - 2]
            for j in range(w):
                y[k, j] = np.float32(x[i + k - 2, j]) - col[j] - rk
        for j in range(2, w - 2):  # residuals first (vectorises), then the histogram
            c = y[2, j]
            r[0, j] = abs(c - _med5(y[2, j - 2], y[2, j - 1], c, y[2, j + 1], y[2, j + 2]))
            r[1, j] = abs(c - _med5(y[0, j], y[1, j], c, y[3, j], y[4, j]))
        for q in range(2):
            for j in range(2, w - 2):
                hists[q, min(int(r[q, j] * 8), bins - 1)] += 1
        n += w - 4
    out = np.zeros(2, np.float32)
    for q in range(2):
        s = 0
        for k in range(bins):
            s += hists[q, k]
            if 2 * s >= n:
                out[q] = (k + 0.5) / 8
                break
    return out


@njit(cache=True, nogil=True)
def _immerkaer_median(x, step):
    """Median of ``|N * x|`` over the interior of every ``step``-th row, N = [[1,-2,1],[-2,4,-2],[1,-2,1]].
    The values are integers below 4096: a histogram finds the median in one pass."""
    h, w = x.shape
    hist = np.zeros(4096, np.int64)
    n = 0
    for i in range(1, h - 1, step):
        for j in range(1, w - 1):
            a = np.int32(x[i - 1, j - 1]) - 2 * np.int32(x[i - 1, j]) + np.int32(x[i - 1, j + 1])
            b = np.int32(x[i, j - 1]) - 2 * np.int32(x[i, j]) + np.int32(x[i, j + 1])
            c = np.int32(x[i + 1, j - 1]) - 2 * np.int32(x[i + 1, j]) + np.int32(x[i + 1, j + 1])
            hist[abs(a - 2 * b + c)] += 1
            n += 1
    half = (n + 1) // 2
    s = 0
    for k in range(4096):
        s += hist[k]
        if s >= half:
            return k
    return 0


@njit(cache=True, nogil=True)
def _subtract(x, col, row):
    """uint8 ``round(x - col - row)``, clipped to 0..255."""
    h, w = x.shape
    out = np.empty((h, w), np.uint8)
    for i in range(h):
        ri = row[i] - np.float32(0.5)  # + 0.5 rounds; folded into the row term
        for j in range(w):
            v = np.float32(x[i, j]) - col[j] - ri
            out[i, j] = 0 if v < 0 else (255 if v >= 255 else np.uint8(v))
    return out


@njit(cache=True, nogil=True, fastmath=True)
def _subtract_denoise(x, col, row, t, taps):
    """``x - col - row`` smoothed along rows, then columns: each 5-tap pass weighs a neighbour by
    ``taps[k] * max(0, 1 - |v - centre| / t)`` (borders reflected), rounded to uint8.

    Tap loops are outside the pixel loops, so every inner loop runs over a contiguous row and vectorises.
    """
    h, w = x.shape
    tmp = np.empty((h, w + 4), np.float32)  # rows destriped, padded, then smoothed along the row
    out = np.empty((h, w), np.uint8)
    inv = np.float32(1.0) / t
    one, zero = np.float32(1.0), np.float32(0.0)
    num = np.empty(w, np.float32)
    den = np.empty(w, np.float32)
    for i in range(h):
        y = tmp[i]
        ri = row[i]
        for j in range(w):
            y[j + 2] = np.float32(x[i, j]) - col[j] - ri
        y[0], y[1] = y[4], y[3]
        y[w + 2], y[w + 3] = y[w], y[w - 1]
        num[:] = 0
        den[:] = 0
        for k in range(5):
            wk = taps[k]
            for j in range(w):
                a = max(one - abs(y[j + k] - y[j + 2]) * inv, zero) * wk
                num[j] += a * y[j + k]
                den[j] += a
        for j in range(w):  # every read of y is done: overwrite it in place
            y[j + 2] = num[j] / den[j]
    for i in range(h):
        c = tmp[i]
        num[:] = 0
        den[:] = 0
        for k in range(5):
            ik = i + k - 2
            ik = -ik if ik < 0 else (2 * h - 2 - ik if ik >= h else ik)
            v = tmp[ik]
            wk = taps[k]
            for j in range(w):
                a = max(one - abs(v[j + 2] - c[j + 2]) * inv, zero) * wk
                num[j] += a * v[j + 2]
                den[j] += a
        for j in range(w):
            o = num[j] / den[j] + np.float32(0.5)
            out[i, j] = np.uint8(min(max(o, zero), np.float32(255.0)))
    return out


def _frame(ir: np.ndarray) -> np.ndarray:
    """``ir`` checked against the contract, C-contiguous (one compiled kernel for every caller)."""
    if not isinstance(ir, np.ndarray) or ir.dtype != np.uint8 or ir.ndim != 2:
        what = f"{ir.dtype} array of shape {ir.shape}" if isinstance(ir, np.ndarray) else type(ir).__name__
        raise InputError(f"the IR clean-up takes a uint8 (H, W) frame, got a {what}")
    if ir.shape[0] < 5 or ir.shape[1] < 5:
        raise InputError(f"the IR clean-up needs at least 5x5 pixels, got {ir.shape[1]}x{ir.shape[0]}")
    return np.ascontiguousarray(ir)


def _high_pass(v: np.ndarray) -> np.ndarray:
    """``v`` minus its Gaussian smoothing over ``SMOOTH_SIGMA`` samples (reflected ends), float32."""
    r = min(int(3 * SMOOTH_SIGMA), v.shape[0] - 1)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / SMOOTH_SIGMA) ** 2)
    smooth = np.convolve(np.pad(v.astype(np.float64), r, mode="reflect"), k / k.sum(), mode="valid")
    return (v - smooth).astype(np.float32)


def estimate_noise(ir: np.ndarray) -> float:
    """The standard deviation of the white noise in a uint8 (H, W) frame, in levels.

    About 64 k samples (whole rows, evenly spaced) are plenty for a median.
    """
    ir = _frame(ir)
    h, w = ir.shape
    step = max(1, (h - 2) * (w - 2) // 65536)
    # |N(0, 36 s^2)| has median 0.6745 * 6 s; + 0.5 centres the integer bin.
    return (_immerkaer_median(ir, step) + 0.5) / (0.6745 * 6.0)


def estimate_stripes(ir: np.ndarray, *, iterations: int = FRAME_ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Column and row offsets of a uint8 (H, W) frame: float32 (W,) and (H,), to subtract.

    Each of ``iterations`` refinements measures the residual pattern of the frame as corrected so far
    (one pass leaves about a quarter of the pattern: the median it is measured against contains it),
    with Huber clips scaled to the spread of the residuals then: wide while the stripes are strong,
    narrow once they are gone, so a thin line in the scene moves an offset little. Only the
    pixel-scale part of a pattern is estimated: its smooth part (``SMOOTH_SIGMA``) cannot be told
    from scene shading.
    """
    ir = _frame(ir)
    h, w = ir.shape
    col, row = np.zeros(w, np.float32), np.zeros(h, np.float32)
    step = max(1, h // 24)  # some 24 rows (15 k residuals at 640 wide) are plenty for two medians
    for _ in range(iterations):
        # 1.4826 * median |r|: the standard deviation, were r Gaussian; one level at least.
        sh, sv = _residual_scales(ir, col, row, step)
        col += _column_update(ir, col, row, np.float32(HUBER_K * max(1.4826 * sh, 1.0)))
        row += _row_update(ir, col, row, np.float32(HUBER_K * max(1.4826 * sv, 1.0)))
    return _high_pass(col), _high_pass(row)


def remove_stripes(ir: np.ndarray, col: np.ndarray, row: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """``ir - col[None, :] - row[:, None]`` as uint8 (H, W); with ``sigma`` > 0 (the noise level, in
    levels) also denoised, in the same pass, by an edge-preserving filter scaled to it."""
    ir = _frame(ir)
    h, w = ir.shape
    col, row = np.asarray(col, np.float32), np.asarray(row, np.float32)
    if col.shape != (w,) or row.shape != (h,):
        raise InputError(f"stripe offsets of shapes {col.shape} and {row.shape} do not fit a {w}x{h} frame")
    if sigma <= 0:
        return _subtract(ir, col, row)
    # Half a level at least: below that, the range kernel would divide by (nearly) zero.
    return _subtract_denoise(ir, col, row, np.float32(RANGE_K * max(sigma, 0.5)), _TAPS)


def clean_ir(ir: np.ndarray, denoise: bool = True) -> np.ndarray:
    """Destripe (and with ``denoise``, denoise) one uint8 (H, W) IR frame; uint8 (H, W) out.

    Stateless: the offsets come from this frame alone. Video should use :class:`IrCleaner`, whose
    estimate improves over frames.
    """
    col, row = estimate_stripes(ir)
    return remove_stripes(ir, col, row, estimate_noise(ir) if denoise else 0.0)


class IrCleaner:
    """``cleaner(ir) -> ir``: :func:`clean_ir` for one stream of uint8 (H, W) IR frames.

    Every frame is measured on its own, and the offsets (``col``, ``row``) and noise level (``sigma``)
    used are running means of those measurements: the mean of the frames so far, then an exponential
    moving average with weight ``momentum`` for the newest. The pattern is fixed in time, so this
    averages the noise out of the estimate and keeps the output from flickering, and a changed pattern
    (after a shutter calibration) is followed with a time constant of about 1 / ``momentum`` frames.
    No frame's measurement starts from the previous correction, so a static thin line cannot be worn
    away frame after frame. A new frame size starts over; :meth:`reset` does so for unrelated stills.
    """

    def __init__(self, momentum: float = MOMENTUM, denoise: bool = True) -> None:
        if not 0.0 < momentum <= 1.0:
            raise InputError(f"IR clean-up momentum must be within (0, 1], got {momentum}", option="momentum")
        self.momentum, self.denoise = float(momentum), bool(denoise)
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next frame is measured on its own."""
        self.col: np.ndarray | None = None
        self.row: np.ndarray | None = None
        self.sigma: float | None = None
        self.frames = 0

    def __call__(self, ir: np.ndarray) -> np.ndarray:
        ir = _frame(ir)
        if self.col is not None and self.row is not None and (len(self.row), len(self.col)) != ir.shape:
            self.reset()  # another camera or mode: the old pattern does not apply
        sigma = estimate_noise(ir)
        self.frames += 1
        m = max(self.momentum, 1.0 / self.frames)  # 1/n first: the first frames count evenly
        self.sigma = sigma if self.sigma is None else self.sigma + m * (sigma - self.sigma)
        col, row = estimate_stripes(ir)
        if self.col is None or self.row is None:
            self.col, self.row = col, row
        else:
            self.col = self.col + np.float32(m) * (col - self.col)
            self.row = self.row + np.float32(m) * (row - self.row)
        return remove_stripes(ir, self.col, self.row, self.sigma if self.denoise else 0.0)
