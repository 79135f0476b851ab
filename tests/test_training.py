"""Training side, briefly: losses, teacher training + resume, student and LUT distillation, export."""

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed")

import rtfuse  # noqa: E402
from rtfuse.cli import main  # noqa: E402
from rtfuse.fusion.nets import student, teacher  # noqa: E402
from rtfuse.synthetic import SyntheticScene  # noqa: E402
from rtfuse.training import checkpoint  # noqa: E402
from rtfuse.training.losses import fusion_loss, restore_loss, sobel, ssim  # noqa: E402
from rtfuse.training.models import n_params  # noqa: E402


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


def test_restore_loss_weighs_edges_by_w_grad():
    clean = torch.rand(1, 1, 32, 32)
    flat = torch.full_like(clean, clean.mean().item())  # the values' mean, none of the edges
    values = (flat - clean).abs().mean()
    edges = sobel(clean).abs().mean()
    assert restore_loss(flat, clean, 0.0) == pytest.approx(values.item())
    assert restore_loss(flat, clean, 2.0) == pytest.approx((values + 2 * edges).item())
    assert restore_loss(clean, clean, 2.0) == 0.0


def test_student_is_a_tenth_of_the_teacher():
    t, s = teacher(), student()
    assert 2e6 < n_params(t) < 5e6
    assert n_params(s) <= 0.1 * n_params(t)
    y = torch.rand(1, 1, 37, 53)
    out, feats = t(y, y)
    assert out.shape == y.shape and 0 <= out.min() and out.max() <= 1
    # distillation levels: the bottleneck and the 1/4 and 1/2 decoder features, at both widths
    assert [f.shape[1] for f in feats] == [128, 64, 32]
    assert [f.shape[1] for f in s(y, y)[1]] == [40, 24, 16]
    with pytest.raises(ValueError, match="takes no text"):
        s(y, y, torch.zeros(384))


def test_restorers_start_as_the_identity_and_see_whole_columns():
    from rtfuse.fusion.nets import student_restore

    torch.manual_seed(0)
    plain, restoring = student().eval(), student_restore().eval()
    with torch.no_grad():
        torch.nn.init.normal_(plain.head.weight, std=0.05)  # zero-initialised: give it a function
    missing, unexpected = restoring.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("restore.") for k in missing) and not unexpected
    y, ir = torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53)  # odd sizes: padded inside
    with torch.no_grad():
        assert torch.equal(plain(y, ir)[0], restoring(y, ir)[0])
        fused, _, (ry, rir) = restoring.forward_all(y, ir)
    assert torch.equal(ry, y) and torch.equal(rir, ir) and fused.shape == y.shape
    # the IR restorer is the larger (stripes, banding and noise at once), both tiny beside the fusion
    n_vis, n_ir = (n_params(r) for r in restoring.restore)
    assert n_vis < n_ir < 0.1 * n_params(plain)
    # A pixel's correction depends on the far end of its column (a stripe is a whole column) more than
    # on a pixel as far away in another column (the frame branch only), though no 3x3 stack of this
    # depth reaches either.
    r = restoring.restore[1]
    torch.nn.init.normal_(r.out.weight, std=0.01)  # small: the output stays inside [0, 1], unclamped
    x = (0.25 + 0.5 * torch.rand(1, 1, 64, 64)).requires_grad_()
    r(x)[0, 0, 0, 10].backward()
    assert x.grad[0, 0, 63, 10].abs() > 3 * x.grad[0, 0, 63, 10 + 32].abs() > 0


def test_teacher_reads_the_text_at_every_scale():
    torch.manual_seed(0)
    t = teacher().eval()
    y, ir = torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        torch.nn.init.normal_(t.head.weight, std=0.05)  # zero-initialised too: the output is the max
        base, _ = t(y, ir)
        for film in t.film:  # the modulation starts as the identity; give it weights
            torch.nn.init.normal_(film.mlp[-1].weight, std=0.05)
        text = torch.nn.functional.normalize(torch.randn(2, 384), dim=1)
        a, fa = t(y, ir, text)
        b, fb = t(y, ir, text.flip(0))  # each sample's own text
        clean, _ = t(y, ir)  # the stored "clean" embedding (zeros here: untrained)
        zero, _ = t(y, ir, torch.zeros(384))
    assert not torch.allclose(a, b) and torch.allclose(a[0], t(y[:1], ir[:1], text[:1])[0][0], atol=1e-6)
    assert all(not torch.allclose(u, v) for u, v in zip(fa, fb))  # all three levels modulated
    assert torch.allclose(clean, zero) and not torch.allclose(base, a)


