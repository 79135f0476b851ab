"""Frame sources and ``open_source``, which turns a command-line SRC into one."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from rtfuse.errors import SourceError
from rtfuse.images import IMAGE_EXTS
from rtfuse.sources.base import Frame, Source

__all__ = ["Frame", "Source", "open_source", "is_device_spec"]

_SYNTH = re.compile(r"^synthetic(?P<bits>16)?(?::(?P<w>\d+)x(?P<h>\d+))?(?:@(?P<fps>[\d.]+))?$")


def is_device_spec(spec: str) -> bool:
    """A camera: an index (``0``), a V4L2 node (``/dev/video1``) or a stream URL (``rtsp://...``)."""
    return spec.isdigit() or spec.startswith("/dev/video") or "://" in spec


def open_source(spec: str, role: str, fps: float | None = None, seed: int = 0, count: int | None = None,
                size: tuple[int, int] = (640, 480), realtime: bool = False, camera_size: tuple[int, int] | None = None,
                fourcc: str | None = None, buffer_size: int | None = 1, reconnect_timeout: float = 10.0) -> Source:
    """Build (not yet open) the source for SRC ``spec`` playing ``role`` (``"vis"`` or ``"ir"``).

    SRC is ``synthetic[16][:WxH][@FPS]``, a camera (see :func:`is_device_spec`; ``camera_size``,
    ``fps``, ``fourcc``, ``buffer_size`` are requested from it), an image folder or glob pattern
    (``fps`` sets its rate, default 30), or a video file.
    """
    m = _SYNTH.match(spec)
    if m:
        from rtfuse.sources.synthetic import SyntheticSource

        if m["bits"] and role != "ir":
            raise SourceError("synthetic16 is a 16-bit thermal source; use it for --ir")
        w, h = (int(m["w"]), int(m["h"])) if m["w"] else size
        rate = float(m["fps"]) if m["fps"] else (fps or 30.0)
        modality = "ir16" if m["bits"] else role
        return SyntheticSource(modality, w, h, fps=rate, seed=seed, count=count, realtime=realtime)
    if is_device_spec(spec):
        from rtfuse.sources.camera import CameraSource

        return CameraSource(spec, size=camera_size, fps=fps, fourcc=fourcc, buffer_size=buffer_size,
                            reconnect_timeout=reconnect_timeout)
    path = Path(spec)
    if path.is_dir() or glob.has_magic(spec):
        from rtfuse.sources.folder import ImageFolderSource

        return ImageFolderSource(spec, fps=fps or 30.0)
    if path.suffix.lower() in IMAGE_EXTS and path.is_file():
        raise SourceError(f"{spec}: a single image is not a stream; fuse stills with `rtfuse fuse --vis A --ir B -o OUT`")
    from rtfuse.sources.video import VideoFileSource

    return VideoFileSource(path)
