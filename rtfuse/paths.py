"""Output paths checked before any work: never over an input, always somewhere writable."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rtfuse.errors import InputError


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (symlinks, ``./``, hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where it would be
        return Path(a).resolve() == Path(b).resolve()


def refuse_overwrite(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """Raise :class:`InputError` if ``output`` is one of ``inputs`` (label -> path; None and URLs skipped).

    A folder counts too: fused images written into an input folder would replace or join the originals.
    """
    for label, path in inputs.items():
        if path is None or "://" in str(path):
            continue
        if same_path(output, path):
            raise InputError(f"the output {output} is the {label} input {path}: choose another output name; "
                             "rtfuse never writes over an input")


def check_writable_file(path: str | os.PathLike, what: str) -> None:
    """Raise :class:`InputError` unless a file ``path`` can be created: a folder that exists and
    takes new files, and no folder of that name already there. Nothing is left behind."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the {what}")
    check_writable_folder(path.parent, what)


def check_writable_folder(folder: str | os.PathLike, what: str, create: bool = False) -> None:
    """Raise :class:`InputError` unless new files can be written into ``folder`` (created if ``create``)."""
    folder = Path(folder)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"{folder}: cannot create the folder for the {what} ({e.strerror})") from None
    if not folder.exists():
        raise InputError(f"{folder}: the folder for the {what} does not exist; create it first")
    if not folder.is_dir():
        raise InputError(f"{folder}: is not a folder, so the {what} cannot be written there")
    # A real probe: os.access() says yes to root on read-only mounts and knows nothing of quotas.
    try:
        fd, probe = tempfile.mkstemp(prefix=".rtfuse-probe-", dir=folder)
    except OSError as e:
        raise InputError(f"{folder}: cannot write the {what} there ({e.strerror})") from None
    os.close(fd)
    os.unlink(probe)
