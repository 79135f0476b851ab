"""Still-image I/O with the frame conventions of the pipeline and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from rtfuse.errors import InputError

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def _read(path: Path) -> np.ndarray:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image (corrupt, or a format OpenCV cannot decode)")
    return img


def read_vis(path: str | os.PathLike) -> np.ndarray:
    """Visible image as uint8 (H, W, 3) BGR; gray files are expanded, alpha dropped, 16-bit scaled."""
    img = _read(Path(path))
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{path}: visible image has unsupported dtype {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


def stretch_u16(ir: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Percentile stretch of a 16-bit thermal frame to uint8 (a single still: no temporal smoothing)."""
    lo, hi = np.percentile(ir, (lo_pct, hi_pct))
    scale = 255.0 / max(hi - lo, 1.0)
    return np.clip((ir.astype(np.float32) - lo) * scale, 0, 255).astype(np.uint8)


def read_ir(path: str | os.PathLike) -> np.ndarray:
    """IR image as uint8 (H, W): colour files are converted to gray, 16-bit is percentile-stretched."""
    img = _read(Path(path))
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if img.dtype == np.uint16:
        return stretch_u16(img)
    if img.dtype != np.uint8:
        raise InputError(f"{path}: IR image has unsupported dtype {img.dtype}")
    return img


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write atomically: encode to a temporary name, then rename, so no half-written file remains."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise InputError(f"{path}: unsupported image extension {ext!r}; use one of {', '.join(IMAGE_EXTS)}")
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise InputError(f"{path}: OpenCV could not encode the image as {ext}")
    tmp = path.with_name(f".{path.name}.part")
    try:
        tmp.write_bytes(buf.tobytes())
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write ({e.strerror})") from None


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files in ``folder`` keyed by stem, sorted. Duplicate stems are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a directory")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in found:
                raise InputError(f"{folder}: two images share the stem {p.stem!r} ({found[p.stem].name}, {p.name})")
            found[p.stem] = p
    return found
