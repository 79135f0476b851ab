"""The Sink interface and the record every sink receives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass
class Fused:
    """One fused output: ``t`` (seconds, the visible frame's time), ``index`` (output ordinal),
    ``fused`` uint8 (H, W, 3) BGR, and the inputs it came from at the same geometry:
    ``vis`` uint8 (H, W, 3) BGR and ``ir`` uint8 (H, W) (aligned). ``latency`` is seconds
    from the visible frame's capture to now, filled in by the pipeline."""

    t: float
    index: int
    fused: np.ndarray
    vis: np.ndarray
    ir: np.ndarray
    received: float = 0.0  # time.monotonic() when the visible frame entered the pipeline
    status: str = ""  # watchdog state for the HUD ("" when all is well)


class Sink(ABC):
    """Consumes fused frames. ``write`` returns False to ask the pipeline to stop (a window's q).

    ``close`` must always finalise the output (flush, trailer, rename), also after an error, and
    returns a one-line summary.
    """

    name = "sink"

    def open(self, size: tuple[int, int], fps: float) -> None:
        """Called once before the first frame with the output (width, height) and frame rate."""

    @abstractmethod
    def write(self, item: Fused) -> bool: ...

    def idle(self, status: str) -> bool:
        """Called when no frame came for a while (a stalled camera); False asks to stop."""
        return True

    def close(self) -> str:
        return ""


class NullSink(Sink):
    """Discards frames (benchmarks)."""

    name = "null"

    def __init__(self) -> None:
        self.count = 0

    def write(self, item: Fused) -> bool:
        self.count += 1
        return True

    def close(self) -> str:
        return f"null sink: {self.count} frames discarded"
