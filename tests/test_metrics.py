"""Fusion metrics checked against values derived independently of rtfuse/metrics.py.

Three kinds of check, none of which repeats the module's own expressions:
- hand-computed cases on tiny arrays (the derivation is in the comment next to each number);
- the published rows of ../shared/METRICS.md, reproduced on the real TNO / MSRS images to the
  printed precision (skipped when ../shared/data is absent);
- cross-checks against the libraries the shared evaluator used (scikit-learn's MI, scikit-image's
  SSIM, SciPy's convolve2d), skipped when the dev extra is not installed.
"""

import math

import cv2
import numpy as np
import pytest

from conftest import data_dir, real_pairs
from rtfuse import metrics

SQRT2 = math.sqrt(2.0)


def tile(block, reps=(4, 4)):
    """A float64 image that repeats ``block``; the histogram and the statistics are the block's."""
    return np.tile(np.asarray(block, np.float64), reps)


def parity(h=8, w=8, axis=0, level=10.0):
    """``level`` on odd rows (axis 0) or odd columns (axis 1), 0 elsewhere. On an even-sized grid
    the row pattern and the column pattern have zero covariance and are independent as labels:
    each of the four (row parity, column parity) combinations covers exactly 1/4 of the pixels."""
    i, j = np.indices((h, w))
    return level * ((i if axis == 0 else j) % 2).astype(np.float64)


# -- EN, SD, SF, AG: hand-computed --------------------------------------------------------------


def test_entropy_by_hand():
    # Two levels, half the pixels each: -2 * 0.5 * log2(0.5) = 1 bit.
    assert metrics.entropy(tile([[0, 255], [255, 0]])) == pytest.approx(1.0, abs=1e-12)
    # Four levels, a quarter each: log2(4) = 2 bits.
    assert metrics.entropy(tile([[0, 1], [2, 3]])) == pytest.approx(2.0, abs=1e-12)
    # 3/4 and 1/4: -(0.75 log2 0.75 + 0.25 log2 0.25) = 0.311278 + 0.5 = 0.8112781 bits.
    assert metrics.entropy(tile([[7, 7], [7, 200]])) == pytest.approx(0.8112781244591328, abs=1e-12)
    # Every one of the 256 levels once: log2(256) = 8 bits; a constant image: 0 bits.
    assert metrics.entropy(np.arange(256, dtype=np.float64).reshape(16, 16)) == pytest.approx(8.0, abs=1e-12)
    assert metrics.entropy(np.full((5, 7), 42.0)) == 0.0
    # Values are rounded to the 256 integer bins first: 10.4 and 9.6 both land in bin 10 -> 0 bits.
    assert metrics.entropy(tile([[10.4, 9.6], [9.6, 10.4]])) == 0.0


def test_sd_by_hand():
    # 0 and 255 half each: mean 127.5, every deviation 127.5 -> SD 127.5.
    assert metrics.sd(tile([[0, 255], [255, 0]])) == pytest.approx(127.5, rel=1e-12)
    # (0, 0, 0, 4): mean 1, squared deviations 1, 1, 1, 9 -> population variance 12/4 = 3, SD sqrt(3)
    # (the sample SD, sqrt(12/3) = 2, would be wrong).
    assert metrics.sd(tile([[0, 0], [0, 4]])) == pytest.approx(math.sqrt(3.0), rel=1e-12)


def test_sf_by_hand():
    # Horizontal ramp of step 3: every horizontal difference is 3, every vertical one 0 -> sqrt(9) = 3.
    ramp = np.tile(3.0 * np.arange(9), (6, 1))
    assert metrics.sf(ramp) == pytest.approx(3.0, rel=1e-12)
    assert metrics.sf(ramp.T.copy()) == pytest.approx(3.0, rel=1e-12)
    # Vertical step, rows (0, 0, 10, 10): of the 3 vertical differences per column one is 10 ->
    # mean square 100/3, no horizontal differences -> SF = 10 / sqrt(3).
    step = np.repeat(np.array([[0.0], [0.0], [10.0], [10.0]]), 5, axis=1)
    assert metrics.sf(step) == pytest.approx(10 / math.sqrt(3), rel=1e-12)
    # 0/1 checkerboard: every neighbour difference is +-1 -> sqrt(1 + 1) = sqrt(2).
    assert metrics.sf(tile([[0, 1], [1, 0]])) == pytest.approx(SQRT2, rel=1e-12)


