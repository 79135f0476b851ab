"""The LUT file format: a versioned ``.npz`` holding only plain arrays (no pickle).

Version 1 keys:

``format``      str, always ``"rtfuse-lut"``
``version``     int, ``1``
``table``       float32, fused luma in [0, 1]; 3-D axes ``(vis_y, ir, context)``, 4-D axes
                ``(vis_y, vis_grad, context, ir)`` (LUT-Fuse's order) or ``(vis_y, max_detail,
                context, ir)``, each axis >= 2 nodes
``axes``        str (ndim,), the axis names in table order
``ranges``      float32 (ndim, 2), the input value at the first and last node of each axis:
                ``vis_y``/``ir`` within [0, 255]; ``context`` is [0, 1]; ``vis_grad`` is
                [0, hi] in units of L1-Sobel / 8 (fixed scale, clipped above ``hi``);
                ``max_detail`` is [lo < 0, hi > 0] in levels: M minus the mean of its 4
                neighbours, M = max(vis_y, ir) per pixel (clipped to the range)
``ctx_stride``  int, even: the context net runs on ``stride x stride`` block statistics
``ctx_w{i}``    float32 (Cout, Cin, k, k), k = 1 or 3; layer 0 has Cin = 4, the last Cout = 1
``ctx_b{i}``    float32 (Cout,)
``meta``        str, JSON: ``untrained`` (bool), ``method``, ``created``, free-form notes

Between context layers: LeakyReLU(0.1); after the last: sigmoid. Padding is replicate.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rtfuse.atomic import write_atomic
from rtfuse.errors import LutFormatError

FORMAT = "rtfuse-lut"
VERSION = 1
AXES_3D = ("vis_y", "ir", "context")
AXES_4D = ("vis_y", "vis_grad", "context", "ir")
AXES_4D_DETAIL = ("vis_y", "max_detail", "context", "ir")
KINDS = {"3d": AXES_3D, "4d": AXES_4D, "4d-detail": AXES_4D_DETAIL}  # kind name -> axes


def kind_of(axes: tuple[str, ...]) -> str:
    """The kind name (a key of :data:`KINDS`) of a table with these axes."""
    return next(k for k, a in KINDS.items() if a == tuple(axes))


CONTEXT_INPUTS = 4  # mean Y, mean IR, std Y, std IR (see kernels.context_stats)


@dataclass
class LutModel:
    """A LUT fuser's parameters as plain numpy arrays.

    ``table`` float32 in [0, 1], shape given by ``axes``; ``ranges`` float32 (ndim, 2);
    ``ctx_layers`` a list of (weight (Cout, Cin, k, k), bias (Cout,)) float32 pairs.
    """

    table: np.ndarray
    axes: tuple[str, ...]
    ranges: np.ndarray
    ctx_stride: int
    ctx_layers: list[tuple[np.ndarray, np.ndarray]]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.axes = tuple(str(a) for a in self.axes)
        self.table = np.asarray(self.table, dtype=np.float32)
        self.ranges = np.asarray(self.ranges, dtype=np.float32)
        self.ctx_layers = [
            (np.ascontiguousarray(w, np.float32), np.ascontiguousarray(b, np.float32))
            for w, b in self.ctx_layers
        ]
        validate(self)

    @property
    def kind(self) -> str:
        """``"3d"``, ``"4d"`` or ``"4d-detail"`` (see :data:`KINDS`)."""
        return kind_of(self.axes)

    @property
    def untrained(self) -> bool:
        return bool(self.meta.get("untrained", False))

    def axis_range(self, name: str) -> tuple[float, float]:
        lo, hi = self.ranges[self.axes.index(name)]
        return float(lo), float(hi)


def validate(m: LutModel, source: str = "LUT") -> None:
    """Raise :class:`LutFormatError` naming the first inconsistency in ``m``."""

    def bad(msg: str) -> LutFormatError:
        return LutFormatError(f"{source}: {msg}")

    if m.axes not in KINDS.values():
        raise bad(f"axes {m.axes} are none of {', '.join(map(str, KINDS.values()))}")
    if m.table.ndim != len(m.axes):
        raise bad(f"table has {m.table.ndim} dimensions but {len(m.axes)} axes are named")
    if min(m.table.shape) < 2:
        raise bad(f"every table axis needs at least 2 nodes, shape is {m.table.shape}")
    if not np.all(np.isfinite(m.table)):
        raise bad("table holds NaN or infinite values")
    lo, hi = float(m.table.min()), float(m.table.max())
    if lo < 0.0 or hi > 1.0:  # e.g. a 0..255 table: it would fuse to saturated white, with no error
        raise bad(f"table values must lie in [0, 1] (fused luma), found [{lo:g}, {hi:g}]")
    if m.ranges.shape != (len(m.axes), 2) or not np.all(np.isfinite(m.ranges)):
        raise bad(f"ranges must be finite with shape ({len(m.axes)}, 2), got {m.ranges.shape}")
    for name, (lo, hi) in zip(m.axes, m.ranges):
        if not lo < hi:
            raise bad(f"axis {name!r} range [{lo}, {hi}] is empty")
        if name in ("vis_y", "ir") and (lo < 0 or hi > 255):
            raise bad(f"axis {name!r} range [{lo}, {hi}] leaves 0..255")
        if name == "context" and (lo, hi) != (0.0, 1.0):
            raise bad(f"axis 'context' must span [0, 1], got [{lo}, {hi}]")
        if name == "vis_grad" and lo != 0.0:
            raise bad(f"axis 'vis_grad' must start at 0, got {lo}")
        if name == "max_detail" and not lo < 0.0 < hi:
            raise bad(f"axis 'max_detail' must span 0 (signed detail), got [{lo}, {hi}]")
    if not (2 <= int(m.ctx_stride) <= 64 and int(m.ctx_stride) % 2 == 0):
        raise bad(f"ctx_stride {m.ctx_stride} must be even, within 2..64")
    if not m.ctx_layers:
        raise bad("the context net has no layers")
    cin = CONTEXT_INPUTS
    for i, (w, b) in enumerate(m.ctx_layers):
        if w.ndim != 4 or w.shape[1] != cin or w.shape[2] != w.shape[3] or w.shape[2] not in (1, 3):
            raise bad(f"ctx_w{i} has shape {w.shape}; expected (Cout, {cin}, k, k) with k = 1 or 3")
        if b.shape != (w.shape[0],):
            raise bad(f"ctx_b{i} has shape {b.shape}; expected ({w.shape[0]},)")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise bad(f"context layer {i} holds NaN or infinite weights")
        cin = w.shape[0]
    if cin != 1:
        raise bad(f"the context net must end in 1 channel, it ends in {cin}")


def save_lut(path: str | Path, m: LutModel) -> None:
    """Write ``m`` to ``path`` (``.npz``) atomically: a partial file never takes its place."""
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT),
        "version": np.array(VERSION, dtype=np.int64),
        "table": m.table.astype(np.float32),
        "axes": np.array(m.axes),
        "ranges": m.ranges.astype(np.float32),
        "ctx_stride": np.array(m.ctx_stride, dtype=np.int64),
        "meta": np.array(json.dumps(m.meta, sort_keys=True)),
    }
    for i, (w, b) in enumerate(m.ctx_layers):
        arrays[f"ctx_w{i}"] = w
        arrays[f"ctx_b{i}"] = b
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_atomic(path, buf.getvalue(), "LUT")


_REMEDY = "re-export it with `rtfuse distill lut` (or `rtfuse lut init`) or use a shipped table"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip


def _not_npz(head: bytes) -> str:
    """What a file that does not start like a zip (hence like a .npz) looks like, in words."""
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it is a single .npy array"
    if head[:1] == b"\x80":
        return "it is a Python pickle, which rtfuse never loads"
    text = head.decode("utf-8", "ignore")  # "ignore": the 64 bytes may end inside a character
    if len(text.encode()) >= len(head) - 3 and all(c.isprintable() or c.isspace() for c in text):
        return "it is a text file"
    return f"it starts with {head[:8]!r}"


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, or one :class:`LutFormatError` line; nothing is ever unpickled.

    numpy's own messages can advise loading with ``allow_pickle=True``; they are never passed on.
    """

    def bad(why: str) -> LutFormatError:
        return LutFormatError(f"{path} is not a readable rtfuse LUT: {why}; {_REMEDY}")

    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise LutFormatError(f"{path}: cannot read the LUT file ({e.strerror})") from None
    # np.load would treat anything that is neither zip nor .npy as a pickle: check first.
    if not head.startswith(_ZIP_MAGIC):
        raise bad(f"not a .npz archive ({_not_npz(head)})")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except Exception as e:  # noqa: BLE001 - a damaged central directory raises more than BadZipFile
        raise bad(f"not a .npz archive (truncated or corrupt zip: {_safe(e)})") from None
    others = [n for n in names if not n.endswith(".npy")]
    if others or not names:
        held = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "") if others else "nothing"
        raise bad(f"not a .npz archive (a zip holding {held}, not .npy arrays)")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                try:
                    arrays[key] = z[key]
                except ValueError as e:
                    if "object arrays" in str(e).lower():
                        why = f"array {key!r} holds Python objects (pickle), which rtfuse never loads"
                        raise bad(why) from None
                    raise bad(f"array {key!r} is unreadable ({_safe(e)})") from None
    except LutFormatError:
        raise
    except Exception as e:  # noqa: BLE001 - zipfile, zlib and numpy's header parser raise many types
        raise bad(f"truncated or corrupt ({_safe(e)})") from None
    return arrays


