"""Calibration files and the Aligner that resamples IR into the visible image's geometry."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import cv2
import numpy as np
import yaml

from rtfuse.atomic import write_atomic
from rtfuse.errors import CalibrationError

CALIB_VERSION = 2  # written when a lens model is present; files without one stay version 1
READ_VERSIONS = (1, 2)
# OpenCV distortion vectors supported: k1 k2 p1 p2 [k3 [k4 k5 k6]] (the thin-prism and tilted
# models are not: the Aligner evaluates the model itself, vectorised over every pixel)
DIST_LENGTHS = (4, 5, 8)
# cv2.undistortPoints runs 5 fixed steps by default: too few for a strong wide-angle distortion
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 40, 1e-6)
MAX_RAY = 10.0  # normalised radius (~84 deg off axis) up to which a distortion model is scanned


def _distort_normalised(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's distortion model on normalised coordinates (float64 arrays of one shape)."""
    k = np.zeros(8)
    k[: len(d)] = d
    k1, k2, p1, p2, k3, k4, k5, k6 = k
    r2 = x * x + y * y
    radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
    xy = x * y
    return (
        x * radial + 2 * p1 * xy + p2 * (r2 + 2 * x * x),
        y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * xy,
    )


@dataclass
class Lens:
    """A camera's intrinsics and distortion (OpenCV model) at ``size`` = (width, height) pixels.

    ``camera_matrix`` (3, 3) float64, ``dist_coeffs`` (n,) float64 with n in :data:`DIST_LENGTHS`.
    Undistorted ("ideal") pixels use the same camera matrix, so they stay in the image's own
    pixel units: ``undistort`` and ``distort`` are inverse to each other inside the frame.
    """

    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    size: tuple[int, int]

    def undistort(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) observed pixels -> (N, 2) float64 ideal pixels (``cv2.undistortPoints``, P=K)."""
        pts = np.asarray(pts, np.float64).reshape(-1, 1, 2)
        if not len(pts):
            return pts.reshape(0, 2)
        out = cv2.undistortPoints(
            pts, self.camera_matrix, self.dist_coeffs, P=self.camera_matrix, criteria=UNDISTORT_CRITERIA
        )
        return out.reshape(-1, 2)

    def distort(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) ideal pixels -> ((N, 2) float64 observed pixels, (N,) bool valid).

        Invalid: beyond the radius where the polynomial model stops growing (it would fold far-off
        rays back into the frame), so those points must be treated as outside the image.
        """
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        (fx, _, cx), (_, fy, cy) = self.camera_matrix[:2]  # no skew (checked on loading)
        x, y = (pts[:, 0] - cx) / fx, (pts[:, 1] - cy) / fy
        valid = np.isfinite(x) & np.isfinite(y) & (np.hypot(x, y) < self.fold_radius)
        x[~valid], y[~valid] = 0.0, 0.0
        xd, yd = _distort_normalised(x, y, self.dist_coeffs)
        return np.stack([fx * xd + cx, fy * yd + cy], 1), valid

    @cached_property
    def fold_radius(self) -> float:
        """Normalised undistorted radius where the model first stops moving points outwards
        (scanned along 16 directions); :data:`MAX_RAY` if it never does."""
        r = np.linspace(0, MAX_RAY, 4001)[1:]
        a = np.linspace(0, 2 * np.pi, 16, endpoint=False)[:, None]
        xd, yd = _distort_normalised(r * np.cos(a), r * np.sin(a), self.dist_coeffs)
        grows = np.diff(np.hypot(xd, yd), axis=1) > 0
        stop = np.where(grows.all(1), len(r) - 1, np.argmin(grows, axis=1))
        return float(r[stop.min()])

    def problem(self) -> str | None:
        """Why this model cannot describe the whole frame (it folds inside it), or None."""
        w, h = self.size
        corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        q, ok = self.distort(self.undistort(corners))  # a fold breaks the round trip
        if not ok.all() or np.abs(q - corners).max() > 0.05:
            return (
                "the distortion model folds inside the frame (it is extrapolated where no board "
                "was seen); refit with boards near the image corners, or without a lens model"
            )
        return None

    def to_dict(self) -> dict:
        return {
            "camera_matrix": [[float(v) for v in row] for row in self.camera_matrix],
            "dist_coeffs": [float(v) for v in self.dist_coeffs],
            "image_size": [int(v) for v in self.size],
        }


