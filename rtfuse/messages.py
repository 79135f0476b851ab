"""The command line's console and its three kinds of line: note, warning, error.

Messages carry file names and user values (``br[red]/x[bold].mp4``, ``fixed:100:50``), so the
console interprets no markup and no emoji codes: colour comes only from the styles below, never
from the text.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.text import Text


def make_console() -> Console:
    """stderr console; wide enough for the statistics tables when the output goes to a file or a pipe."""
    return Console(
        stderr=True,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=True,
        width=None if sys.stderr.isatty() else 160,
    )


def with_flag(error: Exception) -> str:
    """An error's message, with the command-line flag of the setting that fixes it (``option``)."""
    option = getattr(error, "option", None)
    return str(error) + (f" (--{option.replace('_', '-')})" if option else "")


def note(console: Console, text: str) -> None:
    console.print(Text.assemble(("note: ", "yellow"), text))


def warning(console: Console, text: str) -> None:
    console.print(Text.assemble(("warning: ", "bold yellow"), text))


def error(console: Console, text: str) -> None:
    console.print(Text.assemble(("rtfuse: error: ", "bold red"), text))
