"""Video file source through PyAV: threaded decode, real timestamps, lossless delivery."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import av
import numpy as np

from rtfuse.errors import SourceError
from rtfuse.sources.base import Frame, Source

# Decoded as 16-bit gray when the stream stores more than 8 bits of one channel (raw thermal).
_GRAY16_FORMATS = {"gray16le", "gray16be", "gray10le", "gray10be", "gray12le", "gray12be", "gray14le", "gray14be"}


class VideoFileSource(Source):
    """Frames of the first video stream of any container FFmpeg opens.

    Colour streams are delivered as uint8 BGR, high-bit-depth gray streams as uint16. ``t`` is
    the presentation time in seconds from the stream's first frame (so two files recorded
    together line up at their starts; the pipeline can shift one by an offset).
    """

    def __init__(self, path: str | Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self._container = None
        self._first: av.VideoFrame | None = None

    def open(self) -> "VideoFileSource":
        if self._container is not None:
            return self
        if not self.path.exists():
            raise SourceError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise SourceError(f"{self.path}: not a file")
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path}: the file is empty (0 bytes, a zero-length clip)")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise SourceError(f"{self.path}: not a video file FFmpeg can read ({e})") from None
        if not self._container.streams.video:
            self.close()
            raise SourceError(f"{self.path}: has no video stream (a zero-length, audio-only or truncated file?)")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame/slice threads inside the decoder
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_count = stream.frames or None
        self._format = "gray16le" if stream.codec_context.pix_fmt in _GRAY16_FORMATS else "bgr24"
        self._decoder = self._container.decode(stream)
        # Decode the first frame now: an empty or undecodable clip fails here, before any thread starts.
        try:
            self._first = next(self._decoder)
        except StopIteration:
            self.close()
            raise SourceError(f"{self.path}: the video has no frames (zero-length clip)") from None
        except av.error.FFmpegError as e:
            self.close()
            raise SourceError(f"{self.path}: cannot decode the first frame ({e})") from None
        self.size = (self._first.width, self._first.height)
        return self

    def _seconds(self, frame: av.VideoFrame, index: int) -> float | None:
        if frame.pts is None:
            return None
        tb = frame.time_base or self._stream.time_base
        return float(frame.pts * tb)

    def frames(self) -> Iterator[Frame]:
        if self._first is None:
            raise SourceError(f"{self.path}: frames() before open()")
        frame, index = self._first, 0
        t0 = self._seconds(frame, 0) or 0.0
        last_t = -np.inf
        period = 1.0 / self.fps if self.fps else 1.0 / 30.0
        while frame is not None:
            t = self._seconds(frame, index)
            t = last_t + period if t is None else t - t0  # no pts: assume the nominal rate
            last_t = t
            yield Frame(t, frame.to_ndarray(format=self._format), index)
            index += 1
            try:
                frame = next(self._decoder)
            except StopIteration:
                frame = None
            except av.error.FFmpegError as e:
                raise SourceError(f"{self.path}: decoding failed after frame {index} ({e})") from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
