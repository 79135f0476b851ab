"""Output paths checked before any work: never over an input, always somewhere writable."""

from __future__ import annotations

import glob
import os
import tempfile
from pathlib import Path

from rtfuse.atomic import partial_path
from rtfuse.errors import InputError


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (symlinks, ``./``, hard links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where it would be
        return Path(a).resolve() == Path(b).resolve()


def refuse_overwrite(output: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """Raise :class:`InputError` if writing ``output`` could replace an input.

    ``inputs`` maps a label to a path (None and stream URLs are skipped; a glob pattern stands for
    its folder). Refused: the output is an input (also through ``./``, a symlink or a hard link), its
    partial ``.NAME.part`` file is one, or it is an existing file inside an input folder.
    """
    out = Path(output)
    for label, path in inputs.items():
        if path is None or "://" in str(path):
            continue
        path = Path(path)
        if glob.has_magic(str(path)) and not path.exists():
            path = path.parent
        for candidate in (out, partial_path(out)):
            if same_path(candidate, path):
                raise InputError(
                    f"the output {output} is the {label} input {path}: choose another output name; "
                    "rtfuse never writes over an input"
                )
        if path.is_dir() and out.is_file() and same_path(out.parent, path):
            raise InputError(
                f"the output {output} is a file in the {label} input folder {path}: choose another "
                "output name; rtfuse never writes over an input"
            )


def refuse_same_outputs(outputs: dict[str, str | os.PathLike | None]) -> None:
    """Raise :class:`InputError` if two outputs (label -> path) are the same path."""
    given = [(label, p) for label, p in outputs.items() if p is not None]
    for k, (label_a, a) in enumerate(given):
        for label_b, b in given[k + 1 :]:
            if same_path(a, b):
                raise InputError(f"the {label_a} and the {label_b} are the same path {a}: give each its own")


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
