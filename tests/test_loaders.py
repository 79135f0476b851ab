"""Issue 11: bad checkpoints, images, cameras and folders give one line that says what to do."""

import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import rtfuse
from rtfuse.errors import InputError, RtfuseError, SourceError
from rtfuse.fusion.validate import check_pair
from rtfuse.sync import PAIRING_RULE, pair_stems

UNSAFE_ADVICE = (
    "weights_only=False",
    "weights_only` set to `False",
    "add_safe_globals",
    "safe_globals",
    "allow_pickle",
    "trust",
)


def _one_line(e: BaseException) -> str:
    msg = str(e)
    assert "\n" not in msg, msg
    assert not any(a in msg for a in UNSAFE_ADVICE), msg
    return msg


# --- visible / IR channel hints -------------------------------------------------------------------


@pytest.mark.parametrize(
    "vis_shape,hint",
    [((8, 8, 4), "cv2.COLOR_BGRA2BGR"), ((8, 8), "cv2.COLOR_GRAY2BGR"), ((8, 8, 1), "cv2.COLOR_GRAY2BGR")],
)
def test_visible_channel_hint_fits_the_input(vis_shape, hint):
    with pytest.raises(InputError) as info:
        check_pair(np.zeros(vis_shape, np.uint8), np.zeros((8, 8), np.uint8))
    msg = _one_line(info.value)
    assert hint in msg
    if len(vis_shape) == 3 and vis_shape[2] == 4:
        assert "GRAY2BGR" not in msg


def test_suggested_conversions_give_a_valid_input():
    ir = np.zeros((8, 8), np.uint8)
    check_pair(cv2.cvtColor(np.zeros((8, 8, 4), np.uint8), cv2.COLOR_BGRA2BGR), ir)
    check_pair(cv2.cvtColor(np.zeros((8, 8), np.uint8), cv2.COLOR_GRAY2BGR), ir)
    vis = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(InputError, match="COLOR_BGRA2GRAY"):
        check_pair(vis, np.zeros((8, 8, 4), np.uint8))
    check_pair(vis, cv2.cvtColor(np.zeros((8, 8, 4), np.uint8), cv2.COLOR_BGRA2GRAY))
    with pytest.raises(InputError) as info:
        check_pair(np.zeros((8, 8, 2), np.uint8), ir)
    assert "cvtColor" not in str(info.value)  # no conversion fits 2 channels: none is suggested


# --- network checkpoints (student / teacher) ------------------------------------------------------


class Custom:
    """A class torch's weights-only unpickler refuses."""

    def __init__(self) -> None:
        self.x = 1