def test_ag_by_hand():
    # Horizontal ramp of step 3: Gx = 3 everywhere (central inside, one-sided at the borders give 3
    # too), Gy = 0 -> mean sqrt(9 / 2) = 3 / sqrt(2).
    ramp = np.tile(3.0 * np.arange(9), (6, 1))
    assert metrics.ag(ramp) == pytest.approx(3 / SQRT2, rel=1e-12)
    # Diagonal ramp 5 (i + j): Gx = Gy = 5 -> sqrt((25 + 25) / 2) = 5.
    i, j = np.indices((6, 7))
    assert metrics.ag(5.0 * (i + j)) == pytest.approx(5.0, rel=1e-12)
    # Columns (0, 0, 10, 10): Gx = (0 - 0)/1, (10 - 0)/2, (10 - 0)/2, (10 - 10)/1 = 0, 5, 5, 0 (central
    # differences, one-sided at the borders) -> mean of 0, 5/sqrt2, 5/sqrt2, 0 = 5 / (2 sqrt2) = 1.7678.
    # Forward differences (0, 10, 0, 0) would give 10 / (4 sqrt2) = 1.7678 too, so also check (0, 10, 10, 10):
    # Gx = 10, 5, 0, 0 -> (10 + 5) / (4 sqrt2) = 2.6517 (forward: 10, 0, 0, 0 -> 1.7678).
    step = np.tile([0.0, 0.0, 10.0, 10.0], (5, 1))
    assert metrics.ag(step) == pytest.approx(5 / (2 * SQRT2), rel=1e-12)
    step = np.tile([0.0, 10.0, 10.0, 10.0], (5, 1))
    assert metrics.ag(step) == pytest.approx(15 / (4 * SQRT2), rel=1e-12)


# -- MI, CC, SCD: hand-computed ------------------------------------------------------------------


def test_mi_by_hand():
    rows, cols = parity(axis=0), parity(axis=1)
    # Identical two-level images, half each: MI(X, X) = H(X) = ln 2 nats; twice for F vs A and F vs B.
    assert metrics.mi(rows, rows, rows) == pytest.approx(2 * math.log(2), rel=1e-12)
    # Row parity and column parity are independent: the joint histogram is the product of the
    # marginals (1/4 = 1/2 * 1/2 in every cell) -> MI 0.
    assert metrics.mi(rows, cols, cols) == pytest.approx(0.0, abs=1e-12)
    assert metrics.mi(rows, rows, cols) == pytest.approx(math.log(2), rel=1e-12)
    # Pixel values are labels: an invertible relabelling (3x + 7) keeps all the information.
    assert metrics.mi(3 * rows + 7, rows, rows) == pytest.approx(2 * math.log(2), rel=1e-12)
    # Labels with probabilities 3/4, 1/4: H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.5623351 nats.
    x = tile([[0, 0], [0, 9]])
    assert metrics.mi(x, x, x) == pytest.approx(2 * 0.5623351446188083, rel=1e-12)
    # Against a constant image there is no information: MI 0 (only the F-vs-A half counts here).
    assert metrics.mi(x, x, np.zeros_like(x)) == pytest.approx(0.5623351446188083, rel=1e-12)


def test_cc_by_hand():
    # A (row parity) and B (column parity) have zero covariance and equal variance v.
    a, b = parity(axis=0), parity(axis=1)
    # F = A: corr(A, F) = 1, corr(B, F) = 0 -> mean 0.5.
    assert metrics.cc(a, a, b) == pytest.approx(0.5, abs=1e-12)
    # F = A + B: cov(A, F) = v, var(F) = 2v -> corr = 1/sqrt(2) for both -> mean 1/sqrt(2).
    assert metrics.cc(a + b, a, b) == pytest.approx(1 / SQRT2, rel=1e-12)
    # F = A, B = 255 - A: corr(A, F) = 1, corr(B, F) = -1 -> mean 0.
    assert metrics.cc(a, a, 255 - a) == pytest.approx(0.0, abs=1e-12)


def test_scd_by_hand():
    a, b = parity(axis=0), parity(axis=1)
    # F = A + B: F - B = A and F - A = B -> corr 1 + 1 = 2.
    assert metrics.scd(a + b, a, b) == pytest.approx(2.0, rel=1e-12)
    # F = A + B/2: corr(A, A - B/2) = v / sqrt(v * (v + v/4)) = 2/sqrt(5); corr(B, B/2) = 1
    # -> SCD = 1 + 2/sqrt(5) = 1.8944272.
    assert metrics.scd(a + b / 2, a, b) == pytest.approx(1 + 2 / math.sqrt(5), rel=1e-12)


# -- SSIM, VIF, Qabf, PSNR: hand-computed cases and defining properties ---------------------------


