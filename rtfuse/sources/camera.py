"""Live camera source through OpenCV ``VideoCapture`` (V4L2 on Linux, any backend elsewhere).

Frames are stamped with their capture time on the shared ``time.monotonic()`` clock, so two
cameras can be paired by time. A camera that stops delivering (unplugged, driver error) is
reopened with back-off until ``reconnect_timeout`` seconds have passed without a frame.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import cv2
import numpy as np

from rtfuse.errors import SourceError
from rtfuse.sources.base import Frame, Source


def list_video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"), key=lambda p: int("".join(c for c in p if c.isdigit()) or 0))


def _device_hint() -> str:
    if not sys.platform.startswith("linux"):
        return "check the camera index"
    devices = list_video_devices()
    return (
        f"available devices: {', '.join(devices)}"
        if devices
        else "no /dev/video* devices exist on this machine"
    )


def is_stream_url(spec: str) -> bool:
    """A network stream (``rtsp://``, ``http://``...) rather than a local device or index."""
    return "://" in spec


def redact(spec: str) -> str:
    """``spec`` with a URL's password replaced by ``***``, for messages."""
    if not is_stream_url(spec):
        return spec
    try:
        parts = urlsplit(spec)
        if parts.password is None:
            return spec
        return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()
    except ValueError:  # a malformed URL (e.g. a bad port): hide everything before the host
        return spec.split("://", 1)[0] + "://***@" + spec.rsplit("@", 1)[-1] if "@" in spec else spec


_STREAM_HINT = (
    "check the URL (host, port, path), that the network reaches the camera, the credentials (user:password@ "
    "in the URL), and that OpenCV has its FFmpeg backend (cv2.getBuildInformation(): FFMPEG YES)"
)


def as_y16(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A raw 16-bit frame as uint16 (H, W) from what OpenCV returned.

    With ``CAP_PROP_CONVERT_RGB=0`` OpenCV may hand back (H, W) uint16, (H, W, 2) uint8, or (as
    OpenCV 4.11 does for V4L2 Y16) a flat (1, N) array: N = W*H uint16 values or 2*W*H bytes
    (little-endian). ``size`` is the configured (width, height).
    """
    w, h = size
    if img.dtype == np.uint16 and img.size == w * h:
        return img.reshape(h, w)
    if img.dtype == np.uint8 and img.size == 2 * w * h:
        return np.ascontiguousarray(img).reshape(-1).view("<u2").reshape(h, w)
    raise SourceError(
        f"a Y16 frame of {img.size} {img.dtype} values does not fit {w}x{h}; set the camera size to match",
        option="ir_size",
    )


class CameraSource(Source):
    """A camera (``/dev/videoN``, an index) or a stream URL that OpenCV opens.

    ``size``/``fps``/``fourcc``/``buffer_size`` are requested from the driver; the values it
    actually uses are read back. ``fourcc="Y16"`` selects raw 16-bit thermal: FOURCC first, then
    ``CAP_PROP_CONVERT_RGB=0`` (in that order, or V4L2 converts to 8-bit RGB), and frames come
    out as uint16 (H, W).
    """

    live = True

    def __init__(
        self,
        spec: str,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        buffer_size: int | None = 1,
        reconnect_timeout: float = 10.0,
        api: int | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.spec = spec
        self.name = f"camera {redact(spec)}"  # the name appears in messages: never a password
        self.want_size, self.want_fps = size, fps
        self.fourcc = fourcc.upper().ljust(4)[:4] if fourcc else None
        self.buffer_size = buffer_size
        self.reconnect_timeout = reconnect_timeout
        self.api = api
        self.open_timeout = open_timeout  # seconds for a stream URL to open (OpenCV's own default is 30)
        self.status = "closed"
        self.reconnects = 0
        self._cap: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None

    @property
    def raw16(self) -> bool:
        return self.fourcc == "Y16 "

    def _open_capture(self) -> cv2.VideoCapture | None:
        spec = self.spec
        api = self.api
        if api is None:
            api = (
                cv2.CAP_V4L2 if sys.platform.startswith("linux") and spec.startswith("/dev/") else cv2.CAP_ANY
            )
        params = []
        if is_stream_url(spec):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000)]
            os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # quiet: our message says what failed
        cap = cv2.VideoCapture(int(spec) if spec.isdigit() else spec, api, params)
        if not cap.isOpened():
            cap.release()
            return None
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.raw16:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)  # after the FOURCC: the order matters
        if self.want_size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.want_size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.want_size[1])
        if self.want_fps:
            cap.set(cv2.CAP_PROP_FPS, self.want_fps)
        if self.buffer_size:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_size)
        return cap

    def _hint(self) -> str:
        return _STREAM_HINT if is_stream_url(self.spec) else _device_hint()

    def _decode(self, img: np.ndarray) -> np.ndarray:
        return as_y16(img, self._cap_size) if self.raw16 else img

    def open(self) -> CameraSource:
        if self._cap is not None:
            return self
        if self.spec.startswith("/dev/") and not os.path.exists(self.spec):
            raise SourceError(f"camera {self.spec} does not exist; {_device_hint()}")
        cap = self._open_capture()
        if cap is None and is_stream_url(self.spec):
            raise SourceError(f"cannot open the stream {redact(self.spec)}; {_STREAM_HINT}")
        if cap is None:
            raise SourceError(
                f"cannot open camera {self.spec}: it is missing, or another program holds it; {_device_hint()}"
            )
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self._cap_size = self.want_size or (w, h)
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise SourceError(
                f"camera {redact(self.spec)} opened but delivers no frames: another program may be using it, "
                f"or it does not support the requested format{' (Y16)' if self.raw16 else ''}; {self._hint()}"
            )
        self._cap = cap
        self._first = self._decode(img)
        self._first_t = time.monotonic()
        self.size = (self._first.shape[1], self._first.shape[0])
        self.fps = cap.get(cv2.CAP_PROP_FPS) or self.want_fps or None
        self.status = "ok"
        return self

    def _reconnect(self, last_ok: float) -> None:
        """Reopen with back-off (0.25 s doubling to 4 s) until a frame arrives or the timeout passes."""
        self.status = "reconnecting"
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        delay = 0.25
        while True:
            lost = time.monotonic() - last_ok
            if lost > self.reconnect_timeout:
                self.status = "lost"
                raise SourceError(
                    f"camera {redact(self.spec)} delivered no frame for {lost:.1f} s and could not be "
                    f"reopened (the reconnect timeout is {self.reconnect_timeout:g} s); {self._hint()}",
                    option="reconnect_timeout",
                )
            time.sleep(min(delay, max(self.reconnect_timeout - lost, 0.0) + 0.01))
            delay = min(2 * delay, 4.0)
            cap = self._open_capture()
            if cap is not None:
                ok, img = cap.read()
                if ok and img is not None:
                    self._cap = cap
                    self.reconnects += 1
                    self.status = "ok"
                    return
                cap.release()

    def frames(self) -> Iterator[Frame]:
        if self._first is None:
            raise SourceError(f"{self.name}: frames() before open()")
        yield Frame(self._first_t, self._first, 0)
        i, last_ok = 1, self._first_t
        while True:
            ok, img = self._cap.read() if self._cap is not None else (False, None)
            now = time.monotonic()
            if not ok or img is None:
                self._reconnect(last_ok)
                continue
            last_ok = now
            yield Frame(now, self._decode(img), i)
            i += 1

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.status = "closed"
