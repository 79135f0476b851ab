"""Whole-file writes: a temporary name, then a rename, so no reader sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

from rtfuse.errors import InputError


def partial_path(path: str | os.PathLike) -> Path:
    """The hidden ``.NAME.part`` file an output is written through before its final rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


def write_atomic(path: str | os.PathLike, data: bytes, what: str = "file") -> None:
    """Write ``data`` to ``path`` via a hidden ``.NAME.part`` file and a rename.

    A failure (missing folder, no permission, full disk) removes the temporary file and raises
    :class:`InputError` naming ``what`` was being written.
    """
    path = Path(path)
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write the {what} ({e.strerror})") from None
