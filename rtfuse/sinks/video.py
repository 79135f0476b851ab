"""Video file sink through PyAV: H.264 yuv420p by default, FFV1 for lossless, always finalised."""

from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from rtfuse.atomic import lock_partial, partial_path
from rtfuse.errors import RtfuseError
from rtfuse.paths import check_writable_file
from rtfuse.sinks.base import Fused, Sink
from rtfuse.sources.base import DEFAULT_FPS
from rtfuse.sources.video import check_threads, set_codec_threads

CODECS = {
    # name: (FFmpeg encoder, pixel format, options)
    "h264": ("libx264", "yuv420p", lambda preset, crf: {"preset": preset, "crf": str(crf)}),
    "ffv1": ("ffv1", "bgr0", lambda preset, crf: {}),  # lossless: decodes back to the exact BGR
}
_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".avi": "avi"}
_NO_FFV1 = {".mov"}  # FFmpeg's mov muxer has no FFV1 tag
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
TIME_BASE = Fraction(1, 90000)
_AV_ERRORS = (av.error.FFmpegError, OSError, ValueError)


class VideoSink(Sink):
    """Encode fused frames to ``path``; timestamps are the visible frames' times.

    The file is written under a temporary name and renamed into place by :meth:`close`, which
    also flushes the encoder, so even a run stopped by an error or Ctrl-C leaves a complete,
    playable file holding every frame written so far. Everything checkable about the output
    (folder, permissions, container and codec) is checked by the constructor, before any work.
    ``notes`` collects what the user should know (stale partial file removed, odd size padded);
    :meth:`close` appends those :meth:`take_notes` did not take to its summary.

    ``threads``: the encoder's threads; 0 lets x264 choose (frame threads, about 1.5 per core), 1
    encodes on the writing thread alone (what ``rtfuse batch`` uses with a worker per core).
    """

    name = "video"

    def __init__(
        self,
        path: str | Path,
        codec: str = "h264",
        preset: str = "veryfast",
        crf: int = 20,
        threads: int = 0,
    ) -> None:
        self.path = Path(path)
        self.threads = check_threads(threads)
        self.notes: list[str] = []
        if codec not in CODECS:
            raise RtfuseError(f"codec {codec!r} is not supported; choose one of {', '.join(CODECS)}")
        check_writable_file(self.path, "video")  # a folder of that name, a missing or read-only folder
        ext = self.path.suffix.lower()
        if ext not in _CONTAINERS:
            raise RtfuseError(f"{self.path}: use one of {', '.join(_CONTAINERS)} for a video output")
        if codec == "ffv1" and ext in _NO_FFV1:
            raise RtfuseError(
                f"{self.path}: a {ext} file cannot hold FFV1; use .mkv, .avi or .mp4 for FFV1", option="codec"
            )
        if codec == "h264" and preset not in X264_PRESETS:
            raise RtfuseError(
                f"{preset!r} is not an x264 preset; choose one of {', '.join(X264_PRESETS)}", option="preset"
            )
        if not 0 <= crf <= 51:
            raise RtfuseError(f"the x264 CRF must be within 0..51, got {crf}", option="crf")
        self.codec, self.preset, self.crf = codec, preset, crf
        self._format = _CONTAINERS[ext]
        self._tmp = partial_path(self.path)
        self._lock: int | None = None  # a descriptor holding an flock on the partial file while we write
        self._take_over_stale_part()
        self._container = None
        self._summary: str | None = None
        self.count = 0
        self._last_pts = -1
        self._t0: float | None = None
        self._pad = (0, 0)
        self._gap_noted = False

    def _take_over_stale_part(self) -> None:
        """A partial file from another run: refuse while that run still writes it (it holds a lock);
        else it was killed (SIGKILL, power loss), so keep what of it plays and never delete frames."""
        if not (self._tmp.is_file() or self._tmp.is_symlink()):
            return
        fd = lock_partial(self._tmp)
        if fd is None:
            raise RtfuseError(
                f"{self.path}: another rtfuse process is writing this output right now "
                f"({self._tmp} is locked); choose another output name"
            )
        try:
            frames = _decodable_frames(self._tmp)
            if frames:
                kept = _free_name(self.path, "interrupted")
                self._tmp.replace(kept)
                self.notes.append(f"kept the {frames} playable frames of an interrupted recording as {kept}")
            else:
                self._tmp.unlink()
                self.notes.append(
                    f"removed an unplayable partial file {self._tmp} left by an interrupted run"
                )
        except OSError as e:
            raise RtfuseError(
                f"{self.path}: cannot move the partial file {self._tmp} of an interrupted run "
                f"aside ({e.strerror})"
            ) from None
        finally:
            os.close(fd)

    def take_notes(self) -> list[str]:
        """The notes so far, which :meth:`close` then leaves out (for callers that print them now)."""
        taken, self.notes = self.notes, []
        return taken

    def open(self, size: tuple[int, int], fps: float) -> None:
        encoder, pix_fmt, options = CODECS[self.codec]
        w, h = size
        if self.codec == "h264" and (w % 2 or h % 2):
            # yuv420p needs even sizes, and H.264 can only crop whole chroma rows (SPS cropping in
            # units of 2) and no container display size is honoured by decoders: pad, and say so.
            self._pad = (h % 2, w % 2)
            rep = " and ".join(n for n, p in (("row", h % 2), ("column", w % 2)) if p)
            self.notes.append(
                f"{w}x{h} is odd; H.264 yuv420p needs even sizes, so the video is "
                f"{w + w % 2}x{h + h % 2} (last {rep} repeated); the FFV1 codec keeps the exact size"
            )
        fps = fps if fps and math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        rate = max(Fraction(fps).limit_denominator(1001), Fraction(1, 1001))  # 30000/1001 stays exact
        # AVI has no timestamps, only a constant rate taken from the time base: 1/rate there,
        # pts = frame index. Elsewhere a fine time base keeps the input's timestamps.
        self._cfr = self._format == "avi"
        self._tb = 1 / rate if self._cfr else TIME_BASE
        self._ticks = max(round(1 / (rate * self._tb)), 1)
        self._fps = float(rate)
        try:
            self._container = av.open(str(self._tmp), "w", format=self._format)
            opts = options(self.preset, self.crf)
            if self._cfr and self.codec == "h264":
                opts["bf"] = "0"  # AVI stores no pts: with B-frames the decoded order would be guessed
            stream = self._container.add_stream(encoder, rate=rate, options=opts)
            stream.width, stream.height = w + self._pad[1], h + self._pad[0]
            stream.pix_fmt = pix_fmt
            # Frame threads, x264's own default (PyAV asks for slices): +16 % fused fps on 2 cores.
            set_codec_threads(stream.codec_context, self.threads, frames=True)
            stream.time_base = self._tb
            stream.codec_context.time_base = self._tb
            self._container.start_encoding()  # opens the encoder now: its errors come before any frame
            self._lock = lock_partial(self._tmp)  # tells a second run on this output that we are alive
        except _AV_ERRORS as e:
            self._abort()
            raise RtfuseError(f"{self.path}: cannot open the video encoder ({e})") from None
        except BaseException:
            self._abort()
            raise
        self._stream = stream

    def write(self, item: Fused) -> bool:
        if self._t0 is None:
            self._t0 = item.t
        rel = item.t - self._t0
        k = round(rel * self._fps)
        if self._cfr:
            # AVI stores frames back to back at one rate: a gap in the timestamps (frames a live run
            # dropped) cannot be kept, or the header would count frames that are not there.
            pts = self._last_pts + 1
            if k > pts + 1 and not self._gap_noted:
                self._gap_noted = True
                self.notes.append(
                    f"{self.path.suffix} stores no timestamps: the gaps of frames dropped live are "
                    "closed up (the video plays them faster); use .mkv or .mp4 to keep capture times"
                )
        else:
            # Timestamps within 10 % of a frame of the nominal grid were rounded by the input container
            # (e.g. to ms): put them back on the grid, so the output states the input's exact rate.
            if abs(rel * self._fps - k) < 0.1:
                rel = k / self._fps
            pts = max(round(rel / self._tb), self._last_pts + 1)
        img = item.fused
        if any(self._pad):
            img = np.pad(img, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
        frame.pts, frame.time_base = pts, self._tb
        self._last_pts = pts
        try:
            self._mux(self._stream.encode(frame))
        except _AV_ERRORS as e:
            raise RtfuseError(f"{self.path}: writing the video failed ({_why(e)})") from None
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
            except Exception:  # noqa: BLE001, S110 - the file is removed anyway
                pass
            self._container = None
        self._unlock()
        self._tmp.unlink(missing_ok=True)

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor releases the flock
            self._lock = None

    def close(self) -> str:
        """Flush, finalise and rename into place; idempotent (a second call returns the first result).

        If finalising fails, the frames already on disk are kept when they decode, else the partial
        file is removed; either way :class:`RtfuseError` says which, and no ``.part`` file remains.
        """
        if self._summary is None:
            try:
                self._summary = self._finish()
            except RtfuseError as e:
                self._summary = str(e)
                raise
            finally:
                self._unlock()
        return self._with_notes(self._summary)

    def _with_notes(self, text: str) -> str:
        return "\n".join([text, *(f"note: {n}" for n in self.notes)])

    def _finish(self) -> str:
        if self._container is None:
            return f"{self.path}: not written"
        if self.count == 0:
            self._abort()
            return f"{self.path}: not written (no frames)"
        error = None
        try:
            self._mux(self._stream.encode())  # flush delayed frames
        except Exception as e:  # noqa: BLE001 - whatever failed, salvage what is on disk
            error = e
        try:
            self._container.close()  # the trailer, even after a failed flush: it indexes what was muxed
        except Exception as e:  # noqa: BLE001
            error = error or e
        self._container = None
        kept = _decodable_frames(self._tmp) if error is not None else self.count
        if not kept:
            self._tmp.unlink(missing_ok=True)
            raise RtfuseError(
                f"{self.path}: finalising the video failed ({_why(error)}); nothing playable was "
                f"written, so the partial file was removed"
            )
        try:
            self._tmp.replace(self.path)
        except OSError as e:
            # Never delete a finished recording: keep it under a visible name beside the output.
            rescue = _free_name(self.path, "recovered")
            try:
                self._tmp.replace(rescue)
            except OSError:
                rescue = self._tmp
            raise RtfuseError(
                f"{self.path}: cannot move the finished video into place ({e.strerror}); "
                f"its {self.count} frames are in {rescue}"
            ) from None
        if error is not None:
            raise RtfuseError(
                f"{self.path}: finalising the video failed ({_why(error)}); kept the {kept} "
                f"playable frames of the {self.count} written"
            )
        return f"wrote {self.path} ({self.count} frames, {self.codec})"


def _decodable_frames(path: Path) -> int:
    """How many frames of a possibly truncated video file decode (0 if none or unreadable)."""
    n = 0
    try:
        with av.open(str(path)) as c:
            for _ in c.decode(video=0):
                n += 1
    except (*_AV_ERRORS, IndexError):
        pass
    return n


def _why(e: BaseException) -> str:
    """The cause without the temporary file's name that FFmpeg errors carry (e.g. "File too large")."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _free_name(path: Path, tag: str) -> Path:
    """``NAME.TAG.EXT`` beside ``path`` (``NAME.TAG-2.EXT``... if taken): never over another file."""
    for k in range(1, 1000):
        cand = path.with_name(f"{path.stem}.{tag}{'' if k == 1 else f'-{k}'}{path.suffix}")
        if not cand.exists():
            return cand
    raise RtfuseError(f"{path}: no free name to keep a partial recording beside it")
