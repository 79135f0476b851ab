"""Playing a recorded source as if it were a camera, on the live clock."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Iterator

from rtfuse.sources.base import Frame, Source, SourceStatus


class RealtimeSource(Source):
    """Delivers ``inner``'s frames at their own pace, stamped with ``time.monotonic()``.

    The first frame is delivered at once; frame ``k`` follows it ``t_k - t_0`` seconds later, so
    the recording runs at its recorded speed. The source is ``live``: the pipeline keeps only the
    newest frames, as for a camera, and counts the ones it drops.
    """

    live = True

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.name = f"{inner.name} (real time)"

    def open(self) -> "RealtimeSource":
        self.inner.open()
        self.fps, self.frame_count, self.size = self.inner.fps, self.inner.frame_count, self.inner.size
        return self

    def frames(self) -> Iterator[Frame]:
        start: float | None = None
        for f in self.inner.frames():
            if start is None:
                start = time.monotonic() - f.t
            delay = start + f.t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            yield replace(f, t=time.monotonic())

    @property
    def status(self) -> SourceStatus:  # type: ignore[override]
        return self.inner.status

    @property
    def warnings(self) -> list[str]:  # type: ignore[override]
        return list(self.inner.warnings)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> str:
        return f"{self.inner.describe()}, played in real time"
