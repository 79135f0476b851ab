"""Throughput of `rtfuse batch` over short clips: --workers 1 vs 2, local processes vs local Ray.

    python benchmarks/batch_bench.py [WORKDIR] [--pairs 20] [--frames 90] [--size 320x240] [--runs 3]
        [--configs "--workers 1;--workers 2;--workers 2 --ray"]

A configuration may start with ``cpus=0,1``: that run is pinned to those CPUs (``sched_setaffinity``,
inherited by every process it starts), e.g. ``"cpus=0 --workers 1;--workers 2"`` compares one
worker on one core with two workers on two cores: how the executor scales per core. Other leading
``NAME=VALUE`` words are set in the run's environment.

Generates the pairs in WORKDIR/archive once (FFV1 in MKV, noise-like frames, so decoding is the
heaviest stage; delete the folder to change --pairs, --frames or --size), then runs every
configuration once per round, ``--runs`` rounds (interleaved, so a slow spell of the machine hits all
of them), each on a fresh output folder. Per run it prints the wall time, the fused frames per
second, the CPU time of the process tree (frames per CPU-second: the capacity of one core, even on a
shared machine) and how busy the machine's CPUs were just before the run (another job on the machine
makes the numbers meaningless; the line says so). At the end: the median of each configuration, and
ratios of throughput as medians of the per-round ratios.
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import statistics
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def _cpu_busy(seconds: float = 2.0) -> float:
    def snap() -> list[int]:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]

    a = snap()
    time.sleep(seconds)
    d = [y - x for x, y in zip(a, snap())]
    return 1 - (d[3] + d[4]) / max(sum(d), 1)


def _write(path: Path, frames: list[np.ndarray]) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=Fraction(30))
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "bgr0"
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workdir", nargs="?", default="/tmp/rtfuse-batch-bench", type=Path)
    ap.add_argument("--frames", type=int, default=90)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--configs", default="--workers 1;--workers 2;--workers 2 --ray")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=20)
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    arch = a.workdir / "archive"
    if not arch.is_dir():
        arch.mkdir(parents=True)
        base = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for k in range(a.pairs):
            frames = [np.roll(base, 3 * t + k, axis=1) for t in range(a.frames)]
            _write(arch / f"clip{k:02d}_vis.mkv", frames)
            _write(arch / f"clip{k:02d}_ir.mkv", [np.repeat(f[:, :, :1], 3, axis=2) for f in frames])
    configs = a.configs.split(";")
    results: dict[str, list[tuple[float, float, float]]] = {c: [] for c in configs}  # (wall, fps, cpu)
    for r in range(a.runs):
        for cfg in configs:
            wall, frames, cpu, busy, rc = _run(arch, a.workdir / "out", cfg)
            results[cfg].append((wall, frames / wall, cpu))
            print(
                f"run {r + 1} {cfg:28s} rc={rc} wall={wall:6.1f} s frames={frames} fps={frames / wall:6.1f} "
                f"cpu={cpu:6.1f} s ({frames / max(cpu, 1e-9):.0f} frames per CPU-second) "
                f"(CPUs {busy:.0%} busy before the run)",
                flush=True,
            )

    def ratio(a: str, b: str) -> float:  # the median of the per-round fps ratios: drift hits both alike
        return statistics.median(x[1] / y[1] for x, y in zip(results[a], results[b]))

    print(f"\nmedians of {a.runs} runs; ratios: medians of the per-round fps ratios")
    print(f"| configuration | wall | fused fps | CPU s | vs `{configs[0]}` | vs the row above |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, cfg in enumerate(configs):
        rows = results[cfg]
        above = f"{ratio(cfg, configs[k - 1]):.2f}" if k else ""
        print(
            f"| `{cfg}` | {statistics.median(x[0] for x in rows):.1f} s "
            f"| {statistics.median(x[1] for x in rows):.1f} | {statistics.median(x[2] for x in rows):.1f} "
            f"| {ratio(cfg, configs[0]):.2f} | {above} |"
        )


def _run(arch: Path, out: Path, cfg: str) -> tuple[float, int, float, float, int]:
    """One batch run on a fresh output folder: (wall, frames out, CPU s of the tree, CPUs busy before, rc)."""
    subprocess.run(["rm", "-rf", str(out)], check=True)
    args = cfg.split()
    cpus, env = None, dict(os.environ)
    while args and "=" in args[0] and not args[0].startswith("-"):
        key, val = args.pop(0).split("=", 1)
        if key == "cpus":
            cpus = {int(c) for c in val.split(",")}
        else:
            env[key] = val
    busy = _cpu_busy()
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "rtfuse._entry", "batch", str(arch), "-o", str(out), *args]
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    rc = subprocess.run(cmd, capture_output=True, preexec_fn=pin, env=env).returncode
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime  # Ray's workers are not counted
    with open(out / "batch_report.csv") as f:
        frames = sum(int(r["frames_out"]) for r in csv.DictReader(f))
    return wall, frames, cpu, busy, rc


if __name__ == "__main__":
    main()
