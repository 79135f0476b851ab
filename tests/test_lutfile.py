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
    assert all(
        np.array_equal(a, b) and np.array_equal(c, d) for (a, c), (b, d) in zip(m.ctx_layers, m2.ctx_layers)
    )
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
    save = {
        "format": np.array("rtfuse-lut"),
        "version": np.array(1),
        "table": m.table,
        "axes": np.array(m.axes),
        "ranges": m.ranges,
        "ctx_stride": np.array(m.ctx_stride),
        "meta": np.array(json.dumps(m.meta)),
    }
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
        (
            {"ctx_w0": None, "ctx_b0": None, "ctx_w1": None, "ctx_b1": None, "ctx_w2": None, "ctx_b2": None},
            "no layers",
        ),
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


# Issue 11: every bad file is one LutFormatError line that says what to do, never another
# exception, and never numpy's advice to load with allow_pickle=True.


def _shipped_arrays():
    with np.load(WEIGHTS_DIR / "lut3d.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _assert_one_clear_line(path):
    with pytest.raises(LutFormatError) as info:
        load_lut(path)
    msg = str(info.value)
    assert "\n" not in msg and "allow_pickle" not in msg and "pickle.load" not in msg, msg
    return msg


_WRONG = {
    "int array": np.array([1, 2]),
    "2-D int": np.array([[1]]),
    "float": np.array(1.5),
    "bool": np.array(True),
    "complex": np.array(1 + 2j),
    "str": np.array("x"),
    "bytes": np.array(b"x"),
    "str array": np.array(["vis_y", "ir", "context"]),
    "empty": np.zeros((0, 3)),
    "nan": np.array(np.nan),
    "json list": np.array("[1]"),
    "datetime": np.array(np.datetime64("2020-01-01")),
    "int table": np.zeros((17, 17, 8), np.int64),
}


@pytest.mark.parametrize(
    "field", ["format", "version", "ctx_stride", "meta", "axes", "table", "ranges", "ctx_w0", "ctx_b0"]
)
def test_fields_of_wrong_shape_or_dtype_are_one_clear_line(tmp_path, field):
    base = _shipped_arrays()
    for name, value in _WRONG.items():
        if np.array_equal(value, base[field]) or (field == "axes" and name == "str array"):
            continue  # the valid value itself
        p = tmp_path / f"{name}.npz"
        np.savez(p, **{**base, field: value})
        msg = _assert_one_clear_line(p)
        assert str(p) in msg


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("version", np.array([1, 1]), "'version' must be a single integer"),
        ("ctx_stride", np.array([8, 8]), "'ctx_stride' must be a single integer"),
        ("version", np.array(1.0), "'version' must be a single integer"),
        ("format", np.array(["rtfuse-lut"]), "'format' must be a single string"),
        ("meta", np.array(['{"a": 1}']), "'meta' must be a single JSON string"),
        ("meta", np.array("[1, 2]"), "metadata must be a JSON object"),
        ("meta", np.array("[" * 100_000), "metadata is not valid JSON"),
        ("axes", np.array("vis_y"), "'axes' must be a 1-D array of names"),
        ("ctx_w0", np.zeros((4, 4, 3, 3), np.complex64), "'ctx_w0' must hold floats"),
    ],
)
def test_scalar_fields_that_are_arrays(tmp_path, field, value, match):
    p = tmp_path / "bad.npz"
    np.savez(p, **{**_shipped_arrays(), field: value})
    assert match in _assert_one_clear_line(p)


@pytest.mark.parametrize("value", [1.5, -0.01, 255.0, np.inf, -np.inf, np.nan])
def test_table_values_outside_unit_range_are_refused(tmp_path, value):
    a = _shipped_arrays()
    a["table"] = a["table"].copy()
    a["table"][3, 4, 5] = value
    p = tmp_path / "bad.npz"
    np.savez(p, **a)
    msg = _assert_one_clear_line(p)
    assert ("[0, 1]" in msg) if np.isfinite(value) else ("NaN or infinite" in msg)


_UNPICKLED = []


def _record_unpickle():
    _UNPICKLED.append(1)
    return "evil"


class _Evil:
    def __reduce__(self):
        return _record_unpickle, ()


def test_garbage_files_are_not_npz_and_never_unpickled(tmp_path):
    import pickle

    files = {
        "text.npz": b"this is a text file\n",
        "empty.npz": b"",
        "pickle.npz": pickle.dumps(_Evil()),
        "png.npz": b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with zipfile.ZipFile(tmp_path / "zip.npz", "w") as z:
        z.writestr("readme.txt", "not an array")
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "one.npy").rename(tmp_path / "npy.npz")
    data = (WEIGHTS_DIR / "lut3d.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    expect = {
        "text.npz": "not a .npz archive (it is a text file)",
        "empty.npz": "not a .npz archive (the file is empty)",
        "pickle.npz": "not a .npz archive (it is a Python pickle, which rtfuse never loads)",
        "png.npz": "not a .npz archive (it starts with",
        "zip.npz": "not a .npz archive (a zip holding readme.txt, not .npy arrays)",
        "npy.npz": "not a .npz archive (it is a single .npy array)",
        "trunc.npz": "not a .npz archive (truncated or corrupt zip",
    }
    for name, match in expect.items():
        msg = _assert_one_clear_line(tmp_path / name)
        assert msg.startswith(f"{tmp_path / name} is not a readable rtfuse LUT: {match}"), msg
        assert "rtfuse distill lut" in msg
    np.savez(tmp_path / "obj.npz", **{**_shipped_arrays(), "meta": np.array([_Evil()], dtype=object)})
    assert "array 'meta' holds Python objects (pickle), which rtfuse never loads" in _assert_one_clear_line(
        tmp_path / "obj.npz"
    )
    assert not _UNPICKLED


@pytest.mark.parametrize("compressed", [True, False])
def test_byte_flips_give_only_lut_format_errors(tmp_path, compressed):
    import io

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **_shipped_arrays())
    good = buf.getvalue()
    rng = np.random.default_rng(11)
    p = tmp_path / "flipped.npz"
    for _ in range(150):
        data = bytearray(good)
        for i in rng.integers(0, len(data), size=3):
            data[i] = rng.integers(0, 256)
        p.write_bytes(bytes(data))
        try:
            load_lut(p)  # a flip in a zip comment or a table value may leave a valid LUT
        except LutFormatError as e:
            assert "\n" not in str(e) and "allow_pickle" not in str(e)


def test_a_directory_is_not_a_lut(tmp_path):
    assert "is not a file" in _assert_one_clear_line(tmp_path)
