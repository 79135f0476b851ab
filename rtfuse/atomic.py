"""Whole-file writes: a temporary name, then a rename, so no reader sees half a file."""

from __future__ import annotations

import os
from pathlib import Path

from rtfuse.errors import InputError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None


def partial_path(path: str | os.PathLike) -> Path:
    """The hidden ``.NAME.part`` file an output is written through before its final rename."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


def lock_partial(path: Path) -> int | None:
    """An open descriptor holding an exclusive lock on ``path`` (a partial file: the writer holds it
    while it writes), or None if another process holds one; closing the descriptor releases it.
    Where ``fcntl`` is missing (Windows) every file counts as unlocked."""
    fd = os.open(path, os.O_RDONLY)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


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
