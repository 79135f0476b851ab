"""Fusion metrics against SciPy / scikit-image / scikit-learn implementations of the shared evaluator."""

import math

import cv2
import numpy as np
import pytest

from conftest import real_pairs
from rtfuse import metrics

scipy_signal = pytest.importorskip("scipy.signal", reason="scipy (dev extra) cross-checks the metrics")
skm = pytest.importorskip("sklearn.metrics", reason="scikit-learn (dev extra) cross-checks MI")
skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image (dev extra) cross-checks SSIM")
convolve2d = scipy_signal.convolve2d


# The shared evaluator's formulas, written against the libraries it used (the reference).
def ref_vif_pair(ref, dist):
    sigma_nsq, eps, num, den = 2, 1e-10, 0.0, 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        sd = n / 5.0
        m = (n - 1.0) / 2.0
        y, x = np.ogrid[-m : m + 1, -m : m + 1]
        h = np.exp(-(x * x + y * y) / (2.0 * sd * sd))
        h[h < np.finfo(h.dtype).eps * h.max()] = 0
        win = h / h.sum()
        if scale > 1:
            ref = convolve2d(ref, np.rot90(win, 2), mode="valid")[::2, ::2]
            dist = convolve2d(dist, np.rot90(win, 2), mode="valid")[::2, ::2]
        mu1 = convolve2d(ref, np.rot90(win, 2), mode="valid")
        mu2 = convolve2d(dist, np.rot90(win, 2), mode="valid")
        s1 = convolve2d(ref * ref, np.rot90(win, 2), mode="valid") - mu1 * mu1
        s2 = convolve2d(dist * dist, np.rot90(win, 2), mode="valid") - mu2 * mu2
        s12 = convolve2d(ref * dist, np.rot90(win, 2), mode="valid") - mu1 * mu2
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
        num += np.sum(np.log10(1.0 + (g**2.0) * s1 / (sv + sigma_nsq)))
        den += np.sum(np.log10(1.0 + s1 / sigma_nsq))
    return num / den


def ref_qabf(f, a, b):
    def arr(img):
        h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]).astype(np.float32)
        h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]).astype(np.float32)
        sx, sy = convolve2d(img, h3, mode="same"), convolve2d(img, h1, mode="same")
        g = np.sqrt(sx * sx + sy * sy)
        ang = np.zeros_like(img)
        ang[sx == 0] = math.pi / 2
        ang[sx != 0] = np.arctan(sy[sx != 0] / sx[sx != 0])
        return g, ang

    def q(aa, ga, af, gf):
        gaf = np.zeros_like(aa)
        gaf[ga > gf] = gf[ga > gf] / ga[ga > gf]
        gaf[ga == gf] = gf[ga == gf]
        gaf[ga < gf] = ga[ga < gf] / gf[ga < gf]
        aaf = 1 - np.abs(aa - af) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (gaf - 0.5))) * (0.9879 / (1 + np.exp(-22 * (aaf - 0.8))))

    ga, aa = arr(a)
    gb, ab = arr(b)
    gf, af = arr(f)
    return np.sum(q(aa, ga, af, gf) * ga + q(ab, gb, af, gf) * gb) / np.sum(ga + gb)


def triples():
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
    return out


@pytest.fixture(scope="module", params=range(4))
def triple(request):
    t = triples()
    if request.param >= len(t):
        pytest.skip("real TNO pairs absent")
    f, a, b = (metrics.to_gray(x) for x in t[request.param])
    return f, a, b


def test_simple_metrics(triple):
    f, a, b = triple
    h = np.bincount(np.uint8(np.round(f)).ravel(), minlength=256) / f.size
    assert metrics.entropy(f) == pytest.approx(-np.sum(h * np.log2(h + (h == 0))), rel=1e-9)
    assert metrics.sd(f) == pytest.approx(np.std(f), rel=1e-6)
    gy, gx = np.gradient(f)
    assert metrics.ag(f) == pytest.approx(np.mean(np.sqrt((gx**2 + gy**2) / 2)), rel=1e-6)
    sf = np.sqrt(np.mean((f[:, 1:] - f[:, :-1]) ** 2) + np.mean((f[1:, :] - f[:-1, :]) ** 2))
    assert metrics.sf(f) == pytest.approx(sf, rel=1e-6)
    assert metrics.cc(f, a, b) == pytest.approx(np.mean([np.corrcoef(a.ravel(), f.ravel())[0, 1],
                                                         np.corrcoef(b.ravel(), f.ravel())[0, 1]]), rel=1e-6)
    scd = np.corrcoef(a.ravel(), (f - b).ravel())[0, 1] + np.corrcoef(b.ravel(), (f - a).ravel())[0, 1]
    assert metrics.scd(f, a, b) == pytest.approx(scd, rel=1e-6)


