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


def load_lut(path: str | Path) -> LutModel:
    """Read and validate a LUT file; any problem raises :class:`LutFormatError`."""
    path = Path(path)
    if not path.is_file():
        raise LutFormatError(f"LUT file {path} does not exist; pass an existing .npz (see weights/)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise LutFormatError(
            f"{path} is not a readable rtfuse LUT (.npz): {e}. It may be truncated or corrupt; "
            "re-export it with `rtfuse distill lut` or use a file from weights/"
        ) from None

    def get(key: str) -> np.ndarray:
        if key not in arrays:
            raise LutFormatError(f"{path}: key {key!r} is missing; this is not an rtfuse LUT file")
        return arrays[key]

    if str(get("format")) != FORMAT:
        raise LutFormatError(f"{path}: format is {str(get('format'))!r}, expected {FORMAT!r}")
    version = int(get("version"))
    if version != VERSION:
        raise LutFormatError(
            f"{path}: LUT format version {version}, this rtfuse reads version {VERSION}; "
            "upgrade rtfuse or re-export the LUT"
        )
    try:
        meta = json.loads(str(get("meta")))
    except json.JSONDecodeError as e:
        raise LutFormatError(f"{path}: metadata is not valid JSON ({e})") from None
    layers = []
    i = 0
    while f"ctx_w{i}" in arrays:
        layers.append((get(f"ctx_w{i}"), get(f"ctx_b{i}")))
        i += 1
    for key, dtype in (("table", np.floating), ("ranges", np.floating), ("ctx_stride", np.integer)):
        if not np.issubdtype(get(key).dtype, dtype):
            raise LutFormatError(f"{path}: {key!r} has dtype {get(key).dtype}")
    try:
        return LutModel(
            table=get("table"),
            axes=tuple(get("axes").tolist()),
            ranges=get("ranges"),
            ctx_stride=int(get("ctx_stride")),
            ctx_layers=layers,
            meta=meta if isinstance(meta, dict) else {},
        )
    except LutFormatError as e:
        raise LutFormatError(f"{path}: {str(e).removeprefix('LUT: ')}") from None