def _safe(e: BaseException) -> str:
    """An exception's first line, without advice to load unsafely (numpy gives it for big headers)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return type(e).__name__ if "pickle" in msg.lower() else msg


def _describe(a: np.ndarray) -> str:
    return f"an array of dtype {a.dtype} and shape {a.shape}"


def load_lut(path: str | Path) -> LutModel:
    """Read and validate a LUT file; any problem raises :class:`LutFormatError` (one line)."""
    path = Path(path)
    if not path.exists():
        raise LutFormatError(f"LUT file {path} does not exist; pass an existing .npz or use a shipped table")
    if not path.is_file():
        raise LutFormatError(f"LUT file {path} is not a file; pass a .npz")
    arrays = _read_npz(path)

    def get(key: str) -> np.ndarray:
        if key not in arrays:
            raise LutFormatError(f"{path}: key {key!r} is missing; this is not an rtfuse LUT file")
        return arrays[key]

    # Every field's shape and dtype is checked before use: int()/str() on a wrong one would
    # raise TypeError, or silently read an array as its repr.
    def scalar(key: str, kind: str, what: str) -> np.ndarray:
        a = get(key)
        if a.shape != () or a.dtype.kind not in kind:
            raise LutFormatError(f"{path}: {key!r} must be {what}, got {_describe(a)}")
        return a

    fmt = str(scalar("format", "U", "a single string"))
    if fmt != FORMAT:
        raise LutFormatError(f"{path}: format is {fmt!r}, expected {FORMAT!r}: not an rtfuse LUT file")
    version = int(scalar("version", "iu", "a single integer"))
    if version != VERSION:
        raise LutFormatError(
            f"{path}: LUT format version {version}, this rtfuse reads version {VERSION}; "
            "upgrade rtfuse or re-export the LUT"
        )
    try:
        meta = json.loads(str(scalar("meta", "U", "a single JSON string")))
    except (json.JSONDecodeError, RecursionError) as e:
        raise LutFormatError(f"{path}: metadata is not valid JSON ({_safe(e)})") from None
    if not isinstance(meta, dict):
        raise LutFormatError(f"{path}: metadata must be a JSON object, got {type(meta).__name__}")
    axes = get("axes")
    if axes.ndim != 1 or axes.dtype.kind != "U":
        raise LutFormatError(f"{path}: 'axes' must be a 1-D array of names, got {_describe(axes)}")
    ctx_stride = int(scalar("ctx_stride", "iu", "a single integer"))
    layers = []
    i = 0
    while f"ctx_w{i}" in arrays:
        layers.append((get(f"ctx_w{i}"), get(f"ctx_b{i}")))
        i += 1
    numeric = [("table", get("table")), ("ranges", get("ranges"))]
    numeric += [(f"ctx_{wb}{j}", a) for j, layer in enumerate(layers) for wb, a in zip("wb", layer)]
    for key, a in numeric:
        if a.dtype.kind != "f":
            raise LutFormatError(f"{path}: {key!r} must hold floats, got {_describe(a)}")
    try:
        return LutModel(
            table=get("table"),
            axes=tuple(axes.tolist()),
            ranges=get("ranges"),
            ctx_stride=ctx_stride,
            ctx_layers=layers,
            meta=meta,
        )
    except LutFormatError as e:
        raise LutFormatError(f"{path}: {str(e).removeprefix('LUT: ')}") from None
