"""Video file source through PyAV: threaded decode, real timestamps, lossless delivery."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from rtfuse.errors import RtfuseError, SourceError
from rtfuse.sources.base import DEFAULT_FPS, Frame, Source

# Decoded as 16-bit gray when the stream stores more than 8 bits of one channel (raw thermal).
_GRAY16_FORMATS = {
    "gray16le",
    "gray16be",
    "gray10le",
    "gray10be",
    "gray12le",
    "gray12be",
    "gray14le",
    "gray14be",
}
# Top-level box types an MP4/MOV file may start with (to recognise one whose index is missing).
_ISO_FIRST_BOXES = {b"ftyp", b"wide", b"free", b"skip", b"mdat", b"moov", b"pnot", b"uuid"}
# Packets the header declares but that need not be in the file (rounding of writers' counts).
_FRAME_SLACK = 2
# The matroska muxers' per-stream DURATION tag, e.g. "00:00:13.566000000".
_MKV_DURATION = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


class VideoFileSource(Source):
    """Frames of the first video stream of any container FFmpeg opens.

    Colour streams are delivered as uint8 BGR, high-bit-depth gray streams as uint16. ``t`` is
    the presentation time in seconds from the stream's first frame (so two files recorded
    together line up at their starts; the pipeline can shift one by an offset).

    A file that ends before the length its header declares (a cut copy or an interrupted
    transfer) raises :class:`SourceError` once its last frame has been delivered, unless
    ``allow_truncated``: then the same message is appended to ``warnings``.

    ``threads``: the decoder's threads (:func:`set_codec_threads`); 0 lets FFmpeg choose (frame and
    slice threads, about one per core), 1 decodes on the calling thread only.
    """

    def __init__(
        self, path: str | Path, name: str | None = None, allow_truncated: bool = False, threads: int = 0
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.name
        self.allow_truncated = allow_truncated
        self.threads = check_threads(threads)
        self.warnings: list[str] = []
        self._container = None
        self._first: av.VideoFrame | None = None

    def open(self) -> VideoFileSource:
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
            if _mp4_without_index(self.path):
                # Allowing truncated input cannot help: without the index no frame can be found.
                raise SourceError(
                    f"{self.path}: the MP4/MOV file is truncated or was never finalised: its "
                    "'moov' index (written at the end) is missing or cut, so no frame can be "
                    "located; copy the complete file again (a recording made with -movflags "
                    "+faststart or as fragmented MP4 stays readable when cut)"
                ) from None
            raise SourceError(f"{self.path}: not a video file FFmpeg can read ({e})") from None
        if not self._container.streams.video:
            self.close()
            raise SourceError(
                f"{self.path}: has no video stream (a zero-length, audio-only or truncated file?)"
            )
        stream = self._container.streams.video[0]
        set_codec_threads(stream.codec_context, self.threads, frames=True)
        self._stream = stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.frame_count = stream.frames or None
        self._format = "gray16le" if stream.codec_context.pix_fmt in _GRAY16_FORMATS else "bgr24"
        self._declare()
        self._packets = 0  # packets of the stream read so far
        self._cut = False  # the last packet read was cut short (flagged corrupt by the demuxer)
        self._end: float | None = None  # end of the last decoded frame, seconds from the stream's start
        self._decoder = self._decode()
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

    def _declare(self) -> None:
        """The length the header declares: a frame count (MP4, MOV, AVI) and/or a duration."""
        c, s = self._container, self._stream
        self._declared_frames = s.frames or None
        self._declared_seconds: float | None = None
        self._other_streams = False  # the duration is the container's and may be another stream's
        tag = next((v for k, v in s.metadata.items() if k.upper().split("-")[0] == "DURATION"), None)
        m = _MKV_DURATION.match(tag.strip()) if tag else None
        if m:  # matroska: no frame count, no stream duration, but this tag in the header
            self._declared_seconds = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        elif s.duration and s.time_base:
            self._declared_seconds = float(s.duration * s.time_base)
        elif c.duration:
            self._declared_seconds = c.duration / av.time_base
            self._other_streams = len(c.streams) > 1
        self._start = float(s.start_time * s.time_base) if s.start_time is not None and s.time_base else None
        # MP4/MOV edit lists can leave declared samples out of the presentation: count and time must agree.
        self._edit_lists = any(n in c.format.name.split(",") for n in ("mov", "mp4"))
        if self._edit_lists and not self._declared_frames:
            self._declared_seconds = None  # fragmented MP4: a duration estimated from the fragments read

    def _decode(self) -> Iterator[av.VideoFrame]:
        held = None  # a packet the demuxer flagged as cut short, decoded only if more data follows
        for packet in self._container.demux(self._stream):
            data = bool(packet.size or packet.dts is not None)  # not the empty packet that flushes
            if data:
                self._packets += 1
                self._cut = packet.is_corrupt
            if held is not None and data:
                yield from self._decode_packet(held)  # damage mid-stream: the decoder conceals what it can
            held = None
            if self._cut and data:
                # Probably the file's last packet, cut off mid-frame: decoding it yields at best a partial
                # frame, and makes the frame-threaded decoder drop the frames still in flight.
                held = packet
                continue
            yield from self._decode_packet(packet)

    def _decode_packet(self, packet: av.Packet) -> list[av.VideoFrame]:
        try:
            return packet.decode()
        except av.error.FFmpegError:
            if packet.is_corrupt:
                return []  # damaged data the decoder rejects: skip it, the stream goes on
            raise

    def _seconds(self, frame: av.VideoFrame) -> float | None:
        if frame.pts is None:
            return None
        tb = frame.time_base or self._stream.time_base
        return float(frame.pts * tb)

    def _truncation(self, decoded: int) -> str | None:
        """After the last frame: how the file falls short of its declared length, or None if it does not."""
        frames, seconds, end = self._declared_frames, self._declared_seconds, self._end
        period = 1.0 / (self.fps or DEFAULT_FPS)
        # A frame or two of slack for timestamp rounding; a second more when the duration is the
        # container's, which another stream (audio) may extend.
        slack = 2.5 * period + (1.0 if self._other_streams else 0.0)
        short_time = seconds is not None and end is not None and end < seconds - slack
        short_count = frames is not None and self._packets < frames - _FRAME_SLACK
        if not (
            self._cut
            or (short_count and (short_time or seconds is None or not self._edit_lists))
            or (frames is None and short_time)
        ):
            return None
        if frames:
            # An AVI's duration is estimated from the packets present: the count gives the real one.
            total = max(seconds or 0.0, frames * period)
            times = f" ({end:.1f} of {total:.1f} s)" if end is not None else ""
            return f"decoded {decoded} of {frames} frames the header declares{times}"
        if seconds and end is not None:
            return f"decoded {decoded} frames, {end:.1f} of the {seconds:.1f} s the header declares"
        return f"decoded {decoded} frames, and the file ends in the middle of a frame (no length declared)"

    def _finish(self, decoded: int) -> None:
        cut = self._truncation(decoded)
        if cut is None:
            return
        self.frame_count = decoded  # the real length, for the run's accounting of unread frames
        if not self.allow_truncated:
            raise SourceError(
                f"{self.path}: the file is truncated: {cut}; allow truncated input to accept a "
                "cut file and keep the frames before the cut",
                option="allow_truncated",
            )
        self.warnings.append(f"{self.path}: the file is truncated: {cut}; used the frames before the cut")

    def frames(self) -> Iterator[Frame]:
        if self._first is None:
            raise SourceError(f"{self.path}: frames() before open()")
        frame, index = self._first, 0
        t0 = self._seconds(frame) or 0.0
        start = self._start if self._start is not None else t0
        last_t = -np.inf
        period = 1.0 / (self.fps or DEFAULT_FPS)
        while frame is not None:
            t = self._seconds(frame)
            self._end = (t - start if t is not None else (self._end or 0.0)) + period
            t = last_t + period if t is None else t - t0  # no pts: assume the nominal rate
            last_t = t
            yield Frame(t, frame.to_ndarray(format=self._format), index)
            index += 1
            try:
                frame = next(self._decoder)
            except StopIteration:
                frame = None
            except av.error.FFmpegError as e:
                if self._truncation(index) is None:
                    raise SourceError(f"{self.path}: decoding failed after frame {index} ({e})") from None
                frame = None  # the data ends early; say so with the numbers
        self._finish(index)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def check_threads(threads: int) -> int:
    """A codec thread count: 0 (the codec's automatic choice) or more."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise RtfuseError(
            f"codec threads must be a whole number, 0 (automatic) or more, got {threads!r}",
            option="codec_threads",
        )
    return threads


