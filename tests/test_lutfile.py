"""The versioned .npz LUT format: round trip and clear errors on every kind of bad file."""

import json
import zipfile

import numpy as np
import pytest

from rtfuse.errors import LutFormatError, RtfuseError
from rtfuse.fusion.initial import analytic_lut
from rtfuse.fusion.lutfile import load_lut, save_lut
from rtfuse.fusion.registry import SHIPPED_LUTS, WEIGHTS_DIR


@pytest.mark.parametrize("kind", ["3d", "4d", "4d-detail"])
def test_round_trip(tmp_path, kind):
    m = analytic_lut(kind)
    save_lut(tmp_path / "a.npz", m)
    m2 = load_lut(tmp_path / "a.npz")
    assert m2.kind == kind and m2.axes == m.axes and m2.untrained
    assert np.array_equal(m2.table, m.table) and np.array_equal(m2.ranges, m.ranges)
    assert all(np.array_equal(a, b) and np.array_equal(c, d) for (a, c), (b, d) in zip(m.ctx_layers, m2.ctx_layers))
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*.part"))


def test_unwritable_path_is_one_clear_error_and_leaves_nothing(tmp_path):
    with pytest.raises(RtfuseError, match="cannot write the LUT"):
        save_lut(tmp_path / "missing" / "a.npz", analytic_lut("3d"))
    assert not list(tmp_path.rglob("*"))


@pytest.mark.parametrize("path", sorted(WEIGHTS_DIR.glob("*.npz")), ids=lambda p: p.name)
def test_shipped_luts_load_small_and_labelled(path):
    m = load_lut(path)
    assert path.stat().st_size < 200_000
    assert m.untrained == ("untrained" in path.name)
    if not m.untrained:
        assert m.meta["teacher"] and m.meta["final_losses"], "a trained LUT says what it was fitted to"


def test_registry_names_shipped_files():
    for name in SHIPPED_LUTS.values():
        assert (WEIGHTS_DIR / name).is_file()


def _arrays(m):
    save = dict(
        format=np.array("rtfuse-lut"), version=np.array(1), table=m.table, axes=np.array(m.axes),
        ranges=m.ranges, ctx_stride=np.array(m.ctx_stride), meta=np.array(json.dumps(m.meta)),
    )
    for i, (w, b) in enumerate(m.ctx_layers):
        save[f"ctx_w{i}"], save[f"ctx_b{i}"] = w, b
    return save


def _write(tmp_path, **changes):
    a = _arrays(analytic_lut("3d"))
    for k, v in changes.items():
        if v is None:
            a.pop(k)
        else:
            a[k] = v
    p = tmp_path / "bad.npz"
    np.savez(p, **a)
    return p


@pytest.mark.parametrize(
    "changes,match",
    [
        ({"version": np.array(2)}, "version 2"),
        ({"format": np.array("something-else")}, "format"),
        ({"table": None}, "'table' is missing"),
        ({"axes": np.array(["vis_y", "ir", "ctx"])}, "axes"),
        ({"table": np.zeros((17, 17), np.float32)}, "dimensions"),
        ({"table": np.full((17, 17, 8), np.nan, np.float32)}, "NaN"),
        ({"table": np.zeros((17, 1, 8), np.float32)}, "at least 2"),
        ({"ranges": np.array([[0, 255], [0, 300], [0, 1]], np.float32)}, "0..255"),
        ({"ranges": np.array([[0, 255], [0, 255], [0, 2]], np.float32)}, "context"),
        ({"ctx_stride": np.array(0)}, "ctx_stride"),
        ({"ctx_stride": np.array(7)}, "even"),
        ({"ctx_w0": np.zeros((8, 3, 3, 3), np.float32)}, "ctx_w0"),
        ({"ctx_b1": np.zeros(3, np.float32)}, "ctx_b1"),
        ({"ctx_w0": None, "ctx_b0": None, "ctx_w1": None, "ctx_b1": None, "ctx_w2": None, "ctx_b2": None}, "no layers"),
        ({"meta": np.array("{not json")}, "JSON"),
        ({"table": np.array(["a"] * 8)}, "dtype"),
    ],
)
def test_malformed_files_get_clear_errors(tmp_path, changes, match):
    with pytest.raises(LutFormatError, match=match):
        load_lut(_write(tmp_path, **changes))


def test_pickled_object_arrays_are_refused(tmp_path):
    p = _write(tmp_path, meta=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(LutFormatError, match="not a readable"):
        load_lut(p)


def test_truncated_and_garbage_files(tmp_path):
    good = tmp_path / "good.npz"
    save_lut(good, analytic_lut("4d"))
    data = good.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(b"\x00not a zip at all" * 10)
    (tmp_path / "empty.npz").write_bytes(b"")
    for name in ("trunc.npz", "garbage.npz", "empty.npz"):
        with pytest.raises(LutFormatError, match="not a readable rtfuse LUT"):
            load_lut(tmp_path / name)
    with pytest.raises(LutFormatError, match="does not exist"):
        load_lut(tmp_path / "missing.npz")
    assert zipfile.is_zipfile(good)


def test_corrupt_member_crc(tmp_path):
    good = tmp_path / "good.npz"
    m = analytic_lut("3d")
    np.savez(good, **_arrays(m))  # stored, uncompressed: the table's bytes appear verbatim
    data = bytearray(good.read_bytes())
    i = data.find(m.table.tobytes()[100:132])
    assert i > 0
    data[i : i + 32] = b"X" * 32
    (tmp_path / "crc.npz").write_bytes(bytes(data))
    with pytest.raises(LutFormatError):
        load_lut(tmp_path / "crc.npz")


def test_detail_axis_must_be_signed(tmp_path):
    a = _arrays(analytic_lut("4d-detail"))
    a["ranges"] = np.array([[0, 255], [0, 32], [0, 1], [0, 255]], np.float32)
    np.savez(tmp_path / "bad.npz", **a)
    with pytest.raises(LutFormatError, match="max_detail"):
        load_lut(tmp_path / "bad.npz")
