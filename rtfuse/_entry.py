"""The ``rtfuse`` console script: stop signals are routed before anything heavy is imported.

Importing the command line (numpy, numba, OpenCV, rich) takes a noticeable fraction of a second; a
Ctrl-C or SIGTERM in that window must end the process with one line, not a traceback.
"""

from __future__ import annotations

import os
import sys

from rtfuse import interrupt


def main() -> None:
    interrupt.install()
    try:
        # after install: a stop during any import here (ctypes for the heap, then the CLI's) is one line
        from rtfuse.heap import reuse_frame_memory

        reuse_frame_memory()
        from rtfuse.cli import main as cli_main

        code = cli_main()
    except KeyboardInterrupt:
        sys.stderr.write(f"rtfuse: stopped by {interrupt.name()} before any output was started\n")
        code = interrupt.exit_code()
    except Exception as e:
        # The stop signal, come back as another error from code it passed through: see interrupt.is_stop.
        if not interrupt.is_stop(e):
            raise
        sys.stderr.write(f"rtfuse: stopped by {interrupt.name()} before any output was started\n")
        code = interrupt.exit_code()
    interrupt.ignore()  # the work is done: a late signal must not turn a clean exit into a kill
    # Outputs are finalised and closed by now. Leave without the interpreter's shutdown: native
    # libraries loaded on the way (LLVM for Numba) hook the stop signals, and a signal taken there
    # was seen to end the process as killed by SIGINT instead of with this status.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
