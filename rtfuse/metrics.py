"""Standard infrared-visible fusion metrics, computed as the evaluator most papers share.

That evaluator was released with CDDFuse (CVPR 2023); ``../shared/METRICS.md`` fixes the
conventions. Images enter as the evaluator reads them: OpenCV BGR, float32, OpenCV's BGR->gray,
``np.round``; values 0..255. Notation: F fused, A **infrared**, B visible. This module uses only
numpy and OpenCV; the test suite cross-checks it against SciPy / scikit-image / scikit-learn.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from rtfuse.errors import InputError

NAMES = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "SSIM255", "CC")


def to_gray(img: np.ndarray) -> np.ndarray:
    """The evaluator's gray image: BGR (or gray) -> float32 -> cvtColor(BGR2GRAY) -> np.round."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = cv2.cvtColor(img.astype(np.uint8) if img.dtype != np.uint8 else img, cv2.COLOR_GRAY2BGR)
    return np.round(cv2.cvtColor(img.astype(np.float32), cv2.COLOR_BGR2GRAY))


def read_gray(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: not a readable image")
    return to_gray(img)


def _conv_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """scipy.signal.convolve2d(img, kernel, mode='same') with zero fill, for odd kernels."""
    return cv2.filter2D(
        img.astype(np.float64),
        cv2.CV_64F,
        cv2.flip(kernel.astype(np.float64), -1),
        borderType=cv2.BORDER_CONSTANT,
    )


def _conv_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """scipy.signal.convolve2d(img, kernel, mode='valid') for odd square kernels."""
    r = kernel.shape[0] // 2
    full = cv2.filter2D(
        img.astype(np.float64),
        cv2.CV_64F,
        cv2.flip(kernel.astype(np.float64), -1),
        borderType=cv2.BORDER_CONSTANT,
    )
    return full[r : full.shape[0] - r, r : full.shape[1] - r]


def entropy(f: np.ndarray) -> float:
    """EN: Shannon entropy (bits) of the 256-bin histogram of ``uint8(round(F))``."""
    h = np.bincount(np.uint8(np.round(f)).ravel(), minlength=256) / f.size
    return float(-np.sum(h * np.log2(h + (h == 0))))


def sd(f: np.ndarray) -> float:
    """SD: population standard deviation of F."""
    return float(np.std(f.astype(np.float64)))


def sf(f: np.ndarray) -> float:
    """SF: sqrt(mean squared horizontal + mean squared vertical neighbour differences)."""
    f = f.astype(np.float64)
    return float(np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2)))


def ag(f: np.ndarray) -> float:
    """AG: mean of sqrt((Gx^2 + Gy^2) / 2), numpy.gradient (central, one-sided at borders)."""
    gy, gx = np.gradient(f.astype(np.float64))
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2)))


def _mi(x: np.ndarray, y: np.ndarray) -> float:
    """Mutual information (nats) of two label images, as sklearn.metrics.mutual_info_score."""
    xi = np.unique(x.ravel(), return_inverse=True)[1]
    yi = np.unique(y.ravel(), return_inverse=True)[1]
    nx, ny = xi.max() + 1, yi.max() + 1
    joint = np.bincount(xi * ny + yi, minlength=nx * ny).reshape(nx, ny).astype(np.float64)
    n = joint.sum()
    px, py = joint.sum(1), joint.sum(0)
    nz = joint > 0
    cij = joint[nz]
    outer = np.outer(px, py)[nz]
    return max(float(np.sum(cij / n * (np.log(cij) + np.log(n) - np.log(outer)))), 0.0)


