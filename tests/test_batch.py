"""`rtfuse batch`: an archive of generated pairs, with bad ones, fused, re-run, forced and resumed."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from conftest import REPO, run_cli, write_video

N_GOOD = 17  # plus 2 corrupt and 1 truncated: 20 pairs


def _frames(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(n)]


def _h264_faststart(path, frames):
    return write_video(path, frames, 30, codec="libx264", options={"movflags": "+faststart"})


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Good pairs in both naming forms and nested folders, 2 corrupt, 1 truncated: (root, expected)."""
    root = tmp_path_factory.mktemp("archive")
    expected = {}  # output relative path -> paired frames (None: the pair fails)
    for k in range(N_GOOD):
        n = 8 + k % 5
        if k % 2:
            folder = root / f"site{k % 3}" / "day1"
            folder.mkdir(parents=True, exist_ok=True)
            write_video(folder / f"clip{k:02d}_vis.mkv", _frames(k, n), 30)
            write_video(folder / f"clip{k:02d}_ir.mkv", _frames(100 + k, n), 30)
            expected[f"site{k % 3}/day1/clip{k:02d}.mp4"] = n
        else:
            folder = root / f"post{k % 2}"
            (folder / "vis").mkdir(parents=True, exist_ok=True)
            (folder / "ir").mkdir(parents=True, exist_ok=True)
            write_video(folder / "vis" / f"rec{k:02d}.mkv", _frames(k, n), 30)
            write_video(folder / "ir" / f"rec{k:02d}.mkv", _frames(100 + k, n), 30)
            expected[f"post{k % 2}/rec{k:02d}.mp4"] = n
    bad = root / "bad"
    bad.mkdir()
    write_video(bad / "noise_vis.mkv", _frames(1, 8), 30)
    (bad / "noise_ir.mkv").write_bytes(np.random.default_rng(0).bytes(4000))  # corrupt
    (bad / "empty_vis.mp4").write_bytes(b"")  # unreadable
    write_video(bad / "empty_ir.mp4", _frames(2, 8), 30)
    full = _h264_faststart(bad / "full.mp4", _frames(3, 60))
    (bad / "cut_vis.mp4").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])  # truncated
    _h264_faststart(bad / "cut_ir.mp4", _frames(4, 60))
    full.unlink()
    expected.update({"bad/noise.mp4": None, "bad/empty.mp4": None, "bad/cut.mp4": None})
    return root, expected


def _report(out):
    with open(out / "batch_report.csv") as f:
        return {str(_rel(out, r["out"])): r for r in csv.DictReader(f)}


def _rel(out, path):
    return Path(path).relative_to(out)


def _outputs(out):
    """Every file under OUT_DIR but the reports and the sidecars, relative."""
    return sorted(
        str(p.relative_to(out))
        for p in out.rglob("*")
        if p.is_file() and not p.name.startswith(".") and not p.name.startswith("batch_report")
    )


