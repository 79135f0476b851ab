"""Paired still folders and the fixed train/held-out split (``rtfuse eval --split``, training).

Numpy only: evaluating needs neither torch nor the training package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rtfuse.errors import InputError
from rtfuse.images import list_images
from rtfuse.sync import PAIRING_RULE, pair_stems

HELDOUT_FRACTION = 0.2
SPLIT_SEED = 2025  # fixed: the shipped weights' model card reports metrics on this held-out set
SUBSETS = ("all", "train", "heldout")


def split_stems(
    stems: list[str], fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED
) -> tuple[list[str], list[str]]:
    """Deterministic (train, held-out) split of the sorted stems."""
    stems = sorted(stems)
    order = np.random.default_rng(seed).permutation(len(stems))
    n_held = round(len(stems) * fraction)
    held = sorted(stems[i] for i in order[:n_held])
    return sorted(set(stems) - set(held)), held


def pair_files(
    vis_dir: str | Path, ir_dir: str | Path, subset: str = "all"
) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """(visible files, IR files, sorted pair names in ``subset``: all, train or heldout).

    Pairs as :func:`rtfuse.sync.pair_stems`; both dicts are keyed by the pair's name.
    """
    if subset not in SUBSETS:
        raise InputError(f"unknown subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    pairs, _, _ = pair_stems(list_images(vis_dir), list_images(ir_dir))
    if not pairs:
        raise InputError(f"no image in {vis_dir} pairs with one in {ir_dir}: {PAIRING_RULE}")
    names = sorted(pairs)
    if subset != "all":
        train, held = split_stems(names)
        names = train if subset == "train" else held
    return {n: pairs[n][0] for n in pairs}, {n: pairs[n][1] for n in pairs}, names