def mi(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """MI: MI(F, A) + MI(F, B), pixel values as discrete labels, in nats."""
    return _mi(f, a) + _mi(f, b)


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean()
    y = y.astype(np.float64) - y.mean()
    return float(np.sum(x * y) / np.sqrt(np.sum(x * x) * np.sum(y * y)))


def scd(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SCD: corr(A, F - B) + corr(B, F - A)."""
    f, a, b = (v.astype(np.float64) for v in (f, a, b))
    return _corr(a, f - b) + _corr(b, f - a)


def cc(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """CC: mean of corr(A, F) and corr(B, F)."""
    return float(np.mean([_corr(a, f), _corr(b, f)]))


def _vif_pair(ref: np.ndarray, dist: np.ndarray) -> float:
    """Pixel-domain multi-scale VIF of Han et al. (4 scales, Gaussian windows, sigma_n^2 = 2)."""
    sigma_nsq, eps = 2.0, 1e-10
    ref, dist = ref.astype(np.float64), dist.astype(np.float64)
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        sdv = n / 5.0
        m = (n - 1) / 2.0
        y, x = np.ogrid[-m : m + 1, -m : m + 1]
        h = np.exp(-(x * x + y * y) / (2.0 * sdv * sdv))
        h[h < np.finfo(h.dtype).eps * h.max()] = 0
        win = h / h.sum()
        if scale > 1:
            ref = _conv_valid(ref, win)[::2, ::2]
            dist = _conv_valid(dist, win)[::2, ::2]
        mu1, mu2 = _conv_valid(ref, win), _conv_valid(dist, win)
        s1 = _conv_valid(ref * ref, win) - mu1 * mu1
        s2 = _conv_valid(dist * dist, win) - mu2 * mu2
        s12 = _conv_valid(ref * dist, win) - mu1 * mu2
        s1[s1 < 0] = 0
        s2[s2 < 0] = 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps] = 0
        sv[s1 < eps] = s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps] = 0
        sv[s2 < eps] = 0
        sv[g < 0] = s2[g < 0]
        g[g < 0] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1.0 + g * g * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1.0 + s1 / sigma_nsq))
    v = num / den
    return 1.0 if np.isnan(v) else float(v)


def vif(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """VIF: VIF(A, F) + VIF(B, F), multi-scale pixel-domain (Han et al.)."""
    return _vif_pair(a, f) + _vif_pair(b, f)


_SOBEL_Y = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], np.float64)
_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64)


def _edges(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sx = _conv_same(img, _SOBEL_X)
    sy = _conv_same(img, _SOBEL_Y)
    g = np.sqrt(sx * sx + sy * sy)
    a = np.full(img.shape, math.pi / 2)
    nz = sx != 0
    a[nz] = np.arctan(sy[nz] / sx[nz])
    return g, a


def _q_edge(a_src, g_src, a_f, g_f) -> np.ndarray:
    tg, kg, dg, ta, ka, da = 0.9994, -15, 0.5, 0.9879, -22, 0.8
    gaf = np.zeros_like(a_src)
    gt, eq, lt = g_src > g_f, g_src == g_f, g_src < g_f
    gaf[gt] = g_f[gt] / g_src[gt]
    gaf[eq] = g_f[eq]
    gaf[lt] = g_src[lt] / g_f[lt]
    aaf = 1 - np.abs(a_src - a_f) / (math.pi / 2)
    return tg / (1 + np.exp(kg * (gaf - dg))) * (ta / (1 + np.exp(ka * (aaf - da))))


def qabf(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Qabf: Xydeas-Petrovic edge preservation (Sobel; Tg .9994, kg -15, Dg .5, Ta .9879, ka -22, Da .8)."""
    ga, aa = _edges(a)
    gb, ab = _edges(b)
    gf, af = _edges(f)
    qa, qb = _q_edge(aa, ga, af, gf), _q_edge(ab, gb, af, gf)
    return float(np.sum(qa * ga + qb * gb) / np.sum(ga + gb))


def _ssim(x: np.ndarray, y: np.ndarray, data_range: float) -> float:
    """scikit-image structural_similarity defaults: 7x7 uniform window, sample covariance, mean over
    the image minus a 3-pixel border."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    win, k1, k2 = 7, 0.01, 0.03
    np_ = win * win
    cov_norm = np_ / (np_ - 1)

    def box(v):
        return cv2.boxFilter(v, cv2.CV_64F, (win, win), normalize=True, borderType=cv2.BORDER_REFLECT)

    ux, uy = box(x), box(y)
    vx = cov_norm * (box(x * x) - ux * ux)
    vy = cov_norm * (box(y * y) - uy * uy)
    vxy = cov_norm * (box(x * y) - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(f: np.ndarray, a: np.ndarray, b: np.ndarray, data_range: float = 2.0) -> float:
    """SSIM(F, A) + SSIM(F, B). The default data_range = 2 reproduces the shared evaluator (float
    input to scikit-image <= 0.19); pass 255 for the physically meaningful SSIM255."""
    return _ssim(f, a, data_range) + _ssim(f, b, data_range)


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR of ``x`` against a reference ``ref`` (same shape, 0..255; gray or colour)."""
    mse = float(np.mean((x.astype(np.float64) - ref.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def evaluate(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> dict[str, float]:
    """All metrics of one triple. Inputs: BGR or gray images as read by OpenCV (any 8-bit)."""
    f, a, b = to_gray(fused), to_gray(ir), to_gray(vis)
    if not (f.shape == a.shape == b.shape):
        raise InputError(f"fused {f.shape}, IR {a.shape} and visible {b.shape} must have the same size")
    return {
        "EN": entropy(f),
        "SD": sd(f),
        "SF": sf(f),
        "AG": ag(f),
        "MI": mi(f, a, b),
        "SCD": scd(f, a, b),
        "VIF": vif(f, a, b),
        "Qabf": qabf(f, a, b),
        "SSIM": ssim(f, a, b),
        "SSIM255": ssim(f, a, b, 255.0),
        "CC": cc(f, a, b),
    }


def chroma_error(fused_bgr: np.ndarray, vis_bgr: np.ndarray) -> float:
    """Mean |CbCr(fused) - CbCr(visible)| in levels: how much of the visible colour was lost."""
    cf = cv2.cvtColor(fused_bgr, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(np.float64)
    cv = cv2.cvtColor(vis_bgr, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(np.float64)
    return float(np.mean(np.abs(cf - cv)))