@dataclass
class Calibration:
    """IR -> visible mapping: ``[x_v, y_v, 1]^T ~ H [x_ir, y_ir, 1]^T`` in pixel coordinates
    (OpenCV convention: integer coordinates at pixel centres).

    ``ir_size``/``vis_size`` are (width, height) the homography was estimated at; ``None`` means
    any size (only meaningful for the identity, which then just rescales).

    ``ir_lens``/``vis_lens``: optional lens models. With them the homography maps *undistorted*
    IR pixels to *undistorted* visible pixels (each with its own camera matrix), i.e.
    ``vis = distort_vis(H undistort_ir(ir))``; the Aligner folds all of it into one remap table.
    """

    homography: np.ndarray
    ir_size: tuple[int, int] | None = None
    vis_size: tuple[int, int] | None = None
    method: str = "identity"
    errors: dict = field(default_factory=dict)
    date: str = ""
    notes: str = ""
    ir_lens: Lens | None = None
    vis_lens: Lens | None = None

    @property
    def is_identity(self) -> bool:
        return bool(np.allclose(self.homography / self.homography[2, 2], np.eye(3), atol=1e-9))

    @property
    def has_lens(self) -> bool:
        return self.ir_lens is not None or self.vis_lens is not None

    def to_yaml(self) -> str:
        data = {
            "version": CALIB_VERSION if self.has_lens else 1,
            "homography": [[float(v) for v in row] for row in self.homography],
            "ir_size": list(self.ir_size) if self.ir_size else None,
            "vis_size": list(self.vis_size) if self.vis_size else None,
            "method": self.method,
            "errors": self.errors,
            "date": self.date or _dt.date.today().isoformat(),
            "notes": self.notes,
        }
        for key, lens in (("ir_lens", self.ir_lens), ("vis_lens", self.vis_lens)):
            if lens is not None:  # absent otherwise: files without a lens are unchanged
                data[key] = lens.to_dict()
        head = "# rtfuse calibration: homography maps IR pixels to visible pixels\n"
        if self.has_lens:
            head += "# (undistorted pixels of the cameras with a lens model: ir_lens, vis_lens)\n"
        return head + yaml.safe_dump(data, sort_keys=False)

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


def _numbers(value) -> np.ndarray:
    """float64 array of a YAML list of numbers; an empty (0, 0) array when it is not one."""
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        return np.zeros((0, 0))