@pytest.mark.parametrize("data_range", [2.0, 255.0])
def test_ssim_by_hand(data_range):
    x = cv2.GaussianBlur(np.random.default_rng(5).integers(0, 256, (24, 24)).astype(np.float64), (0, 0), 1.5)
    # Identical images: every local SSIM is 1 -> SSIM(F, A) + SSIM(F, B) = 2.
    assert metrics.ssim(x, x, x, data_range) == pytest.approx(2.0, rel=1e-12)
    # Constant images 100 and 50: the variances and covariance are 0, so the contrast-structure
    # factor is C2 / C2 = 1 and SSIM = (2*100*50 + C1) / (100^2 + 50^2 + C1), C1 = (0.01 * data_range)^2:
    # data_range 2 -> C1 = 0.0004 -> 0.8000000064; data_range 255 -> C1 = 6.5025 -> 0.8001040.
    # Plus SSIM(F, B = F) = 1.
    c1 = (0.01 * data_range) ** 2
    expected = {2.0: 0.8000000064, 255.0: 0.8001039859065314}[data_range]
    assert (2 * 100 * 50 + c1) / (100**2 + 50**2 + c1) == pytest.approx(expected, rel=1e-9)
    f, a = np.full((16, 16), 100.0), np.full((16, 16), 50.0)
    assert metrics.ssim(f, a, f, data_range) == pytest.approx(expected + 1.0, rel=1e-9)


def test_vif_properties():
    rng = np.random.default_rng(7)
    x = cv2.GaussianBlur(rng.integers(0, 256, (64, 64)).astype(np.float64), (0, 0), 1.0)
    # F = A = B: the gain g = 1 and the residual variance sv = 0 (clamped to eps) in every window, so
    # each scale's numerator log10(1 + g^2 s1 / (sv + 2)) equals its denominator log10(1 + s1 / 2):
    # VIF = 1 per source -> 2.
    assert metrics.vif(x, x, x) == pytest.approx(2.0, rel=1e-6)
    # An offset changes no local variance or covariance: still 1 per source.
    assert metrics.vif(x + 20, x, x) == pytest.approx(2.0, rel=1e-6)
    # A flat F carries no information: its variance is 0 -> g = 0 -> numerator 0 -> VIF 0.
    assert metrics.vif(np.full_like(x, 100.0), x, x) == pytest.approx(0.0, abs=1e-12)
    # F = k * A: g = k, sv = 0 -> numerator log10(1 + k^2 s1 / 2): below 1 for k < 1, above 1 for k > 1
    # (VIF's known reward for contrast enhancement). Noise lowers it.
    assert metrics.vif(0.5 * x, x, x) < 1.9
    assert metrics.vif(2.0 * x, x, x) > 2.1
    assert metrics.vif(x + rng.normal(0, 20, x.shape), x, x) < 1.5


def test_qabf_by_hand():
    # F = A = B, a horizontal ramp of step 10. With the evaluator's zero-filled Sobel, every pixel's
    # gradient is at least 10 (inside 80), and the angles agree exactly -> A^AF = 1 ->
    # Q_a = 0.9879 / (1 + exp(-22 (1 - 0.8))) = 0.9879 / (1 + e^-4.4).
    # The evaluator's quirk: where |grad A| == |grad F| it sets G^AF = |grad F| (not 1), here >= 10, so
    # Q_g = 0.9994 / (1 + exp(-15 (G - 0.5))) = 0.9994 to double precision.
    # Qabf is a weighted mean of Q_g * Q_a over the pixels -> 0.9994 * 0.9879 / (1 + e^-4.4) = 0.9753328.
    # (G^AF = 1 would give 0.9994 / (1 + e^-7.5) * ... = 0.9747936.)
    ramp = np.tile(10.0 * np.arange(16), (12, 1))
    assert 0.9994 * 0.9879 / (1 + math.exp(-4.4)) == pytest.approx(0.975332768087588, rel=1e-12)
    assert metrics.qabf(ramp, ramp, ramp) == pytest.approx(0.975332768087588, rel=1e-9)
    # F = 0 (flat, and flat against the zero fill too) preserves no edge: G^AF = 0 / |grad A| = 0 ->
    # Q_g = 0.9994 / (1 + e^7.5) = 5.53e-4 at every pixel, and Q_a <= 1 -> Qabf <= 5.53e-4.
    bound = 0.9994 / (1 + math.exp(7.5))
    assert 0 <= metrics.qabf(np.zeros_like(ramp), ramp, ramp) <= bound + 1e-12