def _frame_count(path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def _check_complete(out, expected):
    good = sorted(k for k, v in expected.items() if v is not None)
    rows = _report(out)
    assert sorted(rows) == sorted(expected)
    assert [k for k in _outputs(out) if k in good] == good
    for k in good:
        assert rows[k]["status"] in ("ok", "skipped"), rows[k]
        assert int(rows[k]["frames_out"]) == expected[k] == int(rows[k]["paired"])
        assert _frame_count(out / k) == expected[k]
    assert not [p for p in out.rglob("*.part")]
    assert not [p for p in out.rglob("*interrupted*")]
    return rows


def test_batch_fuses_reports_skips_and_forces(archive, tmp_path):
    root, expected = archive
    out = tmp_path / "out"
    code, text = run_cli("batch", root, "-o", out, "--workers", "2", "--eval")
    assert code == 1, text  # three pairs failed
    assert "Traceback" not in text
    rows = _check_complete(out, expected)
    failed = {k for k, r in rows.items() if r["status"] == "failed"}
    assert failed == {"bad/noise.mp4", "bad/empty.mp4", "bad/cut.mp4"}
    assert "truncated" in rows["bad/cut.mp4"]["error"]
    for k in failed:
        assert rows[k]["error"] and "\n" not in rows[k]["error"]
        assert rows[k]["error"][-50:] in " ".join(text.split())
    ok = [r for r in rows.values() if r["status"] == "ok"]
    # exact accounting: every paired frame is in an output, and nothing else
    assert (
        sum(int(r["frames_out"]) for r in ok)
        == sum(int(r["paired"]) for r in ok)
        == sum(v for v in expected.values() if v)
    )
    assert all(float(r["EN"]) > 0 and float(r["SF"]) > 0 for r in ok)
    data = json.loads((out / "batch_report.json").read_text())
    assert len(data["pairs"]) == len(expected)

    mtimes = {k: (out / k).stat().st_mtime_ns for k in ok_keys(rows)}
    code, text = run_cli("batch", root, "-o", out, "--workers", "2")
    rows = _check_complete(out, expected)
    assert all(rows[k]["status"] == "skipped" for k in mtimes), text
    assert {k: (out / k).stat().st_mtime_ns for k in mtimes} == mtimes

    (out / next(iter(mtimes))).write_bytes(b"broken")  # a damaged output is redone, not trusted
    code, text = run_cli("batch", root, "-o", out, "--workers", "2")
    rows = _check_complete(out, expected)
    assert rows[next(iter(mtimes))]["status"] == "ok"

    code, text = run_cli("batch", root, "-o", out, "--workers", "2", "--force")
    rows = _check_complete(out, expected)
    assert all(rows[k]["status"] == "ok" for k in mtimes)


def ok_keys(rows):
    return [k for k, r in rows.items() if r["status"] == "ok"]


def test_manifest_csv_and_jsonl(archive, tmp_path):
    root, expected = archive
    good = [k for k, v in expected.items() if v][:3]
    lines = []
    for k in good:
        if "/rec" in k:
            stem = k.split("/")[-1][:-4]
            vis, ir = (
                root / k.split("/")[0] / "vis" / f"{stem}.mkv",
                root / k.split("/")[0] / "ir" / f"{stem}.mkv",
            )
        else:
            vis, ir = root / k.replace(".mp4", "_vis.mkv"), root / k.replace(".mp4", "_ir.mkv")
        lines.append((vis, ir, k))
    man = tmp_path / "m.csv"
    man.write_text("vis,ir,out\n" + "".join(f"{v},{i},{o}\n" for v, i, o in lines))
    code, text = run_cli("batch", man, "-o", tmp_path / "a", "--workers", "2")
    assert code == 0, text
    assert _outputs(tmp_path / "a") == sorted(good)
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps({"vis": str(v), "ir": str(i)}) + "\n" for v, i, _ in lines))
    code, text = run_cli("batch", man, "-o", tmp_path / "b", "--workers", "1")
    assert code == 0, text
    assert len(_outputs(tmp_path / "b")) == 3


def test_an_output_over_an_input_is_refused_before_any_work(archive, tmp_path):
    root, expected = archive
    v = root / "site1" / "day1" / "clip01_vis.mkv"
    man = tmp_path / "m.csv"
    man.write_text(f"vis,ir,out\n{v},{root / 'site1/day1/clip01_ir.mkv'},{v}\n")
    code, text = run_cli("batch", man, "-o", tmp_path / "o")
    assert code == 1 and "never writes over an input" in text, text


def _interrupt_and_resume(root, expected, out, delay: float, sig: int, *extra: str):
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtfuse._entry", "batch", str(root), "-o", str(out), "--workers", "2", *extra],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120 and proc.poll() is None:
        if out.exists() and any(p.suffix == ".mp4" for p in out.rglob("*.mp4")):
            break
        time.sleep(0.02)
    time.sleep(delay)
    proc.send_signal(sig)
    text = proc.communicate(timeout=120)[0]
    assert "Traceback" not in text, text
    if proc.returncode == 128 + sig:  # stopped mid-run, or (late) once every pair was done
        assert "re-run the same command" in text or "the report is complete" in text, text
    if "--ray" not in extra:  # (Ray's own SIGTERM handler ends the driver at once)
        assert (out / "batch_report.csv").is_file(), text  # however late the signal came
    code, text = run_cli("batch", root, "-o", out, "--workers", "2", *extra)
    assert code == 1, text  # only the three bad pairs
    _check_complete(out, expected)


