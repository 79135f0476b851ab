"""The Source interface: an iterator of timestamped frames, opened before the pipeline starts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np

SourceStatus = Literal["ok", "reconnecting", "lost", "closed"]

# Assumed for streams that state no rate (image folders, clips without timing): the common camera rate.
DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class Frame:
    """One frame of a stream.

    ``t``: seconds on the stream's clock (presentation time for files, capture time for live
    sources); ``image``: uint8 (H, W, 3) BGR, uint8 (H, W) or uint16 (H, W); ``index``: ordinal;
    ``received``: ``time.monotonic()`` when the pipeline got it (for latency statistics).
    """

    t: float
    image: np.ndarray
    index: int
    received: float = 0.0


class Source(ABC):
    """A stream of frames.

    ``live`` sources (cameras) keep only the newest frames and never block the device; file and
    synthetic sources are lossless: the pipeline blocks on them (back-pressure) and every frame
    is delivered. ``open()`` validates the source and raises :class:`rtfuse.errors.SourceError`
    with a clear message (opening twice is a no-op); ``frames()`` may then be iterated once.
    """

    live: bool = False
    name: str = "source"
    # The device's state, for the watchdog and the HUD: a camera reports "reconnecting" while it
    # reopens a lost device and "lost" once it gives up; files and scenes stay "ok".
    status: SourceStatus = "ok"
    # What the user should hear about the stream (e.g. a file cut short but accepted), said at the end.
    warnings: tuple[str, ...] | list[str] = ()
    fps: float | None = None  # nominal frame rate, if known
    frame_count: int | None = None  # number of frames, if known
    size: tuple[int, int] | None = None  # (width, height), known after open()

    def open(self) -> "Source":
        return self

    @abstractmethod
    def frames(self) -> Iterator[Frame]:
        """Yield frames in time order until the stream ends."""

    def close(self) -> None:
        pass

    def describe(self) -> str:
        parts = [self.name]
        if self.size:
            parts.append(f"{self.size[0]}x{self.size[1]}")
        if self.fps:
            parts.append(f"{self.fps:.3g} fps")
        if self.frame_count is not None:
            parts.append(f"{self.frame_count} frames")
        return ", ".join(parts)

    def __enter__(self) -> "Source":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()
