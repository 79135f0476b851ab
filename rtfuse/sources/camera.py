"""Live camera source through OpenCV ``VideoCapture`` (V4L2 on Linux, any backend elsewhere)."""

from __future__ import annotations

import glob
import sys
import time
from typing import Iterator

import cv2

from rtfuse.errors import SourceError
from rtfuse.sources.base import Frame, Source


def list_video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: int("".join(c for c in p if c.isdigit()) or 0))


def _device_hint() -> str:
    devices = list_video_devices()
    if sys.platform.startswith("linux"):
        return f"available: {', '.join(devices)}" if devices else "no /dev/video* devices exist"
    return "check the camera index"


class CameraSource(Source):
    """A camera or stream URL; frames are stamped with their capture time (``time.monotonic``).

    ``spec`` is an index, ``/dev/videoN`` or a URL that OpenCV opens. ``size``/``fps``/``fourcc``
    are requested from the driver (it may choose others; the actual values are read back).
    """

    live = True

    def __init__(self, spec: str, size: tuple[int, int] | None = None, fps: float | None = None,
                 fourcc: str | None = None, buffer_size: int | None = 1) -> None:
        self.spec = spec
        self.name = f"camera {spec}"
        self._want = (size, fps, fourcc, buffer_size)
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> "CameraSource":
        if self._cap is not None:
            return self
        spec = self.spec
        if spec.startswith("/dev/video"):
            import os

            if not os.path.exists(spec):
                raise SourceError(f"camera {spec} does not exist; {_device_hint()}")
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") and "://" not in spec else cv2.CAP_ANY
        cap = cv2.VideoCapture(int(spec) if spec.isdigit() else spec, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open camera {spec}: it is missing, or another program holds it; {_device_hint()}"
            )
        size, fps, fourcc, buffer_size = self._want
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc.ljust(4)[:4]))
        if size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps:
            cap.set(cv2.CAP_PROP_FPS, fps)
        if buffer_size:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, buffer_size)
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise SourceError(f"camera {spec} opened but delivers no frames; is it in use, or the format unsupported?")
        self._cap, self._first = cap, img
        self.size = (img.shape[1], img.shape[0])
        self.fps = cap.get(cv2.CAP_PROP_FPS) or fps
        return self

    def frames(self) -> Iterator[Frame]:
        if self._cap is None:
            raise SourceError(f"camera {self.spec}: frames() before open()")
        t0 = time.monotonic()
        yield Frame(0.0, self._first, 0)
        i = 1
        while self._cap is not None:
            ok, img = self._cap.read()
            t = time.monotonic() - t0
            if not ok or img is None:
                raise SourceError(f"camera {self.spec} stopped delivering frames (unplugged?) after {i} frames")
            yield Frame(t, img, i)
            i += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