# -- teacher training, resume, fine-tuning, student and LUT distillation --------------------------
# The runs are module-scoped fixtures, made once and shared; each test below checks one thing.


def run_main(args):
    """``rtfuse`` main() in this process: (exit code, what it printed on stderr)."""
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def common(dataset):
    return ["--data", dataset, "--batch", "2", "--crop", "64"]


DEGRADE = ["--degrade", "0.75"]  # most crops degraded, their descriptions embedded by the real model


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("training")


@pytest.fixture(scope="module")
def teacher_run(dataset, work):
    """A teacher trained for 3 steps, then run again to 5 steps in the same folder (a resume)."""
    run = work / "teacher"
    code, _ = run_main(["train", "teacher", *common(dataset), *DEGRADE, "--out", run, "--steps", "3"])
    assert code == 0
    first = checkpoint.load(run / "last.pt")
    code, resume_log = run_main(
        ["train", "teacher", *common(dataset), *DEGRADE, "--out", run, "--steps", "5"]
    )
    assert code == 0
    return {
        "dir": run,
        "first": {k: first[k] for k in ("step", "arch")},
        "resume_log": resume_log,
        "last": checkpoint.load(run / "last.pt"),
    }


@pytest.fixture(scope="module")
def student_run(dataset, work, teacher_run):
    """A student distilled for 2 steps from the teacher, also shipped (fp16) to shipped.pt."""
    out, shipped = work / "student", work / "shipped.pt"
    code, _ = run_main(
        [
            "distill",
            "student",
            *common(dataset),
            "--out",
            out,
            "--steps",
            "2",
            "--teacher",
            teacher_run["dir"] / "teacher.pt",
            "--dark",
            "0.5",
            "--ir-dark",
            "0.5",
            *DEGRADE,
            "--ship",
            shipped,
        ]
    )
    assert code == 0
    return {"student": out / "student.pt", "shipped": shipped}


def test_teacher_stores_the_embedding_of_clean(teacher_run):
    from rtfuse.fusion.text import CLEAN_PROMPT, TextEncoder

    stored = teacher_run["last"]["model"]["clean_text"]
    assert torch.allclose(stored, torch.from_numpy(TextEncoder(cache=None)([CLEAN_PROMPT])[0]), atol=1e-5)


def test_teacher_backend_reads_a_prompt(teacher_run, tmp_path):
    from conftest import run_cli

    vis, ir = SyntheticScene(96, 64).render(0)
    cv2.imwrite(str(tmp_path / "v.png"), vis)
    cv2.imwrite(str(tmp_path / "i.png"), ir)
    t = teacher_run["dir"] / "teacher.pt"
    prompt = "the thermal image has strong vertical stripes; the visible image is dark"
    code, log = run_cli("fuse", "--vis", tmp_path / "v.png", "--ir", tmp_path / "i.png", "-o", tmp_path / "f.png",
                        "--backend", "teacher", "--weights", t, "--prompt", prompt)  # fmt: skip
    assert code == 0 and cv2.imread(str(tmp_path / "f.png")).shape == vis.shape, log
    code, log = run_cli("fuse", "--vis", tmp_path / "v.png", "--ir", tmp_path / "i.png", "-o", tmp_path / "g.png",
                        "--prompt", prompt)  # fmt: skip
    assert code != 0 and "--prompt is read by the teacher backend only" in log
    assert len(log.strip().splitlines()) == 1 and not (tmp_path / "g.png").exists()


def test_student_ablation_trains_on_the_base_loss_alone(dataset, work, teacher_run):
    out = work / "student_base"
    code, _ = run_main(["distill", "student", *common(dataset), *DEGRADE, "--out", out, "--steps", "2",
                        "--teacher", teacher_run["dir"] / "teacher.pt", "--w-feat", "0", "--w-out", "0"])  # fmt: skip
    assert code == 0 and checkpoint.load(out / "last.pt")["config"]["w_feat"] == 0.0


