"""The threaded runtime: capture -> pair -> align -> fuse -> sinks.

Threads: one capture thread per source, one worker (pair, prepare/align, fuse), and the
caller's thread for the sinks (OpenCV windows must live on the main thread). They are joined by
bounded queues. File sources block when their queue is full (lossless back-pressure); live
sources drop their oldest queued frame instead, so a camera is never blocked.

Every blocking call wakes up regularly to check a shared stop event, so a failure anywhere, the
end of input, a window's q or Ctrl-C stops every thread promptly, and the sinks are always
closed (finalised) on the way out.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np

from rtfuse import interrupt
from rtfuse.errors import PipelineError, RtfuseError
from rtfuse.sinks.base import Fused, Sink
from rtfuse.sources.base import DEFAULT_FPS, Frame, Source
from rtfuse.sources.realtime import RealtimeSource
from rtfuse.stage import FusionStage, as_stage
from rtfuse.stats import RunStats
from rtfuse.sync import LivePairer, PairReport, default_tolerance, pair_nearest

_END = object()
_POLL = 0.05  # seconds between stop-event checks while blocked
FINISH_TIMEOUT = 5.0  # seconds a stop request waits for the frames already read, then aborts


@dataclass
class RunReport:
    stats: RunStats
    pairing: PairReport
    sink_notes: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C
    quit_by_user: bool = False  # a sink (window) asked to stop


class _ThreadClock:
    """Splits one thread's wall time into stage work, blocked waiting and the rest (overhead)."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.work = 0.0
        self.wait = 0.0

    def overhead(self) -> float:
        return max(time.perf_counter() - self.start - self.work - self.wait, 0.0)


