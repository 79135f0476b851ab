"""`rtfuse fuse` on stills and folders, `rtfuse demo`, `rtfuse lut`, and their error messages."""

import cv2
import numpy as np
import pytest

from conftest import run_cli
from rtfuse.cli import main
from rtfuse.synthetic import SyntheticScene


@pytest.fixture
def pair_dirs(tmp_path):
    scene = SyntheticScene(96, 64, seed=1)
    (tmp_path / "vis").mkdir()
    (tmp_path / "ir").mkdir()
    for i in range(3):
        vis, ir = scene.render(i)
        cv2.imwrite(str(tmp_path / "vis" / f"f{i}.png"), vis)
        cv2.imwrite(str(tmp_path / "ir" / f"f{i}.png"), cv2.cvtColor(ir, cv2.COLOR_GRAY2BGR))  # 3-channel IR
    return tmp_path


def test_fuse_one_pair_matches_api(pair_dirs):
    import rtfuse

    out = pair_dirs / "out.png"
    assert (
        main(
            [
                "fuse",
                "--vis",
                str(pair_dirs / "vis/f0.png"),
                "--ir",
                str(pair_dirs / "ir/f0.png"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    vis = cv2.imread(str(pair_dirs / "vis/f0.png"))
    ir = cv2.imread(str(pair_dirs / "ir/f0.png"), cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(cv2.imread(str(out)), rtfuse.load_fuser("lut")(vis, ir))


def test_fuse_folders_reports_unpaired(pair_dirs):
    cv2.imwrite(str(pair_dirs / "vis" / "lonely.png"), np.zeros((64, 96, 3), np.uint8))
    cv2.imwrite(str(pair_dirs / "ir" / "orphan.png"), np.zeros((64, 96), np.uint8))
    code, text = run_cli(
        "fuse",
        "--vis",
        pair_dirs / "vis",
        "--ir",
        pair_dirs / "ir",
        "-o",
        pair_dirs / "out",
        "--backend",
        "lut4d",
    )
    assert code == 0, text
    assert sorted(p.name for p in (pair_dirs / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    assert "lonely" in text and "orphan" in text and "unpaired" in text


def test_folder_with_a_bad_pair_fuses_the_rest_and_fails(pair_dirs):
    (pair_dirs / "vis" / "f1.png").write_bytes(b"not a png")
    code, text = run_cli(
        "fuse", "--vis", pair_dirs / "vis", "--ir", pair_dirs / "ir", "-o", pair_dirs / "out"
    )
    assert code == 1
    assert "failed f1" in text and "not a readable image" in text
    assert sorted(p.name for p in (pair_dirs / "out").iterdir()) == ["f0.png", "f2.png"]


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda d: ["--vis", d / "nope.png", "--ir", d / "ir/f0.png", "-o", d / "o.png"], "no such file"),
        (lambda d: ["--vis", d / "vis", "--ir", d / "ir/f0.png", "-o", d / "o.png"], "both be"),
        (lambda d: ["--vis", d / "vis/f0.png", "--ir", d / "small.png", "-o", d / "o.png"], "--resize-ir"),
        (
            lambda d: ["--vis", d / "vis/f0.png", "--ir", d / "junk.png", "-o", d / "o.png"],
            "not a readable image",
        ),
        (lambda d: ["--vis", d / "vis/f0.png", "--ir", d / "ir/f0.png", "-o", d / "o.xyz"], "extension"),
        (
            lambda d: [
                "--vis",
                d / "vis/f0.png",
                "--ir",
                d / "ir/f0.png",
                "-o",
                d / "o.png",
                "--lut",
                d / "junk.png",
            ],
            "not a readable rtfuse LUT",
        ),
        (
            lambda d: ["--vis", d / "vis/f0.png", "--ir", d / "ir/f0.png", "-o", d / "nodir/o.png"],
            "does not exist; create it first",
        ),
    ],
)
def test_bad_inputs_get_one_clear_message(pair_dirs, make, match):
    cv2.imwrite(str(pair_dirs / "small.png"), np.zeros((32, 48), np.uint8))
    (pair_dirs / "junk.png").write_bytes(b"\x89PNG broken")
    code, text = run_cli("fuse", *make(pair_dirs))
    assert code == 1
    assert match in text
    assert "Traceback" not in text
    assert not list(pair_dirs.glob("*.part")) and not list(pair_dirs.glob(".*.part"))


def test_resize_ir_fuses_mismatched_sizes(pair_dirs):
    cv2.imwrite(str(pair_dirs / "small.png"), np.full((32, 48), 200, np.uint8))
    code, text = run_cli(
        "fuse",
        "--vis",
        pair_dirs / "vis/f0.png",
        "--ir",
        pair_dirs / "small.png",
        "-o",
        pair_dirs / "o.jpg",
        "--resize-ir",
    )
    assert code == 0, text
    assert cv2.imread(str(pair_dirs / "o.jpg")).shape == (64, 96, 3)


def test_16bit_ir_still_is_stretched(pair_dirs):
    scene = SyntheticScene(96, 64, seed=1)
    cv2.imwrite(str(pair_dirs / "ir16.png"), scene.render_ir16(0))
    assert cv2.imread(str(pair_dirs / "ir16.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    code, text = run_cli(
        "fuse", "--vis", pair_dirs / "vis/f0.png", "--ir", pair_dirs / "ir16.png", "-o", pair_dirs / "o.png"
    )
    assert code == 0, text


def test_lut_init_and_info(tmp_path):
    code, _ = run_cli("lut", "init", "--kind", "4d", "-o", tmp_path / "x.npz")
    assert code == 0
    code, text = run_cli("lut", "info", tmp_path / "x.npz")
    assert code == 0 and "UNTRAINED" in text and "vis_grad" in text


def test_help_lists_commands():
    code, text = run_cli("--help")
    assert code == 0 and all(c in text for c in ("fuse", "run", "demo", "bench", "lut"))
    for cmd in ("fuse", "run", "demo", "bench"):
        code, text = run_cli(cmd, "--help")
        assert code == 0 and "--config" in text and "--backend" in text


# Issue 11: one line per bad input, no traceback, never the advice to load a file unsafely.


def _one_error_line(text: str) -> str:
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("rtfuse: error:")]
    assert len(errors) == 1, text
    assert not any(a in text for a in ("allow_pickle", "weights_only", "safe_globals", "trust the")), text
    return errors[0]


def _fuse_folders(d, out):
    return run_cli("fuse", "--vis", d / "vis", "--ir", d / "ir", "-o", d / out)


class NotAllowed:
    """Pickled into a checkpoint: torch's weights-only loader refuses it."""


@pytest.mark.parametrize("bad", ["custom.pt", "text.pt", "missing.pt"])
@pytest.mark.parametrize("backend", ["student", "teacher"])
def test_network_backend_with_a_bad_checkpoint(pair_dirs, backend, bad):
    torch = pytest.importorskip("torch")
    torch.save({"arch": "student", "obj": NotAllowed()}, pair_dirs / "custom.pt")
    (pair_dirs / "text.pt").write_text("not a checkpoint\n")
    code, text = run_cli(
        "fuse",
        "--vis",
        pair_dirs / "vis/f0.png",
        "--ir",
        pair_dirs / "ir/f0.png",
        "-o",
        pair_dirs / "o.png",
        "--backend",
        backend,
        "--weights",
        pair_dirs / bad,
    )
    assert code == 1
    line = _one_error_line(text)
    assert bad in line
    assert ("does not exist" if bad == "missing.pt" else "not a readable rtfuse checkpoint") in line
    assert not (pair_dirs / "o.png").exists()


def test_text_file_as_lut_weights(pair_dirs):
    (pair_dirs / "text.npz").write_text("hello\n")
    code, text = run_cli(
        "fuse",
        "--vis",
        pair_dirs / "vis/f0.png",
        "--ir",
        pair_dirs / "ir/f0.png",
        "-o",
        pair_dirs / "o.png",
        "--weights",
        pair_dirs / "text.npz",
    )
    assert code == 1
    assert "not a .npz archive (it is a text file)" in _one_error_line(text)


def test_folder_size_mismatch_says_which_side_is_which(pair_dirs):
    cv2.imwrite(str(pair_dirs / "ir" / "f0.png"), np.zeros((32, 48), np.uint8))
    code, text = _fuse_folders(pair_dirs, "out")
    assert code == 1
    assert "visible vis/f0.png is 96x64 but IR ir/f0.png is 48x32" in text
    assert sorted(p.name for p in (pair_dirs / "out").iterdir()) == ["f1.png", "f2.png"]


def test_folders_pair_by_stem_without_modality_tags(pair_dirs):
    for side, tag in (("vis", "_VIS"), ("ir", "_IR")):
        for p in (pair_dirs / side).iterdir():
            p.rename(p.with_name(f"{p.stem}{tag}{p.suffix}"))
    code, text = _fuse_folders(pair_dirs, "out")
    assert code == 0, text
    assert sorted(p.name for p in (pair_dirs / "out").iterdir()) == ["f0.png", "f1.png", "f2.png"]
    (pair_dirs / "ir" / "f0_IR.png").rename(pair_dirs / "ir" / "zzz.png")  # no common tag left on the IR side
    for p in (pair_dirs / "ir").glob("f*_IR.png"):
        p.unlink()
    code, text = _fuse_folders(pair_dirs, "out2")
    assert code == 1
    line = _one_error_line(text)
    assert "pairs are matched by file stem" in line
    assert "seen: visible f0_VIS.png, f1_VIS.png, f2_VIS.png, IR zzz.png" in line


def test_tno_sequence_folders_pair_v_and_i(tmp_path):
    from conftest import data_dir

    seq = data_dir("tno_sequences", "Duine_sequence")
    code, text = run_cli("fuse", "--vis", seq / "vis", "--ir", seq / "ir", "-o", tmp_path / "out")
    assert code == 0, text
    assert "fused 23 pair(s)" in text and "unpaired" not in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir())[:2] == ["7400.png", "7401.png"]
    assert len(list((tmp_path / "out").iterdir())) == 23