@pytest.mark.parametrize("teacher_input", ["clean", "degraded"])
def test_the_teacher_fuses_the_pair_its_input_names(dataset, work, monkeypatch, teacher_input):
    """--teacher-input clean: the teacher fuses the crops before degradation (privileged targets),
    the student the degraded ones; by default both fuse the degraded crops. Here "degraded" is an
    all-white visible, which no real crop is."""
    import rtfuse.training.train as train
    from rtfuse.fusion.registry import WEIGHTS_DIR
    from rtfuse.training.degrade import Degradation

    seen: list[float] = []  # the smallest visible value of each batch the teacher fused
    load_model = train.checkpoint.load_model

    def recording(path, device="cpu"):
        net, ck = load_model(path, device)
        forward = net.forward

        def record(y, ir, text=None):
            seen.append(float(y.min()))
            return forward(y, ir, text)

        net.forward = record
        return net, ck

    def white(vis, ir, rng, p):
        return torch.full_like(vis, 255), ir, [Degradation(vis_over=1.0)] * len(vis)

    monkeypatch.setattr(train.checkpoint, "load_model", recording)
    monkeypatch.setattr(train, "degrade_batch", white)
    out = work / f"student_{teacher_input}"
    code, _ = run_main(["distill", "student", *common(dataset), *DEGRADE, "--out", out, "--steps", "2",
                        "--teacher", WEIGHTS_DIR / "student.pt", "--teacher-input", teacher_input])  # fmt: skip
    assert code == 0 and len(seen) == 2
    if teacher_input == "clean":
        assert max(seen) < 1.0  # real crops, not the white "degraded" ones
    else:
        assert min(seen) == 1.0


@pytest.mark.parametrize("own_loss_only", [False, True])
def test_restoring_student_trains_its_restorers_alone(dataset, work, student_run, own_loss_only):
    """--restore --train-only restore --init STUDENT: the fusion keeps the student's weights, the
    restorers learn to give back the clean crops, and the result runs as the student backend. With
    every fusion weight at 0 the restorers train on their own loss (their pre-training)."""
    out = work / f"student_restore_{own_loss_only}"
    teacher = ["--teacher", student_run["student"], "--teacher-input", "clean"]
    alone = (
        ["--w-base", "0", "--w-feat", "0", "--w-out", "0", "--w-restore-grad", "2"]
        if own_loss_only
        else teacher
    )
    code, _ = run_main(["distill", "student", *common(dataset), *DEGRADE, "--out", out, "--steps", "2",
                        "--restore", "--train-only", "restore", "--init", student_run["student"],
                        "--lr", "1e-2", *alone])  # fmt: skip
    assert code == 0
    before, after = checkpoint.load(student_run["student"])["model"], checkpoint.load(out / "last.pt")
    assert after["arch"] == "student-restore"
    assert after["config"]["w_restore_grad"] == (2.0 if own_loss_only else 1.0)
    fusion = [k for k in after["model"] if not k.startswith("restore.")]
    assert fusion and all(torch.equal(after["model"][k], before[k]) for k in fusion)
    assert after["model"]["restore.1.out.weight"].abs().max() > 0  # moved from its zero start
    vis, ir = SyntheticScene(96, 64).render(0)
    out_img = rtfuse.load_fuser("student", path=out / "student-restore.pt")(vis, ir)
    assert out_img.shape == vis.shape and out_img.dtype == np.uint8


def test_training_the_restorers_alone_needs_them_and_weights(dataset, work):
    code, log = run_main(["distill", "student", *common(dataset), "--out", work / "x", "--steps", "1",
                          "--teacher", "t.pt", "--train-only", "restore"])  # fmt: skip
    assert code == 1 and "needs --restore and --init" in log
    code, log = run_main(["distill", "student", *common(dataset), "--out", work / "y", "--steps", "1"])
    assert code == 1 and "needs --teacher CHECKPOINT" in log
    code, log = run_main(["distill", "student", *common(dataset), "--out", work / "z", "--steps", "1",
                          "--restore", "--train-only", "restore", "--init", "s.pt", "--w-base", "0",
                          "--w-feat", "0", "--w-out", "0", "--w-restore", "0"])  # fmt: skip
    assert code == 1 and "leaves nothing to train" in log


