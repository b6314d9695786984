"""One Apertium pair kept running: its mode pipeline in null-flush mode, a sentence in, a sentence out.

`apertium` starts a dozen processes per call and loads every dictionary again (0.3 s idle, over 1 s on a
loaded laptop), which the live loop pays for every phrase. The same pipeline started once with `-z` on each
stage translates a sentence in a few milliseconds: each input ends with a NUL, and every stage passes the NUL
on once it has written all output for it.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from ..errors import LivedubError

_SPECIAL = set("\\[]^$/<>@{}*#+~")  # characters with a meaning in Apertium's stream format
MAX_CHARS = 8_000  # longer inputs go through a one-off run (a pipe this size never fills both ways)


def escape(text: str) -> str:
    """Plain text in Apertium's stream format (what apertium-destxt makes of it), newline-terminated."""
    body = "".join("\\" + c if c in _SPECIAL else c for c in text.replace("\0", " "))
    return body + "[][\n]"


def unescape(stream: str) -> str:
    """Apertium's stream format back to plain text: escapes undone, format blocks (`[...]`) as spaces."""
    out: list[str] = []
    i, n = 0, len(stream)
    while i < n:
        c = stream[i]
        if c == "\\" and i + 1 < n:
            out.append(stream[i + 1])
            i += 2
        elif c == "[":
            depth, i = 1, i + 1
            while i < n and depth:
                if stream[i] == "\\":
                    i += 1
                elif stream[i] == "[":
                    depth += 1
                elif stream[i] == "]":
                    depth -= 1
                i += 1
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def pipeline_script(mode_file: Path) -> str | None:
    """The pair's pipeline with null flush on every stage, as Apertium itself builds it; None where this
    Apertium cannot (no apertium-wblank-mode)."""
    tool = shutil.which("apertium-wblank-mode")
    if tool is None or not mode_file.is_file():
        return None
    try:
        proc = subprocess.run([tool, "-z", str(mode_file)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


class ApertiumPipe:
    """A running null-flush pipeline. `translate` is one sentence in stream format; it raises LivedubError
    (and the pipeline is stopped) when the pipeline dies or takes longer than `timeout`."""

    def __init__(self, script: str, *, mark_unknown: bool = False):
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            ["bash", "-c", script, "apertium", "-g" if mark_unknown else "-n", ""],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def translate(self, text: str, timeout: float) -> str:
        with self._lock:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(escape(text).encode() + b"\0")
                self._proc.stdin.flush()
                return unescape(self._read_to_nul(timeout))
            except (OSError, ValueError) as exc:
                self.close()
                raise LivedubError(f"the Apertium pipeline stopped ({exc})") from None

    def _read_to_nul(self, timeout: float) -> str:
        assert self._proc.stdout is not None
        fd, chunks = self._proc.stdout.fileno(), []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(0.0, left))
            if not ready:
                self.close()
                raise LivedubError(f"the Apertium pipeline gave nothing back in {timeout:.0f} s")
            data = os.read(fd, 65536)
            if not data:
                self.close()
                raise LivedubError("the Apertium pipeline exited")
            chunks.append(data)
            if data.endswith(b"\0"):
                return b"".join(chunks)[:-1].decode(errors="replace")

    def close(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=2)
        for stream in (self._proc.stdin, self._proc.stdout):
            with contextlib.suppress(OSError):
                if stream is not None:
                    stream.close()
