"""Student benchmark: ms per frame of the student's engines and variants vs the LUT-Fuse reference.

All rows run interleaved (each row in turn, in an order rotated every round) on the same real frames,
in one process, with ``--threads`` threads for torch and ONNX Runtime alike, so a busy machine slows
them alike. Each row reports the median and range of ms per frame, the median of the per-round ratios
to the reference (how many times faster), the ratio of the fastest frames (the least disturbed by
other load), and its difference from today's student (torch, float32) in levels. The load average
is printed before and after.

    .venv/bin/python benchmarks/bench_student.py [--threads 2] [--size 640x480] [--rounds 7] [--int8] \
        [--before OLD_student.onnx]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def ort_session(path: Path, threads: int, level: str = "all", spin: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    }[level]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if not spin:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def int8_model(src: Path, dst: Path, frames) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on the benchmark frames."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from rtfuse.fusion.onnxnet import _LUMA

    feeds = [
        {
            "vis_y": ((v.astype(np.float32) / 255) @ _LUMA)[None, None],
            "ir": (i.astype(np.float32) / 255)[None, None],
        }
        for v, i in frames
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(feeds)

        def get_next(self):
            return next(self.it, None)

    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre))
    quantize_static(
        str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )  # fmt: skip
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--int8", action="store_true", help="also a statically quantised int8 student")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    ap.add_argument("--before", type=Path, help="an earlier student .onnx, timed alongside the shipped one")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch
    from bench_kernel import frames_at
    from lutfuse_reference import LutFuseReference

    from rtfuse.fusion.net import NetFuser
    from rtfuse.fusion.onnxnet import OnnxFuser
    from rtfuse.fusion.registry import WEIGHTS_DIR

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    source, frames = frames_at(w, h)
    pt, onnx_file = WEIGHTS_DIR / "student.pt", WEIGHTS_DIR / "student.onnx"

    ref = LutFuseReference().eval()

    def reference(vis, ir):
        v = torch.from_numpy(vis).permute(2, 0, 1)[None].float() / 255.0
        i = torch.from_numpy(ir)[None, None].float() / 255.0
        with torch.inference_mode():
            return ref(v, i)

    today = NetFuser(pt, device="cpu")  # NetFuser now runs channels-last on a CPU: undo it for "today"
    today.net = today.net.to(memory_format=torch.contiguous_format)
    channels_last = NetFuser(pt, device="cpu")
    channels_last.net = channels_last.net.to(memory_format=torch.channels_last)

    def onnx_variant(level: str = "all", spin: bool = True, path: Path = onnx_file) -> OnnxFuser:
        f = OnnxFuser(path, threads=args.threads)
        f.session = ort_session(path, args.threads, level, spin)
        return f

    import tempfile

    from rtfuse.fusion.onnxnet import export_onnx

    tmp = Path(tempfile.mkdtemp())
    plain = tmp / "student_plain.onnx"  # the same student without the merged full-res stem
    export_onnx(pt, plain, merge_stem=False)
    rows = {
        "LUT-Fuse reference (torch, full-res CNN + 16^4 LUT)": reference,
        "student, torch float32 (today)": today,
        "student, torch channels-last (NetFuser on a CPU now)": channels_last,
        "student, ONNX Runtime, plain export, spinning": onnx_variant(path=plain),
        "student, ONNX Runtime, plain export, no spinning": onnx_variant(spin=False, path=plain),
        "student, ONNX Runtime ORT_ENABLE_EXTENDED (no NCHWc), plain export": onnx_variant(
            "extended", False, plain
        ),
        "student, ONNX Runtime, merged stem, no spinning (shipped student.onnx: load_fuser)": onnx_variant(
            spin=False
        ),
    }
    if args.before:
        rows[f"earlier student, ONNX Runtime, no spinning ({args.before})"] = onnx_variant(
            spin=False, path=args.before
        )
    if args.int8:
        rows["student, ONNX Runtime int8 (static QDQ, per-channel)"] = onnx_variant(
            spin=False, path=int8_model(plain, tmp / "student_int8.onnx", frames)
        )

    quality = {}
    for name, fn in rows.items():
        if "student" in name:
            d = [np.abs(fn(v, i).astype(np.int16) - today(v, i)) for v, i in frames]
            quality[name] = (int(max(x.max() for x in d)), float(np.mean([x.mean() for x in d])))
        fn(*frames[0])  # warm-up

    load_before = loadavg()
    times: dict[str, list[list[float]]] = {n: [] for n in rows}
    names = list(rows)
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotated: no row always runs first
            fn = rows[name]
            per = []
            for v, i in frames:
                t0 = time.perf_counter()
                fn(v, i)
                per.append(1e3 * (time.perf_counter() - t0))
            times[name].append(per)
    load_after = loadavg()

    ref_name = next(iter(rows))
    ref_rounds = [float(np.median(r)) for r in times[ref_name]]
    print(
        f"\n### student at {w}x{h} ({source}; {args.threads} threads; {args.rounds} rounds x {len(frames)} "
        f"frames, interleaved; load average {load_before} before, {load_after} after; "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}; {os.cpu_count()} CPUs)\n"
    )
    print("| path | median ms/frame | range ms | x faster than reference (median, range of rounds) "
          "| x faster, fastest frames | max / mean diff vs today's student (levels) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    ref_best = min(t for r in times[ref_name] for t in r)
    results = {"size": f"{w}x{h}", "threads": args.threads, "load": [load_before, load_after], "rows": {}}
    for name, rounds in times.items():
        flat = [t for r in rounds for t in r]
        ratios = [rr / float(np.median(r)) for rr, r in zip(ref_rounds, rounds)]
        q = quality.get(name)
        qtext = f"{q[0]} / {q[1]:.4f}" if q else "-"
        print(
            f"| {name} | {np.median(flat):.1f} | {min(flat):.1f}-{max(flat):.1f} | "
            f"{np.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | {ref_best / min(flat):.2f} | {qtext} |"
        )
        results["rows"][name] = {
            "median_ms": float(np.median(flat)),
            "range_ms": [min(flat), max(flat)],
            "ratio_median": float(np.median(ratios)),
            "ratio_range": [min(ratios), max(ratios)],
            "ratio_fastest": ref_best / min(flat),
            "diff_max_mean": q,
        }
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
