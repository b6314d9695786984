"""Apertium (Debian's rule-based MT) for the language pairs installed on the machine.

The pair's pipeline is kept running in null-flush mode (`apertium_pipe`): a sentence takes milliseconds
instead of the 0.3-1 s an `apertium` run costs to start. Where that pipeline cannot be had (an Apertium without
apertium-wblank-mode, a pair that does not answer a probe), all sentences of a passage go through one run,
separated by blank lines: Apertium's text format treats a blank line as a sentence end and keeps it in the
output, which lets the translations be split back one-to-one.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
import weakref
from pathlib import Path

from ..errors import LivedubError, MissingModelError
from .apertium_pipe import MAX_CHARS, ApertiumPipe, pipeline_script
from .languages import to_iso1, to_iso3
from .text import batched, join_sentences, split_sentences, tidy

__all__ = ["ApertiumTranslator", "apertium_modes", "apertium_pairs", "to_iso1", "to_iso3"]

log = logging.getLogger("livedub.mt")

_MODE = re.compile(r"^([a-z]{2,3})-([a-z]{2,3})$")  # plain pairs only: skips variants such as spa-eng_US
_PACKAGE_DIR = re.compile(r"/(apertium-[a-z]{2,3}-[a-z]{2,3})/")  # a pair's data folder in its mode pipeline
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_MAX_SENTENCES_PER_RUN = 200


def _program() -> str | None:
    return shutil.which("apertium")


def _modes_dir(program: str) -> Path:
    return Path(program).resolve().parent.parent / "share" / "apertium" / "modes"


def installed_modes() -> list[str]:
    """Translation directions Apertium can run here, as it names them ("eng-spa", "spa-eng_US", ...)."""
    program = _program()
    if program is None:
        return []
    modes_dir = _modes_dir(program)
    if modes_dir.is_dir():
        return sorted(p.stem for p in modes_dir.glob("*.mode"))
    try:  # a non-standard prefix: ask the program
        out = subprocess.run([program, "-l"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted(line.strip() for line in out.splitlines() if line.strip())


def apertium_modes() -> dict[tuple[str, str], str]:
    """Installed plain pairs as (source, target) ISO 639-1 codes → the mode that runs them. Debian names modes
    with ISO 639-3 codes ("eng-cat") or, for older pairs, ISO 639-1 codes ("en-gl", "fr-es"); where both
    exist for one direction the 3-letter one is taken."""
    modes: dict[tuple[str, str], str] = {}
    for mode in sorted(installed_modes(), key=lambda m: (len(m), m)):  # 3-letter names last: they win
        m = _MODE.match(mode)
        if m:
            modes[(to_iso1(m.group(1)), to_iso1(m.group(2)))] = mode
    return dict(sorted(modes.items()))


def mode_package(mode: str) -> str:
    """The data package a mode runs from ("apertium-en-gl"), read from its pipeline; "apertium" if unknown."""
    program = _program()
    try:
        text = (_modes_dir(program) / f"{mode}.mode").read_text() if program else ""
    except OSError:
        text = ""
    found = _PACKAGE_DIR.search(text)
    return found.group(1) if found else "apertium"


def apertium_pairs() -> list[tuple[str, str]]:
    """Installed Apertium pairs as (source, target) ISO 639-1 codes, e.g. [("en", "es"), ("es", "en")]."""
    return sorted(apertium_modes())


def _close_all(pipes: list[ApertiumPipe]) -> None:
    for pipe in pipes:
        pipe.close()


def _package_hint(source3: str, target3: str) -> str:
    return (
        f"apt-get install apertium apertium-{source3}-{target3} (Debian names the package after the pair, "
        f"sometimes the other way round: apertium-{target3}-{source3}; `apt-cache search apertium` lists them)"
    )


class ApertiumTranslator:
    """Translates with an installed Apertium pair; unknown words pass through unmarked (`-u`). Its `name` says
    which mode runs ("apertium eng-spa")."""

    def __init__(self, source: str, target: str, *, timeout: float = 20.0) -> None:
        self.source = to_iso1(source)
        self.target = to_iso1(target)
        source3, target3 = to_iso3(source), to_iso3(target)
        self.mode = apertium_modes().get((self.source, self.target), f"{source3}-{target3}")
        self.name = f"apertium {self.mode}"
        self.timeout = timeout
        program = _program()
        if program is None:
            raise MissingModelError(f"Apertium is not installed; for {source} → {target}: {_package_hint(source3, target3)}.")
        self._program = program
        if self.mode not in installed_modes():
            raise MissingModelError(
                f"the Apertium pair {self.mode} ({source} → {target}) is not installed: {_package_hint(source3, target3)}."
            )
        self._script = pipeline_script(_modes_dir(program) / f"{self.mode}.mode")
        self._pipe: ApertiumPipe | None = None
        self._pipe_lock = threading.Lock()
        self._started: list[ApertiumPipe] = []  # every pipeline started, stopped when this translator goes
        weakref.finalize(self, _close_all, self._started)

    def close(self) -> None:
        """Stop the running pipeline (it starts again on the next call)."""
        with self._pipe_lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()

    def _running_pipe(self) -> ApertiumPipe | None:
        """The kept pipeline, started (and probed once) on first use; None where it cannot work here."""
        with self._pipe_lock:
            if self._pipe is not None and self._pipe.alive:
                return self._pipe
            if self._script is None:
                return None
            fresh, first = ApertiumPipe(self._script), self._pipe is None
            if first:
                try:
                    fresh.translate("Hello.", timeout=10)
                except LivedubError as exc:
                    log.warning("apertium %s: the kept pipeline does not answer (%s); one run per call", self.mode, exc)
                    fresh.close()
                    self._script = None
                    return None
            self._started[:] = [p for p in self._started if p.alive] + [fresh]
            self._pipe = fresh
            return fresh

    def translate(self, text: str) -> str:
        """Translate a passage sentence by sentence (one Apertium run) and join the results."""
        return join_sentences(self.translate_sentences(split_sentences(text)), self.target)

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        """One translation per input sentence, in order; empty inputs give empty outputs."""
        out = [""] * len(sentences)
        todo = [(i, " ".join(s.split())) for i, s in enumerate(sentences)]
        todo = [(i, s) for i, s in todo if s]
        pipe = self._running_pipe() if todo else None
        if pipe is not None:
            t0 = time.perf_counter()
            short = [(i, s) for i, s in todo if len(s) <= MAX_CHARS]
            for i, sentence in short:
                out[i] = tidy(pipe.translate(sentence, self.timeout + len(sentence) / 5000), self.target)
            todo = [(i, s) for i, s in todo if len(s) > MAX_CHARS]
            log.debug("apertium %s: %d sentences in %.3f s (kept pipeline)", self.mode, len(short),
                      time.perf_counter() - t0)
        for batch in batched(todo, _MAX_SENTENCES_PER_RUN):
            for (i, _), translated in zip(batch, self._run_batch([s for _, s in batch]), strict=True):
                out[i] = translated
        return out

    def _run_batch(self, sentences: list[str]) -> list[str]:
        t0 = time.perf_counter()
        parts = self._run("\n\n".join(sentences) + "\n")
        parts = [tidy(p, self.target) for p in _PARAGRAPH.split(parts.strip())]
        if len(parts) != len(sentences):  # a pair whose rules moved a blank line: fall back to one run each
            log.warning("apertium %s: %d sentences came back as %d; translating one by one",
                        self.mode, len(sentences), len(parts))
            parts = [tidy(self._run(s + "\n"), self.target) for s in sentences]
        log.debug("apertium %s: %d sentences in %.3f s", self.mode, len(sentences), time.perf_counter() - t0)
        return parts

    def _run(self, text: str) -> str:
        # allow a generous floor plus time proportional to the text (Apertium does ~10k words/s)
        timeout = self.timeout + len(text) / 5000
        try:
            proc = subprocess.run([self._program, "-u", self.mode], input=text, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LivedubError(f"apertium {self.mode} took longer than {timeout:.0f} s on {len(text)} characters") from None
        if proc.returncode != 0:
            raise LivedubError(f"apertium {self.mode} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout
