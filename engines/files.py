"""How livedub reads and writes files. Reading: `check_input_file`, one clear refusal for what cannot be read
(missing, a folder, a pipe, empty). Writing: a reader finds the old file or the whole new one, never half of one.

`atomic_write(path)` yields a hidden partial name beside `path` (same folder, so the final rename is atomic;
same suffix, so encoders pick the format by it). When the block succeeds the partial is flushed to disk and
renamed over `path`; when it fails the partial is deleted and `path` is left as it was.

A run that must leave all its outputs or none (`realtime.outputs.OutputPlan`) installs itself as the
`WRITE_HOLDER` for the run: each finished write is offered to it first, and a write it holds is renamed by
the holder later with `replace_file` (or deleted), together with the run's other outputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from .errors import BadInputError, LivedubError, WriteError

# Write failures that are the user's to fix (disk full, quota, read-only disk, file too large), not bugs.
USER_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})

_serial = itertools.count()  # two writes of one target in one process never share a partial name


class WriteHolder(Protocol):
    def hold(self, partial: Path, final: Path) -> bool:
        """True when the holder takes the finished `partial` and will rename it onto `final` (or delete it)."""


WRITE_HOLDER: contextvars.ContextVar[WriteHolder | None] = contextvars.ContextVar("livedub_write_holder",
                                                                                   default=None)


def partial_path(final: Path) -> Path:
    """A hidden name beside `final` to write under until the file is complete, unique to this write."""
    return final.with_name(f".{final.stem}.partial-{os.getpid()}-{next(_serial)}{final.suffix}")


def replace_file(partial: Path, final: Path) -> None:
    """Flush `partial` to disk, then rename it over `final`: after a crash the name holds one whole file."""
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(partial, final)


def write_error(final: Path, exc: OSError) -> OSError:
    """A user-fixable write failure as a `WriteError` (one CLI line naming the file); others unchanged."""
    if isinstance(exc, WriteError) or exc.errno not in USER_WRITE_ERRNOS:
        return exc
    error = WriteError(f"{final}: cannot be written ({exc.strerror or exc})")
    error.errno = exc.errno
    return error


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield the partial path to write `path` under; rename it into place when the block succeeds.

    The folder is created if missing. The active `WRITE_HOLDER` may take the rename over (see the module
    docstring); otherwise it happens as the block ends.
    """
    final = Path(path)
    partial = partial_path(final)
    handed_over = False
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield partial
        holder = WRITE_HOLDER.get()
        handed_over = holder is not None and holder.hold(partial, final)
        if not handed_over:
            replace_file(partial, final)
    except OSError as exc:
        error = write_error(final, exc)
        if error is exc:
            raise
        raise error from None
    finally:
        if not handed_over:
            partial.unlink(missing_ok=True)


def check_input_file(path: str | os.PathLike, label: str | None = None, what: str = "a file", *,
                     error: type[LivedubError] = BadInputError) -> None:
    """A file a run will read: it exists, is a regular file and is not empty; else one clear error.

    Only `stat` is used, so a named pipe is never opened (opening one blocks until a writer comes). Pipes and
    devices are refused: inputs are read more than once (probed, then decoded).
    """
    label = label or str(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{label}: no such file") from None
    except OSError as exc:
        raise error(f"{label}: cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{label}: is a folder, not a file (pass {what})")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device")
        raise error(f"{label}: is {kind}, not a regular file; livedub reads an input more than once, "
                            "so save it to a file first")
    if info.st_size == 0:
        raise error(f"{label}: the file is empty")
