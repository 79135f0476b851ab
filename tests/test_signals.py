"""Stop signals at random moments: the recording is always finalised, playable and fully reported.

A service manager sends SIGTERM (systemd, ``docker stop``, a CI timeout), a closed terminal
SIGHUP, a person Ctrl-C, sometimes twice in quick succession. Whenever the signal lands (during
the imports, while the kernels compile, mid-run or while the encoder flushes), the process must
exit with one line and no traceback, leave no ``.part`` file, and either write no output at all
or a playable file holding exactly the frames it reports.
"""

import random
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, read_video, write_video
from rtfuse.synthetic import SyntheticScene

WROTE = re.compile(r"wrote (.+) \((\d+) frames")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    scene = SyntheticScene(160, 120, seed=4)
    frames = [scene.render(i) for i in range(240)]
    write_video(d / "vis.mp4", [f[0] for f in frames], 30, codec="libx264")
    write_video(d / "ir.mp4", [f[1] for f in frames], 30, codec="libx264")
    return d


def _start(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "rtfuse._entry", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _check(proc, out, signals, tmp_path):
    """Wait for ``proc`` and check the invariants; return the frames reported (None: no output)."""
    text = proc.communicate(timeout=60)[0]
    if proc.returncode < 0 and "before any output was started" in text and not out.exists():
        # Stopped during the imports, then a second Ctrl-C while exiting: a native library loaded by
        # then (LLVM, for Numba) may have put back the default action. Nothing had been started.
        return None
    if proc.returncode != 0 and "rtfuse" not in text and not out.exists():
        # The first ~25 ms belong to CPython's own start-up (the site module, runpy), before any
        # rtfuse code can route signals; nothing was started, so nothing is lost.
        assert (
            proc.returncode < 0 or "init_import_site" in text or text.rstrip().endswith("KeyboardInterrupt")
        ), text
        return None
    assert "Traceback" not in text, text
    assert proc.returncode in (0, 128 + signals[0], 128 + signal.SIGINT, 128 + signal.SIGTERM), (
        proc.returncode,
        text,
    )
    assert not list(tmp_path.glob(".*.part")), text
    m = WROTE.search(text)
    if m is None:
        assert not out.exists(), text
        return None
    frames, fps, ts = read_video(out)
    assert len(frames) == int(m.group(2)), text
    assert ts == sorted(ts)
    return len(frames)


def _trials(make_args, tmp_path, tries, signals, gap=(0.0, 0.0), window=2.5, seed=0):
    rnd = random.Random(seed)
    reported = []
    tag = "-".join(signal.Signals(s).name for s in signals)
    for k in range(tries):
        out = tmp_path / f"{tag}-{k}.mp4"
        proc = _start(make_args(out), tmp_path)
        time.sleep(rnd.uniform(0.0, window))
        for j, sig in enumerate(signals):
            if j:
                time.sleep(rnd.uniform(*gap))
            if proc.poll() is None:
                proc.send_signal(sig)
        reported.append(_check(proc, out, signals, tmp_path))
    return reported


def _fuse_args(clips):
    return lambda out: ["fuse", "--vis", clips / "vis.mp4", "--ir", clips / "ir.mp4", "-o", out]


def _run_args(out):
    return [
        "run",
        "--vis",
        "synthetic:160x120@30",
        "--ir",
        "synthetic16:160x120@9",
        "--realtime",
        "--no-display",
        "--out",
        out,
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_fuse_stopped_by_a_signal_mid_run_keeps_a_playable_file(clips, tmp_path, sig):
    out = tmp_path / "out.mp4"
    proc = _start(_fuse_args(clips)(out), tmp_path)
    # Wait for the output to be opened, then stop the run a few frames in.
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        if list(tmp_path.glob(".*.part")):
            break
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(sig)
    n = _check(proc, out, [sig], tmp_path)
    assert n is not None and n > 0
    assert proc.returncode in (0, 128 + sig)


def test_run_out_stopped_by_sigterm_reports_every_frame(tmp_path):
    out = tmp_path / "rec.mp4"
    proc = _start(_run_args(out), tmp_path)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    n = _check(proc, out, [signal.SIGTERM], tmp_path)
    assert n is not None and n > 0
    assert proc.returncode == 128 + signal.SIGTERM


def test_a_few_random_sigterms_and_double_ctrl_c(clips, tmp_path):
    """The fast version of the soak tests below, in the default run."""
    _trials(_fuse_args(clips), tmp_path, 3, [signal.SIGTERM], seed=1)
    _trials(_fuse_args(clips), tmp_path, 3, [signal.SIGINT, signal.SIGINT], gap=(0.0, 0.02), seed=2)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["fuse", "run"])
def test_sigterm_at_random_moments_20_tries(clips, tmp_path, command):
    make = _fuse_args(clips) if command == "fuse" else _run_args
    reported = _trials(make, tmp_path, 20, [signal.SIGTERM], seed=10 + len(command))
    assert any(r for r in reported), "no try stopped a run that had written frames; widen the window"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["fuse", "run"])
