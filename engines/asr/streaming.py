"""Commit words while the speaker is still talking (LocalAgreement-2 over a growing audio buffer).

Each pass re-recognises the whole uncommitted buffer. A word is committed once two consecutive passes
agree on it (same normalised text at about the same time), so text does not flicker downstream; MT and
TTS only ever see committed words. The buffer is cut at committed sentence ends and bounded in length,
and the committed text that scrolled out of it is the prompt that keeps whisper consistent. A pause long
enough for the VAD to end the utterance commits everything heard so far.

Scripts written without spaces (Chinese, Japanese, Thai) are agreed on character by character: whisper
splits the same characters into different "words" from one pass to the next ("萬人" once, "萬", "人" the
next), so each word is cut into its characters, with times shared out within the word. A word that holds
a piece of a character (a byte token decoded without the rest of its bytes: U+FFFD) is never agreed on,
shown or committed: the words after it wait for a pass that spells it whole. Whisper guesses the words of
a syllable or two heard alone, so in these scripts nothing is agreed before a pass heard 2 s of the
utterance, and an utterance under 1.2 s (also one before any language is known) is held open for a
second after the VAD's end, to be heard again with what follows.

Timing is honest: at most one pass runs per `feed()` (work left over, such as a second utterance end in a
long chunk, waits for the next call), and a word's commit time is when `feed()` hands it to the caller.
With a bounded recognizer (`WhisperRecognizer(budget=...)`) no pass can stall the stream: a pass over
budget yields nothing new and the previous pass's hypothesis stands.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from ..audio import SAMPLE_RATE
from ..text_join import PARTIAL_CHARACTER, has_partial_character, join_words, unspaced
from ..types import Transcript, Word
from . import Recognizer
from .bounded import UNSPACED_LANGUAGES
from .vad import VoiceActivity, VoiceEvent

log = logging.getLogger("livedub.asr")

_SENTENCE_END = (".", "?", "!", "。", "？", "！")
# audio heard after the VAD's end of speech when an utterance is closed: whisper drops a last word that
# the window ends right after (the VAD waits 0.5 s of silence, so no next word can start before this)
_END_MARGIN_S = 0.45
_FRAME_S = 0.02  # the energy frame a cut between words is placed by
_TAIL_WINDOW_S = 2.5  # how far before its last committed word the pass closing an utterance starts
# characters ending this close to the end of the audio a pass heard are not agreed on yet: one syllable
# cut short is heard as another, and the next pass, as short, often guesses the same
_EDGE_HOLD_S = 0.3
# an utterance of a script without spaces whose voice lasted less than this is held open at the VAD's end:
# one syllable alone is a guess for whisper (f5-tts's Mandarin clip opens with 对 and a pause; a window
# over it alone is heard 读音 or 多一, one that goes on into the next words 对,这就是), so the next
# utterance's passes hear it again with what follows. Held at most `_SHORT_HOLD_S` after its end.
_SHORT_UTTERANCE_S = 1.2
_SHORT_HOLD_S = 1.0
# nothing of an utterance in a script without spaces is agreed on before a pass heard this much of it:
# on less, whisper writes the sound of the first syllables (JSUT's 水を as ミゾ, two passes alike) until
# it hears enough of what follows to choose the word
_UNSPACED_LEAD_S = 2.0


@dataclass(frozen=True)
class Commit:
    """A committed word, and when: `committed_at` is the stream time (seconds of audio fed) at which it
    was decided, `wall_time` the `time.monotonic()` at which `feed()`/`flush()` returned it to the caller
    (recognition time included: the commit time a caller sees)."""

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

    `min_chunk_s` is the least new audio between passes (when a pass is slow the next one simply covers
    all audio that arrived meanwhile). Pass `vad=None` to disable utterance detection; then only `flush()`
    ends an utterance. With `language=None` the language is detected once per utterance, from a pass over
    at least `detect_after_s` of it, and held until the utterance ends (`detected_language`).

    Besides `committed`, `hypothesis`, `speaking` and `time`: `utterance_ended` (the latest call closed an
    utterance), `passes`, `over_budget_passes`, `last_pass_s` and `slowest_pass_s` (recognition seconds).
    """

    def __init__(
        self,
        recognizer: Recognizer,
        *,
        language: str | None = None,
        task: str = "transcribe",
        min_chunk_s: float = 0.3,
        max_buffer_s: float = 15.0,
        vad: VoiceActivity | None | bool = True,
        preroll_s: float = 0.5,
        agree_tolerance_s: float = 0.6,
        prompt_chars: int = 200,
        detect_after_s: float = 1.0,
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
        self.detect_after_s = detect_after_s
        self.commits: list[Commit] = []
        self.passes = 0
        self.over_budget_passes = 0  # passes that gave nothing because they hit the recognizer's budget
        self.slowest_pass_s = 0.0
        self.last_pass_s = 0.0
        self.utterance_ended = False  # the latest feed()/flush() closed an utterance
        self._time = 0.0
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0.0
        self._hypothesis: list[Word] = []
        self._last_pass_at = 0.0
        self._detected: str | None = None  # the language held for the current utterance
        self._last_detected: str | None = None
        self._switch_to: str | None = None  # another language the latest pass was sure of
        self._events: deque[VoiceEvent] = deque()  # VAD events not acted on yet (one pass per feed)
        self._stamped = 0  # commits before this index carry the wall time they were handed out
        self._open = self.vad is None  # an utterance is in progress (always, without a VAD)
        self._voice_from = 0.0  # where the VAD heard the utterance begin; no word starts before it
        self._loudest = 0.0  # the loudest 20 ms (mean square) of the utterance: how loud its words are
        self._held: float | None = None  # where a short utterance held open (see _SHORT_UTTERANCE_S) ended

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
        """The latest pass's uncommitted words (may still change; good for a greyed-out live caption), up
        to a piece of a character if the pass heard one."""
        return _whole(self._hypothesis)

    @property
    def speaking(self) -> bool:
        return self.vad.speaking if self.vad is not None else True

    @property
    def detected_language(self) -> str | None:
        """The language the current utterance is recognised in (the given one, or the one detected and
        held), else the latest utterance's; None until something was detected."""
        return self.language or self._detected or self._last_detected

    def feed(self, pcm_chunk: np.ndarray) -> list[Word]:
        """Add 16 kHz audio; return the words committed because of it (often none). Runs at most one
        recognition pass."""
        chunk = np.asarray(pcm_chunk, dtype=np.float32).reshape(-1)
        chunk = np.clip(np.nan_to_num(chunk, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._time += len(chunk) / SAMPLE_RATE
        self._loudest = max(self._loudest, _loudest_frame(chunk))
        self.utterance_ended = False
        if self.vad is not None:
            self._events.extend(self.vad.feed(chunk))
        return self._hand_out(self._step())

    def flush(self) -> list[Word]:
        """The utterance (or stream) is over: commit everything still pending."""
        self.utterance_ended = False
        out: list[Word] = []
        while self._events:
            out += self._on_event(self._events.popleft())
        voice_end = self.vad.last_voice_end if self.vad is not None else None
        return self._hand_out(out + self._finish(self._time, voice_end))

    # ---- scheduling ---------------------------------------------------------------------------------
    def _step(self) -> list[Word]:
        """Act on pending VAD events in order, then pass if due; stop after the first pass."""
        before = self.passes
        out: list[Word] = []
        while self._events and self.passes == before:
            out += self._on_event(self._events.popleft())
        if self._events or self.passes != before:
            return out  # the rest waits for the next feed(): the caller gets these words now
        if self.vad is not None and not self.vad.speaking:
            if self._held is not None:
                if self._time - self._held < _SHORT_HOLD_S:
                    return out  # no next voice yet: keep the short utterance's audio
                held, self._held = self._held, None
                return out + self._finish(held + _END_MARGIN_S, held)
            self._cut(self._time - self.preroll_s)  # silence: keep only a pre-roll
            return out
        if self._time - self._last_pass_at >= self.min_chunk_s:
            self._open = True
            out += self._pass()
        return out

    def _on_event(self, event: VoiceEvent) -> list[Word]:
        if event.kind == "end":
            if self._is_short(event.time):
                self._held = event.time
                return []
            self._held = None
            return self._finish(event.time + _END_MARGIN_S, event.time)
        self._open = True  # first pass once `min_chunk_s` of the utterance is in
        if self._held is not None:
            self._held = None  # the short utterance goes on: it starts where it started
            return []
        self._voice_from = event.time
        self._last_pass_at = max(self._last_pass_at, event.time)
        return []

    def _is_short(self, voice_end: float) -> bool:
        """Whether the utterance ending at `voice_end` is held open (see `_SHORT_UTTERANCE_S`): a short one,
        with nothing of it committed yet, in a script without spaces or before any language is known (a
        language detected from one syllable is a guess: 对 alone is heard as Vietnamese "Tòi")."""
        language = self._pass_language()
        return (
            (language is None or language in UNSPACED_LANGUAGES)
            and voice_end - self._voice_from < _SHORT_UTTERANCE_S
            and not any(c.word.end > self._voice_from for c in self.commits)
        )

    def _hand_out(self, words: list[Word]) -> list[Word]:
        """Stamp the new commits with the moment the caller receives them."""
        now = time.monotonic()
        for i in range(self._stamped, len(self.commits)):
            self.commits[i] = replace(self.commits[i], wall_time=now)
        self._stamped = len(self.commits)
        if words:
            log.debug("committed %r at %.2f s", join_words(w.text for w in words), self._time)
        return words

    # ---- passes -------------------------------------------------------------------------------------
    def _recognise(self, until: float, since: float | None = None) -> list[Word] | None:
        """Recognise the buffer (from stream time `since`, else its start) up to `until`; words come back
        on the stream clock. None when the pass was over the recognizer's budget (it says nothing about
        the audio)."""
        skip = 0 if since is None else max(0, int(round((since - self._buffer_start) * SAMPLE_RATE)))
        pcm = self._buffer[skip : max(skip, int(round((until - self._buffer_start) * SAMPLE_RATE)))]
        self._last_pass_at = self._buffer_start + (skip + len(pcm)) / SAMPLE_RATE
        self.passes += 1
        started = time.perf_counter()
        transcript = self.recognizer.transcribe(
            pcm, language=self._pass_language(), task=self.task, initial_prompt=self._prompt()
        )
        self.last_pass_s = time.perf_counter() - started
        self.slowest_pass_s = max(self.slowest_pass_s, self.last_pass_s)
        stats = getattr(transcript, "stats", None)
        log.debug("pass %d: %.2f-%.2f s in %.2f s%s: %s", self.passes, self._buffer_start, until,
                  self.last_pass_s, f" ({stats.over_budget})" if stats and stats.over_budget else "",
                  transcript.text)
        if stats is not None and stats.over_budget:
            self.over_budget_passes += 1
            return None
        self._hold_language(transcript, stats, until)
        off, floor = self._buffer_start + skip / SAMPLE_RATE, self._voice_from - 0.05
        # whisper fills trailing silence with words ("Thank you.", the utterance again): none may start
        # after the last audio the VAD heard as voice
        voiced = self.vad.last_voice_end + 0.1 if self.vad is not None else float("inf")
        words = []
        for w in (w for s in transcript.segments for w in s.words):
            start = max(w.start + off, floor)  # whisper stretches a first word back over leading silence
            if start < voiced:
                words.append(Word(w.text, start, max(w.end + off, start), w.probability))
        words = [w for w in words if self._audible(w)]
        return _characters(_drop_repeated_tail(_drop_squeezed_tail(words)))

    def _pass_language(self) -> str | None:
        """The given language; else the one held for this utterance; else the previous utterance's (a
        bounded recognizer still reports what this audio sounds like); else None: detect."""
        return self.language or self._detected or self._last_detected

    def _hold_language(self, transcript: Transcript, stats, until: float) -> None:
        """Hold one language per utterance, once enough of it is heard: passes must be comparable, and a
        later detection flip must not change how the rest of the utterance is heard.

        A first language is sure after `detect_after_s` at p ≥ 0.9, or after 2.5 × that at p ≥ 0.5 (short
        or synthetic speech). Leaving the previous utterance's language takes more: p ≥ 0.9 for the same
        other language on two passes in a row (whisper hears a window of espeak-ng Spanish as Thai at
        p 0.98); otherwise the previous language is held."""
        if self.language is not None or self._detected is not None:
            return
        if stats is not None and stats.detected:
            language, p = stats.detected, stats.detected_probability
        elif self._pass_language() is None and transcript.segments:
            language, p = transcript.language, transcript.language_probability
        else:
            return
        heard = until - max(self._voice_from, self._buffer_start)
        prior, sure = self._last_detected, heard >= self.detect_after_s and p >= 0.9
        if prior is None or language == prior:
            held = sure or (heard >= 2.5 * self.detect_after_s and p >= 0.5)
        else:
            held = sure and self._switch_to == language
            self._switch_to = language if sure else None
            if not held and heard >= 2.5 * self.detect_after_s:
                language, held = prior, True
        if held:
            if language != prior:
                self._hypothesis = []  # heard in another language: nothing to agree with
            self._detected = self._last_detected = language
            log.info("utterance language: %s (p=%.2f)", language, p)

    def _audible(self, word: Word) -> bool:
        """Whether there is sound where whisper placed `word` (±0.1 s): within 20 dB of the utterance's
        loudest. In a near-silent buffer (the VAD still hears the utterance's tail) whisper writes digits
        and fillers ("1, 2,", "Thank you") that no sound is under."""
        a = max(0, int(round((word.start - 0.1 - self._buffer_start) * SAMPLE_RATE)))
        b = min(len(self._buffer), int(round((word.end + 0.1 - self._buffer_start) * SAMPLE_RATE)))
        if b <= a or _loudest_frame(self._buffer[a:b]) >= 0.01 * self._loudest:
            return True
        log.debug("dropped %r at %.2f-%.2f s: no sound under it", word.text, word.start, word.end)
        return False

    def _may_commit(self) -> bool:
        """Agreed words commit once the language is settled: two passes in a wrongly guessed language
        can agree on nonsense."""
        return self.language is not None or self._detected is not None or self._last_detected is not None

    def _pass(self) -> list[Word]:
        """One LocalAgreement-2 step: commit what this pass and the previous one agree on."""
        heard = self._recognise(self._time)
        if heard is None:
            return self._trim()
        new = self._unseen(heard)
        n = self._agreed(new) if self._may_commit() else 0
        # words after a sentence end that only say the utterance's beginning again wait for what follows:
        # whisper's filler for the silence after it ("Good morning everyone. Good"), or a real restart
        said = [c.word for c in self.commits if c.word.end > self._voice_from] + new[:n]
        n -= min(n, _restart_length(said, self.vad.last_voice_end if self.vad is not None else None))
        self._hypothesis = new[n:]
        out = self._commit(new[:n], by_flush=False)
        return out + self._trim()

    def _agreed(self, new: list[Word]) -> int:
        """How many leading words of this pass the previous pass heard too (same text, about the same time);
        a piece of a character is never agreed on."""
        n = 0
        for a, b in zip(_whole(new), self._hypothesis, strict=False):
            if normalize(a.text) != normalize(b.text) or abs(a.start - b.start) > self.agree_tolerance_s:
                break
            if _is_character(a) and a.end > self._last_pass_at - _EDGE_HOLD_S:
                break  # a character at the window's edge: whisper guessed it from part of its sound
            if _is_character(a) and self._last_pass_at - self._voice_from < _UNSPACED_LEAD_S:
                break  # too little of the utterance heard yet (see _UNSPACED_LEAD_S)
            n += 1
        return n

    def _finish(self, until: float, voice_end: float | None) -> list[Word]:
        """Commit all words up to stream time `until`, then start a fresh utterance after it.
        `voice_end` is where the VAD last heard voice: whisper fills the silence after it ("Thank you.")."""
        until = min(until, self._time)
        if not self._open and not self._hypothesis:
            return []
        heard_all = bool(
            voice_end is not None and self.commits and self.commits[-1].word.end >= voice_end - 0.2
        )
        if self._hypothesis and self._last_pass_at >= until - 1e-6:
            words = self._hypothesis  # the latest pass already heard everything
        elif not self._hypothesis and heard_all:
            words = []  # the last voiced audio is committed already
        elif until - self._buffer_start > 0.1:
            heard = self._recognise(until, since=self._tail_start())
            words = (self._unseen(heard) if heard is not None else []) or self._hypothesis
        else:
            words = self._hypothesis
        if voice_end is not None:
            words = [w for w in words if w.start < voice_end + 0.1]
        said = [c.word for c in self.commits if c.word.end > self._voice_from] + words
        words = words[: len(words) - _restart_length(said, voice_end)]
        out = self._commit(words, by_flush=True)
        self._hypothesis = []
        self._held = None
        self._loudest = 0.0
        self._detected = self._switch_to = None
        self._open = self.vad is None
        self.utterance_ended = True
        self._cut(until)
        return out

    def _tail_start(self) -> float | None:
        """Where a pass over an utterance's end starts: `_TAIL_WINDOW_S` before the last word committed in
        the buffer (None: the whole buffer). Greedy whisper on a long window can stop a word or two early
        ("... back to their" for "... back to their cars."); on a short one it does not."""
        inside = [c.word for c in self.commits if c.word.end > self._buffer_start]
        return inside[-1].start - _TAIL_WINDOW_S if inside else None

    # ---- bookkeeping --------------------------------------------------------------------------------
    def _unseen(self, words: list[Word]) -> list[Word]:
        """Drop the words of a pass that repeat what is already committed: through the pass's own copy of the
        last committed word where it has one (at about its time), else by time, then by text. Times alone lose
        words: a pass that stretches the committed word's end over the next word's start ("Good" committed
        ending at 0.95 s, "morning" heard from 0.8 s) would drop "morning" as heard already."""
        if not self.commits:
            return words
        last = self.commits[-1].word.end
        said = normalize(self.commits[-1].word.text)
        copies = [i for i, w in enumerate(words) if normalize(w.text) == said and abs(w.end - last) < 0.5]
        if copies:
            return words[copies[-1] + 1:]
        new = [w for w in words if w.start > last - 0.1]
        if new and new[0].start - last < 1.0:
            tail = [normalize(c.word.text) for c in self.commits[-5:]]
            for n in range(min(len(tail), len(new)), 0, -1):
                if tail[-n:] == [normalize(w.text) for w in new[:n]]:
                    return new[n:]
        return new

    def _commit(self, words: list[Word], *, by_flush: bool) -> list[Word]:
        """Commit `words` (pieces of characters dropped: at an utterance's end nothing will complete them)."""
        out: list[Word] = []
        for w in words:
            text = w.text.replace(PARTIAL_CHARACTER, "").strip()
            if not normalize(text).strip():
                continue  # nothing but a piece of a character (and punctuation)
            floor = self.commits[-1].word.end if self.commits else 0.0
            start = max(w.start, floor)
            word = Word(text, start, max(w.end, start), w.probability)
            self.commits.append(Commit(word, self._time, float("nan"), by_flush))  # stamped on hand-out
            out.append(word)
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
        return join_words(reversed(parts)) or None

    def _trim(self) -> list[Word]:
        """Cut the buffer after the last committed sentence, and keep it under `max_buffer_s`.

        Returns the words it had to commit to do so (only when nothing was agreed for a whole buffer)."""
        inside = [c.word for c in self.commits if c.word.end > self._buffer_start]
        heard = inside + self._hypothesis
        ends = [i for i, w in enumerate(inside) if w.text.endswith(_SENTENCE_END)]
        if ends and ends[-1] + 1 < len(heard):
            at = self._between(heard[ends[-1]], heard[ends[-1] + 1], pause_only=True)
            if at is not None:
                self._cut(at)
        if self._time - self._buffer_start <= self.max_buffer_s:
            return []
        if inside:
            last = len(inside) - 1
            self._cut(self._between(inside[last], heard[last + 1]) if last + 1 < len(heard) else inside[last].end)
        if self._time - self._buffer_start > self.max_buffer_s:
            # nothing agreed for a whole buffer: take the older half of the hypothesis as it stands
            half = self._buffer_start + self.max_buffer_s / 2
            forced = [w for w in self._hypothesis if w.end <= half]
            self._hypothesis = self._hypothesis[len(forced) :]
            self._cut(forced[-1].end if forced else half)
            return self._commit(forced, by_flush=True)
        return []

    def _between(self, before: Word, after: Word, *, pause_only: bool = False) -> float | None:
        """Where to cut between two words: at the quietest 20 ms of the gap whisper left between them.

        Whisper's word edges are approximate (a last word often ends 0.2 s before its sound does); a cut
        inside a word makes the next pass hear a fragment of it ("every|one" heard as "1"), or a word
        without the one before it. With `pause_only`, None unless that quietest frame is a real pause
        (20 dB under the buffer's speech)."""
        frame = int(_FRAME_S * SAMPLE_RATE)
        first = max(0, int(round((before.end - self._buffer_start) * SAMPLE_RATE)))
        last = min(len(self._buffer), int(round((after.start - self._buffer_start) * SAMPLE_RATE)))
        if last - first < 2 * frame or len(self._buffer) < frame:
            return None if pause_only else max(before.end, (before.end + after.start) / 2)
        energy = np.mean(self._buffer[: len(self._buffer) // frame * frame].reshape(-1, frame).astype(np.float64) ** 2,
                         axis=1)
        gap = energy[first // frame : last // frame]
        quietest = int(np.argmin(gap))
        if pause_only and gap[quietest] > 0.01 * np.percentile(energy, 90):
            return None
        return self._buffer_start + (first // frame + quietest + 0.5) * frame / SAMPLE_RATE

    def _cut(self, at: float) -> None:
        """Drop buffered audio before stream time `at`."""
        n = int(round((at - self._buffer_start) * SAMPLE_RATE))
        if n <= 0:
            return
        n = min(n, len(self._buffer))
        self._buffer = self._buffer[n:]
        self._buffer_start += n / SAMPLE_RATE


def _whole(words: list[Word]) -> list[Word]:
    """`words` up to the first that holds a piece of a character."""
    for i, w in enumerate(words):
        if has_partial_character(w.text):
            return words[:i]
    return words


def _is_character(word: Word) -> bool:
    """Whether `word` is a character of a script written without spaces (see `_characters`)."""
    return any(unspaced(c) for c in word.text)


def _characters(words: list[Word]) -> list[Word]:
    """Cut words of scripts without spaces into their characters, the word's time shared out evenly:
    what passes agree on there. Punctuation stays with the character before it ("萬人，" → "萬", "人，"),
    a run of pieces of a character stays one unit, words of spaced scripts stay whole."""
    out: list[Word] = []
    for w in words:
        if not any(unspaced(c) for c in w.text):
            out.append(w)
            continue
        units: list[str] = []
        for c in w.text:
            glued = units and (not c.isalnum() and c != PARTIAL_CHARACTER
                               or c == PARTIAL_CHARACTER and units[-1].endswith(PARTIAL_CHARACTER))
            if glued:
                units[-1] += c
            elif units and not any(ch.isalnum() or ch == PARTIAL_CHARACTER for ch in units[-1]):
                units[-1] += c  # opening punctuation goes with the character after it
            else:
                units.append(c)
        step = (w.end - w.start) / len(units)
        out += [Word(u, w.start + i * step, w.start + (i + 1) * step, w.probability) for i, u in enumerate(units)]
    return out


def _loudest_frame(pcm: np.ndarray) -> float:
    """The largest mean square over 20 ms frames of `pcm` (one short frame when shorter)."""
    frame = int(_FRAME_S * SAMPLE_RATE)
    if len(pcm) < frame:
        return float(np.mean(pcm.astype(np.float64) ** 2)) if len(pcm) else 0.0
    framed = pcm[: len(pcm) // frame * frame].reshape(-1, frame).astype(np.float64)
    return float(np.max(np.mean(framed**2, axis=1)))


def _drop_repeated_tail(words: list[Word]) -> list[Word]:
    """A short buffer tempts whisper to say what it heard again ("Try again Try again Try again", "It was
    the age of wisdom It was the age of wisdom"): keep one copy of a phrase repeated at the end (a single
    word only from its third copy on: "very very" is speech)."""
    keys = [normalize(w.text) for w in words]
    n = 1
    while n <= len(keys) // 2:
        tail = keys[-n:]
        if tail == keys[-2 * n : -n] and (n > 1 or keys[-3 * n : -2 * n] == tail):
            keys, words = keys[:-n], words[:-n]
            n = 1
        else:
            n += 1
    return words


def _restart_length(words: list[Word], voice_end: float | None = None) -> int:
    """How many trailing words only say the utterance's beginning again: whisper's filler for the silence
    after an utterance ("Good morning everyone. Good"). After the last sentence end, any such tail; without
    one ("Please send me the report Please"), a tail that begins in the last 0.2 s of voice, too late for a
    word really spoken there."""
    keys = [normalize(w.text) for w in words]
    ends = [i for i, w in enumerate(words[:-1]) if w.text.endswith(_SENTENCE_END)]
    if ends:
        tail = keys[ends[-1] + 1 :]
        if tail == keys[: len(tail)]:
            return len(tail)
    if voice_end is None:
        return 0
    for k in range(len(words) // 2, 0, -1):
        if keys[-k:] == keys[:k] and words[-k].start > voice_end - 0.2:
            return k
    return 0


def _drop_squeezed_tail(words: list[Word], shortest: float = 0.06) -> list[Word]:
    """Whisper's hallucinations at a buffer's end (a repeated phrase, "Thank you.") come as several words
    squeezed into a few hundredths of a second; real words are longer. Drop such a trailing run."""
    i = len(words)
    while i > 0 and words[i - 1].end - words[i - 1].start < shortest:
        i -= 1
    return words[:i] if len(words) - i >= 2 else words