def test_resuming_a_run_of_another_shape_is_one_line(dataset, work, student_run):
    """A run folder whose weights no longer fit the architecture (its layers changed since)."""
    out = work / "resume_misfit"
    checkpoint.save(out / "last.pt", model=student().state_dict(), step=1)  # no restorers
    code, log = run_main(["distill", "student", *common(dataset), "--out", out, "--steps", "2",
                          "--restore", "--train-only", "restore", "--init", student_run["student"],
                          "--w-base", "0", "--w-feat", "0", "--w-out", "0"])  # fmt: skip
    assert code == 1 and "start the run afresh in a new --out folder" in log and "Traceback" not in log
    assert "missing" in log  # says what does not fit


@pytest.fixture(scope="module")
def lut_run(dataset, work, teacher_run):
    """A 4-D LUT fitted for 2 steps, then resumed to 3; ``args`` repeats the fit."""
    lut, ckpt = work / "lut4d.npz", work / "lut.pt"
    args = [
        "distill",
        "lut",
        "--teacher",
        teacher_run["dir"] / "teacher.pt",
        "--data",
        dataset,
        "--kind",
        "4d",
        "-o",
        lut,
        "--bank",
        "8",
        "--batch",
        "2",
        "--crop",
        "64",
        "--ckpt",
        ckpt,
        "--detail",
        "1.2",
        *DEGRADE,
    ]
    assert run_main([*args, "--steps", "2"])[0] == 0
    first_step = checkpoint.load(ckpt)["step"]
    code, resume_log = run_main([*args, "--steps", "3"])
    assert code == 0
    return {"lut": lut, "ckpt": ckpt, "args": args, "first_step": first_step, "resume_log": resume_log}


def test_teacher_training_writes_a_checkpoint(teacher_run):
    assert teacher_run["first"] == {"step": 3, "arch": "teacher"}


def test_teacher_training_resumes_from_its_checkpoint(teacher_run):
    assert "resuming" in teacher_run["resume_log"] and teacher_run["last"]["step"] == 5


def test_resuming_with_other_settings_is_refused_and_says_which(dataset, work, teacher_run):
    run = teacher_run["dir"]
    args = ["train", "teacher", *common(dataset), *DEGRADE, "--out", run, "--steps", "6"]
    code, log = run_main([*args, "--lr", "1e-3", "--seed", "3"])
    assert code == 1 and "other settings (lr: 0.0005, now 0.001; seed: 0, now 3)" in log
    assert "new --out folder" in log and "Traceback" not in log
    assert checkpoint.load(run / "last.pt")["step"] == 5  # refused, not mixed


def test_a_setting_the_checkpoint_predates_counts_as_its_default():
    from rtfuse.training.train import TrainConfig

    cfg = TrainConfig(data=["d"], out="o")
    saved = {"data": ["d"], "out": "elsewhere", "steps": 1}  # an older run: only these recorded
    assert checkpoint.settings_changed(saved, cfg, ("out", "steps")) == []
    cfg.w_restore_grad = 2.0
    assert checkpoint.settings_changed(saved, cfg, ("out", "steps")) == ["w_restore_grad: 1.0, now 2.0"]
    both = ["out: 'elsewhere', now 'o'", "w_restore_grad: 1.0, now 2.0"]
    assert checkpoint.settings_changed(saved, cfg, ("steps",)) == both


def test_fine_tuning_starts_from_another_runs_weights(dataset, work, teacher_run):
    # Another run starting from these weights, with its own loss settings and schedule.
    tuned = work / "tuned"
    code, log = run_main(
        [
            "train",
            "teacher",
            *common(dataset),
            "--out",
            tuned,
            "--steps",
            "2",
            "--init",
            teacher_run["dir"] / "teacher.pt",
            "--base-weight",
            "10",
            "--base-sigma",
            "2",
        ]
    )
    assert code == 0 and "starting from the weights" in log
    assert checkpoint.load(tuned / "last.pt")["step"] == 2