_LATE_SIGNAL = """
import os, signal, sys
import rtfuse.batch

real = rtfuse.batch.write_report

def late(*args, **kwargs):  # every pair is done; the report is being written
    os.kill(os.getpid(), signal.SIGTERM)
    for _ in range(10**6):  # the handler runs here
        pass
    return real(*args, **kwargs)

rtfuse.batch.write_report = late
sys.argv = ["rtfuse", "batch", *sys.argv[1:]]
from rtfuse._entry import main
main()
"""


def test_a_signal_after_the_work_still_gets_the_whole_report(tmp_path):
    root = tmp_path / "archive"
    root.mkdir()
    write_video(root / "a_vis.mkv", _frames(0, 8), 30)
    write_video(root / "a_ir.mkv", _frames(1, 8), 30)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _LATE_SIGNAL, str(root), "-o", str(out), "--workers", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in text, text
    assert "stopped by SIGTERM after the work was done; the report is complete" in " ".join(text.split())
    assert _report(out)[str(Path("a.mp4"))]["status"] == "ok"


@pytest.mark.parametrize("attempt", range(3))
def test_an_interrupted_batch_resumes_to_completion(archive, tmp_path, attempt):
    root, expected = archive
    rnd = random.Random(attempt)
    _interrupt_and_resume(root, expected, tmp_path / "out", rnd.uniform(0, 1.5), signal.SIGTERM)


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(10))
def test_interrupted_at_random_moments_soak(archive, tmp_path, attempt):
    root, expected = archive
    rnd = random.Random(100 + attempt)
    sig = (signal.SIGTERM, signal.SIGINT)[attempt % 2]
    _interrupt_and_resume(root, expected, tmp_path / "out", rnd.uniform(0, 3), sig)


def test_a_worker_killed_with_sigkill_is_retried(archive, tmp_path):
    """SIGKILL to a worker mid-batch: its pair is resubmitted on a fresh pool and completes."""
    root, expected = archive
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtfuse._entry", "batch", str(root), "-o", str(out), "--workers", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    killed = False
    t0 = time.monotonic()
    while not killed and time.monotonic() - t0 < 120 and proc.poll() is None:
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if kids and out.exists() and any(out.rglob("*.mp4")):
            os.kill(int(kids[-1]), signal.SIGKILL)
            killed = True
        time.sleep(0.02)
    text = proc.communicate(timeout=180)[0]
    assert "Traceback" not in text, text
    assert proc.returncode == 1, text
    assert killed
    _check_complete(out, expected)


