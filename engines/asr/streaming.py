"""Commit words while the speaker is still talking (LocalAgreement-2 over a growing audio buffer).

Each pass re-recognises the whole uncommitted buffer. A word is committed once two consecutive passes
agree on it (same normalised text at about the same time), so text does not flicker downstream; MT and
TTS only ever see committed words. The buffer is cut at committed sentence ends and bounded in length,
and the committed text that scrolled out of it is the prompt that keeps whisper consistent. A pause long
enough for the VAD to end the utterance commits everything heard so far.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..types import Word
from . import Recognizer
from .vad import VoiceActivity

log = logging.getLogger("livedub.asr")

_SENTENCE_END = (".", "?", "!", "。", "？", "！")


@dataclass(frozen=True)
class Commit:
    """A committed word, and when: `committed_at` is the stream time (seconds of audio fed) at which it
    was decided, `wall_time` the `time.monotonic()` once decided. In a real-time loop, `wall_time` minus
    the stream's wall-clock origin also counts the recognition time, so it is the honest commit time."""

    word: Word
    committed_at: float
    wall_time: float
    by_flush: bool = False

    @property
    def lag(self) -> float:
        """Seconds of audio between the word's end and its commit (algorithmic commit lag)."""
        return self.committed_at - self.word.end


def normalize(text: str) -> str:
    """Lowercase, punctuation dropped: what two passes must agree on."""
    return re.sub(r"[^\w']+", "", text.lower()).strip("'") or text.lower()


class StreamingRecognizer:
    """Wraps any `Recognizer` for live audio: `feed` chunks, get newly committed words with stream times.

    `min_chunk_s` is the least new audio between passes (a pass costs roughly a second of CPU for
    whisper-base on 2 cores, so smaller values only help on faster machines: when a pass is slow the next
    one simply covers all audio that arrived meanwhile). Pass `vad=None` to disable utterance detection;
    then only `flush()` ends an utterance.
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        language: str | None = None,
        task: str = "transcribe",
        min_chunk_s: float = 0.5,
        max_buffer_s: float = 15.0,
        vad: VoiceActivity | None | bool = True,
        preroll_s: float = 0.5,
        agree_tolerance_s: float = 0.6,
        prompt_chars: int = 200,
    ) -> None:
        self.recognizer = recognizer
        self.language = language
        self.task = task
        self.min_chunk_s = min_chunk_s
        self.max_buffer_s = max_buffer_s
        self.vad = VoiceActivity() if vad is True else (vad or None)
        self.preroll_s = preroll_s
        self.agree_tolerance_s = agree_tolerance_s
        self.prompt_chars = prompt_chars
        self.commits: list[Commit] = []
        self.passes = 0
        self._time = 0.0
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0.0
        self._hypothesis: list[Word] = []
        self._last_pass_at = 0.0
        self._detected: str | None = None
        self._open = self.vad is None  # an utterance is in progress (always, without a VAD)
        self._voice_from = 0.0  # where the VAD heard the utterance begin; no word starts before it

    # ---- public -------------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Seconds of audio fed so far (the stream clock that word times and commit times use)."""
        return self._time

    @property
    def committed(self) -> list[Word]:
        return [c.word for c in self.commits]

    @property
    def hypothesis(self) -> list[Word]:
        """The latest pass's uncommitted words (may still change; good for a greyed-out live caption)."""
        return list(self._hypothesis)

    @property
    def speaking(self) -> bool:
        return self.vad.speaking if self.vad is not None else True

    def feed(self, pcm_chunk: np.ndarray) -> list[Word]:
        """Add 16 kHz audio; return the words committed because of it (often none)."""
        chunk = np.asarray(pcm_chunk, dtype=np.float32).reshape(-1)
        chunk = np.clip(np.nan_to_num(chunk, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._time += len(chunk) / SAMPLE_RATE
        out: list[Word] = []
        if self.vad is not None:
            for event in self.vad.feed(chunk):
                if event.kind == "end":
                    out += self._finish(event.time + 0.25)
                else:  # first pass once `min_chunk_s` of the utterance is in
                    self._open = True
                    self._voice_from = event.time
                    self._last_pass_at = max(self._last_pass_at, event.time)
            if not self.vad.speaking:
                self._cut(self._time - self.preroll_s)  # silence: keep only a pre-roll
                return out
        if self._time - self._last_pass_at >= self.min_chunk_s:
            self._open = True
            out += self._pass()
        return out

    def flush(self) -> list[Word]:
        """The utterance (or stream) is over: commit everything still pending."""
        return self._finish(self._time)

    # ---- passes -------------------------------------------------------------------------------------
    def _recognise(self, until: float) -> list[Word]:
        """Recognise the buffer up to stream time `until`; words come back on the stream clock."""
        pcm = self._buffer[: max(0, int(round((until - self._buffer_start) * SAMPLE_RATE)))]
        self._last_pass_at = self._buffer_start + len(pcm) / SAMPLE_RATE
        self.passes += 1
        transcript = self.recognizer.transcribe(
            pcm, language=self.language or self._detected, task=self.task, initial_prompt=self._prompt()
        )
        if (
            self.language is None
            and self._detected is None
            and transcript.segments
            and len(pcm) >= SAMPLE_RATE
            and transcript.language_probability >= 0.5
        ):
            self._detected = transcript.language  # one language per utterance: passes must be comparable
        off, floor = self._buffer_start, self._voice_from - 0.05
        words = []
        for w in (w for s in transcript.segments for w in s.words):
            start = max(w.start + off, floor)  # whisper stretches a first word back over leading silence
            words.append(Word(w.text, start, max(w.end + off, start), w.probability))
        return _drop_squeezed_tail(words)

    def _pass(self) -> list[Word]:
        """One LocalAgreement-2 step: commit what this pass and the previous one agree on."""
        new = self._unseen(self._recognise(self._time))
        n = 0
        for a, b in zip(new, self._hypothesis, strict=False):
            if normalize(a.text) != normalize(b.text) or abs(a.start - b.start) > self.agree_tolerance_s:
                break
            n += 1
        self._hypothesis = new[n:]
        out = self._commit(new[:n], by_flush=False)
        return out + self._trim()

    def _finish(self, until: float) -> list[Word]:
        """Commit all words up to stream time `until`, then start a fresh utterance after it."""
        until = min(until, self._time)
        if not self._open and not self._hypothesis:
            return []
        heard_all = bool(
            self.vad is not None
            and self.commits
            and self.commits[-1].word.end >= self.vad.last_voice_end - 0.2
        )
        if self._hypothesis and self._last_pass_at >= until - 1e-6:
            words = self._hypothesis  # the latest pass already heard everything
        elif not self._hypothesis and heard_all:
            words = []  # the last voiced audio is committed already
        elif until - self._buffer_start > 0.1:
            words = self._unseen(self._recognise(until)) or self._hypothesis
        else:
            words = self._hypothesis
        if self.vad is not None:  # whisper fills trailing silence with "Thank you." and the like
            words = [w for w in words if w.start < self.vad.last_voice_end + 0.1]
        out = self._commit(words, by_flush=True)
        self._hypothesis = []
        self._detected = None
        self._open = self.vad is None
        self._cut(until)
        return out

    # ---- bookkeeping --------------------------------------------------------------------------------
    def _unseen(self, words: list[Word]) -> list[Word]:
        """Drop the words of a pass that repeat what is already committed (by time, then by text)."""
        if not self.commits:
            return words
        last = self.commits[-1].word.end
        new = [w for w in words if w.start > last - 0.1]
        if new and new[0].start - last < 1.0:
            tail = [normalize(c.word.text) for c in self.commits[-5:]]
            for n in range(min(len(tail), len(new)), 0, -1):
                if tail[-n:] == [normalize(w.text) for w in new[:n]]:
                    return new[n:]
        return new

    def _commit(self, words: list[Word], *, by_flush: bool) -> list[Word]:
        out: list[Word] = []
        now = time.monotonic()
        for w in words:
            floor = self.commits[-1].word.end if self.commits else 0.0
            start = max(w.start, floor)
            word = Word(w.text, start, max(w.end, start), w.probability)
            self.commits.append(Commit(word, self._time, now, by_flush))
            out.append(word)
        if out:
            log.debug("committed %r at %.2f s", " ".join(w.text for w in out), self._time)
        return out

    def _prompt(self) -> str | None:
        """Committed text that has left the buffer: context for whisper without re-reading it."""
        parts: list[str] = []
        size = 0
        for c in reversed(self.commits):
            if c.word.end > self._buffer_start + 1e-6:
                continue
            if size + len(c.word.text) + 1 > self.prompt_chars:
                break
            parts.append(c.word.text)
            size += len(c.word.text) + 1
        return " ".join(reversed(parts)) or None

    def _trim(self) -> list[Word]:
        """Cut the buffer after the last committed sentence, and keep it under `max_buffer_s`.

        Returns the words it had to commit to do so (only when nothing was agreed for a whole buffer)."""
        inside = [c.word for c in self.commits if c.word.end > self._buffer_start]
        heard = inside + self._hypothesis
        ends = [i for i, w in enumerate(inside) if w.text.endswith(_SENTENCE_END)]
        if ends and ends[-1] + 1 < len(heard):
            self._cut(_gap(heard[ends[-1]], heard[ends[-1] + 1]))
        if self._time - self._buffer_start <= self.max_buffer_s:
            return []
        if inside:
            last = len(inside) - 1
            self._cut(_gap(inside[last], heard[last + 1]) if last + 1 < len(heard) else inside[last].end)
        if self._time - self._buffer_start > self.max_buffer_s:
            # nothing agreed for a whole buffer: take the older half of the hypothesis as it stands
            half = self._buffer_start + self.max_buffer_s / 2
            forced = [w for w in self._hypothesis if w.end <= half]
            self._hypothesis = self._hypothesis[len(forced) :]
            self._cut(forced[-1].end if forced else half)
            return self._commit(forced, by_flush=True)
        return []

    def _cut(self, at: float) -> None:
        """Drop buffered audio before stream time `at`."""
        n = int(round((at - self._buffer_start) * SAMPLE_RATE))
        if n <= 0:
            return
        n = min(n, len(self._buffer))
        self._buffer = self._buffer[n:]
        self._buffer_start += n / SAMPLE_RATE


def _gap(before: Word, after: Word) -> float:
    """Where to cut between two words: halfway across the gap whisper left (its edges are approximate,
    and a cut inside a word makes the next pass hear a fragment of it)."""
    return (before.end + after.start) / 2 if after.start > before.end else before.end


def _drop_squeezed_tail(words: list[Word], shortest: float = 0.06) -> list[Word]:
    """Whisper's hallucinations at a buffer's end (a repeated phrase, "Thank you.") come as several words
    squeezed into a few hundredths of a second; real words are longer. Drop such a trailing run."""
    i = len(words)
    while i > 0 and words[i - 1].end - words[i - 1].start < shortest:
        i -= 1
    return words[:i] if len(words) - i >= 2 else words
