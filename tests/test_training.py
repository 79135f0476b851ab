"""Training side, briefly: losses, teacher training + resume, student and LUT distillation, export."""

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

import rtfuse  # noqa: E402
from rtfuse.cli import main  # noqa: E402
from rtfuse.synthetic import SyntheticScene  # noqa: E402
from rtfuse.training import checkpoint  # noqa: E402
from rtfuse.training.losses import fusion_loss, sobel, ssim  # noqa: E402
from rtfuse.training.models import degradation, n_params, student, teacher  # noqa: E402


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("pairs")
    (d / "vis").mkdir()
    (d / "ir").mkdir()
    for k in range(10):
        vis, ir = SyntheticScene(160, 128, seed=k).render(k)
        cv2.imwrite(str(d / "vis" / f"{k:03d}.png"), vis)
        cv2.imwrite(str(d / "ir" / f"{k:03d}.png"), ir)
    return d


def test_losses_behave():
    x = torch.rand(2, 1, 32, 32)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert ssim(x, torch.rand(2, 1, 32, 32)).item() < 0.5
    assert sobel(torch.ones(1, 1, 8, 8)).abs().max().item() == 0
    vis = torch.rand(2, 3, 32, 32)
    y = 0.114 * vis[:, :1] + 0.587 * vis[:, 1:2] + 0.299 * vis[:, 2:]
    ir = torch.rand(2, 1, 32, 32)
    good, t_good = fusion_loss(torch.maximum(y, ir), y, ir, vis, detail=1.0)
    bad, _ = fusion_loss(torch.zeros_like(y), y, ir, vis, detail=1.0)
    assert good < bad and t_good["int"] == 0.0
    # detail only at edges above a threshold no pixel reaches = no detail boost at all
    sharp, _ = fusion_loss(torch.maximum(y, ir), y, ir, vis, detail=1.5)
    edges_none, _ = fusion_loss(torch.maximum(y, ir), y, ir, vis, detail=1.5, detail_edges=100.0)
    assert edges_none.item() == pytest.approx(good.item()) and sharp > good
    # the base-layer term ignores fine detail (a +-0.1 checkerboard) but sees a regional shift
    mx = torch.maximum(y, ir)
    checker = 0.1 * (1 - 2 * ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2)).float()
    _, t_fine = fusion_loss(mx + checker, y, ir, vis, {"base": 1.0})
    _, t_shift = fusion_loss(mx + 0.1, y, ir, vis, {"base": 1.0})
    assert t_fine["base"] < 0.005 and t_shift["base"] == pytest.approx(0.1, abs=1e-4)
    assert "base" not in t_good  # off by default


def test_student_is_a_tenth_of_the_teacher():
    t, s = teacher(), student()
    assert 2e6 < n_params(t) < 5e6
    assert n_params(s) <= 0.1 * n_params(t)
    y = torch.rand(1, 1, 37, 53)
    out, feat = t(y, y)
    assert out.shape == y.shape and 0 <= out.min() and out.max() <= 1
    assert degradation(y, y).shape == (1, 4)


