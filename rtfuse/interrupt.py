"""Stopping on Ctrl-C, SIGTERM and SIGHUP without losing a recording.

A service manager (systemd, ``docker stop``, a CI timeout, ``kill``) sends SIGTERM; a closed
terminal sends SIGHUP; a person presses Ctrl-C (SIGINT). :func:`install` makes all three mean
"stop and finalise":

- While a pipeline runs, it registers its stop event with :func:`cooperative`. A signal then
  only sets that event: the threads wind down at their next poll and the sinks are closed on
  the normal path, so no exception can land in the middle of an encoder flush.
- Elsewhere (start-up, still images, evaluation) the first signal raises
  :class:`KeyboardInterrupt`, which unwinds through the ``finally`` blocks that finalise
  outputs.
- Every later signal is only noted. A second Ctrl-C pressed a few milliseconds after the
  first can therefore never abandon the finalising.
- A first signal that lands inside an import or Numba's compiler is held back until that is done
  (re-checked every 20 ms with SIGALRM) or a pipeline's stop event takes it. Raised there, it
  would pass through third-party code that is not written to be interrupted: some import code
  prints the traceback itself (NumPy's ``import_array`` in the extensions of OpenCV and Numba) or
  re-raises it as another error, and llvmlite's half-built wrappers print theirs when collected.
  A hold of over a second is announced; a second signal, or a hold of 30 s, raises it at once,
  and from then on errors that half-built objects report when collected are not printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Iterator

_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

_received: int | None = None  # the first signal, once one came
_stop_events: list[threading.Event | None] = []  # innermost last; non-empty: set instead of raising
_installed = False
_held_since: float | None = None  # monotonic time the first signal was held back (see _must_hold)
_announced = False  # whether a long hold has been announced
_alarm_before = None  # the SIGALRM handler before a hold, put back when it ends if it was Python's
_RECHECK_S = 0.02
_ANNOUNCE_S = 1.0
# A cold compile of the kernels takes 10-30 s; an import stuck longer (a hung mount) is interrupted
# all the same, well before a service manager's kill (systemd: 90 s).
_HOLD_MAX_S = 30.0
_CAN_HOLD = hasattr(signal, "setitimer")  # not on Windows: there the signal raises at once


_FRAGILE = ("numba", "llvmlite")  # packages whose code an exception must not land in


def _must_hold(frame) -> bool:
    """Whether the import system or Numba's compiler is anywhere on the stack of ``frame``."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        if str(frame.f_globals.get("__name__")).partition(".")[0] in _FRAGILE:
            return True
        frame = frame.f_back
    return False


def _release() -> None:
    """End a hold: the signal has been acted on (or no longer matters)."""
    global _held_since
    if _held_since is not None and threading.current_thread() is threading.main_thread():
        _held_since = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        # Put back only a Python handler: an alarm already taken by the C handler but not yet run in
        # Python would otherwise print "Signal 14 ignored due to race condition". Ours stays (it does
        # nothing without a hold) in place of the default action, which only an alarm set by us could reach.
        if callable(_alarm_before):
            signal.signal(signal.SIGALRM, _alarm_before)


def _deliver(frame, hold: bool = True) -> None:
    """Act on the first signal: set the innermost stop event, hold it (see _must_hold), or raise."""
    global _held_since, _alarm_before, _announced
    if _stop_events:
        _release()
        if _stop_events[-1] is not None:
            _stop_events[-1].set()
        return
    fragile = _must_hold(frame)
    if hold and _CAN_HOLD and fragile:
        if _held_since is None:
            _held_since = time.monotonic()
            _alarm_before = signal.signal(signal.SIGALRM, _recheck)
        held = time.monotonic() - _held_since
        if held < _HOLD_MAX_S:
            if held > _ANNOUNCE_S and not _announced:
                _announced = True
                os.write(
                    2,
                    f"\nrtfuse: stopping once the import or kernel compilation under way is done; "
                    f"{name()} again stops at once\n".encode(),
                )
            signal.setitimer(signal.ITIMER_REAL, _RECHECK_S)
            return
    _release()
    if fragile:
        # Raised in code not written to be interrupted (the user insisted, or the hold ran out): the
        # objects it leaves half-built may fail in __del__ when collected. That is debris of the stop,
        # and Python would print each as a traceback next to our one line.
        sys.unraisablehook = _drop_debris
    raise KeyboardInterrupt(signal.Signals(_received).name)


def _drop_debris(unraisable) -> None:
    pass


def _recheck(signum: int, frame) -> None:
    if _held_since is not None:
        _deliver(frame)


def _handler(signum: int, frame) -> None:
    global _received
    if _received is not None:
        if _held_since is not None:
            # Still held: a second signal insists, and must work even if something took over the
            # re-check timer.
            _deliver(frame, hold=False)
            return
        # Plain os.write: a handler may interrupt a half-printed line of rich's console.
        os.write(
            2,
            f"\nrtfuse: {signal.Signals(signum).name} again; still finalising the output, please wait\n".encode(),
        )
        return
    _received = signum
    _deliver(frame)


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP to :func:`_handler` (main thread only; idempotent)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    for s in _SIGNALS:
        # A signal ignored by whoever started us stays ignored: ``nohup`` (SIGHUP), and a shell's
        # background job (SIGINT), expect exactly that.
        if signal.getsignal(s) is not signal.SIG_IGN:
            signal.signal(s, _handler)
    _installed = True


def ignore() -> None:
    """Ignore stop signals from now on (the process is about to exit with its status)."""
    if threading.current_thread() is threading.main_thread():
        _release()  # a signal held back until now comes too late to matter
        for s in _SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def received() -> int | None:
    """The first stop signal received in this process, or None."""
    return _received


def is_stop(exc: BaseException) -> bool:
    """Whether ``exc`` is the stop signal come back as another error from code it passed through.

    Two such errors: an ImportError, from an import where the signal could not be held (Windows),
    and CPython 3.11's RuntimeError "Error calling __set_name__", raised from our KeyboardInterrupt
    when it lands in a class body. Either is the stop, not a broken install. An error that merely
    happened while the stop unwound (a ``finally`` failing to write) is not: it must be reported.
    """
    if _received is None:
        return False
    if isinstance(exc, ImportError):
        return not _CAN_HOLD
    return isinstance(exc, RuntimeError) and isinstance(exc.__cause__, KeyboardInterrupt)


def name() -> str:
    """How the user stopped us, for messages: ``Ctrl-C``, ``SIGTERM``, ``SIGHUP`` (``Ctrl-C`` if unknown)."""
    if _received is None or _received == signal.SIGINT:
        return "Ctrl-C"
    return signal.Signals(_received).name


def exit_code() -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number (130 for Ctrl-C)."""
    return 128 + (_received or signal.SIGINT)


@contextlib.contextmanager
def cooperative(stop: threading.Event | None = None) -> Iterator[None]:
    """Within the block, a stop signal sets ``stop`` (or is only recorded, for :func:`received`)
    instead of raising: see the module notes. Blocks nest; the innermost event is set."""
    if _received is not None and stop is not None:
        _release()  # a signal held back in an import is acted on now, by this block
        stop.set()  # a signal came before the block started
    _stop_events.append(stop)
    try:
        yield
    finally:
        _stop_events.pop()