def test_psnr_and_chroma():
    x = np.full((8, 8), 100.0)
    assert metrics.psnr(x, x) == math.inf
    # MSE 1 -> 10 log10(255^2) = 48.1308 dB; MSE 4 -> 6.02 dB less.
    assert metrics.psnr(x, x + 1) == pytest.approx(48.130803608679106, rel=1e-12)
    assert metrics.psnr(x + 2, x) == pytest.approx(48.130803608679106 - 10 * math.log10(4), rel=1e-12)
    vis = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.chroma_error(vis, vis) == 0.0
    # A gray image has Cb = Cr = 128; a pure gray copy of a coloured image loses all its colour.
    grey = np.full((4, 4, 3), 90, np.uint8)
    red = grey.copy()
    red[..., 2] = 200  # BGR: more red -> Cr = 128 + 0.713 (R - Y), Y = 90 + 0.299 * 110
    y = 90 + 0.299 * 110
    cr, cb = 128 + 0.713 * (200 - y), 128 + 0.564 * (90 - y)
    assert metrics.chroma_error(grey, red) == pytest.approx((abs(cr - 128) + abs(cb - 128)) / 2, abs=1.0)


def test_to_gray_is_the_evaluators_reading():
    # OpenCV's BGR -> gray: 0.114 B + 0.587 G + 0.299 R, then np.round; a gray image is unchanged.
    bgr = np.array([[[10, 20, 30], [255, 0, 0]]], np.uint8)
    np.testing.assert_array_equal(metrics.to_gray(bgr), [[round(0.114 * 10 + 0.587 * 20 + 0.299 * 30), 29]])
    g = np.array([[0, 7, 255]], np.uint8)
    np.testing.assert_array_equal(metrics.to_gray(g), g)


# -- the published rows of ../shared/METRICS.md on the real data -----------------------------------

# Copied from ../shared/METRICS.md ("The numbers to beat"): means over each set, computed with the
# shared evaluator. `max` (per-pixel maximum of the gray sources) and `mean` (their rounded average)
# need no model, so rtfuse.metrics must reproduce them to the printed precision. The LUT-Fuse rows
# need the published checkpoint and the RoadScene `max` row CDDFuse's 50-image list; neither is here.
PUBLISHED_COLUMNS = ("EN", "SD", "SF", "MI", "SCD", "VIF", "Qabf", "SSIM")
PUBLISHED = {
    ("tno", "mean"): "6.233 | 26.11 | 6.95 | 1.602 | 1.541 | 0.573 | 0.356 | 1.014",
    ("tno", "max"): "6.813 | 40.01 | 10.06 | 4.713 | 1.540 | 0.924 | 0.599 | 1.000",
    ("msrs", "max"): "6.714 | 48.05 | 10.23 | 4.655 | 1.800 | 1.044 | 0.663 | 0.986",
}
BASELINES = {
    "max": lambda a, b: np.maximum(a, b),
    "mean": lambda a, b: np.round((a + b) / 2),
}


@pytest.fixture(scope="module")
def set_means():
    """Per set, per baseline: the mean of each published metric over every pair (computed once)."""
    cache = {}

    def get(name):
        if name not in cache:
            root = data_dir(name)
            rows = {k: [] for k in BASELINES}
            for p in sorted((root / "vis").iterdir()):
                # Read as the evaluator does: 3-channel BGR through OpenCV, gray, rounded.
                a = metrics.read_gray(next((root / "ir").glob(p.stem + ".*")))
                b = metrics.read_gray(p)
                for k, fuse in BASELINES.items():
                    f = fuse(a, b)
                    row = {fn: getattr(metrics, fn)(f) for fn in ("entropy", "sd", "sf")}
                    row |= {fn: getattr(metrics, fn)(f, a, b) for fn in ("mi", "scd", "vif", "qabf", "ssim")}
                    rows[k].append(row)
            names = dict(zip(PUBLISHED_COLUMNS, ("entropy", "sd", "sf", "mi", "scd", "vif", "qabf", "ssim")))
            cache[name] = {
                k: {col: float(np.mean([r[fn] for r in v])) for col, fn in names.items()}
                for k, v in rows.items()
            }
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("dataset,method", sorted(PUBLISHED))
def test_published_rows_are_reproduced(set_means, dataset, method):
    got = set_means(dataset)[method]
    wrong = []
    for col, text in zip(PUBLISHED_COLUMNS, PUBLISHED[(dataset, method)].split("|")):
        text = text.strip()
        decimals = len(text.split(".")[1])
        # Printed precision: the true value rounds to the printed one (half a unit of the last digit).
        if abs(got[col] - float(text)) > 0.5 * 10**-decimals + 1e-9:
            wrong.append(f"{col} {got[col]:.{decimals + 2}f} (published {text})")
    assert not wrong, f"{method} on {dataset}: " + ", ".join(wrong)