class Pipeline:
    """Fuse two sources into sinks. Build it, then call :meth:`run` once.

    ``tolerance``: max |t_vis - t_ir| in seconds for a pair (default: about half the slower
    stream's frame period). Live sources (cameras, real-time synthetic) are paired by capture
    time with :class:`LivePairer`: a stalled IR is held for ``hold`` seconds, and a source that
    delivers nothing for ``reconnect_timeout`` seconds ends the run with a clear error. ``ir_offset``: seconds added to IR timestamps. ``stage``: the
    fusion stage (prepare, AGC, align, fuse), or a bare fuser given a stage of its own.
    ``on_frame(n)``: called after each output frame (progress bars). ``kernel_threads``: Numba
    threads of the fusion kernels in the worker thread (None: all of Numba's); a video written while
    two decoders and an encoder share the cores wants few (:func:`rtfuse.runner.kernel_threads`).
    """

    def __init__(
        self,
        vis: Source,
        ir: Source,
        stage: FusionStage | Callable[[np.ndarray, np.ndarray], np.ndarray],
        sinks: list[Sink],
        tolerance: float | None = None,
        ir_offset: float = 0.0,
        max_frames: int | None = None,
        queue_size: int = 4,
        on_frame: Callable[[int], None] | None = None,
        hold: float = 3.0,
        reconnect_timeout: float = 10.0,
        kernel_threads: int | None = None,
    ) -> None:
        if max_frames is not None and max_frames < 1:
            raise RtfuseError(f"the frame limit must be at least 1, got {max_frames}", option="max_frames")
        self.stage = as_stage(stage)
        self.vis, self.ir, self.sinks = vis, ir, sinks
        self.tolerance, self.ir_offset, self.max_frames = tolerance, ir_offset, max_frames
        self.on_frame = on_frame
        self.hold, self.reconnect_timeout = hold, reconnect_timeout
        self.kernel_threads = kernel_threads
        self.notes: list[str] = []  # said once before the run starts
        if vis.live != ir.live:
            # A file's clock starts at 0, a camera's is the monotonic clock: pairing them would compare
            # unrelated times. Play the recording in real time, stamped on the live clock.
            vis, ir = (RealtimeSource(s) if not s.live else s for s in (vis, ir))
            rec = vis if isinstance(vis, RealtimeSource) else ir
            self.notes.append(
                f"{rec.inner.name} is played in real time (from its start, once the live source delivers) "
                f"to pair with the live {(ir if rec is vis else vis).name}; frames it cannot keep up with "
                "are dropped"
            )
            self.vis, self.ir = vis, ir
        self.live = vis.live or ir.live
        if self.live:
            queue_size = 1  # newest frame only: latency over completeness
        self.stats = RunStats()
        for name in ("read vis", "read ir", "pair", "align", "fuse", "sinks"):
            self.stats.stage(name)  # fixes the table's order
        self.pairing = PairReport()
        self._q_vis: queue.Queue = queue.Queue(queue_size)
        self._q_ir: queue.Queue = queue.Queue(queue_size)
        self._q_out: queue.Queue = queue.Queue(queue_size)
        self._stop = threading.Event()  # abort: every thread stops at its next poll
        self._finish = threading.Event()  # stop reading input; what was read is still fused and written
        self._errors: list[tuple[str, BaseException]] = []
        self._err_lock = threading.Lock()
        self._ended: set[str] = set()  # roles whose source delivered its last frame
        # set at the live source's first frame (or its end): a recording played in real time beside it
        # starts its clock then, so a camera that takes a while to open does not cost it its first seconds
        self._live_started = threading.Event()
        self._paired_all = False  # the pairing ran to its end (not stopped early)

    # -- queue helpers ---------------------------------------------------------------------
    def _put(self, q: queue.Queue, item, clock: _ThreadClock) -> bool:
        try:
            q.put_nowait(item)
            return True
        except queue.Full:
            pass
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    q.put(item, timeout=_POLL)
                    return True
                except queue.Full:
                    continue
            return False
        finally:
            clock.wait += time.perf_counter() - t0

    def _put_latest(self, q: queue.Queue, item, role: str) -> None:
        """Live sources: never block; replace the oldest queued frame and count the drop."""
        while True:
            try:
                q.put_nowait(item)
                return
            except queue.Full:
                try:
                    q.get_nowait()
                    self.stats.count(f"dropped {role}")
                except queue.Empty:
                    pass

    def _get(self, q: queue.Queue, clock: _ThreadClock, on_poll: Callable[[], None] | None = None):
        """Next item, or _END once stopped. ``on_poll`` runs at each timeout (watchdogs, GUI events)."""
        try:
            return q.get_nowait()
        except queue.Empty:
            pass
        t0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    return q.get(timeout=_POLL)
                except queue.Empty:
                    if on_poll is not None:
                        on_poll()
            return _END
        finally:
            clock.wait += time.perf_counter() - t0

    def _drain(self, q: queue.Queue, clock: _ThreadClock) -> Iterator[Frame]:
        while True:
            item = self._get(q, clock)
            if item is _END:
                return
            yield item

    def _fail(self, stage: str, exc: BaseException, finish: bool = False) -> None:
        """Record a stage's error and stop: at once, or with ``finish`` after fusing and writing the
        frames already read (a source failing mid-stream must not take the frames before it along)."""
        with self._err_lock:
            self._errors.append((stage, exc))
        (self._finish if finish else self._stop).set()

    # -- threads ---------------------------------------------------------------------------
    def _capture(self, src: Source, q: queue.Queue, role: str) -> None:
        clock = _ThreadClock()
        stage = self.stats.stage(f"read {role}")
        recording = isinstance(src, RealtimeSource)
        try:
            while recording and not (
                self._live_started.wait(0.05) or self._stop.is_set() or self._finish.is_set()
            ):
                pass
            frames = src.frames()
            while not (self._stop.is_set() or self._finish.is_set()):
                t0 = time.perf_counter()
                f = next(frames, None)
                dt = time.perf_counter() - t0
                clock.work += dt
                if f is None:
                    self._ended.add(role)
                    break
                if src.live and not recording:
                    self._live_started.set()
                stage.add(dt)
                self.stats.count(f"frames in {role}")
                item = replace(f, received=time.monotonic())
                if src.live:
                    self._put_latest(q, item, role)
                elif not self._put(q, item, clock):
                    break
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            self._fail(f"reading {role} ({src.name})", e, finish=True)
        finally:
            if not recording:
                self._live_started.set()  # a live source that ended or failed holds no recording back
            self._put(q, _END, clock)
            self.stats.overhead[f"read {role}"] = clock.overhead()

    def _pairs_files(
        self, clock: _ThreadClock, tolerance: float
    ) -> Iterator[tuple[Frame, Frame | None, str]]:
        for v, i in pair_nearest(
            self._drain(self._q_vis, clock),
            self._drain(self._q_ir, clock),
            tolerance,
            self.pairing,
            self.ir_offset,
        ):
            yield v, i, ""

    def _pairs_live(self, clock: _ThreadClock, tolerance: float) -> Iterator[tuple[Frame, Frame | None, str]]:
        pairer = LivePairer(tolerance, self.hold, self.pairing, self.ir_offset)
        skew = self.stats.skew
        last_vis = time.monotonic()
        ir_ended = False

        def vis_watchdog() -> None:
            quiet = time.monotonic() - last_vis
            if quiet > self.reconnect_timeout:
                raise PipelineError(
                    f"the visible source ({self.vis.name}) delivered no frame for {quiet:.1f} s "
                    f"(the reconnect timeout is {self.reconnect_timeout:g} s)",
                    option="reconnect_timeout",
                )

        while True:
            v = self._get(self._q_vis, clock, vis_watchdog)
            if v is _END:
                return
            last_vis = time.monotonic()
            # Take every IR frame that has arrived; if none is within the tolerance yet, wait for
            # the next one until it could no longer be (live timestamps are time.monotonic()).
            while not ir_ended:
                wait = 0.0 if pairer.fresh(v) else pairer.deadline(v) - time.monotonic()
                try:
                    f = self._q_ir.get(timeout=wait) if wait > 0 else self._q_ir.get_nowait()
                except queue.Empty:
                    break
                if f is _END:
                    ir_ended = True
                else:
                    pairer.offer_ir(f)
            if ir_ended and not pairer.fresh(v):  # a recorded IR played in real time has ended
                self.pairing.vis_seen += 1
                self.pairing.vis_after_ir += 1
                self.pairing.ir_ended_first = True
                return
            i, status = pairer.match(v)[:2]
            if i is not None:
                skew.add(abs(v.t - i.t))
            if pairer.latest is not None and v.t - pairer.latest.t > self.reconnect_timeout:
                raise PipelineError(
                    f"the IR source ({self.ir.name}) delivered no frame for "
                    f"{v.t - pairer.latest.t:.1f} s (the reconnect timeout is {self.reconnect_timeout:g} s)",
                    option="reconnect_timeout",
                )
            if self.ir.status == "reconnecting":
                status = f"IR camera reconnecting; {status or 'holding the last frame'}"
            if status:
                self.stats.count("IR held" if i is not None else "IR missing")
            yield v, i, status

    def _work(self, tolerance: float) -> None:
        if self.kernel_threads is not None:
            import numba

            # Thread-local: only this worker's kernels are limited. Idle OpenMP workers spin, and on cores
            # the codecs need that costs more than the parallel kernel gains (docs/scaling.md).
            numba.set_num_threads(max(1, min(self.kernel_threads, numba.config.NUMBA_NUM_THREADS)))
        clock = _ThreadClock()
        st_pair, st_align, st_fuse = (self.stats.stage(n) for n in ("pair", "align", "fuse"))
        pairs = (self._pairs_live if self.live else self._pairs_files)(clock, tolerance)
        n = 0
        step = "pairing"
        try:
            while not self._stop.is_set():
                if self.max_frames is not None and n >= self.max_frames:
                    break
                step = "pairing"
                t0, w0 = time.perf_counter(), clock.wait
                pair = next(pairs, None)
                t1 = time.perf_counter()
                dt = (t1 - t0) - (clock.wait - w0)  # the pairer's own time, not its waits on queues
                clock.work += dt
                if pair is None:
                    self._paired_all = True
                    break
                st_pair.add(dt)
                v, i, status = pair
                step = "aligning"
                vis, ir = self.stage.prepare(
                    v.image, i.image if i is not None else None, i.index if i is not None else None
                )
                t2 = time.perf_counter()
                st_align.add(t2 - t1)
                step = "fusing"
                fused = self.stage.fuse(vis, ir)
                t3 = time.perf_counter()
                st_fuse.add(t3 - t2)
                clock.work += t3 - t1
                if ir is None:  # live, IR lost: the visible image alone
                    ir = np.zeros(vis.shape[:2], np.uint8)
                item = Fused(v.t, n, fused, vis, ir, v.received, status)
                if self.live:
                    self._put_latest(self._q_out, item, "out")
                elif not self._put(self._q_out, item, clock):
                    break
                n += 1
        except PipelineError as e:
            # A stop that lands before a stream's first frame ends that stream empty: the pairer's
            # "delivered no frames" is then the stop's doing (or follows a source's error, already
            # recorded), not an error of its own.
            if not (step == "pairing" and self._finish.is_set()):
                self._fail(step, e)
        except BaseException as e:  # noqa: BLE001
            self._fail(step, e)
        finally:
            pairs.close()  # settles the pairer's counts of the frames it held (see pair_nearest)
            # The capture threads may still be blocked on full queues; the main thread sets the
            # stop event once it has drained q_out, which releases them.
            self._put(self._q_out, _END, clock)
            self.stats.overhead["pair+align+fuse"] = clock.overhead()

    # -- main ------------------------------------------------------------------------------
    def run(self) -> RunReport:
        report = self.report = RunReport(self.stats, self.pairing)
        # Cooperative for the whole run, the closing included: a stop signal must never land as an
        # exception inside an encoder's flush.
        with interrupt.cooperative(self._finish):
            self._run(report)
        if interrupt.received() is not None:
            report.interrupted = True
        if self._errors:
            stage, exc = self._errors[0]
            msg = str(exc) if isinstance(exc, RtfuseError) else f"{type(exc).__name__}: {exc}"
            raise PipelineError(f"{stage} failed: {msg}", option=getattr(exc, "option", None)) from exc
        return report

    def _run(self, report: RunReport) -> None:
        opened: list[Source] = []
        threads: list[threading.Thread] = []
        start = time.perf_counter()
        try:
            self._start_and_consume(report, opened, threads)
        except KeyboardInterrupt:  # no handler installed (library use): Ctrl-C raises here
            report.interrupted = True
        finally:
            self._stop.set()
            deadline = time.monotonic() + 2.0
            for t in threads:
                t.join(timeout=max(deadline - time.monotonic(), 0.05))
            stuck = {t.name for t in threads if t.is_alive()}
            for src, thread_name in zip(opened, ("read-vis", "read-ir")):
                # A thread blocked inside a frozen device's read keeps its handle (it is a daemon and
                # ends with the process): releasing a capture under a reader can crash the driver.
                if thread_name not in stuck:
                    src.close()
            for sink in self.sinks:
                try:
                    note = sink.close()
                except Exception as e:  # noqa: BLE001 - a failing close must not hide the others
                    self._fail(f"closing {sink.name}", e)  # the error says what was kept
                    continue
                if note:
                    report.sink_notes.append(note)
            self._count_unread()
            self.stats.wall = time.perf_counter() - start

    def _start_and_consume(
        self, report: RunReport, opened: list[Source], threads: list[threading.Thread]
    ) -> None:
        for src in (self.vis, self.ir):
            if self._finish.is_set():
                return  # stopped (a signal) while a source was opening
            src.open()
            opened.append(src)
        self.stage.check(self.ir.size, self.vis.size)
        if self.live and self.stage.fuser is not None and self.vis.size:
            # Load the kernels (and any first-call set-up) now: the first fusion takes about 0.5 s,
            # in which a live run, keeping only the newest frames, would drop five frames a side at 10 fps.
            w, h = self.vis.size
            self.stage.fuser(np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8))
        tolerance = self.tolerance
        if tolerance is None:
            tolerance = default_tolerance(self.vis.fps, self.ir.fps)
        for sink in self.sinks:
            sink.open(self.vis.size, self.vis.fps or DEFAULT_FPS)
        threads += [
            threading.Thread(
                target=self._capture, args=(self.vis, self._q_vis, "vis"), name="read-vis", daemon=True
            ),
            threading.Thread(
                target=self._capture, args=(self.ir, self._q_ir, "ir"), name="read-ir", daemon=True
            ),
            threading.Thread(target=self._work, args=(tolerance,), name="fuse", daemon=True),
        ]
        for t in threads:
            t.start()
        report.quit_by_user = not self._consume()

    def _count_unread(self) -> None:
        """Frames the pairer never took and no queue dropped: the run stopped first, or the other
        stream ended. Exact when the stream's length is known or it was read to its end."""
        rep = self.pairing
        rep.stopped_early = self._finish.is_set() or not self._paired_all
        c = self.stats.counters
        for src, role, seen in ((self.vis, "vis", rep.vis_seen), (self.ir, "ir", rep.ir_seen)):
            taken = seen + c.get(f"dropped {role}", 0)
            if src.frame_count is not None:
                n: int | None = max(src.frame_count - taken, 0)
            elif role in self._ended:
                n = max(c.get(f"frames in {role}", 0) - taken, 0)
            elif src.live and not isinstance(src, RealtimeSource):
                n = 0  # a camera has no "rest"
            else:
                n = None  # an unknown number
            setattr(rep, f"{role}_unread", n)

    def _consume(self) -> bool:
        """Main-thread loop: hand fused frames to the sinks. False if a sink asked to stop."""
        clock = _ThreadClock()
        st_sink = self.stats.stage("sinks")
        quit_requested = False
        last_write = 0.0  # time.monotonic() of the last frame written
        finish_seen = 0.0  # ... and of the first idle poll after a stop request

        def idle() -> None:
            nonlocal quit_requested, finish_seen
            if self._finish.is_set():
                # Finishing writes what was already read; a stage that makes no progress (a frozen
                # device) must not keep the recording from being finalised.
                finish_seen = finish_seen or time.monotonic()
                if time.monotonic() - max(last_write, finish_seen) > FINISH_TIMEOUT:
                    self._stop.set()
            status = "waiting for frames"
            for sink in self.sinks:
                if not sink.idle(status):
                    quit_requested = True
                    self._stop.set()

        try:
            while True:
                item = self._get(self._q_out, clock, idle)
                if item is _END:
                    return not quit_requested
                # Capture to ready-for-display: what rtfuse adds on top of the camera.
                self.stats.latency.add(time.monotonic() - item.received)
                t0 = time.perf_counter()
                keep_going = True
                for sink in self.sinks:
                    try:
                        keep_going = sink.write(item) and keep_going
                    except Exception as e:  # noqa: BLE001
                        self._fail(f"writing to {sink.name}", e)
                        return True
                now = time.perf_counter()
                st_sink.add(now - t0)
                clock.work += now - t0
                self.stats.count("frames out")
                last_write = time.monotonic()
                if self.on_frame:
                    self.on_frame(self.stats.frames_out)
                if not keep_going:
                    return False
        finally:
            self.stats.overhead["sinks"] = clock.overhead()
