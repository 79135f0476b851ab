"""Still-image I/O with the frame conventions of the pipeline and clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from rtfuse.atomic import write_atomic
from rtfuse.errors import InputError
from rtfuse.prepare import to_ir_gray, to_vis_bgr

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as stored: uint8 or uint16, gray, BGR or BGRA (the fusion stage prepares it)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise InputError(f"{path}: not a readable image (corrupt, or a format OpenCV cannot decode)")
    return img


def read_vis(path: str | os.PathLike) -> np.ndarray:
    """Visible image as uint8 (H, W, 3) BGR; gray files are expanded, alpha dropped, 16-bit scaled."""
    return to_vis_bgr(read_image(path))


def read_ir(path: str | os.PathLike) -> np.ndarray:
    """IR image as uint8 (H, W): colour files are converted to gray, 16-bit is percentile-stretched."""
    return to_ir_gray(read_image(path))


def write_image(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write atomically: encode to a temporary name, then rename, so no half-written file remains."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTS:
        raise InputError(f"{path}: unsupported image extension {ext!r}; use one of {', '.join(IMAGE_EXTS)}")
    ok, buf = cv2.imencode(ext, img)
    if not ok:
        raise InputError(f"{path}: OpenCV could not encode the image as {ext}")
    write_atomic(path, buf.tobytes(), "image")


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files in ``folder`` keyed by stem, sorted. Duplicate stems are an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: {'not a directory' if folder.exists() else 'no such directory'}")
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTS:
            if p.stem in found:
                raise InputError(
                    f"{folder}: two images share the stem {p.stem!r} ({found[p.stem].name}, "
                    f"{p.name}); keep one of them in the folder"
                )
            found[p.stem] = p
    return found
