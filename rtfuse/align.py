"""Calibration files and the Aligner that resamples IR into the visible image's geometry."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from rtfuse.atomic import write_atomic
from rtfuse.errors import CalibrationError

CALIB_VERSION = 1


@dataclass
class Calibration:
    """IR -> visible mapping: ``[x_v, y_v, 1]^T ~ H [x_ir, y_ir, 1]^T`` in pixel coordinates
    (OpenCV convention: integer coordinates at pixel centres).

    ``ir_size``/``vis_size`` are (width, height) the homography was estimated at; ``None`` means
    any size (only meaningful for the identity, which then just rescales).
    """

    homography: np.ndarray
    ir_size: tuple[int, int] | None = None
    vis_size: tuple[int, int] | None = None
    method: str = "identity"
    errors: dict = field(default_factory=dict)
    date: str = ""
    notes: str = ""

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.homography / self.homography[2, 2], np.eye(3), atol=1e-9))

    def to_yaml(self) -> str:
        data = {
            "version": CALIB_VERSION,
            "homography": [[float(v) for v in row] for row in self.homography],
            "ir_size": list(self.ir_size) if self.ir_size else None,
            "vis_size": list(self.vis_size) if self.vis_size else None,
            "method": self.method,
            "errors": self.errors,
            "date": self.date or _dt.date.today().isoformat(),
            "notes": self.notes,
        }
        return "# rtfuse calibration: homography maps IR pixels to visible pixels\n" + yaml.safe_dump(
            data, sort_keys=False
        )

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file, then rename); problems raise InputError."""
        write_atomic(path, self.to_yaml().encode(), "calibration")


def _size(value, key: str, path) -> tuple[int, int] | None:
    if value is None:
        return None
    if not (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and v > 0 for v in value)
    ):
        raise CalibrationError(f"{path}: {key} must be [width, height] in pixels, got {value!r}")
    return int(value[0]), int(value[1])


def load_calibration(path: str | Path) -> Calibration:
    """Read a calibration YAML (see calibration/README.md); problems raise CalibrationError."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration {path} does not exist (see calibration/README.md)")
    try:
        data = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise CalibrationError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict) or "homography" not in data:
        raise CalibrationError(f"{path}: not an rtfuse calibration (no 'homography' key)")
    if data.get("version", CALIB_VERSION) != CALIB_VERSION:
        raise CalibrationError(
            f"{path}: calibration version {data.get('version')}, this rtfuse reads {CALIB_VERSION}"
        )
    try:
        h = np.array(data["homography"], dtype=np.float64)
    except (TypeError, ValueError):
        h = np.zeros(0)
    if h.shape != (3, 3) or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12 or h[2, 2] == 0:
        raise CalibrationError(f"{path}: 'homography' must be an invertible 3x3 matrix of numbers")
    return Calibration(
        homography=h / h[2, 2],
        ir_size=_size(data.get("ir_size"), "ir_size", path),
        vis_size=_size(data.get("vis_size"), "vis_size", path),
        method=str(data.get("method", "")),
        errors=data.get("errors") or {},
        date=str(data.get("date", "")),
        notes=str(data.get("notes", "")),
    )


class Aligner:
    """Resample IR frames into the visible geometry: ``aligner(ir (h, w)) -> (H, W)``.

    The remap tables are computed once here; per frame it is one ``cv2.remap`` (or a plain
    resize / nothing for the identity). Pixels that the IR camera does not see are 0.
    """

    def __init__(
        self,
        calib: Calibration | None,
        ir_size: tuple[int, int],
        vis_size: tuple[int, int],
        source: str = "calibration",
    ) -> None:
        calib = calib or Calibration(np.eye(3))
        for name, want, got in (("IR", calib.ir_size, ir_size), ("visible", calib.vis_size, vis_size)):
            if want is not None and tuple(want) != tuple(got):
                raise CalibrationError(
                    f"{source} was made for {name} frames of {want[0]}x{want[1]}, but the {name} stream is "
                    f"{got[0]}x{got[1]}; recalibrate at this size (rtfuse calibrate ...) or set the camera size"
                )
        self.ir_size, self.vis_size = tuple(ir_size), tuple(vis_size)
        self.calib = calib
        self.mode = "none"
        if calib.is_identity:
            if self.ir_size != self.vis_size:
                self.mode = "resize"
        else:
            self.mode = "remap"
            w, h = self.vis_size
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
            pts = np.stack([xs, ys, np.ones_like(xs)], -1) @ np.linalg.inv(calib.homography).T
            with np.errstate(divide="ignore", invalid="ignore"):
                mx = (pts[..., 0] / pts[..., 2]).astype(np.float32)
                my = (pts[..., 1] / pts[..., 2]).astype(np.float32)
            bad = ~(np.isfinite(mx) & np.isfinite(my)) | (pts[..., 2] <= 0)
            mx[bad], my[bad] = -1e4, -1e4  # behind the IR camera or at infinity: outside
            self._map1, self._map2 = cv2.convertMaps(mx, my, cv2.CV_16SC2)

    def __call__(self, ir: np.ndarray) -> np.ndarray:
        if (ir.shape[1], ir.shape[0]) != self.ir_size:
            raise CalibrationError(
                f"IR frame is {ir.shape[1]}x{ir.shape[0]} but the aligner was set up for {self.ir_size[0]}x{self.ir_size[1]}"
            )
        if self.mode == "none":
            return ir
        if self.mode == "resize":
            shrink = ir.shape[1] > self.vis_size[0]
            return cv2.resize(ir, self.vis_size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return cv2.remap(
            ir, self._map1, self._map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
