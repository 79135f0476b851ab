"""`rtfuse eval --degraded-vis/--degraded-ir`: the degraded pair's fusion scored against the clean pair."""

import csv
import math

import cv2
import numpy as np
import pytest

from conftest import data_dir, run_cli
from rtfuse.evaluate import DEGRADED_COLUMNS, evaluate_degraded, evaluate_folder
from rtfuse.fusion.registry import load_fuser
from rtfuse.stage import FusionStage
from rtfuse.synthetic import SyntheticScene

STEMS = ("p0", "p1", "p2")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """vis/ir clean, vis_blur/ir_noise degraded (blur; column stripes + noise, fixed seed)."""
    root = tmp_path_factory.mktemp("degraded")
    scene = SyntheticScene(128, 96, seed=5)
    rng = np.random.default_rng(7)
    for d in ("vis", "ir", "vis_blur", "ir_noise"):
        (root / d).mkdir()
    for i, stem in enumerate(STEMS):
        vis, ir = scene.render(i * 9)
        stripes = rng.normal(0, 12, (1, ir.shape[1]))  # fixed-pattern column noise, as an uncooled sensor's
        noisy = ir + stripes + rng.normal(0, 6, ir.shape)
        cv2.imwrite(str(root / "vis" / f"{stem}.png"), vis)
        cv2.imwrite(str(root / "ir" / f"{stem}.png"), ir)
        cv2.imwrite(str(root / "vis_blur" / f"{stem}.png"), cv2.GaussianBlur(vis, (0, 0), 2.0))
        cv2.imwrite(str(root / "ir_noise" / f"{stem}.png"), np.clip(noisy, 0, 255).astype(np.uint8))
    return root


def _stage() -> FusionStage:
    return FusionStage(load_fuser("lut"), resize_ir=False)


def test_degraded_equal_to_clean_scores_as_the_clean_fusion(pairs):
    rows = evaluate_degraded(pairs / "vis", pairs / "ir", pairs / "vis", pairs / "ir", _stage())
    assert list(rows) == [*STEMS, "mean"]
    for r in rows.values():
        assert set(r) == set(DEGRADED_COLUMNS)
        assert r["PSNR"] == math.inf and r["SF_ratio"] == 1.0 and r["SF"] == r["SF_clean"]
    # The same metric functions as plain eval: a clean "degraded" pair gives eval's numbers.
    plain = evaluate_folder(pairs / "vis", pairs / "ir", fuser=_stage())["mean"]
    for k in ("Qabf", "VIF", "SSIM", "SF"):
        assert rows["mean"][k] == pytest.approx(plain[k], rel=1e-12)


def test_degraded_input_lowers_qabf_and_psnr(pairs):
    clean = evaluate_degraded(pairs / "vis", pairs / "ir", pairs / "vis", None, _stage())["mean"]
    both = evaluate_degraded(pairs / "vis", pairs / "ir", pairs / "vis_blur", pairs / "ir_noise", _stage())
    m = both["mean"]
    assert m["Qabf"] < clean["Qabf"] - 0.02
    assert 10 < m["PSNR"] < 60 and m["SF_clean"] == pytest.approx(clean["SF"])
    # IR stripes and noise alone add high frequencies that the fusion passes on.
    noise = evaluate_degraded(pairs / "vis", pairs / "ir", None, pairs / "ir_noise", _stage())["mean"]
    assert noise["SF_ratio"] > 1.0


def test_sequence_mode_fuses_two_streams(pairs):
    """--sequence: a stateless 8-bit stage scores exactly as stills do; the clean stream needs its own stage."""
    args = (pairs / "vis", pairs / "ir", pairs / "vis_blur", pairs / "ir_noise")
    stills = evaluate_degraded(*args, _stage())
    stream = evaluate_degraded(*args, _stage(), clean_stage=_stage())
    for stem in stills:
        for k in DEGRADED_COLUMNS:
            assert stream[stem][k] == pytest.approx(stills[stem][k], rel=1e-12), (stem, k)
    stage = _stage()
    with pytest.raises(ValueError, match="stage of its own"):
        evaluate_degraded(*args, stage, clean_stage=stage)


