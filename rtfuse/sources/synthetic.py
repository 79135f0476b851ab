"""Synthetic source: one modality of :class:`rtfuse.synthetic.SyntheticScene`."""

from __future__ import annotations

import time
from typing import Iterator

from rtfuse.sources.base import Frame, Source
from rtfuse.synthetic import SyntheticScene


class SyntheticSource(Source):
    """Frames of one modality (``"vis"``, ``"ir"`` or ``"ir16"``) of a deterministic scene.

    Two sources with the same ``seed`` and size render the same scene, so they are registered.
    ``count`` None is endless. ``realtime`` makes it behave like a camera: frames are paced at
    ``fps`` on the wall clock, stamped with their capture time on ``time.monotonic()``, and the
    source is ``live`` (the pipeline drops frames rather than slowing it). Otherwise
    ``t = index / fps`` and frames come as fast as they are consumed, losslessly.
    """

    def __init__(self, modality: str, width: int = 640, height: int = 480, fps: float = 30.0, seed: int = 0,
                 count: int | None = None, realtime: bool = False) -> None:
        if modality not in ("vis", "ir", "ir16"):
            raise ValueError(f"modality must be vis, ir or ir16, got {modality!r}")
        self.modality = modality
        self.scene = SyntheticScene(width, height, seed=seed, fps=fps)
        self.fps = float(fps)
        self.size = (width, height)
        self.frame_count = count
        self.realtime = realtime
        self.live = realtime
        self.name = f"synthetic {modality}"

    def _render(self, i: int):
        if self.modality == "vis":
            return self.scene.render_vis(i)
        if self.modality == "ir":
            return self.scene.render_ir(i)
        return self.scene.render_ir16(i)

    def frames(self) -> Iterator[Frame]:
        i = 0
        start = time.monotonic()
        while self.frame_count is None or i < self.frame_count:
            if self.realtime:
                delay = start + i / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                img = self._render(i)
                yield Frame(time.monotonic(), img, i)
            else:
                yield Frame(i / self.fps, self._render(i), i)
            i += 1
