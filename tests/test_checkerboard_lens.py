"""Checkerboard calibration with a lens model: intrinsics + distortion, robust pair rejection,
the lens in the YAML and in the Aligner's one remap."""

import cv2
import numpy as np
import pytest

from conftest import run_cli
from rtfuse.align import Aligner, Calibration, Lens, load_calibration, vis_to_ir
from rtfuse.calib.checkerboard import PairResult, detect, fit_lens, object_points, solve
from rtfuse.calib.homography import apply_h
from rtfuse.errors import CalibrationError

PATTERN = (4, 6)
IR_SIZE, VIS_SIZE = (120, 160), (640, 480)  # a Lepton stored rotated (portrait), a VGA visible camera
K_IR = np.array([[150.0, 0.0, 61.0], [0.0, 151.0, 78.0], [0.0, 0.0, 1.0]])
D_IR = np.array([-0.30, 0.12, 0.002, -0.001, 0.0])  # strong barrel, as a wide thermal lens
# undistorted IR pixels -> visible pixels
H_TRUE = np.array([[2.7, -0.12, 150.0], [0.1, 2.6, 25.0], [1e-4, -5e-5, 1.0]])


def poses(n: int, seed: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """(rvec, tvec) of boards in front of the IR camera: tilted up to ~30 deg, spread over the frame."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rvec = np.array([rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.3)])
        R = cv2.Rodrigues(rvec)[0]
        depth = rng.uniform(9.0, 11.0)
        # aim the board centre (1.5, 2.5) at a point spread over the frame
        u, v = rng.uniform(0.3, 0.7) * IR_SIZE[0], rng.uniform(0.3, 0.7) * IR_SIZE[1]
        ray = np.linalg.inv(K_IR) @ np.array([u, v, 1.0])
        tvec = ray * depth - R @ np.array([1.5, 2.5, 0.0])
        out.append((rvec, tvec))
    return out


def ir_corners(rvec, tvec, dist=D_IR) -> np.ndarray:
    return cv2.projectPoints(object_points(PATTERN), rvec, tvec, K_IR, dist)[0].reshape(-1, 2)


def synthetic_pairs(n: int, rng, noise: float = 0.03) -> list[PairResult]:
    """Corner sets: IR through the distorted lens, visible = H_TRUE of the undistorted IR corners."""
    pairs = []
    for i, (r, t) in enumerate(poses(n)):
        ideal = ir_corners(r, t, None)
        ir = ir_corners(r, t) + rng.normal(0, noise, (24, 2))
        vis = apply_h(H_TRUE, ideal) + rng.normal(0, 3 * noise, (24, 2))
        pairs.append(PairResult(f"p{i:02d}", ir_pts=ir, vis_pts=vis))
    return pairs


def true_calib() -> Calibration:
    return Calibration(H_TRUE, IR_SIZE, VIS_SIZE, ir_lens=Lens(K_IR, D_IR, IR_SIZE))


def inside_ir(calib: Calibration, margin: float = 10) -> np.ndarray:
    """Visible pixels (every 4th) whose IR source lies inside the IR frame less ``margin``."""
    ys, xs = np.mgrid[0 : VIS_SIZE[1] : 4, 0 : VIS_SIZE[0] : 4]
    vis = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    ir, ok = vis_to_ir(calib, vis)
    ok &= (ir > margin).all(1) & (ir < np.array(IR_SIZE) - 1 - margin).all(1)
    return vis[ok]


# ---------------------------------------------------------------- fitting


def test_lens_and_homography_reproduce_the_points(rng):
    pairs = synthetic_pairs(14, rng)
    fit = fit_lens([p.ir_pts for p in pairs], PATTERN, IR_SIZE, "IR")
    assert fit.lens is not None, fit.message
    assert fit.rms < 0.1 and "IR lens from 14 boards" in fit.message
    np.testing.assert_allclose(np.diag(fit.lens.camera_matrix)[:2], np.diag(K_IR)[:2], rtol=0.03)
    H = solve(pairs, PATTERN, ir_lens=fit.lens)
    assert not any(p.rejected for p in pairs)
    assert max(p.rms for p in pairs) < 0.15
    # the whole fitted model matches the true one over the IR frame (boards cover its middle)
    fitted = Calibration(H, IR_SIZE, VIS_SIZE, ir_lens=fit.lens)
    vis = inside_ir(true_calib())
    d = np.linalg.norm(vis_to_ir(fitted, vis)[0] - vis_to_ir(true_calib(), vis)[0], axis=1)
    assert np.percentile(d, 95) < 0.3 and d.mean() < 0.15, (d.mean(), d.max())
    # without the lens model the same corners do not fit one homography
    plain = [PairResult(p.name, ir_pts=p.ir_pts, vis_pts=p.vis_pts) for p in pairs]
    solve(plain, PATTERN, max_error=float("inf"))
    assert np.median([p.rms for p in plain]) > 3 * np.median([p.rms for p in pairs])


def test_lens_is_not_modelled_from_too_few_or_square_on_boards(rng):
    pairs = synthetic_pairs(4, rng)
    fit = fit_lens([p.ir_pts for p in pairs], PATTERN, IR_SIZE, "IR")
    assert fit.lens is None and "4 boards, need 5" in fit.message
    flat = [ir_corners(np.zeros(3), np.array([-1.5 + 0.3 * i, -2.5, 10.0]), None) for i in range(6)]
    fit = fit_lens(flat, PATTERN, IR_SIZE, "IR")
    assert fit.lens is None and "not modelled" in fit.message


def test_a_bad_view_is_left_out_of_the_lens_fit(rng):
    pairs = synthetic_pairs(10, rng)
    views = [p.ir_pts.copy() for p in pairs]
    views[3][5] += (2.5, -2.0)  # one corner mis-detected
    fit = fit_lens(views, PATTERN, IR_SIZE, "IR")
    assert fit.lens is not None and "1 view(s) left out" in fit.message, fit.message
    assert np.isnan(fit.distances[3]) and np.isfinite(fit.distances).sum() == 9
    assert fit.rms < 0.1


def test_an_outlier_pair_is_rejected_and_named(rng):
    pairs = synthetic_pairs(12, rng)
    # a board held much nearer: the two cameras see it with parallax, off the common plane
    r, t = poses(1, seed=99)[0]
    t = t * 0.6
    ideal = ir_corners(r, t, None)
    shift = np.array([14.0, -6.0])  # visible pixels of parallax
    pairs.append(PairResult("near", ir_pts=ir_corners(r, t), vis_pts=apply_h(H_TRUE, ideal) + shift))
    fit = fit_lens([p.ir_pts for p in pairs], PATTERN, IR_SIZE, "IR")
    for p, d in zip(pairs, fit.distances):
        p.distance = d
    H = solve(pairs, PATTERN, ir_lens=fit.lens)
    why = {p.name: p.rejected for p in pairs if p.rejected}
    assert list(why) == ["near"], why
    assert why["near"].startswith("RMS ") and "MAD" in why["near"] and "parallax" in why["near"]
    assert all(p.rms < 0.2 for p in pairs[:-1])
    fitted = Calibration(H, IR_SIZE, VIS_SIZE, ir_lens=fit.lens)
    vis = inside_ir(true_calib())
    assert np.linalg.norm(vis_to_ir(fitted, vis)[0] - vis_to_ir(true_calib(), vis)[0], axis=1).mean() < 0.2


# ---------------------------------------------------------------- the Aligner


def smooth_image(size) -> np.ndarray:
    """uint8 (h, w) of slow waves: bilinear resampling errs by well under a level on it, so one
    resampling and two agree to rounding (sharp detail would not, whichever path is right)."""
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float64)
    img = 128 + 50 * np.sin(xs / 9.0 + 0.3) * np.cos(ys / 11.0 - 0.5) + 40 * np.sin((xs + ys) / 13.0)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def test_aligner_with_a_lens_equals_undistort_then_warp():
    ir = smooth_image(IR_SIZE)
    out = Aligner(true_calib(), IR_SIZE, VIS_SIZE)(ir)
    two_steps = cv2.warpPerspective(cv2.undistort(ir, K_IR, D_IR), H_TRUE, VIS_SIZE, flags=cv2.INTER_LINEAR)
    # compare where both see the IR frame; the two-step path also loses what its intermediate
    # undistorted image (the frame's size) crops: a barrel lens sees more than the pinhole frame
    vis = inside_ir(true_calib(), margin=2)
    ideal = apply_h(np.linalg.inv(H_TRUE), vis)
    vis = vis[(ideal > 2).all(1) & (ideal < np.array(IR_SIZE) - 3).all(1)].astype(int)
    d = np.abs(out[vis[:, 1], vis[:, 0]].astype(int) - two_steps[vis[:, 1], vis[:, 0]])
    assert len(d) > 5000 and np.percentile(d, 99) <= 1 and d.mean() < 0.3, (d.mean(), d.max())


def test_a_visible_lens_is_composed_into_the_same_table(rng):
    k_vis = np.array([[520.0, 0, 322.0], [0, 520.0, 238.0], [0, 0, 1]])
    d_vis = np.array([0.08, -0.05, 0.0, 0.0, 0.0])
    calib = Calibration(
        H_TRUE, IR_SIZE, VIS_SIZE, ir_lens=Lens(K_IR, D_IR, IR_SIZE), vis_lens=Lens(k_vis, d_vis, VIS_SIZE)
    )
    # an IR spot lands where the cameras' models put it: undistort IR, H, distort visible
    spot = np.array([[70.0, 90.0]])
    ideal_vis = apply_h(H_TRUE, Lens(K_IR, D_IR, IR_SIZE).undistort(spot))
    want = Lens(k_vis, d_vis, VIS_SIZE).distort(ideal_vis)[0][0]
    ir = np.zeros((IR_SIZE[1], IR_SIZE[0]), np.uint8)
    ir[90, 70] = 255
    ir = cv2.GaussianBlur(ir, (0, 0), 1.5)
    out = Aligner(calib, IR_SIZE, VIS_SIZE)(ir).astype(np.float64)
    ys, xs = np.mgrid[0 : VIS_SIZE[1], 0 : VIS_SIZE[0]]
    centroid = np.array([(xs * out).sum(), (ys * out).sum()]) / out.sum()
    assert np.linalg.norm(centroid - want) < 0.5, (centroid, want)


OLD_YAML = """# rtfuse calibration: homography maps IR pixels to visible pixels
version: 1
homography:
- [5.691533394326866, -0.8100337412869074, 283.8182876465366]
- [0.18650489166583553, 5.1123404670368755, -59.97589410735617]
- [0.0003592389242779116, -0.0010683569071512939, 1.0]
ir_size: [120, 160]
vis_size: [1280, 720]
method: checkerboard
errors: {}
date: '2026-11-22'
notes: ''
"""


def test_a_yaml_without_a_lens_gives_todays_output(tmp_path, rng):
    p = tmp_path / "old.yaml"
    p.write_text(OLD_YAML)
    calib = load_calibration(p)
    assert calib.ir_lens is None and calib.vis_lens is None
    ir = rng.integers(0, 256, (160, 120), dtype=np.uint8)
    out = Aligner(calib, (120, 160), (1280, 720))(ir)
    # the Aligner as it was before lens models: H^-1 per visible pixel, fixed-point tables
    xs, ys = np.meshgrid(np.arange(1280, dtype=np.float64), np.arange(720, dtype=np.float64))
    pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(calib.homography).T
    mx = (pts[..., 0] / pts[..., 2]).astype(np.float32)
    my = (pts[..., 1] / pts[..., 2]).astype(np.float32)
    bad = pts[..., 2] <= 0
    mx[bad], my[bad] = -1e4, -1e4
    m1, m2 = cv2.convertMaps(mx, my, cv2.CV_16SC2)
    np.testing.assert_array_equal(out, cv2.remap(ir, m1, m2, cv2.INTER_LINEAR, borderValue=0))
    # and saving it again writes the same format: version 1, no lens keys
    text = calib.to_yaml()
    assert "version: 1" in text and "lens" not in text


def test_lens_yaml_round_trip(tmp_path):
    true_calib().save(tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "version: 2" in text and "\nir_lens:" in text and "\nvis_lens:" not in text
    c = load_calibration(tmp_path / "c.yaml")
    np.testing.assert_allclose(c.ir_lens.camera_matrix, K_IR)
    np.testing.assert_allclose(c.ir_lens.dist_coeffs, D_IR)
    assert c.ir_lens.size == IR_SIZE


def lens_yaml(**change) -> str:
    lens = {"camera_matrix": K_IR.tolist(), "dist_coeffs": D_IR.tolist(), "image_size": list(IR_SIZE)}
    lens.update(change)
    import yaml

    data = {"version": 2, "homography": H_TRUE.tolist(), "ir_size": list(IR_SIZE), "vis_size": list(VIS_SIZE)}
    data["ir_lens"] = {k: v for k, v in lens.items() if v is not None}
    return yaml.safe_dump(data)


@pytest.mark.parametrize(
    "text, match",
    [
        (lens_yaml(dist_coeffs=[0.1, 0.2, 0.3]), r"ir_lens.dist_coeffs must be 4, 5 or 8 numbers"),
        (lens_yaml(dist_coeffs=["a", 0, 0, 0]), r"ir_lens.dist_coeffs must be"),
        (lens_yaml(dist_coeffs=[0.1, 0.2, 0.0, 0.0, ".nan"]), r"ir_lens.dist_coeffs must be"),
        (lens_yaml(camera_matrix=[[150, 0, 60], [0, 150, 80]]), r"ir_lens.camera_matrix must be"),
        (lens_yaml(camera_matrix=[[-150, 0, 60], [0, 150, 80], [0, 0, 1]]), r"fx, fy > 0"),
        (lens_yaml(camera_matrix=[[150, 2, 60], [0, 150, 80], [0, 0, 1]]), r"camera_matrix must be"),
        (lens_yaml(image_size=[160, 120]), r"image_size \[160, 120\] must equal ir_size"),
        (lens_yaml(image_size=None), r"ir_lens must have exactly camera_matrix, dist_coeffs, image_size"),
        (lens_yaml(dist_coeffs=[0.5, -2.0, 0, 0]), r"folds inside the frame"),
        (lens_yaml().replace("ir_lens:", "vis_lens: [1, 2]\nir_lens:"), r"vis_lens must have exactly"),
        (lens_yaml().replace("ir_size:\n- 120\n- 160", "ir_size: null"), r"must equal ir_size \(None\)"),
    ],
)
def test_malformed_lens_fields_are_one_clear_line(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(CalibrationError, match=match) as e:
        load_calibration(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_a_rotated_stream_is_refused_with_the_reason():
    with pytest.raises(CalibrationError, match=r"turned by 90 deg.*stored rotated as 120x160"):
        Aligner(true_calib(), (160, 120), VIS_SIZE)


# ---------------------------------------------------------------- the command, end to end


SQUARE = 24  # texture pixels per board square


def texture(hot: bool) -> np.ndarray:
    """The board as an image: 5 x 7 squares (4 x 6 inner corners) in a one-square white border;
    ``hot``: as a heated board looks in the IR (the dark squares glow)."""
    dark, light = (230, 60) if hot else (20, 235)
    img = np.full((9 * SQUARE, 7 * SQUARE), light, np.uint8)
    for r in range(7):
        for c in range(5):
            if (r + c) % 2 == 0:
                img[(r + 1) * SQUARE : (r + 2) * SQUARE, (c + 1) * SQUARE : (c + 2) * SQUARE] = dark
    return img


def board_to_ideal_ir(rvec, tvec) -> np.ndarray:
    """Texture pixels -> ideal (undistorted) IR pixels of a board posed by (rvec, tvec)."""
    R = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
    # texture pixel centre i lies at board coordinate (i + 0.5) / SQUARE - 2 (inner corners 0..)
    T = np.array([[1 / SQUARE, 0, 0.5 / SQUARE - 2], [0, 1 / SQUARE, 0.5 / SQUARE - 2], [0, 0, 1]])
    return K_IR @ np.c_[R[:, :2], tvec] @ T


def supersample(k: int) -> np.ndarray:
    return np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1.0]])  # pixel centres kept


def render_ir(rvec, tvec, k: int = 4) -> np.ndarray:
    """The IR shot through the distorted lens, rendered at k x and area-averaged (edges keep their
    sub-pixel place): the ideal image by a homography, then the lens by one remap."""
    w, h = IR_SIZE
    ideal = cv2.warpPerspective(
        texture(True), supersample(k) @ board_to_ideal_ir(rvec, tvec), (w * k, h * k), borderValue=90
    )
    ys, xs = np.mgrid[0 : h * k, 0 : w * k]
    raw = np.stack([(xs.ravel() + 0.5) / k - 0.5, (ys.ravel() + 0.5) / k - 0.5], 1)
    src = Lens(K_IR, D_IR, IR_SIZE).undistort(raw) * k + (k - 1) / 2
    img = cv2.remap(
        ideal,
        src[:, 0].reshape(h * k, w * k).astype(np.float32),
        src[:, 1].reshape(h * k, w * k).astype(np.float32),
        cv2.INTER_LINEAR,
        borderValue=90,
    )
    return cv2.resize(img, IR_SIZE, interpolation=cv2.INTER_AREA)


def render_vis(rvec, tvec, k: int = 3) -> np.ndarray:
    w, h = VIS_SIZE
    warp = supersample(k) @ H_TRUE @ board_to_ideal_ir(rvec, tvec)
    big = cv2.warpPerspective(texture(False), warp, (w * k, h * k), borderValue=110)
    return cv2.resize(big, VIS_SIZE, interpolation=cv2.INTER_AREA)


def test_command_fits_the_lens_names_the_outlier_and_the_yaml_aligns(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vis").mkdir()
    views = poses(9, seed=3)
    moved = int(np.argsort([np.linalg.norm(t) for _, t in views])[4])  # a board at the median distance
    for i, (r, t) in enumerate(views):
        cv2.imwrite(str(tmp_path / "ir" / f"thermal_{i:04d}.png"), render_ir(r, t))
        vis = render_vis(r, t)
        if i == moved:  # the visible shot taken after the board moved: off the common plane
            vis = np.roll(vis, (9, -14), axis=(0, 1))
        cv2.imwrite(str(tmp_path / "vis" / f"zed_{i:04d}.png"), vis)
    out = tmp_path / "c.yaml"
    code, text = run_cli(
        "calibrate",
        "checkerboard",
        "--ir",
        tmp_path / "ir",
        "--vis",
        tmp_path / "vis",
        "--pattern",
        "4x6",
        "-o",
        out,
    )
    assert code == 0, text
    assert "IR lens from 9 boards" in text and f"rejected {moved:04d}: RMS" in text, text
    calib = load_calibration(out)
    assert calib.ir_lens is not None and calib.vis_lens is None
    assert list(calib.errors["rejected"]) == [f"{moved:04d}"] and calib.errors["pairs_used"] == 8
    assert "the board moved between the shots" in calib.errors["rejected"][f"{moved:04d}"]
    assert calib.errors["rms"] < 0.25 and calib.errors["model"] == "IR lens + homography"
    # the written file aligns: IR board corners, warped by the Aligner, land on the visible ones
    r, t = views[(moved + 1) % 9]
    aligned = Aligner(calib, IR_SIZE, VIS_SIZE)(render_ir(r, t))
    got, _ = detect(aligned, PATTERN)
    want, _ = detect(render_vis(r, t), PATTERN)
    assert min(np.abs(got - want).max(), np.abs(got[::-1] - want).max()) < 0.6