def test_double_ctrl_c_at_random_moments_20_tries(clips, tmp_path, command):
    make = _fuse_args(clips) if command == "fuse" else _run_args
    reported = _trials(
        make, tmp_path, 20, [signal.SIGINT, signal.SIGINT], gap=(0.0, 0.02), seed=20 + len(command)
    )
    assert any(r for r in reported), "no try stopped a run that had written frames; widen the window"


def test_a_stale_part_file_from_a_killed_run_is_not_left_behind(clips, tmp_path):
    out = tmp_path / "out.mp4"
    proc = _start(_fuse_args(clips)(out), tmp_path)
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.kill()  # SIGKILL: nothing can be finalised
    proc.wait()
    text = subprocess.run(
        [sys.executable, "-m", "rtfuse._entry", *map(str, _fuse_args(clips)(out))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert text.returncode == 0, text.stdout + text.stderr
    assert not list(tmp_path.glob(".*.part"))
    assert len(read_video(out)[0]) == 240


def test_entry_point_is_the_console_script():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rtfuse"] == "rtfuse._entry:main"


# A stop that lands in a class body while a module is imported (Numba's PyLower, seen in CI) reaches
# us as CPython 3.11's RuntimeError "Error calling __set_name__", with our KeyboardInterrupt as cause.
_STOP_IN_SET_NAME = """
import os, signal, sys
import rtfuse.cli

class Stops:
    def __set_name__(self, owner, name):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(10**7):  # the handler runs here, at the next bytecode boundary
            pass

def command(args=None):
    class Lowering:
        attr = Stops()
    return 0

if sys.argv[1] == "in-command":  # inside rtfuse.cli.main, as a command's lazy import
    rtfuse.cli.parse = lambda argv: type("Args", (), {"func": staticmethod(command)})()
else:  # before the command line runs, as the CLI's own import
    rtfuse.cli.main = command
sys.argv = ["rtfuse", "fuse"]
from rtfuse._entry import main
main()
"""


@pytest.mark.parametrize("where", ["in-command", "at-start"])
def test_a_stop_wrapped_by_a_class_body_during_an_import_is_one_line(tmp_path, where):
    proc = subprocess.run(
        [sys.executable, "-c", _STOP_IN_SET_NAME, where],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 128 + signal.SIGTERM, text
    assert "Traceback" not in text, text
    line = "rtfuse: stopped by SIGTERM" + (" before any output was started" if where == "at-start" else "")
    assert text.strip() == line, text


def test_is_stop_recognises_only_a_wrapped_stop(monkeypatch):
    from rtfuse import interrupt

    def wrapped() -> RuntimeError:
        try:
            try:
                raise KeyboardInterrupt("SIGTERM")
            except KeyboardInterrupt as k:
                raise RuntimeError("Error calling __set_name__") from k
        except RuntimeError as e:
            return e

    def failed_while_unwinding() -> OSError:
        try:
            try:
                raise KeyboardInterrupt("SIGTERM")
            finally:
                raise OSError(28, "No space left on device")  # a finally that could not write
        except OSError as e:
            return e

    monkeypatch.setattr(interrupt, "_received", None)
    assert not interrupt.is_stop(wrapped())  # no signal came: a real error
    assert not interrupt.is_stop(ImportError("no module"))
    monkeypatch.setattr(interrupt, "_received", signal.SIGTERM)
    assert interrupt.is_stop(wrapped())
    assert not interrupt.is_stop(RuntimeError("a real fault after the stop"))
    assert not interrupt.is_stop(failed_while_unwinding())  # must be reported, not hidden
    # An import's ImportError is the stop only where a signal cannot be held out of imports.
    monkeypatch.setattr(interrupt, "_CAN_HOLD", True)
    assert not interrupt.is_stop(ImportError("no module named onnxruntime"))
    monkeypatch.setattr(interrupt, "_CAN_HOLD", False)
    assert interrupt.is_stop(ImportError("numba half-imported"))


# A module that sends its importer SIGTERM and then keeps importing for a while.
_STOPS_ITSELF = (
    "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nx = sum(range(10**6))\ndone = True\n"
)


def _run_with_routing(
    tmp_path, script: str, module: str | None = None, setup: str = ""
) -> subprocess.CompletedProcess:
    """Run ``script`` with rtfuse's signal routing installed (then ``setup``), where it can import
    the module ``stops_itself`` whose source is ``module``, if given."""
    if module is not None:
        (tmp_path / "stops_itself.py").write_text(module)
    head = "import sys, threading, time\nfrom rtfuse import interrupt\ninterrupt.install()\n" + setup
    head += "sys.path.insert(0, '.')\n"
    return subprocess.run(
        [sys.executable, "-c", head + script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


_STOP_IN_AN_IMPORT = """
try:
    import stops_itself
    print("imported", stops_itself.done)
    time.sleep(5)
    print("not stopped")
except KeyboardInterrupt:
    print("stopped after the import")
"""


def test_a_stop_that_lands_in_an_import_is_raised_once_the_import_is_done(tmp_path):
    # Raised inside the import it would pass through third-party import code, which may print it.
    proc = _run_with_routing(tmp_path, _STOP_IN_AN_IMPORT, _STOPS_ITSELF)
    assert proc.stdout.split("\n")[:2] == ["imported True", "stopped after the import"], (
        proc.stdout + proc.stderr
    )
    assert proc.stderr == ""


_HELD_THEN_TAKEN = """
stop = threading.Event()
try:
    import stops_itself
    with interrupt.cooperative(stop):  # a pipeline starting: it takes the held signal
        time.sleep(0.2)
    time.sleep(0.2)
    print("taken by the pipeline", stop.is_set())
except KeyboardInterrupt:
    print("raised late")
"""


def test_a_held_stop_is_taken_by_a_pipeline_that_starts_and_not_raised_again(tmp_path):
    proc = _run_with_routing(tmp_path, _HELD_THEN_TAKEN, _STOPS_ITSELF)
    assert proc.stdout.strip() == "taken by the pipeline True", proc.stdout + proc.stderr


_STOPPED_IN_THE_IMPORT = """
try:
    import stops_itself
    print("not stopped")
except KeyboardInterrupt:
    print("stopped in the import")
"""


def test_a_second_signal_while_the_first_is_held_stops_at_once(tmp_path):
    # An import that takes long (or something that took over the re-check timer): the user insists.
    module = (
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(0.05)\n"
        "signal.setitimer(signal.ITIMER_REAL, 0)  # another library cancels the timer\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "for _ in range(10):\n"
        "    time.sleep(0.2)\n"
    )
    proc = _run_with_routing(tmp_path, _STOPPED_IN_THE_IMPORT, module)
    assert proc.stdout.strip() == "stopped in the import", proc.stdout + proc.stderr


def test_a_stop_forced_into_an_import_leaves_no_traceback_from_half_built_objects(tmp_path):
    # As llvmlite's wrappers do: __del__ reads an attribute that __init__ did not get to set.
    module = (
        "import os, signal\n"
        "class Half:\n"
        "    def __init__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # held: this is an import\n"
        "        os.kill(os.getpid(), signal.SIGTERM)  # the user insists: raised before _ptr is set\n"
        "        self._ptr = 1\n"
        "    def __del__(self):\n"
        "        self._ptr\n"
        "Half()\n"
    )
    proc = _run_with_routing(tmp_path, _STOPPED_IN_THE_IMPORT, module)
    assert proc.stdout.strip() == "stopped in the import", proc.stdout + proc.stderr
    assert proc.stderr == "", proc.stderr


def test_an_import_that_outlasts_the_hold_is_interrupted_and_a_long_hold_is_announced(tmp_path):
    # A hung import (a stuck network mount) must not keep a service from stopping.
    module = "import os, signal, time\nos.kill(os.getpid(), signal.SIGTERM)\nfor _ in range(50):\n    time.sleep(0.2)\n"
    proc = _run_with_routing(
        tmp_path,
        _STOPPED_IN_THE_IMPORT,
        module,
        setup="interrupt._HOLD_MAX_S = 0.4\ninterrupt._ANNOUNCE_S = 0.1\n",
    )
    assert proc.stdout.strip() == "stopped in the import", proc.stdout + proc.stderr
    # A hold the user can notice is announced once, with the way out.
    assert proc.stderr.count("rtfuse: stopping once the import") == 1, proc.stderr
    assert "SIGTERM again stops at once" in proc.stderr, proc.stderr


_STOP_IN_A_COMPILE = """
import os, signal, traceback
from numba import njit


@njit(cache=False)
def kernel(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * i
    return s


def stop_inside_llvm():
    # Wait until the main thread is deep in Numba's compiler (lowering through llvmlite), then stop it.
    main = threading.main_thread().ident
    while True:
        frame = sys._current_frames().get(main)
        while frame is not None and not frame.f_globals.get("__name__", "").startswith("llvmlite"):
            frame = frame.f_back
        if frame is not None:
            os.kill(os.getpid(), signal.SIGTERM)
            return
        time.sleep(0.0005)


threading.Thread(target=stop_inside_llvm, daemon=True).start()
import numpy as np
try:
    kernel(np.ones(4))
    print("compiled")
    time.sleep(5)
    print("not stopped")
except KeyboardInterrupt as e:
    where = [f.filename for f in traceback.extract_tb(e.__traceback__) if not f.filename.endswith("interrupt.py")]
    print("stopped in", where[-1].rsplit("/", 1)[-1])
"""


def test_a_stop_that_lands_in_numbas_compiler_is_raised_once_it_is_done(tmp_path):
    # Raised inside llvmlite, it leaves half-built wrappers whose __del__ prints a traceback at exit.
    proc = _run_with_routing(tmp_path, _STOP_IN_A_COMPILE)
    assert proc.stdout.split("\n")[:2] == ["compiled", "stopped in <string>"], proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
