"""Image folder sink: one numbered file per fused frame."""

from __future__ import annotations

from pathlib import Path

from rtfuse.errors import RtfuseError
from rtfuse.images import write_image
from rtfuse.sinks.base import Fused, Sink


class ImageFolderSink(Sink):
    """Write ``fused_000000.png``... into ``folder`` (created if needed), each file atomically."""

    name = "images"

    def __init__(self, folder: str | Path, ext: str = ".png") -> None:
        self.folder = Path(folder)
        self.ext = ext if ext.startswith(".") else "." + ext
        self.count = 0
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RtfuseError(f"{self.folder}: cannot create output folder ({e.strerror})") from None

    def write(self, item: Fused) -> bool:
        write_image(self.folder / f"fused_{item.index:06d}{self.ext}", item.fused)
        self.count += 1
        return True

    def close(self) -> str:
        return f"wrote {self.count} images to {self.folder}"
