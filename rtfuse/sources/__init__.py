"""Frame sources and ``open_source``, which turns a command-line SRC into one."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from rtfuse.argtypes import MAX_FPS, check_size
from rtfuse.errors import SourceError
from rtfuse.images import IMAGE_EXTS
from rtfuse.sources.base import DEFAULT_FPS, Frame, Source

__all__ = ["Frame", "Source", "open_source", "is_device_spec"]

_SYNTH = re.compile(r"^synthetic(?P<bits>16)?(?::(?P<w>\d+)x(?P<h>\d+))?(?:@(?P<fps>[\d.]+))?$")


def is_device_spec(spec: str) -> bool:
    """A camera: an index (``0``), a V4L2 node (``/dev/video1``) or a stream URL (``rtsp://...``)."""
    return spec.isdigit() or spec.startswith("/dev/video") or "://" in spec


def open_source(
    spec: str,
    role: str,
    fps: float | None = None,
    seed: int = 0,
    count: int | None = None,
    size: tuple[int, int] = (640, 480),
    realtime: bool = False,
    camera_size: tuple[int, int] | None = None,
    fourcc: str | None = None,
    buffer_size: int | None = 1,
    reconnect_timeout: float = 10.0,
    allow_truncated: bool = False,
    threads: int = 0,
) -> Source:
    """Build (not yet open) the source for SRC ``spec`` playing ``role`` (``"vis"`` or ``"ir"``).

    SRC is ``synthetic[16][:WxH][@FPS]``, a camera (see :func:`is_device_spec`; ``camera_size``,
    ``fps``, ``fourcc``, ``buffer_size`` are requested from it), an image folder or glob pattern
    (``fps`` sets its rate, default :data:`DEFAULT_FPS`), or a video file (``allow_truncated``: a file cut short of
    its declared length is a warning instead of an error; ``threads``: the decoder's threads, 0 automatic).
    """
    m = _SYNTH.match(spec)
    if m:
        from rtfuse.synthetic import SyntheticSource

        if m["bits"] and role != "ir":
            raise SourceError("synthetic16 is a 16-bit thermal source; use it as the IR source")
        w, h = (int(m["w"]), int(m["h"])) if m["w"] else size
        rate = float(m["fps"]) if m["fps"] else (fps or DEFAULT_FPS)
        try:
            check_size(w, h, f"synthetic size in {spec!r}:")
        except ValueError as e:
            raise SourceError(str(e)) from None
        if not 0 < rate <= MAX_FPS:
            raise SourceError(f"{spec}: the frame rate must be above 0 and at most {MAX_FPS:g}, got {rate:g}")
        modality = "ir16" if m["bits"] else role
        return SyntheticSource(modality, w, h, fps=rate, seed=seed, count=count, realtime=realtime)
    if is_device_spec(spec):
        from rtfuse.sources.camera import CameraSource

        return CameraSource(
            spec,
            size=camera_size,
            fps=fps,
            fourcc=fourcc,
            buffer_size=buffer_size,
            reconnect_timeout=reconnect_timeout,
        )
    path = Path(spec)
    if path.is_dir() or (glob.has_magic(spec) and not path.exists()):  # a file may have [ ] in its name
        from rtfuse.sources.folder import ImageFolderSource

        return ImageFolderSource(spec, fps=fps or DEFAULT_FPS)
    if path.suffix.lower() in IMAGE_EXTS and path.is_file():
        raise SourceError(
            f"{spec}: a single image is not a stream; fuse stills with `rtfuse fuse --vis A --ir B -o OUT`"
        )
    from rtfuse.sources.video import VideoFileSource

    return VideoFileSource(path, allow_truncated=allow_truncated, threads=threads)
