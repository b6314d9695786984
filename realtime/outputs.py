"""The output policy of every command: each output checked before any work, and a run leaves all or none.

Before a job starts, `OutputPlan.add` resolves every output path and refuses (one `LivedubError`) one that is
the same file as an input (same inode: a hard link or a symlink counts, not just the same string) or as
another output, that is a folder, whose extension cannot hold what is written (the message lists the
accepted ones), or whose folder cannot be created or written. Missing folders are made then (and removed
again if the run fails).

Every file is written through `engines.files.atomic_write` (a hidden partial name beside it, renamed into
place). Inside `with plan:` the plan holds the renames of its outputs until the end of the whole run: on
success every partial replaces its final name, on any failure — an error, Ctrl-C, SIGTERM — every partial is
deleted. So a run leaves all its outputs or none, and never half a file; this holds for an engine that
writes an output itself (the mouth bank's `save`). `atomic_output` also claims an output found only while
writing. Outside a plan a file is renamed as soon as it is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import signal
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from livedub.engines.errors import LivedubError
from livedub.engines.files import WRITE_HOLDER, atomic_write, replace_file

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Kind:
    """What an output holds, and the extensions (containers) that can hold it."""

    what: str
    suffixes: tuple[str, ...]

    def accepted(self) -> str:
        return ", ".join(self.suffixes)


VIDEO = Kind("an H.264 + AAC video", (".mp4", ".m4v", ".mov", ".mkv"))
WAV = Kind("16-bit WAV speech", (".wav",))
JSON = Kind("a JSON document", (".json",))
SUBTITLES = Kind("subtitles", (".srt", ".vtt"))
BANK = Kind("a mouth bank", (".npz",))
ONNX = Kind("an ONNX model", (".onnx",))
TENSORRT = Kind("a TensorRT engine", (".plan", ".engine", ".trt"))

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


class OutputPlan:
    """Every output of one run, checked up front and committed together (see the module docstring).

    `inputs` are (flag, path) pairs of everything the run reads; missing ones are skipped (the job itself
    says a file is missing, in its own words).
    """

    def __init__(self, inputs: Iterable[tuple[str, PathLike | None]] = ()):
        self._inputs: list[tuple[str, Path, os.stat_result]] = []
        for flag, path in inputs:
            if path is not None and str(path) != "":
                st = _stat(Path(path))
                if st is not None:
                    self._inputs.append((flag, Path(path), st))
        self._outputs: dict[Path, str] = {}  # real location → "FLAG PATH" that named it
        self._pending: list[tuple[Path, Path]] = []  # (partial, final) written and waiting for the commit
        self._made_dirs: list[Path] = []
        self._token: contextvars.Token | None = None

    def add(self, flag: str, path: PathLike | None, kind: Kind | None = None) -> Path | None:
        """Resolve and check one output; None when the flag was not given. Raises LivedubError naming `flag`."""
        if path is None:
            return None
        text = os.fspath(path)
        if not text.strip():
            raise LivedubError(f"{flag}: an empty path; give a file name")
        final = Path(text)
        if text.endswith(("/", os.sep)) or final.is_dir():
            example = f" (e.g. {final / ('out' + kind.suffixes[0])})" if kind else ""
            raise LivedubError(f"{flag} {text}: is a folder, not a file name{example}")
        key = self._key(final)
        named = f"{flag} {text}"
        if key in self._outputs:
            if self._outputs[key].startswith(f"{flag} "):
                return final  # the same output named twice by one flag (a re-claim at write time)
            raise LivedubError(f"{flag} {text} is the same file as {self._outputs[key]}: each output needs its own name")
        st = _stat(final)
        if st is not None:
            for in_flag, in_path, in_st in self._inputs:
                if _same_file(st, in_st):
                    raise LivedubError(f"{flag} {text} is the same file as {in_flag} {in_path}: "
                                       "refusing to overwrite an input; choose another output name")
            for other, other_flag in self._outputs.items():
                other_st = _stat(other)
                if other_st is not None and _same_file(st, other_st):
                    raise LivedubError(f"{flag} {text} is the same file as {other_flag}: each output needs its own name")
        if kind is not None and final.suffix.lower() not in kind.suffixes:
            why = "has no extension" if not final.suffix else f"{final.suffix} cannot hold {kind.what}"
            raise LivedubError(f"{flag} {text}: {why}; use one of {kind.accepted()}")
        self._prepare_folder(flag, final)
        self._outputs[key] = named
        return final

    def claim(self, final: Path) -> None:
        """An output found only while writing (subtitles of a detected language): the same checks, late."""
        key = self._key(final)
        if key not in self._outputs:
            self.add("output", final)

    @staticmethod
    def _key(final: Path) -> Path:
        """Where a path really points (its folder's symlinks resolved), whether or not the file exists yet."""
        return Path(os.path.realpath(final.parent)) / final.name

    def _prepare_folder(self, flag: str, final: Path) -> None:
        parent = final.parent if str(final.parent) else Path(".")
        missing: list[Path] = []
        probe = parent
        while not probe.exists() and probe != probe.parent:
            missing.append(probe)
            probe = probe.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise LivedubError(f"{flag} {final}: cannot create the folder {parent}: a file is in the way") from None
        except OSError as exc:
            raise LivedubError(f"{flag} {final}: cannot create the folder {parent} ({exc.strerror})") from None
        self._made_dirs.extend(reversed(missing))
        try:
            with tempfile.TemporaryFile(dir=parent, prefix=".livedub-probe-"):
                pass
        except OSError as exc:
            raise LivedubError(f"{flag} {final}: cannot write in the folder {parent} ({exc.strerror})") from None

    # -- the run -------------------------------------------------------------------------------------------

    def __enter__(self) -> OutputPlan:
        self._token = WRITE_HOLDER.set(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._token is not None:
            WRITE_HOLDER.reset(self._token)
            self._token = None
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def hold(self, partial: Path, final: Path) -> bool:
        """A finished write (`engines.files.WRITE_HOLDER`): one of this run's outputs waits for the commit;
        any other file (a model cache) is not held."""
        if self._key(final) not in self._outputs:
            return False
        for earlier, other in self._pending:
            if other == final:
                earlier.unlink(missing_ok=True)  # written twice in one run: the last one counts
        self._pending = [(p, f) for p, f in self._pending if f != final]
        self._pending.append((partial, final))
        return True

    def commit(self) -> list[Path]:
        """Every written partial onto its final name; stop signals wait until all are in place."""
        blocked = _block_stop_signals()
        try:
            done: list[Path] = []
            for i, (partial, final) in enumerate(self._pending):
                try:
                    replace_file(partial, final)
                except OSError as exc:
                    for p, _ in self._pending[i:]:
                        p.unlink(missing_ok=True)
                    raise LivedubError(f"{final}: cannot be written ({exc.strerror})") from None
                done.append(final)
            self._pending.clear()
            return done
        finally:
            _unblock(blocked)

    def abort(self) -> None:
        """Delete every partial of this run and the folders it made (when still empty)."""
        for partial, _ in self._pending:
            partial.unlink(missing_ok=True)
        self._pending.clear()
        for folder in reversed(self._made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        self._made_dirs.clear()


def _block_stop_signals() -> set[int]:
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover (Windows)
        return set()
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    except (OSError, ValueError):  # pragma: no cover
        return set()
    return _STOP_SIGNALS - set(previous)


def _unblock(newly_blocked: set[int]) -> None:
    if newly_blocked:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, newly_blocked)


@contextlib.contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield the partial path to write `path` under (same suffix, so encoders pick the format).

    Inside an `OutputPlan` the path gets the plan's checks if it was not added up front, and its rename waits
    for the plan's commit; outside one, the file is renamed into place as soon as the block succeeds.
    """
    final = Path(path)
    plan = WRITE_HOLDER.get()
    if isinstance(plan, OutputPlan):
        plan.claim(final)
    with atomic_write(final) as partial:
        yield partial
