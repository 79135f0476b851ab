"""Where fused frames go: video files, image folders, a window, or nowhere (benchmarks)."""

from rtfuse.sinks.base import Fused, NullSink, Sink

__all__ = ["Fused", "NullSink", "Sink"]