def _lens(value, key: str, size: tuple[int, int] | None, path) -> Lens | None:
    """A lens block of the YAML, validated; every problem is one CalibrationError line."""
    if value is None:
        return None
    where = f"{path}: {key}"
    if not isinstance(value, dict) or set(value) != {"camera_matrix", "dist_coeffs", "image_size"}:
        got = sorted(value) if isinstance(value, dict) else type(value).__name__
        raise CalibrationError(f"{where} must have exactly camera_matrix, dist_coeffs, image_size; got {got}")
    k, d = _numbers(value["camera_matrix"]), _numbers(value["dist_coeffs"])
    if (
        k.shape != (3, 3)
        or not np.isfinite(k).all()
        or k[0, 0] <= 0
        or k[1, 1] <= 0
        or k[1, 0]
        or k[0, 1]  # skew: cv2.undistortPoints ignores it, so the two directions would disagree
        or k[2].tolist() != [0, 0, 1]
    ):
        raise CalibrationError(
            f"{where}.camera_matrix must be [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0"
        )
    if d.ndim != 1 or len(d) not in DIST_LENGTHS or not np.isfinite(d).all():
        raise CalibrationError(
            f"{where}.dist_coeffs must be 4, 5 or 8 numbers (OpenCV order k1, k2, p1, p2[, k3[, k4, k5, k6]]), "
            f"got {value['dist_coeffs']!r}"
        )
    img = _size(value["image_size"], f"{key}.image_size", path)
    camera = "IR" if key == "ir_lens" else "visible"
    if size is None or img != size:
        raise CalibrationError(
            f"{where}.image_size {value['image_size']!r} must equal {key[:-5]}_size "
            f"({list(size) if size else None}): a lens model belongs to the {camera} frames it was fitted on"
        )
    lens = Lens(k, d, img)
    why = lens.problem()
    if why:
        raise CalibrationError(f"{where}: {why}")
    return lens


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
    if data.get("version", 1) not in READ_VERSIONS:
        raise CalibrationError(
            f"{path}: calibration version {data.get('version')}, this rtfuse reads "
            f"{' and '.join(map(str, READ_VERSIONS))}"
        )
    try:
        h = np.array(data["homography"], dtype=np.float64)
    except (TypeError, ValueError):
        h = np.zeros(0)
    if h.shape != (3, 3) or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12 or h[2, 2] == 0:
        raise CalibrationError(f"{path}: 'homography' must be an invertible 3x3 matrix of numbers")
    ir_size = _size(data.get("ir_size"), "ir_size", path)
    vis_size = _size(data.get("vis_size"), "vis_size", path)
    return Calibration(
        homography=h / h[2, 2],
        ir_size=ir_size,
        vis_size=vis_size,
        method=str(data.get("method", "")),
        errors=data.get("errors") or {},
        date=str(data.get("date", "")),
        notes=str(data.get("notes", "")),
        ir_lens=_lens(data.get("ir_lens"), "ir_lens", ir_size, path),
        vis_lens=_lens(data.get("vis_lens"), "vis_lens", vis_size, path),
    )


def vis_to_ir(calib: Calibration, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where visible pixels come from in the IR frame: (N, 2) visible pixels -> ((N, 2) float64
    IR pixels, (N,) bool valid). The whole model: undistort (visible lens), ``H^-1``, distort (IR
    lens). Invalid: behind the IR camera, at infinity, or beyond the range of the IR lens model.
    The Aligner's remap table and the calibration's error report both use this one function."""
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    if calib.vis_lens is not None:
        pts = calib.vis_lens.undistort(pts)
    q = np.c_[pts, np.ones(len(pts))] @ np.linalg.inv(calib.homography).T
    with np.errstate(divide="ignore", invalid="ignore"):
        ir = q[:, :2] / q[:, 2:3]
    ok = np.isfinite(ir).all(1) & (q[:, 2] > 0)
    ir[~ok] = 0.0
    if calib.ir_lens is not None:
        ir, inside = calib.ir_lens.distort(ir)
        ok &= inside
    return ir, ok


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
        # A different size is refused, not rescaled: a stream scaled or cropped by its driver is
        # not the frame the homography and lens were fitted on, and silently guessing is worse.
        for name, want, got in (("IR", calib.ir_size, ir_size), ("visible", calib.vis_size, vis_size)):
            if want is not None and tuple(want) != tuple(got):
                turned = (
                    f" (the calibrated size turned by 90 deg: give the frames in the orientation they "
                    f"were calibrated in, e.g. a Lepton stored rotated as {want[0]}x{want[1]})"
                    if tuple(want) == tuple(got)[::-1]
                    else ""
                )
                raise CalibrationError(
                    f"{source} was made for {name} frames of {want[0]}x{want[1]}, but the {name} stream is "
                    f"{got[0]}x{got[1]}{turned}; recalibrate at this size (rtfuse calibrate ...) or set the "
                    "camera size"
                )
        self.ir_size, self.vis_size = tuple(ir_size), tuple(vis_size)
        self.calib = calib
        self.mode = "none"
        if calib.is_identity and not calib.has_lens:
            if self.ir_size != self.vis_size:
                self.mode = "resize"
        else:
            self.mode = "remap"
            w, h = self.vis_size
            xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
            src, ok = vis_to_ir(calib, np.stack([xs.ravel(), ys.ravel()], 1))
            mx = src[:, 0].reshape(h, w).astype(np.float32)
            my = src[:, 1].reshape(h, w).astype(np.float32)
            mx[~ok.reshape(h, w)], my[~ok.reshape(h, w)] = -1e4, -1e4  # outside the IR frame
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
