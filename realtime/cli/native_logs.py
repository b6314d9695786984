"""Native libraries' chatter (mediapipe, TFLite, absl) kept out of the terminal of a `livedub` run.

mediapipe's graphs log through absl and TFLite straight to file descriptor 2, from their own threads, at
any moment of a run (graph start, the first face found). mediapipe 0.10.21 reads no environment switch for
it (GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL: tried, no effect) and does not export absl's log settings. So
for the length of a command fd 2 becomes a pipe, and a thread forwards every line to the real stderr except
native info and warning lines. Python's own `sys.stderr` keeps the real descriptor: tracebacks, logging and
progress bars go straight out, in order, and still see a terminal. Native errors (E/F lines) pass through.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

# absl / glog info and warning lines ("W0000 00:00:1796181617.439431   11598 inference_feedback_manager.cc:114] ..."),
# TFLite's minimal logger ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.") and absl's notice that
# nobody initialised it
NATIVE_NOISE = re.compile(
    rb"^(?:[IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] "
    rb"|INFO: "
    rb"|WARNING: All log messages before absl::InitializeLog\(\) is called)"
)


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Filter native info/warning lines out of fd 2 while the block runs (one program's command)."""
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, AttributeError, ValueError):  # stderr closed (`2>&-`) or replaced: nothing to keep clean
        yield
        return
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    saved = sys.stderr
    sys.stderr = open(real, "w", buffering=1, encoding=saved.encoding or "utf-8",  # noqa: SIM115
                      errors="backslashreplace", closefd=False)
    forwarder = threading.Thread(target=_forward, args=(read_end, real), name="native-log-filter", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stderr = saved
        os.dup2(real, 2)  # drops the pipe's last write end here: the forwarder drains and sees EOF
        forwarder.join(timeout=1.0)  # a child process still holding the pipe keeps it open: do not wait on it
        # `real` stays open: handlers made during the block (logging) may still write to it at exit


def _forward(read_end: int, out: int) -> None:
    """Copy whole lines from the pipe to `out`, dropping native noise; never stop reading (writers would block)."""
    pending = b""
    while chunk := os.read(read_end, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        _write(out, b"".join(line + b"\n" for line in lines if not NATIVE_NOISE.match(line)))
    if pending and not NATIVE_NOISE.match(pending):
        _write(out, pending)
    os.close(read_end)


def _write(fd: int, data: bytes) -> None:
    with contextlib.suppress(OSError):  # stderr closed by the caller: keep draining the pipe all the same
        while data:
            data = data[os.write(fd, data):]