def set_codec_threads(ctx: av.codec.context.CodecContext, threads: int, frames: bool) -> None:
    """Size a codec's own thread pool, before it is opened.

    0: FFmpeg's automatic count (about one thread per core; x264 more). 1: the codec runs on the
    calling thread alone, no pool, for callers that already run one pipeline per core (``rtfuse
    batch``). N > 1: N threads. ``frames`` lets the threads work on several frames at once (frame
    threading, where the codec has it: more throughput, a few frames of delay); else they split
    each frame (slices).
    """
    if threads:
        ctx.thread_count = threads
    ctx.thread_type = "AUTO" if frames and threads != 1 else "SLICE"


def _mp4_without_index(path: Path) -> bool:
    """An MP4/MOV file whose 'moov' box (the index FFmpeg needs) is missing or cut short."""
    size = path.stat().st_size
    if size < 8:
        return False
    with open(path, "rb") as f:
        pos = 0
        while pos + 8 <= size:
            f.seek(pos)
            head = f.read(16)
            length, kind = int.from_bytes(head[:4], "big"), head[4:8]
            if pos == 0 and kind not in _ISO_FIRST_BOXES:
                return False
            if length == 1 and len(head) == 16:  # 64-bit size
                length = int.from_bytes(head[8:16], "big")
            elif length == 0:  # "to the end of the file", e.g. an mdat never closed
                length = size - pos
            if length < 8:
                return False  # not a box structure
            if kind == b"moov":
                return pos + length > size  # the index itself is cut short
            pos += length
    return True