def test_fine_tuning_refuses_a_student_as_the_teacher(dataset, work, student_run):
    code, log = run_main(
        [
            "train",
            "teacher",
            *common(dataset),
            "--out",
            work / "wrong",
            "--steps",
            "1",
            "--init",
            student_run["student"],
        ]
    )
    assert code == 1 and "holds a student, not a teacher" in log


def test_distilled_student_fuses(student_run):
    fuse = rtfuse.load_fuser("student", path=student_run["student"])
    vis, ir = SyntheticScene(96, 64).render(0)
    out = fuse(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8


def test_shipped_student_is_fp16_and_fuses_as_the_student(student_run):
    weights = checkpoint.load(student_run["shipped"])["model"]
    assert all(v.dtype == torch.float16 for v in weights.values() if v.is_floating_point())
    vis, ir = SyntheticScene(96, 64).render(0)
    full = rtfuse.load_fuser("student", path=student_run["student"])(vis, ir)
    half = rtfuse.load_fuser("student", path=student_run["shipped"])(vis, ir)
    assert np.abs(half.astype(int) - full).max() <= 2


def test_lut_fit_checkpoints_and_resumes(lut_run):
    assert lut_run["first_step"] == 2
    assert "resuming" in lut_run["resume_log"] and checkpoint.load(lut_run["ckpt"])["step"] == 3


def test_lut_fit_refuses_to_resume_with_other_settings(lut_run):
    code, log = run_main([*lut_run["args"], "--steps", "3", "--dark", "0.2"])
    assert code == 1 and "other settings (dark: 0.5, now 0.2)" in log  # refused, not mixed
    assert checkpoint.load(lut_run["ckpt"])["step"] == 3


def test_fitted_lut_records_its_teacher_and_settings(lut_run):
    f = rtfuse.load_fuser("lut", path=lut_run["lut"])
    assert not f.model.untrained and f.model.meta["teacher"] == "teacher.pt"
    assert f.model.meta["config"]["detail"] == 1.2
    vis, ir = SyntheticScene(96, 64).render(0)
    assert f(vis, ir).shape == vis.shape


def test_detail_lut_fits_from_the_teacher(dataset, work, teacher_run):
    detail_lut = work / "lut4d_detail.npz"
    code, _ = run_main(
        [
            "distill",
            "lut",
            "--teacher",
            teacher_run["dir"] / "teacher.pt",
            "--data",
            dataset,
            "--kind",
            "4d-detail",
            "-o",
            detail_lut,
            "--bank",
            "4",
            "--batch",
            "2",
            "--crop",
            "64",
            "--steps",
            "2",
            "--ckpt",
            work / "lut_detail.pt",
        ]
    )
    assert code == 0
    g = rtfuse.load_fuser("lut4d-detail", path=detail_lut)
    vis, ir = SyntheticScene(96, 64).render(0)
    assert g.model.kind == "4d-detail" and not g.model.untrained and g(vis, ir).shape == vis.shape


def test_reproducible_from_seed(dataset, tmp_path):
    outs = []
    for name in ("a", "b"):
        main(
            [
                "train",
                "teacher",
                "--data",
                str(dataset),
                "--batch",
                "2",
                "--crop",
                "64",
                "--out",
                str(tmp_path / name),
                "--steps",
                "2",
            ]
        )
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
    fuse = rtfuse.load_fuser("student", engine="torch", device="cpu")  # the torch engine: .net
    assert n_params(fuse.net) <= 0.1 * n_params(teacher())
    vis, ir = SyntheticScene(120, 90, seed=2).render(4)
    out = fuse(vis, ir)
    assert out.shape == vis.shape and out.dtype == np.uint8
    with pytest.raises(ValueError, match="sizes differ"):
        fuse(vis, ir[:-1])


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "teacher", "--base-sigma", "0"], "--base-sigma: 0 must be above 0"),
        (["train", "teacher", "--lr=-1e-4"], "--lr: -1e-4 must be above 0"),
        (
            ["distill", "lut", "--teacher", "t.pt", "-o", "x.npz", "--dark", "1.5"],
            "--dark: 1.5 must be at least 0 and at most 1",
        ),
        (["distill", "student", "--teacher", "t.pt", "--detail", "x"], "--detail: 'x' is not a number"),
    ],
)
def test_bad_training_numbers_are_refused_before_any_work(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
