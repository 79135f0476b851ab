"""Timestamp pairing."""

import numpy as np
import pytest

from rtfuse.errors import PipelineError
from rtfuse.sources.base import Frame
from rtfuse.sync import PairReport, pair_nearest

IMG = np.zeros((1, 1), np.uint8)


def stream(times):
    return iter([Frame(float(t), IMG, i) for i, t in enumerate(times)])


def pairs_of(vis_t, ir_t, tol, **kw):
    rep = PairReport()
    out = [(v.index, i.index) for v, i in pair_nearest(stream(vis_t), stream(ir_t), tol, rep, **kw)]
    return out, rep


def test_equal_rates_pair_one_to_one():
    t = np.arange(10) / 30
    out, rep = pairs_of(t, t, 1 / 60)
    assert out == [(i, i) for i in range(10)]
    assert rep.vis_unused == 0 and rep.ir_unused == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ir_9fps_vis_30fps_with_jitter_takes_nearest(seed):
    rng = np.random.default_rng(seed)
    vis_t = np.arange(90) / 30 + rng.uniform(-0.004, 0.004, 90)
    ir_t = np.arange(28) / 9 + rng.uniform(-0.01, 0.01, 28)
    tol = 0.5 / 9
    out, rep = pairs_of(np.sort(vis_t), np.sort(ir_t), tol)
    vs, irs = np.sort(vis_t), np.sort(ir_t)
    for v, i in out:
        best = np.argmin(np.abs(irs - vs[v]))
        assert i == best
        assert abs(irs[i] - vs[v]) <= tol
    assert rep.pairs == len(out) and rep.pairs + rep.vis_unused == rep.vis_seen


def test_different_lengths_fuse_the_overlap_and_report_the_rest():
    vis_t = np.arange(100) / 30  # 3.3 s
    ir_t = np.arange(60) / 30 + 0.5  # 0.5 .. 2.47 s
    out, rep = pairs_of(vis_t, ir_t, 1 / 60)
    assert len(out) == 60
    assert rep.vis_before_ir == 15
    assert rep.vis_after_ir == 1 and rep.ir_ended_first  # stops reading once past the IR's end
    assert any("before the IR stream starts" in ln for ln in rep.lines())


def test_faster_ir_skips_frames_and_counts_them():
    out, rep = pairs_of(np.arange(10) / 10, np.arange(30) / 30, 1 / 20)
    assert [i for _, i in out] == [3 * k for k in range(10)]
    assert rep.ir_unused == 18  # IR frames 28 and 29, after the last visible frame, are never read


def test_no_overlap_is_an_error_with_the_spans():
    with pytest.raises(PipelineError, match="do not overlap.*shift the IR clock by an offset") as e:
        pairs_of(np.arange(10) / 30, np.arange(10) / 30 + 100, 1 / 60)
    assert e.value.option == "ir_offset"  # the CLI adds its flag, --ir-offset


def test_ir_offset_shifts_the_ir():
    out, rep = pairs_of(np.arange(10) / 30 + 100, np.arange(10) / 30, 1 / 60, ir_offset=100.0)
    assert out == [(i, i) for i in range(10)]


def test_empty_stream_is_an_error():
    with pytest.raises(PipelineError, match="IR stream delivered no frames"):
        pairs_of(np.arange(5) / 30, [], 0.02)
