"""The training degradations: each fault does what its documentation says, seeded and shape-preserving,
and the sentences describe what was applied."""

import cv2
import numpy as np
import pytest

from rtfuse.synthetic import SyntheticScene
from rtfuse.training.degrade import (
    FAULT_P,
    IR_FAULTS,
    VIS_FAULTS,
    Degradation,
    apply,
    describe,
    exposed,
    reliability,
    sample,
)


@pytest.fixture(scope="module")
def pair():
    return SyntheticScene(160, 120, seed=3).render(5)


def grad(x):
    x = x.astype(np.float32)
    return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=0)).mean()


def test_every_fault_is_documented_and_drawn():
    assert set(FAULT_P) == set(IR_FAULTS) | set(VIS_FAULTS)
    rng = np.random.default_rng(0)
    draws = [sample(rng) for _ in range(400)]
    for f in FAULT_P:  # every fault occurs, at low and high severity
        sev = [getattr(d, f) for d in draws if getattr(d, f)]
        assert len(sev) > 15 and min(sev) < 0.4 and max(sev) > 0.8, f
    assert 0.08 < np.mean([d.clean for d in draws]) < 0.3
    assert not any(d.vis_dark and d.vis_over for d in draws)
    with pytest.raises(ValueError, match="outside"):
        Degradation(ir_noise=1.5)


def test_apply_is_seeded_and_keeps_shape_and_dtype(pair):
    vis, ir = pair
    d = Degradation(**dict.fromkeys(FAULT_P, 0.6) | {"vis_over": 0.0})
    a = apply(vis, ir, d, np.random.default_rng(7))
    b = apply(vis, ir, d, np.random.default_rng(7))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[0].shape == vis.shape and a[1].shape == ir.shape and a[0].dtype == a[1].dtype == np.uint8
    clean = apply(vis, ir, Degradation(), np.random.default_rng(7))
    assert np.array_equal(clean[0], vis) and np.array_equal(clean[1], ir) and clean[1] is not ir
    with pytest.raises(ValueError, match="uint8"):
        apply(vis.astype(np.float32), ir, d, np.random.default_rng(0))


def test_each_fault_has_its_effect(pair):
    vis, ir = pair
    rng = np.random.default_rng(1)

    def deg(**kw):
        return apply(vis, ir, Degradation(**kw), rng)

    # stripes: a column pattern of the documented size (2 + 14 s levels); rows likewise
    d_ir = deg(ir_stripes=1.0)[1].astype(np.float32) - ir
    assert 12 < d_ir.mean(0).std() < 18 and d_ir.mean(1).std() < 3
    d_ir = deg(ir_rows=1.0)[1].astype(np.float32) - ir
    assert 7 < d_ir.mean(1).std() < 12 and d_ir.mean(0).std() < 3
    noisy = deg(ir_noise=1.0)[1].astype(np.float32) - ir
    assert 12 < noisy.std() < 30 and abs(noisy.mean(0).std()) < 3  # white, not striped
    low = deg(ir_contrast=1.0)[1]
    assert low.std() < 0.45 * ir.std()
    assert grad(deg(ir_blur=1.0)[1]) < 0.7 * grad(ir)
    assert grad(deg(ir_fpn=1.0)[1]) > grad(ir)
    dark = deg(vis_dark=1.0)[0]
    assert dark.mean() < 0.25 * vis.mean()
    assert grad(deg(vis_blur=1.0)[0]) < 0.6 * grad(vis)
    assert grad(deg(vis_motion=1.0)[0]) < 0.8 * grad(vis)
    assert deg(vis_over=1.0)[0].mean() > 1.5 * vis.mean()
    jpeg = deg(vis_jpeg=1.0)[0]
    assert 0 < np.abs(jpeg.astype(int) - vis).mean() and cv2.PSNR(jpeg, vis) < 40


def test_sentences_describe_what_was_applied():
    rng = np.random.default_rng(2)
    seen = set()
    for _ in range(50):
        s = describe(Degradation(ir_stripes=0.9, vis_dark=0.2), rng)
        seen.add(s)
        assert any(w in s for w in ("vertical", "column")) and any(w in s for w in ("light", "dark", "under"))
        assert any(w in s for w in ("strong", "heavy", "severe")) and any(
            w in s for w in ("slight", "mild", "faint", "a little")
        )
        assert "blur" not in s
    assert len(seen) > 20  # varied wording
    assert describe(Degradation(), rng) in ("clean", "both images are clean", "no degradation",
                                            "the thermal and visible images are clean")  # fmt: skip
    only_vis = {describe(Degradation(vis_blur=0.5), rng) for _ in range(40)}
    assert all("blur" in s or "defocus" in s for s in only_vis)
    assert any("clean" in s for s in only_vis) and not all("clean" in s for s in only_vis)


def test_reliability_trusts_the_less_degraded_source():
    assert reliability(Degradation()) == (1.0, 1.0)
    wv, wi = reliability(Degradation(ir_stripes=1.0))
    assert wv + wi == pytest.approx(2) and wv == pytest.approx(3 * wi)
    wv, wi = reliability(Degradation(vis_dark=0.5, ir_noise=0.5))
    assert wv == pytest.approx(wi)


def test_a_restorers_target_keeps_the_exposure_and_drops_the_rest(pair):
    """degrade.exposed: the clean visible at the degraded copy's exposure (dark stays dark), with
    none of its blur or noise; without an exposure fault it is the clean visible itself."""
    vis, ir = pair
    rng = np.random.default_rng(0)
    assert np.array_equal(exposed(vis, Degradation(vis_blur=0.8, vis_jpeg=0.5)), vis)
    d = Degradation(vis_dark=0.7, vis_blur=0.5)
    dark, _ = apply(vis, ir, d, rng)
    target = exposed(vis, d)
    assert abs(float(target.mean()) - float(dark.mean())) < 2 < float(vis.mean()) - float(target.mean())
    assert grad(target) > 1.5 * grad(cv2.GaussianBlur(target, (0, 0), 2.0))  # sharp, not the blurred copy
    over = exposed(vis, Degradation(vis_over=0.5))
    assert over.mean() > vis.mean() + 20