def test_batch_on_a_local_ray(archive, tmp_path):
    """The same archive as Ray tasks on a local Ray with 2 CPUs: the same rows and outputs."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'rtfuse[cluster]')")
    root, expected = archive
    out = tmp_path / "out"
    code, text = run_cli("batch", root, "-o", out, "--workers", "2", "--ray")
    assert code == 1, text
    assert "Traceback" not in text
    rows = _check_complete(out, expected)
    assert {k for k, r in rows.items() if r["status"] == "failed"} == {
        "bad/noise.mp4",
        "bad/empty.mp4",
        "bad/cut.mp4",
    }
    code, text = run_cli("batch", root, "-o", out, "--workers", "2", "--ray")
    rows = _check_complete(out, expected)
    assert all(r["status"] == "skipped" for k, r in rows.items() if expected[k]), text


def test_an_interrupted_ray_batch_resumes_to_completion(archive, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'rtfuse[cluster]')")
    root, expected = archive
    _interrupt_and_resume(root, expected, tmp_path / "out", 0.3, signal.SIGTERM, "--ray")


def test_batch_without_ray_does_not_import_it(archive, tmp_path):
    """The runtime and the process executor never import Ray."""
    import subprocess

    code = (
        "import sys; from rtfuse.cli import main; "
        f"rc = main(['batch', {str(archive[0] / 'post0')!r}, '-o', {str(tmp_path / 'o')!r}, '--workers', '1']); "
        "assert 'ray' not in sys.modules, 'ray imported'; print('rc', rc)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "rc 0" in r.stdout, r.stdout + r.stderr


def test_a_ray_worker_killed_with_sigkill_is_retried(archive, tmp_path):
    """SIGKILL to a Ray worker while it runs a pair: Ray resubmits the task and the batch completes."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'rtfuse[cluster]')")
    root, expected = archive
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "rtfuse._entry",
        "batch",
        str(root),
        "-o",
        str(out),
        "--workers",
        "2",
        "--ray",
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = False
    t0 = time.monotonic()
    while not killed and time.monotonic() - t0 < 120 and proc.poll() is None:
        if out.exists() and any(out.rglob("*.mp4")):
            # the one process of this test's Ray that is running a pair right now
            busy = subprocess.run(
                ["pgrep", "-f", "ray::_ray_task"], capture_output=True, text=True
            ).stdout.split()
            if busy:
                os.kill(int(busy[0]), signal.SIGKILL)
                killed = True
        time.sleep(0.02)
    text = proc.communicate(timeout=180)[0]
    assert killed, text
    assert "Traceback" not in text, text
    assert proc.returncode == 1, text
    _check_complete(out, expected)


@pytest.mark.slow
def test_a_two_node_ray_cluster_that_loses_a_node_completes_the_archive(archive, tmp_path):
    """`--ray ADDRESS` on a real two-node cluster (a head and a worker node, one CPU each, on this
    machine): the worker node is killed while it runs pairs; Ray resubmits its tasks to the head and
    the archive completes, with each output once."""
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'rtfuse[cluster]')")
    from ray.cluster_utils import Cluster

    root, expected = archive
    out = tmp_path / "out"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        cmd = [
            sys.executable,
            "-m",
            "rtfuse._entry",
            "batch",
            str(root),
            "-o",
            str(out),
            "--ray",
            cluster.address,
        ]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < 180 and len(list(out.rglob("*.mp4"))) < 3:
            time.sleep(0.05)
        lost = proc.poll() is None
        if lost:
            cluster.remove_node(node, allow_graceful=False)
        text = proc.communicate(timeout=300)[0]
    finally:
        cluster.shutdown()
    assert lost, "the batch ended before the node could be killed: " + text
    assert "Traceback" not in text, text
    assert proc.returncode == 1, text  # the three bad pairs
    rows = _check_complete(out, expected)
    assert {k for k, r in rows.items() if r["status"] == "failed"} == {
        "bad/noise.mp4",
        "bad/empty.mp4",
        "bad/cut.mp4",
    }