# -- cross-checks against the evaluator's libraries (dev extra) -----------------------------------


@pytest.fixture(scope="module")
def triples():
    """(F, A, B) gray float32 triples: two synthetic, two real TNO pairs fused by `lut` (if present)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(2):
        a = cv2.GaussianBlur(rng.integers(0, 256, (70, 90), dtype=np.uint8), (0, 0), 2)
        b = cv2.GaussianBlur(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8), (0, 0), 1)
        f = np.maximum(cv2.cvtColor(a, cv2.COLOR_GRAY2BGR), b)
        out.append((f, a, b))
    try:
        import rtfuse

        for _, vis, ir in real_pairs("tno", 2):
            out.append((rtfuse.load_fuser("lut")(vis, ir), ir, vis))
    except pytest.skip.Exception:
        pass
    return [tuple(metrics.to_gray(x) for x in t) for t in out]


def test_mi_matches_sklearn(triples):
    skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn (dev extra) cross-checks MI")
    for f, a, b in triples:
        ref = skm.mutual_info_score(f.ravel(), a.ravel()) + skm.mutual_info_score(f.ravel(), b.ravel())
        assert metrics.mi(f, a, b) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("data_range", [2.0, 255.0])
def test_ssim_matches_skimage(triples, data_range):
    skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (dev extra) cross-checks")
    for f, a, b in triples:
        # Recent scikit-image computes float32 input in float32; we compute in float64 as the old one did.
        ref = sum(skimage_metrics.structural_similarity(f, x, data_range=data_range) for x in (a, b))
        assert metrics.ssim(f, a, b, data_range) == pytest.approx(ref, rel=1e-5)


def test_convolutions_match_scipy():
    """VIF and Qabf use the evaluator's scipy.signal.convolve2d ('valid' Gaussian windows, 'same'
    zero-filled Sobel); metrics.py does them with OpenCV. Check that part against SciPy itself."""
    scipy_signal = pytest.importorskip("scipy.signal", reason="scipy (dev extra) cross-checks")
    rng = np.random.default_rng(3)
    img = rng.uniform(0, 255, (23, 31))
    asym = rng.normal(size=(3, 3))  # not symmetric: a missing kernel flip would show
    for k in (asym, metrics._SOBEL_X, metrics._SOBEL_Y):
        np.testing.assert_allclose(
            metrics._conv_same(img, k), scipy_signal.convolve2d(img, k, mode="same"), rtol=1e-10, atol=1e-9
        )
    for k in (asym, rng.uniform(size=(5, 5)), rng.uniform(size=(9, 9))):
        np.testing.assert_allclose(
            metrics._conv_valid(img, k), scipy_signal.convolve2d(img, k, mode="valid"), rtol=1e-10, atol=1e-9
        )


def test_eval_cli_fused_folder_equals_backend(tmp_path):
    import json
    import subprocess
    import sys

    from conftest import REPO
    from rtfuse.synthetic import SyntheticScene

    scene = SyntheticScene(96, 64, seed=3)
    for d in ("vis", "ir"):
        (tmp_path / d).mkdir()
    for i in range(3):
        vis, ir = scene.render(i * 7)
        cv2.imwrite(str(tmp_path / "vis" / f"p{i}.png"), vis)
        cv2.imwrite(str(tmp_path / "ir" / f"p{i}.png"), ir)

    def cli(*args):
        r = subprocess.run(
            [sys.executable, "-m", "rtfuse.cli", *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
        return r

    cli(
        "fuse",
        "--vis",
        tmp_path / "vis",
        "--ir",
        tmp_path / "ir",
        "-o",
        tmp_path / "fused",
        "--backend",
        "lut4d",
    )
    cli(
        "eval",
        "--vis",
        tmp_path / "vis",
        "--ir",
        tmp_path / "ir",
        "--backend",
        "lut4d",
        "--json",
        tmp_path / "a.json",
        "--csv",
        tmp_path / "a.csv",
    )
    cli(
        "eval",
        "--vis",
        tmp_path / "vis",
        "--ir",
        tmp_path / "ir",
        "--fused",
        tmp_path / "fused",
        "--reference",
        tmp_path / "fused",
        "--json",
        tmp_path / "b.json",
    )
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    for k in metrics.NAMES:
        assert a["mean"][k] == pytest.approx(b["mean"][k], rel=1e-9)
    assert b["mean"]["PSNR"] == float("inf")
    assert (tmp_path / "a.csv").read_text().splitlines()[0].startswith("image,EN,SD")
