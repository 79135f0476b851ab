"""argparse value types: a bad number or size is one clear message before any work starts."""

from __future__ import annotations

import argparse
import math
from typing import Callable

# Frame sizes rtfuse accepts. Below 16 px the 8x8 context blocks and the pyramid have nothing to work
# on; above 8192 px a side (8K is 7680) a frame is almost surely a typo, e.g. 100000x100000 is 112 GiB.
MIN_SIDE, MAX_SIDE = 16, 8192
MAX_FPS = 1000.0  # a rate above this is a typo (ms for fps), not a camera


def number(lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False) -> Callable[[str], float]:
    """A finite float within [lo, hi] (or (lo, hi] with ``lo_open``); NaN and infinities are refused."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        if not (v > lo if lo_open else v >= lo) or v > hi:
            where = []
            if lo > -math.inf:
                where.append(f"{'above' if lo_open else 'at least'} {lo:g}")
            if hi < math.inf:
                where.append(f"at most {hi:g}")
            raise argparse.ArgumentTypeError(f"{text} must be {' and '.join(where)}")
        return v

    return parse


def integer(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An int within [lo, hi]."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(
                f"{text} must be at least {lo}" + (f" and at most {hi}" if hi is not None else "")
            )
        return v

    return parse


FINITE = number()
POSITIVE = number(0.0, lo_open=True)
NON_NEGATIVE = number(0.0)
SHARE = number(0.0, 1.0)
FPS = number(0.0, MAX_FPS, lo_open=True)
COUNT = integer(1)  # frames, steps: at least one


def check_size(w: int, h: int, what: str = "size") -> tuple[int, int]:
    """(w, h) if both sides are within [MIN_SIDE, MAX_SIDE], else ValueError saying so."""
    if not (MIN_SIDE <= w <= MAX_SIDE and MIN_SIDE <= h <= MAX_SIDE):
        raise ValueError(f"{what} {w}x{h} is out of range: each side must be {MIN_SIDE}..{MAX_SIDE} pixels")
    return w, h


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for WxH sizes."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    try:
        return check_size(w, h)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def csv_of(item: Callable[[str], object]) -> Callable[[str], list]:
    """A comma-separated list, each element parsed by ``item``."""

    def parse(text: str) -> list:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{text!r} is an empty list")
        return [item(p) for p in parts]

    return parse