def test_ray_missing_is_one_line_before_any_work(archive, tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None; from rtfuse.cli import main; "
        f"print('rc', main(['batch', {str(archive[0] / 'post0')!r}, '-o', {str(tmp_path / 'o')!r}, '--ray']))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    text = r.stdout + r.stderr
    assert "rc 1" in text and "pip install 'rtfuse[cluster]'" in text and "Traceback" not in text, text
    assert not (tmp_path / "o").exists()


def _moving(seed: int, n: int) -> list[np.ndarray]:
    """A textured scene sliding right by 2 px a frame: motion the flicker metric must compensate."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (48, 96, 3), dtype=np.uint8), (5, 5), 0)
    return [np.ascontiguousarray(np.roll(base, 2 * k, axis=1)[:, :64]) for k in range(n)]


def test_pattern_pairs_by_a_user_rule_and_video_metrics_are_reported(tmp_path):
    from rtfuse.evaluate import evaluate_video
    from rtfuse.stage import FusionStage

    root = tmp_path / "archive"
    for rel, n in (("a", 10), ("sub/b", 9)):
        for cam, seed in (("cam0", 1), ("cam1", 2)):
            (root / cam / rel).parent.mkdir(parents=True, exist_ok=True)
            write_video(root / cam / f"{rel}.mkv", _moving(seed, n), 30)
    write_video(root / "cam0" / "c.mkv", _moving(3, 8), 30)  # no IR twin
    (root / "other").mkdir()
    write_video(root / "other" / "a.mkv", _moving(4, 8), 30)  # matches neither side
    out = tmp_path / "out"
    code, text = run_cli(
        "batch",
        root,
        "-o",
        out,
        "--workers",
        "1",
        "--pattern",
        "cam0/{name}.*,cam1/{name}.*",
        "--video-metrics",
    )
    assert code == 0, text
    assert "c.mkv: no IR video for 'c'" in " ".join(text.split())
    assert _outputs(out) == ["a.mp4", "sub/b.mp4"]
    rows = _report(out)
    for k, n in (("a.mp4", 10), ("sub/b.mp4", 9)):
        assert int(rows[k]["frames_out"]) == n
        assert float(rows[k]["EN"]) > 0  # --video-metrics implies --eval
        # the report's numbers are the metric's, on the output read back with its pairs
        stem = k[:-4]
        want = evaluate_video(
            root / "cam0" / f"{stem}.mkv",
            root / "cam1" / f"{stem}.mkv",
            {"f": FusionStage(None)},
            fused=out / k,
        )["f"]
        for m in ("flicker", "flicker_ratio", "flowD"):
            assert float(rows[k][m]) == pytest.approx(want[m], abs=1e-3)
            assert 0 < float(rows[k][m]) < 1e3

    code, text = run_cli("batch", root, "-o", tmp_path / "o2", "--pattern", "{name}_rgb.mp4,{name}_ir.mp4")
    assert code == 1 and "no pairs found; --pattern {name}_rgb.mp4,{name}_ir.mp4" in text


@pytest.mark.parametrize("bad", ["{name}.mp4", "a.mp4,b.mp4", "{name}.mp4,{name}.mp4", "{name}{name},{name}"])
def test_a_bad_pattern_is_one_line(tmp_path, bad):
    (tmp_path / "in").mkdir()
    code, text = run_cli("batch", tmp_path / "in", "-o", tmp_path / "out", "--pattern", bad)
    assert (
        code == 1 and "--pattern" in text and "Traceback" not in text and len(text.strip().splitlines()) == 1
    )


def test_core_sets_split_the_cores_among_the_workers():
    from rtfuse.batch import core_sets

    assert core_sets(2, [0, 1]) == [{0}, {1}]
    assert [len(s) for s in core_sets(2, [0, 1, 2, 3, 4])] in ([2, 3], [3, 2])
    assert core_sets(3, [4, 5, 6, 7, 8, 9]) == [{4, 5}, {6, 7}, {8, 9}]
    assert sorted(c for s in core_sets(3, list(range(16))) for c in s) == list(range(16))
    assert core_sets(3, [0, 1]) == []  # more workers than cores: the scheduler places them
    assert core_sets(1, [0, 1]) == []  # one worker keeps the whole machine


@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores"
)
def test_pool_workers_keep_to_their_own_cores():
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from rtfuse.batch import core_sets, core_slots, init_worker

    ctx = multiprocessing.get_context("spawn")
    slots = core_slots(ctx, 2)  # the queue run_batch makes
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_worker, initargs=(slots,)) as pool:
        # calls slow enough that both workers take some
        seen = set(pool.map(_affinity_after, [0.5] * 8))
    assert seen == {tuple(sorted(c)) for c in core_sets(2, sorted(os.sched_getaffinity(0)))}
    assert len(seen) == 2


def _affinity_after(seconds: float) -> tuple[int, ...]:
    time.sleep(seconds)
    return tuple(sorted(os.sched_getaffinity(0)))
