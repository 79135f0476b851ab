"""``rtfuse batch``: fuse a whole archive of video pairs, resumable and failure-isolated.

Each pair is one task that runs the same path as ``rtfuse fuse`` on two videos
(:func:`rtfuse.runner.build` with a :func:`rtfuse.runner.video_sink`) in a worker process; tasks
receive paths and options, never frames. This module is imported by the parent and by every worker,
so it imports nothing heavy (Numba, OpenCV) at module level: a worker sets ``NUMBA_NUM_THREADS``
before the first Numba import.

Resume: a finished output gets a hidden sidecar ``.NAME.rtfuse.json`` (its report row), written
atomically after the video was renamed into place. A re-run skips a pair when the output and its
sidecar exist and the output's demuxed frame count equals the sidecar's ``frames_out``; everything
else is redone. A killed task leaves at most a ``.NAME.part`` file, which the next run discards.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rtfuse import cpu, interrupt
from rtfuse.atomic import lock_partial, partial_path, write_atomic
from rtfuse.errors import InputError, RtfuseError
from rtfuse.heap import reuse_frame_memory
from rtfuse.paths import check_writable_folder, refuse_overwrite
from rtfuse.sync import IR_TAGS, VIS_TAGS, pair_stems

VIDEO_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".ts")
MANIFEST_EXTS = (".csv", ".jsonl")
# A tag of two letters or more after a separator marks a side in a folder of mixed files
# (NAME_vis.mp4, NAME-ir.mkv); one-letter tags (7400v) are too easily part of a name there.
_SIDE_TAGS = {"vis": tuple(t for t in VIS_TAGS if len(t) > 1), "ir": tuple(t for t in IR_TAGS if len(t) > 1)}
NAMING_RULE = (
    "in every folder, NAME_vis.EXT with NAME_ir.EXT (any of _ - . as separator; tags "
    f"{', '.join(_SIDE_TAGS['vis'])} / {', '.join(_SIDE_TAGS['ir'])}), or vis/NAME.EXT with ir/NAME.EXT "
    "in two sibling folders; the output is OUT_DIR/<relative folder>/NAME<ext>"
)
PATTERN_HELP = (
    "VIS,IR: where each side's file lies under INPUT, as two paths with {name} once in each, e.g. "
    "'{name}_rgb.mp4,{name}_thermal.mp4' or 'cam0/{name}.*,cam1/{name}.*' ({name} may span folders; * "
    "matches within one folder name); files with the same {name} pair, the output is OUT_DIR/{name}<ext>"
)
REPORT_FIELDS = (
    "vis",
    "ir",
    "out",
    "frames_in",
    "paired",
    "frames_out",
    "unused_vis",
    "unused_ir",
    "fps",
    "seconds",
    "status",
    "error",
    "attempts",
)


@dataclass
class Job:
    """One pair: its inputs, its output and its calibration (None: the batch's ``--calib``)."""

    vis: Path
    ir: Path
    out: Path
    calib: Path | None = None


@dataclass
class Row:
    """One pair's line of the report."""

    vis: str
    ir: str
    out: str
    frames_in: int = 0
    paired: int = 0
    frames_out: int = 0
    unused_vis: int = 0
    unused_ir: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    status: str = "pending"  # ok | failed | skipped | pending (not run: the batch was stopped)
    error: str = ""
    attempts: int = 0
    metrics: dict[str, float] = field(default_factory=dict)


def sidecar_path(out: Path) -> Path:
    """The hidden file holding a finished output's report row (what a re-run verifies against)."""
    return out.with_name(f".{out.name}.rtfuse.json")


# ---------------------------------------------------------------- finding the pairs


def find_jobs(
    source: Path, out_dir: Path, ext: str = ".mp4", pattern: str | None = None
) -> tuple[list[Job], list[str]]:
    """The pairs in a folder (:data:`NAMING_RULE`, or ``pattern``: :data:`PATTERN_HELP`) or a
    CSV/JSONL manifest: ``(jobs, notes)``.

    ``notes`` name every video file left unpaired. Outputs are checked: never an input, never two
    pairs on one output.
    """
    ext = ext if ext.startswith(".") else "." + ext
    if not source.exists():
        raise InputError(f"{source}: no such folder or manifest")
    if pattern is not None and not source.is_dir():
        raise InputError(f"--pattern names files in a folder, but {source} is a manifest")
    if pattern is not None:
        jobs, notes = _scan_pattern(source, out_dir, ext, parse_pattern(pattern))
    elif source.is_dir():
        jobs, notes = _scan_folder(source, out_dir, ext)
    elif source.suffix.lower() in MANIFEST_EXTS:
        jobs, notes = _read_manifest(source, out_dir, ext), []
    else:
        raise InputError(f"{source}: give a folder of videos or a manifest ({', '.join(MANIFEST_EXTS)})")
    _check_outputs(jobs)
    return jobs, notes


def _videos(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTS)


def _side(stem: str) -> str | None:
    low = stem.lower()
    for side, tags in _SIDE_TAGS.items():
        if any(low.endswith(sep + t) for t in tags for sep in "_-. "):
            return side
    return None


def _walk(root: Path, out_dir: Path):
    """``(folder, its subfolder names)`` under ``root`` in sorted order, without ``out_dir``'s tree: the
    outputs of an earlier run are never read as inputs. The caller may prune the names in place."""
    out_res = out_dir.resolve()
    for folder, subdirs, _ in os.walk(root):
        here = Path(folder)
        subdirs.sort()
        if here.resolve() == out_res or out_res in here.resolve().parents:
            subdirs.clear()
            continue
        yield here, subdirs


def _scan_folder(root: Path, out_dir: Path, ext: str) -> tuple[list[Job], list[str]]:
    jobs: list[Job] = []
    notes: list[str] = []
    for here, subdirs in _walk(root, out_dir):
        rel = here.relative_to(root)
        # vis/ and ir/ siblings: one pair per equal stem (pair_stems' rule for two folders)
        lower = {d.lower(): d for d in subdirs}
        if "vis" in lower and "ir" in lower:
            vis = {p.stem: p for p in _videos(here / lower["vis"])}
            ir = {p.stem: p for p in _videos(here / lower["ir"])}
            pairs, vis_only, ir_only = pair_stems(vis, ir)
            jobs += [Job(v, i, out_dir / rel / (name + ext)) for name, (v, i) in pairs.items()]
            notes += [f"{vis[s]}: no IR video of that name; not fused" for s in vis_only]
            notes += [f"{ir[s]}: no visible video of that name; not fused" for s in ir_only]
            subdirs[:] = [d for d in subdirs if d not in (lower["vis"], lower["ir"])]
        # NAME_vis / NAME_ir in one folder: pair_stems drops the tag every file of a side carries
        sides: dict[str, dict[str, Path]] = {"vis": {}, "ir": {}}
        for p in _videos(here):
            side = _side(p.stem)
            if side is not None:
                sides[side][p.stem] = p
        if sides["vis"] or sides["ir"]:
            pairs, vis_only, ir_only = pair_stems(sides["vis"], sides["ir"])
            jobs += [Job(v, i, out_dir / rel / (name + ext)) for name, (v, i) in pairs.items()]
            notes += [f"{sides['vis'][s]}: no IR video of that name; not fused" for s in vis_only]
            notes += [f"{sides['ir'][s]}: no visible video of that name; not fused" for s in ir_only]
    return jobs, notes


def parse_pattern(text: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """``'VIS,IR'`` (:data:`PATTERN_HELP`) as two regular expressions over relative POSIX paths, each
    capturing the pair's ``name``."""
    parts = [p.strip().strip("/") for p in text.split(",")]
    if len(parts) != 2 or any(p.count("{name}") != 1 for p in parts):
        raise InputError(
            f"--pattern {text!r}: give VIS,IR with {{name}} once in each, e.g. {{name}}_rgb.mp4,{{name}}_ir.mp4"
        )
    if parts[0] == parts[1]:
        raise InputError(f"--pattern {text!r}: the visible and the IR files need different names")

    def compile_one(template: str) -> re.Pattern[str]:
        def literal(t: str) -> str:
            return re.escape(t).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")

        before, after = template.split("{name}")
        return re.compile(f"{literal(before)}(?P<name>.+){literal(after)}")

    return compile_one(parts[0]), compile_one(parts[1])


def _scan_pattern(
    root: Path, out_dir: Path, ext: str, pattern: tuple[re.Pattern[str], re.Pattern[str]]
) -> tuple[list[Job], list[str]]:
    sides: list[dict[str, list[Path]]] = [{}, {}]
    for here, _ in _walk(root, out_dir):
        for p in _videos(here):
            rel = p.relative_to(root).as_posix()
            for side, rx in zip(sides, pattern):
                m = rx.fullmatch(rel)
                if m:
                    side.setdefault(m["name"], []).append(p)
    jobs: list[Job] = []
    notes: list[str] = []
    for name in sorted(set(sides[0]) | set(sides[1])):
        vis, ir = sides[0].get(name, []), sides[1].get(name, [])
        if len(vis) > 1 or len(ir) > 1:
            files = ", ".join(str(p) for p in vis + ir)
            notes.append(f"{files}: more than one file for {name!r} on one side; not fused")
        elif not ir:
            notes.append(f"{vis[0]}: no IR video for {name!r}; not fused")
        elif not vis:
            notes.append(f"{ir[0]}: no visible video for {name!r}; not fused")
        elif vis[0] == ir[0]:
            notes.append(f"{vis[0]}: matches both sides of the pattern; not fused")
        else:
            jobs.append(Job(vis[0], ir[0], out_dir / (name + ext)))
    return jobs, notes


def _read_manifest(path: Path, out_dir: Path, ext: str) -> list[Job]:
    """Rows ``vis, ir[, out][, calib]``; relative inputs are relative to the manifest's folder,
    relative outputs to OUT_DIR. Without ``out``, the output is named after the visible file."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the manifest ({e})") from None
    if path.suffix.lower() == ".csv":
        records = list(csv.DictReader(io.StringIO(text)))
    else:
        records = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{path}:{n}: not a JSON object ({e.msg})") from None
    jobs = []
    base = path.parent
    for n, rec in enumerate(records, 1):
        if not isinstance(rec, dict) or not rec.get("vis") or not rec.get("ir"):
            raise InputError(f"{path}: entry {n} needs a vis and an ir path")
        vis, ir = base / rec["vis"], base / rec["ir"]
        if rec.get("out"):
            out = out_dir / rec["out"]
        else:
            name = next(iter(pair_stems({vis.stem: vis}, {ir.stem: ir})[0]), vis.stem)
            out = out_dir / (name + ext)
        calib = base / rec["calib"] if rec.get("calib") else None
        jobs.append(Job(vis, ir, out, calib))
    return jobs


def _check_outputs(jobs: list[Job]) -> None:
    """Before any work: no output over an input, no two pairs writing one output."""
    inputs = {p.resolve() for j in jobs for p in (j.vis, j.ir)}
    seen: dict[Path, Job] = {}
    for j in jobs:
        refuse_overwrite(j.out, {"visible": j.vis, "IR": j.ir})
        key = j.out.resolve()
        if key in inputs or partial_path(key) in inputs:
            raise InputError(
                f"the output {j.out} is an input of another pair; rtfuse never writes over an input"
            )
        if key in seen:
            raise InputError(
                f"{seen[key].vis} and {j.vis} would both be fused into {j.out}: give each its own output"
            )
        seen[key] = j


# ---------------------------------------------------------------- resume


def demuxed_frames(path: Path) -> int:
    """Frames stored in a video file (packets demuxed, not decoded: cheap enough for a re-run); 0 if unreadable."""
    import av

    n = 0
    try:
        with av.open(str(path)) as c:
            for pkt in c.demux(video=0):
                if pkt.size:
                    n += 1
    except (av.error.FFmpegError, OSError, ValueError, IndexError):
        return 0
    return n


def finished_row(job: Job) -> Row | None:
    """The earlier run's row when ``job.out`` exists and verifies against its sidecar, else None."""
    side = sidecar_path(job.out)
    if not (job.out.is_file() and side.is_file()):
        return None
    try:
        data = json.loads(side.read_text())
        row = Row(**{k: v for k, v in data.items() if k in Row.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None
    if row.status != "ok" or row.frames_out <= 0 or demuxed_frames(job.out) != row.frames_out:
        return None
    return row


# ---------------------------------------------------------------- the task (runs in a worker)

_FUSERS: dict[tuple[str, str | None], Any] = {}  # one loaded fuser per worker and backend


def codec_threads_for(workers: int, cores: int | None = None) -> int:
    """Threads for each codec of a worker (two decoders and one encoder; fusion has one Numba thread).

    One worker has the machine to itself, as ``rtfuse fuse`` has: FFmpeg's and x264's automatic
    counts (:data:`rtfuse.runner.CODEC_THREADS`), measured best on 2 cores. A worker with less than
    two cores of its own gets 1 (no codec thread pools, no frame threading): the automatic counts
    follow the machine's cores, not the worker's share, so with a worker per core the threads
    would grow as cores squared. In between, half its share each: the pipeline's own four threads
    already keep about 1.7 cores busy with one-thread codecs, and workers x (2 x decoder + encoder
    + 1) threads stays within about 1.5x the cores. ``docs/scaling.md`` has the rule and the
    measurements.
    """
    from rtfuse.runner import CODEC_THREADS

    cores = cores or cpu.available_cores()
    if workers <= 1:
        return CODEC_THREADS
    share = cores // workers
    return 1 if share < 2 else share // 2


def worker_options(options: dict[str, Any], workers: int, ray_address: str | None = None) -> dict[str, Any]:
    """``options`` with ``codec_threads`` set when missing or None: :func:`codec_threads_for` the
    local workers; on a Ray cluster 1, since Ray runs one task per CPU of each node."""
    if options.get("codec_threads") is not None:
        return options
    remote = ray_address not in (None, "local")
    return {**options, "codec_threads": 1 if remote else codec_threads_for(workers)}


def core_sets(workers: int, cores: list[int]) -> list[set[int]]:
    """The CPUs each of ``workers`` local workers is pinned to: ``cores`` cut into ``workers``
    contiguous runs of (nearly) equal length. Empty when there are more workers than cores, which
    are then left to the scheduler (a pinned worker could not move off a core another one holds)."""
    if not 1 < workers <= len(cores):
        return []
    cut = [round(i * len(cores) / workers) for i in range(workers + 1)]
    return [set(cores[a:b]) for a, b in zip(cut[:-1], cut[1:])]


def core_slots(ctx: Any, workers: int) -> Any:
    """A ``ctx`` queue of the CPU sets of ``workers`` pool workers (:func:`core_sets`), for
    :func:`init_worker`; None where they are not pinned (no affinity call: not Linux; or
    :func:`core_sets` gives none)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    sets = core_sets(workers, sorted(os.sched_getaffinity(0)))
    if not sets:
        return None
    slots = ctx.Queue()
    for c in sets:
        slots.put(c)
    return slots


def init_worker(slots: Any = None) -> None:
    """Process-pool initializer: one Numba thread per worker (set before Numba is imported, so it
    holds), pinned to its own core(s) when ``slots`` (a queue of CPU sets) has one left, frame
    memory reused (:mod:`rtfuse.heap`), and stop signals left to the parent, which ends the workers
    itself."""
    import queue
    import signal

    os.environ["NUMBA_NUM_THREADS"] = "1"
    if slots is not None:
        try:
            # Not get_nowait: the parent's feeder thread may not have written the sets to the pipe
            # yet, and a worker that found it empty ran unpinned (seen once under load).
            os.sched_setaffinity(0, slots.get(timeout=2.0))
        except (queue.Empty, OSError):
            pass  # no set left for it, or no affinity here: the scheduler places it
    reuse_frame_memory()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def run_job(job: Job, options: dict[str, Any], evaluate: bool = False) -> Row:
    """Fuse one pair exactly as ``rtfuse fuse --vis V --ir I -o OUT`` with ``options`` would.

    Never raises for a bad pair: an :class:`RtfuseError` becomes a failed row with its one line.
    """
    import argparse

    from rich.console import Console

    from rtfuse.messages import with_flag
    from rtfuse.runner import build, run_and_report, video_sink

    row = Row(str(job.vis), str(job.ir), str(job.out))
    t0 = time.perf_counter()
    args = argparse.Namespace(**options)
    if job.calib is not None:
        args.calib = job.calib
    quiet = Console(file=io.StringIO(), width=200)  # the per-pair summary goes into the report row
    pipe = None
    try:
        sidecar_path(job.out).unlink(missing_ok=True)  # the output is being redone
        _discard_stale_part(job.out)
        job.out.parent.mkdir(parents=True, exist_ok=True)
        prompt = getattr(args, "prompt", None)
        key = (args.backend, str(args.weights) if args.weights else None, prompt)
        if key not in _FUSERS:
            from rtfuse.cli import _load

            _FUSERS[key] = _load(args.backend, args.weights, prompt, announce=False)
        sink = video_sink(job.out, args)
        pipe = build(args, str(job.vis), str(job.ir), [sink], _FUSERS[key])
        run_and_report(pipe, quiet, "rtfuse batch")
        row.status = "ok"
    except RtfuseError as e:
        row.status, row.error = "failed", " ".join(with_flag(e).split())
    except Exception as e:  # noqa: BLE001 - one bad pair must not end the batch; one line, no traceback
        row.status, row.error = "failed", f"{type(e).__name__}: {' '.join(str(e).split())}"
    row.seconds = round(time.perf_counter() - t0, 3)
    if pipe is not None:
        pr = pipe.pairing
        row.frames_in, row.paired, row.frames_out = pr.vis_seen, pr.pairs, pipe.stats.frames_out
        row.unused_vis, row.unused_ir = pr.vis_unused, pr.ir_unused + pr.ir_after_vis
        row.fps = round(row.frames_out / row.seconds, 1) if row.seconds else 0.0
    if row.status == "ok" and evaluate:
        row.metrics = _metrics(job.out)
        if getattr(args, "video_metrics", False):
            try:
                row.metrics.update(_video_metrics(job, args))
            except RtfuseError as e:  # e.g. a one-frame clip: the output stands, the metric is missing
                row.error = f"video metrics: {' '.join(str(e).split())}"
    if row.status == "ok":
        write_atomic(sidecar_path(job.out), json.dumps(asdict(row)).encode(), "batch sidecar")
    return row


def _discard_stale_part(out: Path) -> None:
    """A ``.part`` file of a killed task: the batch redoes the pair, so its frames are not kept
    (rtfuse fuse would keep them as NAME.interrupted.mp4: a second output of one pair). A locked
    one belongs to a live writer and is left to VideoSink's own refusal."""
    part = partial_path(out)
    if not part.is_file():
        return
    fd = lock_partial(part)
    if fd is None:
        return
    os.close(fd)
    part.unlink(missing_ok=True)


def _metrics(path: Path) -> dict[str, float]:
    """Mean EN, SD and SF over the output's frames."""
    import av
    import numpy as np

    from rtfuse.metrics import entropy, sd, sf

    vals: dict[str, list[float]] = {"EN": [], "SD": [], "SF": []}
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            gray = f.to_ndarray(format="gray")
            for name, fn in (("EN", entropy), ("SD", sd), ("SF", sf)):
                vals[name].append(float(fn(gray)))
    return {k: round(float(np.mean(v)), 4) for k, v in vals.items() if v}


def _video_metrics(job: Job, args: Any) -> dict[str, float]:
    """Motion-compensated flicker (absolute and as a ratio to max(Y, IR)) and flowD of the output,
    on the pairs read again as the fusion read them (docs/flicker.md)."""
    from rtfuse.evaluate import evaluate_video
    from rtfuse.runner import clip_options, make_stage

    stages = {"fused": make_stage(args, None, resize_ir=False)}
    rows = evaluate_video(job.vis, job.ir, stages, fused=job.out, **clip_options(args))
    r = rows["fused"]
    return {k: round(float(r[k]), 4) for k in ("flicker", "flicker_ratio", "flowD")}


# ---------------------------------------------------------------- the report


def write_report(out_dir: Path, rows: list[Row], notes: list[str]) -> tuple[Path, Path]:
    """``batch_report.csv`` and ``batch_report.json`` in ``out_dir``, each written atomically."""
    metric_names = sorted({k for r in rows for k in r.metrics})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([*REPORT_FIELDS, *metric_names])
    for r in rows:
        d = asdict(r)
        w.writerow([d[k] for k in REPORT_FIELDS] + [r.metrics.get(m, "") for m in metric_names])
    csv_path, json_path = out_dir / "batch_report.csv", out_dir / "batch_report.json"
    write_atomic(csv_path, buf.getvalue().encode(), "batch report")
    data = {"pairs": [asdict(r) for r in rows], "unpaired": notes}
    write_atomic(json_path, json.dumps(data, indent=1).encode(), "batch report")
    return csv_path, json_path


def check_out_dir(out_dir: Path) -> None:
    check_writable_folder(out_dir, "batch outputs", create=True)


# ---------------------------------------------------------------- the local executor


WINDOW_PER_WORKER = 2  # pairs submitted ahead per worker (or per Ray CPU): each worker always has its next


def run_batch(
    jobs: list[Job],
    options: dict[str, Any],
    workers: int,
    retries: int = 1,
    force: bool = False,
    evaluate: bool = False,
    progress: Any = None,
    ray_address: str | None = None,
    pin: bool = True,
) -> tuple[list[Row], bool]:
    """Fuse ``jobs`` on ``workers`` processes: ``(rows in job order, stopped by a signal)``.

    Verified outputs are skipped unless ``force``. A worker that dies (killed, out of memory)
    breaks the pool: the pairs it may have held are resubmitted on a fresh pool up to ``retries``
    times; a pair that fails with an error is not retried (the same input fails the same way).
    A stop signal ends the workers at once (their ``.part`` files are removed; those pairs stay
    ``pending`` and a re-run does them).

    ``ray_address``: run the same task as Ray tasks instead, on that cluster (``"local"``: a Ray
    started for this run with ``workers`` CPUs); Ray resubmits tasks whose worker or node died.

    ``options["codec_threads"]`` missing or None: sized for the workers (:func:`worker_options`).

    ``pin``: each local worker keeps to its own core(s) (:func:`core_sets`) when there are no more
    workers than cores: its four pipeline threads then share one core's caches and never migrate,
    about 7 % more throughput with one worker per core (``docs/scaling.md``).
    """
    import threading
    from collections import deque

    from rtfuse import interrupt

    options = worker_options(options, workers, ray_address)
    rows = [Row(str(j.vis), str(j.ir), str(j.out)) for j in jobs]
    todo: deque[int] = deque()
    for k, job in enumerate(jobs):
        done = None if force else finished_row(job)
        if done is not None:
            done.status, done.seconds, done.fps, done.attempts = "skipped", 0.0, 0.0, 0
            rows[k] = done
            _advance(progress, done)
        else:
            todo.append(k)
    stop = threading.Event()
    with interrupt.cooperative(stop):
        if ray_address is not None:
            if todo:
                _on_ray(jobs, rows, todo, options, workers, retries, evaluate, progress, stop, ray_address)
            return rows, stop.is_set()
        while todo and not stop.is_set():
            todo = _one_pool(jobs, rows, todo, options, workers, retries, evaluate, progress, stop, pin)
    return rows, stop.is_set()


def _one_pool(jobs, rows, todo, options, workers, retries, evaluate, progress, stop, pin=True):
    """Run ``todo`` on one process pool; returns the pairs to resubmit after the pool broke.

    At most :data:`WINDOW_PER_WORKER` pairs per worker are submitted at a time, so an archive of
    100,000 pairs holds a few futures, not 100,000, and a broken pool has only those to sort out.
    """
    import multiprocessing
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    again: deque[int] = deque()
    waiting = deque(todo)
    ctx = multiprocessing.get_context("spawn")
    slots = core_slots(ctx, workers) if pin else None
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=(slots,)
    )
    futures: dict[Any, int] = {}
    live: set[Any] = set()
    started: set[int] = set()  # pairs seen running: those a dead worker may have held
    broken = False
    try:
        while (live or (waiting and not broken)) and not stop.is_set():
            while waiting and not broken and len(live) < WINDOW_PER_WORKER * workers:
                k = waiting.popleft()
                try:
                    f = pool.submit(run_job, jobs[k], options, evaluate)
                except BrokenProcessPool:  # a worker died since the last wait: the rest go to a new pool
                    waiting.appendleft(k)
                    broken = True
                    break
                futures[f] = k
                live.add(f)
            done, live = wait(live, timeout=0.2, return_when=FIRST_COMPLETED)
            started |= {futures[f] for f in live if f.running()}
            for f in done:
                k = futures.pop(f)
                try:
                    row = f.result()
                    row.attempts = rows[k].attempts + 1
                    rows[k] = row
                except BrokenProcessPool:
                    broken = True
                    if k in started or not started:
                        rows[k].attempts += 1
                    if rows[k].attempts > retries:
                        rows[k].status = "failed"
                        rows[k].error = f"the worker process died {rows[k].attempts} times on this pair"
                    else:
                        again.append(k)
                        continue
                _advance(progress, rows[k])
    finally:
        if stop.is_set():
            for proc in list(getattr(pool, "_processes", {}).values()):  # no public way to end workers
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        if stop.is_set():
            for f in live:
                _discard_stale_part(jobs[futures[f]].out)
    again.extend(waiting)  # never submitted: not an attempt
    return again


def _advance(progress: Any, row: Row) -> None:
    if progress is not None:
        progress(row)


# ---------------------------------------------------------------- the Ray executor


def _ray_task(job: Job, options: dict[str, Any], evaluate: bool) -> Row:
    """The Ray task: the same :func:`run_job`, in a Ray worker (which gets NUMBA_NUM_THREADS=1
    from its environment, see :func:`_on_ray`; Ray already keeps stop signals from its workers)."""
    reuse_frame_memory()  # once per worker process would do; it costs microseconds
    return run_job(job, options, evaluate)


def import_ray() -> Any:
    """Ray, imported only for ``--ray`` (the runtime never needs it)."""
    try:
        import ray
    except ImportError as e:
        if interrupt.is_stop(e):
            raise  # the stop signal landed in Ray's import; the CLI reports it as the stop
        raise RtfuseError("--ray needs Ray, which is not installed: pip install 'rtfuse[cluster]'") from None
    return ray


def _on_ray(jobs, rows, todo, options, workers, retries, evaluate, progress, stop, address) -> None:
    """Submit every pair as a Ray task, collect rows as they finish; paths travel, never frames."""
    from collections import deque

    ray = import_ray()
    env = {"NUMBA_NUM_THREADS": "1"}
    if address == "local":
        # A local Ray's workers import this very rtfuse (a source checkout too, not only an install).
        env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        # Its workers inherit the environment Ray starts with: a runtime_env would make Ray start a second
        # set of workers for it, after the ones it prestarts (about 1 s more to the first tasks).
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False, runtime_env={"env_vars": env})
    try:
        # max_retries counts system failures only (a dead worker or node); errors are not retried.
        task = ray.remote(num_cpus=1, max_retries=retries)(_ray_task)
        # A window of tasks in flight, refilled as they finish: the scheduler and the object store hold a
        # few per CPU of the cluster, not the whole archive.
        window = WINDOW_PER_WORKER * max(int(ray.cluster_resources().get("CPU", workers)), 1)
        waiting = deque(todo)
        refs: dict[Any, int] = {}
        while (refs or waiting) and not stop.is_set():
            while waiting and len(refs) < window:
                k = waiting.popleft()
                refs[task.remote(jobs[k], options, evaluate)] = k
            ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.2)
            for ref in ready:
                k = refs.pop(ref)
                try:
                    row = ray.get(ref)
                    row.attempts = 1
                    rows[k] = row
                except Exception as e:  # noqa: BLE001 - a task lost after its retries: one line
                    rows[k].status = "failed"
                    rows[k].error = f"the Ray task was lost ({type(e).__name__}: {str(e).splitlines()[0]})"
                    rows[k].attempts = retries + 1
                _advance(progress, rows[k])
        if stop.is_set():
            for ref in refs:
                ray.cancel(ref, force=True)
            for k in refs.values():
                _discard_stale_part(jobs[k].out)
    finally:
        ray.shutdown()