@pytest.fixture
def bad_checkpoints(tmp_path):
    torch = pytest.importorskip("torch")
    from rtfuse.training.models import ARCHS

    torch.save(
        {"arch": "student", "model": ARCHS["student"]().state_dict(), "extra": Custom()},
        tmp_path / "custom.pt",
    )
    (tmp_path / "text.pt").write_text("just some text\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    np.savez(tmp_path / "lut.npz", a=np.zeros(2))
    (tmp_path / "lut.npz").rename(tmp_path / "lut.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    torch.save({"arch": "student", "model": {"x": torch.zeros(1)}}, tmp_path / "misfit.pt")
    torch.save({"arch": ["student"], "model": {}}, tmp_path / "arch.pt")
    return tmp_path


@pytest.mark.parametrize(
    "name,match",
    [
        ("custom.pt", "it holds a pickled test_loaders.Custom object, which rtfuse does not load"),
        ("text.pt", "it is not a PyTorch file, or it is truncated"),
        ("empty.pt", "the file is empty"),
        ("lut.pt", "it is a .npz archive (a LUT goes to the lut backends"),
        ("list.pt", "it holds a list, not a dict"),
        ("misfit.pt", "weights do not fit the student architecture ("),
        ("arch.pt", "no known architecture"),
        ("missing.pt", "does not exist"),
    ],
)
@pytest.mark.parametrize("backend", ["student", "teacher"])
def test_bad_checkpoints_are_one_line_without_unsafe_advice(bad_checkpoints, name, match, backend):
    with pytest.raises(RtfuseError) as info:
        rtfuse.load_fuser(backend, path=bad_checkpoints / name)
    msg = _one_line(info.value)
    assert match in msg and str(bad_checkpoints / name) in msg
    assert "rtfuse train teacher" in msg  # what to use instead


def test_checkpoints_still_load_weights_only(monkeypatch, bad_checkpoints):
    torch = pytest.importorskip("torch")
    from rtfuse.training import checkpoint

    seen = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: seen.append(k.get("weights_only")) or real(*a, **k))
    with pytest.raises(RtfuseError):
        checkpoint.load(bad_checkpoints / "custom.pt")
    assert seen == [True]


def test_teacher_hint_names_values_not_flags():
    pytest.importorskip("torch")
    with pytest.raises(InputError) as info:
        rtfuse.load_fuser("teacher")
    msg = _one_line(info.value)
    assert "runs/teacher/teacher.pt" in msg and "--lut" not in msg and "--weights" not in msg


# --- stream URLs ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_stream_url_says_what_to_check():
    from rtfuse.sources.camera import CameraSource

    url = f"rtsp://user:secret@127.0.0.1:{_free_port()}/stream"  # loopback, closed port: refused at once
    with pytest.raises(SourceError) as info:
        CameraSource(url, open_timeout=2.0).open()
    msg = _one_line(info.value)
    assert msg.startswith("cannot open the stream rtsp://user:***@127.0.0.1:")
    assert "secret" not in msg and "/dev/video" not in msg
    assert all(w in msg for w in ("URL", "network", "credentials", "FFmpeg"))


def test_stream_that_never_answers_gives_up_after_the_open_timeout():
    from rtfuse.sources.camera import CameraSource

    with socket.socket() as server:  # accepts the TCP connection (backlog), never speaks RTSP
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        url = f"rtsp://127.0.0.1:{server.getsockname()[1]}/stream"
        t = time.monotonic()
        with pytest.raises(SourceError, match="cannot open the stream"):
            CameraSource(url, open_timeout=1.0).open()
        assert time.monotonic() - t < 8.0  # OpenCV's own default would wait 30 s


# --- still pairs and folder pairing ---------------------------------------------------------------


def _files(names):
    return {n: Path(f"{n}.png") for n in names}


@pytest.mark.parametrize(
    "vis,ir,names",
    [
        (["7400v", "7401v", "7402v"], ["7400i", "7401i", "7402i"], ["7400", "7401", "7402"]),
        (["0001_vis", "0002_vis"], ["0001_ir", "0002_ir"], ["0001", "0002"]),
        (["a_rgb", "b_rgb"], ["a_thermal", "b_thermal"], ["a", "b"]),
        (["VIS_1", "VIS_2"], ["IR_1", "IR_2"], ["1", "2"]),
        (["1VIS", "2VIS"], ["1ir", "2ir"], ["1", "2"]),
        (["0001", "0002"], ["0001-lwir", "0002-lwir"], ["0001", "0002"]),
        (["f0", "f1"], ["f0", "f1"], ["f0", "f1"]),
    ],
)
def test_pair_stems_with_modality_tags(vis, ir, names):
    pairs, vis_only, ir_only = pair_stems(_files(vis), _files(ir))
    assert list(pairs) == names and not vis_only and not ir_only
    assert [(v.stem, i.stem) for v, i in pairs.values()] == list(zip(vis, ir))


def test_pair_stems_exact_first_and_reports_the_rest():
    pairs, vis_only, ir_only = pair_stems(_files(["a", "b", "cv"]), _files(["a", "x", "ci"]))
    assert list(pairs) == ["a"] and vis_only == ["b", "cv"] and ir_only == ["ci", "x"]
    pairs, vis_only, ir_only = pair_stems(_files(["7400v", "7401v"]), _files(["7400i", "7409i"]))
    assert list(pairs) == ["7400"] and vis_only == ["7401v"] and ir_only == ["7409i"]
    assert pair_stems(_files(["x", "y"]), _files(["p", "q"])) == ({}, ["x", "y"], ["p", "q"])
    assert pair_stems({}, _files(["p"])) == ({}, [], ["p"])


def test_a_tag_not_on_every_file_is_not_stripped():
    pairs, _, _ = pair_stems(_files(["1v", "2"]), _files(["1i", "2i"]))
    assert list(pairs) == ["2"]  # "1v" keeps its v: the visible side has no common tag


@pytest.fixture
def tagged_dirs(tmp_path):
    from rtfuse.synthetic import SyntheticScene

    scene = SyntheticScene(48, 32, seed=2)
    for d in ("vis", "ir"):
        (tmp_path / d).mkdir()
    for k in range(3):
        vis, ir = scene.render(k)
        cv2.imwrite(str(tmp_path / "vis" / f"{7400 + k}v.bmp"), vis)
        cv2.imwrite(str(tmp_path / "ir" / f"{7400 + k}i.bmp"), ir)
    return tmp_path


def test_fuse_folder_pairs_tagged_stems(tagged_dirs):
    from rtfuse.stills import fuse_folder

    fuser = rtfuse.load_fuser("blend")
    report = fuse_folder(tagged_dirs / "vis", tagged_dirs / "ir", tagged_dirs / "out", fuser)
    assert report.fused == ["7400", "7401", "7402"] and not report.failed
    assert sorted(p.name for p in (tagged_dirs / "out").iterdir()) == ["7400.png", "7401.png", "7402.png"]


def test_fuse_folder_without_pairs_says_how_files_pair(tagged_dirs):
    from rtfuse.stills import fuse_folder

    for p in (tagged_dirs / "ir").iterdir():
        p.rename(p.with_name(f"thermal{int(p.stem[:-1]) + 50}x.bmp"))  # no tag, no shared digits
    with pytest.raises(InputError) as info:
        fuse_folder(tagged_dirs / "vis", tagged_dirs / "ir", tagged_dirs / "out", rtfuse.load_fuser("blend"))
    msg = _one_line(info.value)
    assert PAIRING_RULE in msg
    assert "seen: visible 7400v.bmp, 7401v.bmp, 7402v.bmp, IR thermal7450x.bmp" in msg


def test_size_mismatch_names_which_side_is_which(tmp_path):
    import rtfuse
    from rtfuse.stills import fuse_pair

    (tmp_path / "vis").mkdir()
    (tmp_path / "ir").mkdir()
    cv2.imwrite(str(tmp_path / "vis" / "f0.png"), np.zeros((64, 96, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "ir" / "f0.png"), np.zeros((32, 48), np.uint8))
    with pytest.raises(InputError) as info:
        fuse_pair(
            tmp_path / "vis" / "f0.png",
            tmp_path / "ir" / "f0.png",
            tmp_path / "o.png",
            rtfuse.load_fuser("blend"),
        )
    assert _one_line(info.value).startswith("visible vis/f0.png is 96x64 but IR ir/f0.png is 48x32")


def test_folders_named_by_capture_time_pair_by_the_digits():
    from rtfuse.sync import pair_stems

    vis = _files(["zed_20251006_103617", "zed_20251006_103801"])
    ir = _files(["thermal_20251006_103617", "thermal_20251006_103900"])
    pairs, vis_only, ir_only = pair_stems(vis, ir)
    assert list(pairs) == ["20251006103617"]
    assert vis_only == ["zed_20251006_103801"] and ir_only == ["thermal_20251006_103900"]