def test_mi_matches_sklearn(triple):
    f, a, b = triple
    ref = skm.mutual_info_score(f.ravel(), a.ravel()) + skm.mutual_info_score(f.ravel(), b.ravel())
    assert metrics.mi(f, a, b) == pytest.approx(ref, rel=1e-9)


def test_vif_matches_scipy_reference(triple):
    f, a, b = (x.astype(np.float64) for x in triple)
    assert metrics.vif(f, a, b) == pytest.approx(ref_vif_pair(a, f) + ref_vif_pair(b, f), rel=1e-7)


def test_qabf_matches_scipy_reference(triple):
    f, a, b = (x.astype(np.float64) for x in triple)
    assert metrics.qabf(f, a, b) == pytest.approx(ref_qabf(f, a, b), rel=1e-7)


@pytest.mark.parametrize("data_range", [2.0, 255.0])
def test_ssim_matches_skimage(triple, data_range):
    f, a, b = triple
    # Recent scikit-image computes float32 input in float32; we compute in float64 as the old one did.
    ref = sum(skimage_metrics.structural_similarity(f, x, data_range=data_range) for x in (a, b))
    assert metrics.ssim(f, a, b, data_range) == pytest.approx(ref, rel=1e-5)


def test_psnr_and_chroma():
    x = np.full((8, 8), 100.0)
    assert metrics.psnr(x, x) == math.inf
    assert metrics.psnr(x, x + 1) == pytest.approx(10 * math.log10(255**2))
    vis = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert metrics.chroma_error(vis, vis) == 0.0


def test_metrics_reproduce_the_published_baselines_on_tno():
    """METRICS.md lists 'mean' and 'max' on TNO computed with the shared evaluator: we match them."""
    import rtfuse.images  # noqa: F401
    from conftest import data_dir

    root = data_dir("tno")
    rows = {"mean": [], "max": []}
    for p in sorted((root / "vis").iterdir()):
        a = metrics.read_gray(next((root / "ir").glob(p.stem + ".*")))
        b = metrics.read_gray(p)
        for name, f in (("mean", np.round((a + b) / 2)), ("max", np.maximum(a, b))):
            rows[name].append([metrics.entropy(f), metrics.sd(f), metrics.sf(f), metrics.mi(f, a, b),
                               metrics.scd(f, a, b), metrics.vif(f, a, b), metrics.qabf(f, a, b), metrics.ssim(f, a, b)])
    published = {"mean": [6.233, 26.11, 6.95, 1.602, 1.541, 0.573, 0.356, 1.014],
                 "max": [6.813, 40.01, 10.06, 4.713, 1.540, 0.924, 0.599, 1.000]}
    for name, ref in published.items():
        got = np.mean(rows[name], axis=0)
        np.testing.assert_allclose(got, ref, atol=0.006, err_msg=name)


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
        r = subprocess.run([sys.executable, "-m", "rtfuse.cli", *map(str, args)], cwd=REPO, capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        return r

    cli("fuse", "--vis", tmp_path / "vis", "--ir", tmp_path / "ir", "-o", tmp_path / "fused", "--backend", "lut4d")
    cli("eval", "--vis", tmp_path / "vis", "--ir", tmp_path / "ir", "--backend", "lut4d", "--json", tmp_path / "a.json",
        "--csv", tmp_path / "a.csv")
    cli("eval", "--vis", tmp_path / "vis", "--ir", tmp_path / "ir", "--fused", tmp_path / "fused",
        "--reference", tmp_path / "fused", "--json", tmp_path / "b.json")
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    for k in metrics.NAMES:
        assert a["mean"][k] == pytest.approx(b["mean"][k], rel=1e-9)
    assert b["mean"]["PSNR"] == float("inf")
    assert (tmp_path / "a.csv").read_text().splitlines()[0].startswith("image,EN,SD")
