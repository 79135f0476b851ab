"""Pairing visible and IR frames: recorded streams and live cameras by time, still images by name.

Every way two inputs are matched lives here: :func:`pair_nearest` (files, by presentation time, with
the IR offset), :class:`LivePairer` (cameras, by capture time, with the IR offset and the hold),
and :func:`pair_stems` (folders of stills, by file name). :class:`PairReport` accounts for every
frame that was not fused."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
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
    vis_unread: int | None = 0  # visible frames the pairer never took, nor dropped live (None: unknown)
    ir_unread: int | None = 0  # IR frames the pairer never took, nor dropped live (None: unknown)
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
        stopped = "the run stopped before the end"
        if self.vis_after_ir:
            why = (
                "were read but not fused: " + stopped
                if self.stopped_early
                else "after the IR stream ended were not fused"
            )
            out.append(f"{self.vis_after_ir} visible frame(s) {why}")
        if self.vis_in_gap:
            out.append(f"{self.vis_in_gap} visible frame(s) had no IR frame within the tolerance (gap in IR)")
        if self.ir_unused:
            out.append(f"{self.ir_unused} IR frame(s) were nearest to no visible frame")
        if self.ir_after_vis:
            why = (
                "were read but not used: " + stopped
                if self.stopped_early
                else "after the visible stream ended were not used"
            )
            out.append(f"{self.ir_after_vis} IR frame(s) {why}")
        for role, n, why in (
            ("visible", self.vis_unread, stopped if self.stopped_early else "the IR stream had ended"),
            ("IR", self.ir_unread, stopped if self.stopped_early else "the visible stream had ended"),
        ):
            if n is None:
                out.append(f"the rest of the {role} stream (length unknown) was not used: {why}")
            elif n:
                out.append(f"{n} more {role} frame(s) were not used: {why}")
        return out


def _span(span: list[float], t: float) -> None:
    span[0] = min(span[0], t)
    span[1] = max(span[1], t)


def default_tolerance(*fps: float | None) -> float:
    """The pairing tolerance in seconds when none is given: half the slower stream's frame period,
    plus 2 % so that timestamps rounded by the container (e.g. to milliseconds) still find a
    neighbour exactly half a period away. Unknown rates (None) are left out; none known: 20 ms."""
    periods = [1.0 / f for f in fps if f]
    return 0.52 * max(periods) if periods else 0.02


def pair_nearest(
    vis: Iterator[Frame],
    ir: Iterator[Frame],
    tolerance: float,
    report: PairReport | None = None,
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
    finished = False
    try:
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
        finished = True
    finally:
        if prev is not None and not prev_used:
            report.ir_unused += 1
        if nxt is not None:  # read ahead, later than the last visible frame fused
            if finished:
                report.ir_after_vis += 1
            else:  # the caller stopped early: it goes back to the rest of the stream, not taken
                report.ir_seen -= 1
    if report.pairs == 0:
        if report.vis_seen == 0 or report.ir_seen == 0:
            which = "visible" if report.vis_seen == 0 else "IR"
            raise PipelineError(f"the {which} stream delivered no frames")
        raise PipelineError(
            "the streams do not overlap in time: visible spans "
            f"{report.vis_span[0]:.3f}-{report.vis_span[1]:.3f} s, IR spans {report.ir_span[0]:.3f}-"
            f"{report.ir_span[1]:.3f} s (tolerance {tolerance * 1e3:.0f} ms); shift the IR clock by an offset",
            option="ir_offset",
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

    def __init__(
        self, tolerance: float, hold: float, report: PairReport | None = None, ir_offset: float = 0.0
    ) -> None:
        self.tolerance, self.hold, self.ir_offset = tolerance, hold, ir_offset
        self.report = report if report is not None else PairReport()
        self.latest: Frame | None = None
        self._latest_used = True

    def offer_ir(self, f: Frame) -> None:
        """A new IR frame arrived (``ir_offset`` is added to its time); only the newest is kept."""
        if self.ir_offset:
            f = replace(f, t=f.t + self.ir_offset)
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
            return None, "waiting for IR", None
        age = v.t - ir.t
        self._latest_used = True
        if age <= self.tolerance:
            self.report.pairs += 1
            return ir, "", age
        if age <= self.hold:
            self.report.pairs += 1
            return ir, f"IR stalled: holding the last frame ({age:.1f} s old)", age
        return None, f"IR lost for {age:.1f} s: visible only", None


# -- stills: by file name ------------------------------------------------------------------------

# Modality tags that may mark every file of one side (case-insensitive), longest first so that
# "vis" wins over "v". Separators "_", "-", "." and " " next to a tag are dropped with it.
VIS_TAGS = ("visible", "colour", "color", "vis", "rgb", "eo", "v")
IR_TAGS = ("infrared", "thermal", "lwir", "tir", "ir", "t", "i")
_SEPARATORS = "_-. "
PAIRING_RULE = (
    "pairs are matched by file stem (vis/0001.png with ir/0001.png), or else by the stem without a modality "
    "tag that every file of a side carries (7400v/7400i, 0001_vis/0001_ir, RGB_0001/IR_0001), or else by "
    "the digits in the name, such as a timestamp (zed_20251006_103617/thermal_20251006_103617)"
)


def _strippers(stems: list[str], tags: tuple[str, ...]) -> list[dict[str, str]]:
    """For each tag that every one of ``stems`` carries at the same end: stem -> stem without it."""
    found = []
    for tag in tags:
        for suffix in (True, False):
            low = [stem.lower() for stem in stems]
            if not stems or not all(x.endswith(tag) if suffix else x.startswith(tag) for x in low):
                continue
            n = len(tag)
            cut = {s: s[:-n].rstrip(_SEPARATORS) if suffix else s[n:].lstrip(_SEPARATORS) for s in stems}
            if all(cut.values()) and _distinct(cut):  # nothing left empty, no two stems merged
                found.append(cut)
    return found


def _distinct(cut: dict[str, str]) -> bool:
    return len({c.lower() for c in cut.values()}) == len(cut)


def _digit_keys(stems: dict[str, Path]) -> dict[str, str]:
    """digits of the stem -> stem, if every stem has digits and no two share them; else {}."""
    keys = {"".join(re.findall(r"\d+", s)): s for s in stems}
    return keys if "" not in keys and len(keys) == len(stems) else {}


Pairs = dict[str, tuple[Path, Path]]  # name -> (visible path, IR path)


def pair_stems(vis: dict[str, Path], ir: dict[str, Path]) -> tuple[Pairs, list[str], list[str]]:
    """Pair visible and IR images (as :func:`rtfuse.images.list_images` returns them): ``(pairs, vis_only, ir_only)``.

    ``pairs`` maps a name (for the output file) to ``(vis path, ir path)``, sorted; ``vis_only`` and
    ``ir_only`` are the stems left unpaired. Equal stems pair. Only if no stem is equal on both
    sides, a modality tag that every stem of a side carries as a suffix or prefix (:data:`VIS_TAGS`,
    :data:`IR_TAGS`, case-insensitive; e.g. TNO's ``7400v``/``7400i``) is dropped, on one side or
    both, and the rest of the stems compared case-insensitively. The reading that pairs the most
    files wins; a pair's name is then the visible stem without its tag. See :data:`PAIRING_RULE`.
    """
    exact = sorted(set(vis) & set(ir))
    if exact:
        return {s: (vis[s], ir[s]) for s in exact}, sorted(set(vis) - set(ir)), sorted(set(ir) - set(vis))
    best: dict[str, tuple[str, str]] = {}  # name -> (vis stem, ir stem)

    def readings(stems: dict[str, Path], tags: tuple[str, ...]) -> list[dict[str, str]]:
        as_is = {s: s for s in stems}
        return ([as_is] if _distinct(as_is) else []) + _strippers(list(stems), tags)  # not if "A" and "a"

    for vcut in readings(vis, VIS_TAGS):
        for icut in readings(ir, IR_TAGS):
            by_key = {cut.lower(): stem for stem, cut in icut.items()}
            found = {vcut[v]: (v, by_key[vcut[v].lower()]) for v in vis if vcut[v].lower() in by_key}
            if len(found) > len(best):
                best = found
    if not best:  # two cameras that name files by capture time, each with its own prefix
        vkey, ikey = _digit_keys(vis), _digit_keys(ir)
        if vkey and ikey:
            best = {k: (vkey[k], ikey[k]) for k in sorted(set(vkey) & set(ikey))}
    pairs = {name: (vis[v], ir[i]) for name, (v, i) in sorted(best.items())}
    return (
        pairs,
        sorted(set(vis) - {v for v, _ in best.values()}),
        sorted(set(ir) - {i for _, i in best.values()}),
    )