def test_fused_folders_score_as_the_backend(pairs, tmp_path):
    """Fusions made elsewhere (--fused) with the clean pair's as --reference give the backend's numbers;
    without a reference the columns that need the clean fusion are NaN."""
    stage = _stage()
    for d in ("fused", "ref"):
        (tmp_path / d).mkdir()
    for stem in STEMS:
        for d, vis, ir in (("fused", "vis_blur", "ir_noise"), ("ref", "vis", "ir")):
            stage.reset()
            fused, _, _ = stage(
                cv2.imread(str(pairs / vis / f"{stem}.png")), cv2.imread(str(pairs / ir / f"{stem}.png"), 0)
            )
            cv2.imwrite(str(tmp_path / d / f"{stem}.png"), fused)
    args = (pairs / "vis", pairs / "ir", pairs / "vis_blur", pairs / "ir_noise")
    made = evaluate_degraded(*args, _stage())["mean"]
    given = evaluate_degraded(*args, fused_dir=tmp_path / "fused", reference_dir=tmp_path / "ref")["mean"]
    for k in DEGRADED_COLUMNS:
        assert given[k] == pytest.approx(made[k], rel=1e-12), k
    bare = evaluate_degraded(*args, fused_dir=tmp_path / "fused")["mean"]
    assert bare["Qabf"] == pytest.approx(made["Qabf"])
    assert all(math.isnan(bare[k]) for k in ("PSNR", "SF_clean", "SF_ratio"))


def test_cli_prints_the_table_and_writes_csv(pairs, tmp_path):
    out = tmp_path / "m.csv"
    rc, text = run_cli(
        "eval", "--vis", pairs / "vis", "--ir", pairs / "ir", "--degraded-vis", pairs / "vis_blur",
        "--degraded-ir", pairs / "ir_noise", "--backend", "lut", "--per-image", "--csv", out,
    )  # fmt: skip
    assert rc == 0, text
    assert "rtfuse eval --degraded: backend lut on 3 pairs" in text and "SF_ratio" in text and "p1" in text
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert list(rows[0]) == ["image", *DEGRADED_COLUMNS]
    assert [r["image"] for r in rows] == [*STEMS, "mean"]
    assert all(math.isfinite(float(r[c])) for r in rows for c in DEGRADED_COLUMNS)


def _one_line_error(rc: int, text: str, message: str) -> None:
    assert rc == 1, text
    assert message in text and len(text.strip().splitlines()) == 1 and "Traceback" not in text, text


def test_missing_degraded_stems_are_one_line(pairs, tmp_path):
    part = tmp_path / "ir_noise"
    part.mkdir()
    (part / "p0.png").write_bytes((pairs / "ir_noise" / "p0.png").read_bytes())
    rc, text = run_cli("eval", "--vis", pairs / "vis", "--ir", pairs / "ir", "--degraded-ir", part)
    _one_line_error(rc, text, f"{part} lacks degraded IR images for: p1, p2")


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--video", "--degraded-vis", "{d}/vis_blur"],
            "--degraded-vis, --degraded-ir and --sequence are for still pairs",
        ),
        (["--degraded-ir", "{d}/ir_noise", "--reference", "{d}/vis"], "leave --reference out"),
        (["--sequence"], "--sequence goes with --degraded-vis / --degraded-ir"),
        (["--degraded-ir", "{d}/ir_noise/p0.png"], "p0.png: is a file"),
        (["--degraded-ir", "{d}/ir_noise", "--json", "{d}/ir_noise/p0.png"], "degraded IR input"),
    ],
    ids=["video", "reference-with-backend", "sequence-alone", "file", "overwrite"],
)
def test_refusals_are_one_line(pairs, extra, message):
    rc, text = run_cli(
        "eval", "--vis", pairs / "vis", "--ir", pairs / "ir", *(e.format(d=pairs) for e in extra)
    )
    _one_line_error(rc, text, message)


def test_real_degraded_clip_lut():
    clip = data_dir("video_frames_degraded", "0111_1716")
    rc, text = run_cli(
        "eval", "--vis", clip / "vis", "--ir", clip / "ir", "--degraded-vis", clip / "vis_blur",
        "--degraded-ir", clip / "ir_noise", "--backend", "lut",
    )  # fmt: skip
    assert rc == 0, text
    mean = next(line for line in text.splitlines() if "mean" in line)
    numbers = [float(x) for x in mean.replace("│", " ").split()[1:]]
    assert len(numbers) == len(DEGRADED_COLUMNS) and all(math.isfinite(x) for x in numbers), mean
