"""Pairing visible and IR frames by timestamp."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterator

from rtfuse.errors import PipelineError
from rtfuse.sources.base import Frame


@dataclass
class PairReport:
    """What the pairer did: pairs made, frames left unused and why, the time spans seen.

    Every frame of a recorded stream ends up in exactly one count: paired (visible) or used
    (IR), one of the unused counts, or ``*_unread`` (never taken from the stream because the run
    stopped first; None when the stream's length is unknown).
    """

    pairs: int = 0
    vis_seen: int = 0
    ir_seen: int = 0
    vis_before_ir: int = 0  # visible frames earlier than the first IR frame (outside the overlap)
    vis_after_ir: int = 0  # visible frames after the IR stream ended
    vis_in_gap: int = 0  # visible frames with no IR frame within the tolerance (a hole in the IR)
    ir_unused: int = 0  # IR frames no visible frame chose (normal when IR runs faster)
    ir_after_vis: int = 0  # IR frames read after the last visible frame
    vis_unread: int | None = 0  # visible frames never read (None: an unknown number)
    ir_unread: int | None = 0  # IR frames never read (None: an unknown number)
    vis_span: list[float] = field(default_factory=lambda: [float("inf"), float("-inf")])
    ir_span: list[float] = field(default_factory=lambda: [float("inf"), float("-inf")])
    ir_ended_first: bool = False  # the IR stream ended while visible frames remained
    stopped_early: bool = False  # the run stopped (limit, Ctrl-C, error, quit) before the pairing ended

    @property
    def vis_unused(self) -> int:
        return self.vis_before_ir + self.vis_after_ir + self.vis_in_gap

    def lines(self) -> list[str]:
        """Human-readable notes on every frame that was not fused."""
        out = []
        if self.vis_before_ir:
            out.append(f"{self.vis_before_ir} visible frame(s) before the IR stream starts were not fused")
        if self.vis_after_ir:
            out.append(f"{self.vis_after_ir} visible frame(s) after the IR stream ended were not fused")
        if self.vis_in_gap:
            out.append(f"{self.vis_in_gap} visible frame(s) had no IR frame within the tolerance (gap in IR)")
        if self.ir_unused:
            out.append(f"{self.ir_unused} IR frame(s) were nearest to no visible frame")
        if self.ir_after_vis:
            out.append(f"{self.ir_after_vis} IR frame(s) after the visible stream ended were not used")
        stopped = "the run stopped before the end"
        for role, n, why in (("visible", self.vis_unread, stopped if self.stopped_early else "the IR stream had ended"),
                             ("IR", self.ir_unread, stopped if self.stopped_early else "the visible stream had ended")):
            if n is None:
                out.append(f"the rest of the {role} stream (length unknown) was not read: {why}")
            elif n:
                out.append(f"{n} more {role} frame(s) were not read: {why}")
        return out


def _span(span: list[float], t: float) -> None:
    span[0] = min(span[0], t)
    span[1] = max(span[1], t)


def pair_nearest(
    vis: Iterator[Frame], ir: Iterator[Frame], tolerance: float, report: PairReport | None = None,
    ir_offset: float = 0.0,
) -> Iterator[tuple[Frame, Frame]]:
    """Give each visible frame the IR frame nearest in time, within ``tolerance`` seconds.

    The visible stream drives the output: one pair per visible frame inside the overlap of the
    two streams. IR frames may be reused (slower IR) or skipped (faster IR). ``ir_offset`` is
    added to IR timestamps. Both iterators must be in time order. Fills ``report``; raises
    :class:`PipelineError` when the streams do not overlap at all.
    """
    report = report if report is not None else PairReport()
    prev: Frame | None = None
    prev_used = True
    ir_done = False

    def next_ir() -> Frame | None:
        nonlocal ir_done
        if ir_done:
            return None
        f = next(ir, None)
        if f is None:
            ir_done = True
            return None
        if ir_offset:
            f = replace(f, t=f.t + ir_offset)
        report.ir_seen += 1
        _span(report.ir_span, f.t)
        return f

    nxt = next_ir()
    for v in vis:
        report.vis_seen += 1
        _span(report.vis_span, v.t)
        while nxt is not None and nxt.t <= v.t:
            if not prev_used:
                report.ir_unused += 1
            prev, prev_used = nxt, False
            nxt = next_ir()
        if prev is None and nxt is None:
            break  # no IR at all
        cands = [c for c in (prev, nxt) if c is not None]
        best = min(cands, key=lambda c: abs(c.t - v.t))
        if abs(best.t - v.t) <= tolerance:
            if best is prev:
                prev_used = True
            else:
                # The later frame wins: it becomes ``prev`` so reuse and skip counts stay right.
                if prev is not None and not prev_used:
                    report.ir_unused += 1
                prev, prev_used, nxt = nxt, True, next_ir()
            report.pairs += 1
            yield v, best
        elif nxt is not None and v.t < nxt.t and prev is None:
            report.vis_before_ir += 1
        elif nxt is None and ir_done:
            report.vis_after_ir += 1
            report.ir_ended_first = True  # everything later is past the IR's end too: not read
            break
        else:
            report.vis_in_gap += 1
    if prev is not None and not prev_used:
        report.ir_unused += 1
    if nxt is not None:  # read ahead, later than the last visible frame
        report.ir_after_vis += 1
    if report.pairs == 0:
        if report.vis_seen == 0 or report.ir_seen == 0:
            which = "visible" if report.vis_seen == 0 else "IR"
            raise PipelineError(f"the {which} stream delivered no frames")
        raise PipelineError(
            "the streams do not overlap in time: visible spans "
            f"{report.vis_span[0]:.3f}-{report.vis_span[1]:.3f} s, IR spans {report.ir_span[0]:.3f}-"
            f"{report.ir_span[1]:.3f} s (tolerance {tolerance * 1e3:.0f} ms); shift the IR with --ir-offset"
        )


class LivePairer:
    """Pairing for live sources, by capture time on the shared monotonic clock.

    The visible stream drives the output. Each visible frame takes the newest IR frame that is
    not older than ``tolerance`` seconds; if the newest one is older, the caller may wait until
    ``deadline(v)`` for the next one (:meth:`fresh` says whether to keep waiting). With two
    free-running cameras the IR frame nearest in time is never more than half a period away, so
    that wait is bounded by the tolerance. When the IR stalls (an FFC shutter freeze, a frozen
    or unplugged camera), the last good IR frame is *held* for up to ``hold`` seconds and the
    status says so; after that the output is the visible image alone (status "IR lost").
    """

    def __init__(self, tolerance: float, hold: float, report: PairReport | None = None) -> None:
        self.tolerance, self.hold = tolerance, hold
        self.report = report if report is not None else PairReport()
        self.latest: Frame | None = None
        self.held = 0  # visible frames that got a held (stale) IR frame
        self.lost = 0  # visible frames output without IR
        self._latest_used = True

    def offer_ir(self, f: Frame) -> None:
        """A new IR frame arrived; only the newest is kept."""
        self.report.ir_seen += 1
        _span(self.report.ir_span, f.t)
        if self.latest is not None and f.t < self.latest.t:
            return  # out of order: keep the newer one
        if self.latest is not None and not self._latest_used:
            self.report.ir_unused += 1
        self.latest, self._latest_used = f, False

    def fresh(self, v: Frame) -> bool:
        """Whether the newest IR frame is within the tolerance of ``v`` (no need to wait)."""
        return self.latest is not None and v.t - self.latest.t <= self.tolerance

    def deadline(self, v: Frame) -> float:
        """Until when (same clock as the timestamps) an IR frame could still arrive in tolerance."""
        return v.t + self.tolerance

    def match(self, v: Frame) -> tuple[Frame | None, str, float | None]:
        """(IR frame or None, status for the HUD, skew t_vis - t_ir in seconds or None)."""
        self.report.vis_seen += 1
        _span(self.report.vis_span, v.t)
        ir = self.latest
        if ir is None:
            self.lost += 1
            return None, "waiting for IR", None
        age = v.t - ir.t
        self._latest_used = True
        if age <= self.tolerance:
            self.report.pairs += 1
            return ir, "", age
        if age <= self.hold:
            self.held += 1
            self.report.pairs += 1
            return ir, f"IR stalled: holding the last frame ({age:.1f} s old)", age
        self.lost += 1
        return None, f"IR lost for {age:.1f} s: visible only", None