def test_teacher_trains_resumes_and_students_and_luts_distil(dataset, tmp_path, capsys):
    run = tmp_path / "teacher"
    common = ["--data", str(dataset), "--batch", "2", "--crop", "64"]
    assert main(["train", "teacher", *common, "--out", str(run), "--steps", "3"]) == 0
    first = checkpoint.load(run / "last.pt")
    assert first["step"] == 3 and first["arch"] == "teacher"
    assert main(["train", "teacher", *common, "--out", str(run), "--steps", "5"]) == 0
    assert "resuming" in capsys.readouterr().err
    assert checkpoint.load(run / "last.pt")["step"] == 5
    # fine-tuning: another run starting from these weights, with its own loss settings and schedule
    tuned = tmp_path / "tuned"
    assert main(["train", "teacher", *common, "--out", str(tuned), "--steps", "2", "--init", str(run / "teacher.pt"),
                 "--base-weight", "10", "--base-sigma", "2"]) == 0
    assert "starting from the weights" in capsys.readouterr().err
    assert checkpoint.load(tuned / "last.pt")["step"] == 2

    assert main(["distill", "student", *common, "--out", str(tmp_path / "student"), "--steps", "2",
                 "--teacher", str(run / "teacher.pt"), "--dark", "0.5", "--ir-dark", "0.5",
                 "--ship", str(tmp_path / "shipped.pt")]) == 0
    fuse = rtfuse.load_fuser("student", path=tmp_path / "student" / "student.pt")
    vis, ir = SyntheticScene(96, 64).render(0)
    assert fuse(vis, ir).shape == vis.shape
    shipped = rtfuse.load_fuser("student", path=tmp_path / "shipped.pt")
    weights = checkpoint.load(tmp_path / "shipped.pt")["model"]
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    assert np.abs(shipped(vis, ir).astype(int) - fuse(vis, ir)).max() <= 2

    lut = tmp_path / "lut4d.npz"
    lut_args = ["distill", "lut", "--teacher", str(run / "teacher.pt"), "--data", str(dataset), "--kind", "4d",
                "-o", str(lut), "--bank", "8", "--batch", "2", "--crop", "64", "--ckpt", str(tmp_path / "lut.pt"),
                "--detail", "1.2"]
    assert main([*lut_args, "--steps", "2"]) == 0
    assert checkpoint.load(tmp_path / "lut.pt")["step"] == 2
    capsys.readouterr()
    assert main([*lut_args, "--steps", "3"]) == 0
    assert "resuming" in capsys.readouterr().err and checkpoint.load(tmp_path / "lut.pt")["step"] == 3
    assert main([*lut_args, "--steps", "3", "--dark", "0.2"]) == 1  # other settings: refused, not mixed
    assert "other settings (dark)" in capsys.readouterr().err
    assert main(["train", "teacher", *common, "--out", str(tmp_path / "wrong"), "--steps", "1",
                 "--init", str(tmp_path / "student" / "student.pt")]) == 1
    assert "holds a student, not a teacher" in capsys.readouterr().err
    f = rtfuse.load_fuser("lut", path=lut)
    assert not f.model.untrained and f.model.meta["teacher"] == "teacher.pt"
    assert f.model.meta["config"]["detail"] == 1.2
    detail_lut = tmp_path / "lut4d_detail.npz"
    assert main(["distill", "lut", "--teacher", str(run / "teacher.pt"), "--data", str(dataset), "--kind", "4d-detail",
                 "-o", str(detail_lut), "--bank", "4", "--batch", "2", "--crop", "64", "--steps", "2",
                 "--ckpt", str(tmp_path / "lut_detail.pt")]) == 0
    g = rtfuse.load_fuser("lut4d-detail", path=detail_lut)
    assert g.model.kind == "4d-detail" and not g.model.untrained and g(vis, ir).shape == vis.shape
    assert f(vis, ir).shape == vis.shape


def test_reproducible_from_seed(dataset, tmp_path):
    outs = []
    for name in ("a", "b"):
        main(["train", "teacher", "--data", str(dataset), "--batch", "2", "--crop", "64", "--out",
              str(tmp_path / name), "--steps", "2"])
        outs.append(checkpoint.load(tmp_path / name / "teacher.pt")["model"])
    for k in outs[0]:
        assert torch.equal(outs[0][k], outs[1][k]), k


def test_bad_checkpoints_are_refused(tmp_path):
    from rtfuse.errors import RtfuseError

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RtfuseError, match="not a readable rtfuse checkpoint"):
        checkpoint.load_model(tmp_path / "junk.pt")
    torch.save({"arch": "teacher", "model": {"x": torch.zeros(1)}}, tmp_path / "wrong.pt")
    with pytest.raises(RtfuseError, match="do not fit"):
        checkpoint.load_model(tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="teacher is not shipped"):
        rtfuse.load_fuser("teacher")


def test_shipped_student_backend():
    from rtfuse.fusion.registry import WEIGHTS_DIR

    path = WEIGHTS_DIR / "student.pt"
    assert path.stat().st_size < 5_000_000
    fuse = rtfuse.load_fuser("student", device="cpu")
    assert n_params(fuse.net) <= 0.1 * n_params(teacher())
    vis, ir = SyntheticScene(120, 90, seed=2).render(4)
    out = fuse(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="sizes differ"):
        fuse(vis, ir[:-1])


@pytest.mark.parametrize("args, message", [
    (["train", "teacher", "--base-sigma", "0"], "--base-sigma: 0 must be above 0"),
    (["train", "teacher", "--lr=-1e-4"], "--lr: -1e-4 must be above 0"),
    (["distill", "lut", "--teacher", "t.pt", "-o", "x.npz", "--dark", "1.5"],
     "--dark: 1.5 must be at least 0 and at most 1"),
    (["distill", "student", "--teacher", "t.pt", "--detail", "x"], "--detail: 'x' is not a number"),
])
def test_bad_training_numbers_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
