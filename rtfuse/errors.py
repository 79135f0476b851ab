"""Errors that reach the user as one clear message (the CLI prints them without a traceback)."""

from __future__ import annotations


class RtfuseError(Exception):
    """Base class: the message says what went wrong and what to do about it.

    ``option`` names the setting that fixes it, as a parameter name (``ir_offset``): library
    messages speak of values, and the command line adds its flag (``--ir-offset``).
    """

    def __init__(self, message: str = "", option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class InputError(RtfuseError, ValueError):
    """An input array, file or option does not meet the documented contract."""


class LutFormatError(RtfuseError, ValueError):
    """A LUT file is missing, corrupt, truncated, of another version or inconsistent."""


class SourceError(RtfuseError):
    """A source cannot be opened or stops delivering (missing device, unreadable file...)."""


class CalibrationError(RtfuseError, ValueError):
    """A calibration file is unreadable or does not fit the streams' sizes."""


class PipelineError(RtfuseError):
    """A pipeline stage failed; the message names the stage and the cause."""
