"""Per-stage statistics of a pipeline run: bounded memory, rich table, JSON."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
from rich.table import Table

WINDOW = 10_000  # samples kept per stage for percentiles: memory stays flat on endless runs


class StageStats:
    """Durations (seconds) of one stage: totals over the run, percentiles over the last WINDOW."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=WINDOW)

    def add(self, seconds: float) -> None:
        self.count += 1
        self.total += seconds
        self.recent.append(seconds)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.recent, q)) if self.recent else float("nan")

    def to_dict(self) -> dict:
        med = self.percentile(50)
        return {
            "count": self.count,
            "median_ms": 1e3 * med,
            "p95_ms": 1e3 * self.percentile(95),
            "mean_ms": 1e3 * self.total / self.count if self.count else float("nan"),
            "capacity_fps": 1.0 / med if med > 0 else float("nan"),
        }


class RunStats:
    """Everything a run counts. Stages are created on first use, in pipeline order."""

    def __init__(self) -> None:
        self.stages: dict[str, StageStats] = {}
        self.counters: dict[str, int] = {}
        self.overhead: dict[str, float] = {}  # per thread: seconds not spent in stages or blocked waits
        self.latency = StageStats("latency (capture to ready)")
        self.skew = StageStats("pair skew |t_vis - t_ir|")
        self.wall = 0.0
        self._lock = threading.Lock()

    def stage(self, name: str) -> StageStats:
        with self._lock:
            return self.stages.setdefault(name, StageStats(name))

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counters[key] = self.counters.get(key, 0) + n

    @property
    def frames_out(self) -> int:
        return self.counters.get("frames out", 0)

    @property
    def fps(self) -> float:
        return self.frames_out / self.wall if self.wall > 0 else 0.0

    def overhead_fraction(self) -> float:
        """Pipeline machinery (queues, hand-offs, copies, bookkeeping) over the sum of stage times."""
        work = sum(s.total for s in self.stages.values())
        return sum(self.overhead.values()) / work if work > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            "frames": dict(self.counters),
            "wall_s": self.wall,
            "fps": self.fps,
            "stages": {n: s.to_dict() for n, s in self.stages.items()},
            "latency": self.latency.to_dict(),
            "skew": self.skew.to_dict(),
            "overhead_s": dict(self.overhead),
            "overhead_fraction": self.overhead_fraction(),
        }

    def table(self, title: str = "rtfuse run") -> Table:
        t = Table(title=f"{title}: {self.frames_out} frames in {self.wall:.2f} s = {self.fps:.1f} fps")
        for col in ("stage", "frames", "median ms", "p95 ms", "capacity fps"):
            t.add_column(col, justify="left" if col == "stage" else "right")
        extra = [self.latency] + ([self.skew] if self.skew.count else [])
        for s in [*self.stages.values(), *extra]:
            d = s.to_dict()
            cap = "" if s in extra else f"{d['capacity_fps']:.0f}"
            t.add_row(s.name, str(s.count), f"{d['median_ms']:.2f}", f"{d['p95_ms']:.2f}", cap)
        counts = ", ".join(f"{k} {v}" for k, v in self.counters.items())
        t.caption = f"{counts}; pipeline overhead {100 * self.overhead_fraction():.1f} % of stage time"
        return t
