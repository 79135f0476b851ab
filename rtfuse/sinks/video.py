"""Video file sink through PyAV: H.264 yuv420p by default, FFV1 for lossless, always finalised."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rtfuse.errors import RtfuseError
from rtfuse.sinks.base import Fused, Sink

CODECS = {
    # name: (FFmpeg encoder, pixel format, options)
    "h264": ("libx264", "yuv420p", lambda preset, crf: {"preset": preset, "crf": str(crf)}),
    "ffv1": ("ffv1", "bgr0", lambda preset, crf: {}),  # lossless: decodes back to the exact BGR
}
_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi"}
TIME_BASE = Fraction(1, 90000)


class VideoSink(Sink):
    """Encode fused frames to ``path``; timestamps are the visible frames' times.

    The file is written under a temporary name and renamed into place by :meth:`close`, which
    also flushes the encoder, so even a run stopped by an error or Ctrl-C leaves a complete,
    playable file holding every frame written so far.
    """

    name = "video"

    def __init__(self, path: str | Path, codec: str = "h264", preset: str = "veryfast", crf: int = 20) -> None:
        self.path = Path(path)
        if codec not in CODECS:
            raise RtfuseError(f"codec {codec!r} is not supported; choose one of {', '.join(CODECS)}")
        ext = self.path.suffix.lower()
        if ext not in _CONTAINERS:
            raise RtfuseError(f"{self.path}: use one of {', '.join(_CONTAINERS)} for a video output")
        if not self.path.parent.is_dir():
            raise RtfuseError(f"{self.path}: folder {self.path.parent} does not exist")
        if not 0 <= crf <= 51:
            raise RtfuseError(f"--crf must be within 0..51, got {crf}")
        self.codec, self.preset, self.crf = codec, preset, crf
        self._tmp = self.path.with_name(f".{self.path.name}.part")
        self._container = None
        self.count = 0
        self._last_pts = -1
        self._t0: float | None = None

    def open(self, size: tuple[int, int], fps: float) -> None:
        encoder, pix_fmt, options = CODECS[self.codec]
        try:
            self._container = av.open(str(self._tmp), "w", format=_CONTAINERS[self.path.suffix.lower()])
            rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
            stream = self._container.add_stream(encoder, rate=rate, options=options(self.preset, self.crf))
            stream.width, stream.height = size
            stream.pix_fmt = pix_fmt
            stream.time_base = TIME_BASE
            stream.codec_context.time_base = TIME_BASE
        except (av.error.FFmpegError, OSError, ValueError) as e:
            self._abort()
            raise RtfuseError(f"{self.path}: cannot open the video encoder ({e})") from None
        self._stream = stream
        self._ticks = max(int(round(1 / (rate * TIME_BASE))), 1)
        self._fps = float(rate)

    def write(self, item: Fused) -> bool:
        if self._t0 is None:
            self._t0 = item.t
        rel = item.t - self._t0
        # Timestamps within 10 % of a frame of the nominal grid were rounded by the input container
        # (e.g. to ms): put them back on the grid, so the output states the input's exact rate.
        k = round(rel * self._fps)
        if abs(rel * self._fps - k) < 0.1:
            rel = k / self._fps
        pts = max(int(round(rel / TIME_BASE)), self._last_pts + 1)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(item.fused), format="bgr24")
        frame.pts, frame.time_base = pts, TIME_BASE
        self._last_pts = pts
        self._mux(self._stream.encode(frame))
        self.count += 1
        return True

    def _mux(self, packets) -> None:
        for p in packets:
            if not p.duration:  # lets the muxer state the exact frame rate (mp4 stts)
                p.duration = self._ticks
            self._container.mux(p)

    def _abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def close(self) -> str:
        if self._container is None:
            return f"{self.path}: not written"
        if self.count == 0:
            self._abort()
            return f"{self.path}: not written (no frames)"
        self._mux(self._stream.encode())  # flush delayed frames
        self._container.close()
        self._container = None
        self._tmp.replace(self.path)
        return f"wrote {self.path} ({self.count} frames, {self.codec})"
