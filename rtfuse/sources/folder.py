"""Image folder or sequence source: sorted files at a settable frame rate."""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Iterator

import cv2

from rtfuse.errors import SourceError
from rtfuse.images import IMAGE_EXTS
from rtfuse.sources.base import DEFAULT_FPS, Frame, Source


def natural_key(path: Path) -> list:
    """Sort key where 'frame2' < 'frame10'."""
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", path.name)]


class ImageFolderSource(Source):
    """Every image in a folder (or matching a glob pattern), in natural order, at ``fps``.

    Frames keep their stored depth: 8-bit colour as BGR, gray as (H, W), 16-bit as uint16.
    ``t = index / fps``.
    """

    def __init__(self, spec: str | Path, fps: float = DEFAULT_FPS, name: str | None = None) -> None:
        if fps <= 0:
            raise SourceError(f"{spec}: fps must be positive, got {fps}")
        self.spec = str(spec)
        self.fps = float(fps)
        self.name = name or Path(self.spec).name or self.spec

    def open(self) -> "ImageFolderSource":
        if hasattr(self, "files"):
            return self
        p = Path(self.spec)
        if p.is_dir():
            files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
        elif glob.has_magic(self.spec):
            files = [Path(f) for f in glob.glob(self.spec) if Path(f).suffix.lower() in IMAGE_EXTS]
        else:
            raise SourceError(f"{self.spec}: no such folder")
        if not files:
            raise SourceError(f"{self.spec}: holds no images ({', '.join(IMAGE_EXTS)})")
        self.files = sorted(files, key=natural_key)
        self.frame_count = len(self.files)
        first = self._read(self.files[0])
        self.size = (first.shape[1], first.shape[0])
        return self

    def _read(self, path: Path):
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SourceError(f"{path}: not a readable image")
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        return img

    def frames(self) -> Iterator[Frame]:
        for i, f in enumerate(self.files):
            img = self._read(f)
            if (img.shape[1], img.shape[0]) != self.size:
                raise SourceError(
                    f"{f}: is {img.shape[1]}x{img.shape[0]}, but the sequence started at {self.size[0]}x{self.size[1]}"
                )
            yield Frame(i / self.fps, img, i)
