"""Speech in language A → translated speech in language B on a DubTrack (ASR → MT → TTS → placement).

`ClipMaker` turns one source sentence into a fitted translated clip; live mode calls it on each committed
sentence as it arrives, file mode (`SpeechDubber`) on every segment of a recording, placed on a virtual clock
at its source start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from livedub.engines.asr import Recognizer
from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.errors import BadInputError
from livedub.engines.metrics import StageTimes
from livedub.engines.mt import Translator
from livedub.engines.mt.text import SENTENCE_END
from livedub.engines.settings import Settings
from livedub.engines.text_join import join_words
from livedub.engines.tts import Synthesizer
from livedub.engines.types import Segment, Speech

from .dubtrack import MIN_GAP, NATURAL_SLOWEST, DubTrack, speed_fit
from .factory import ModelPool

log = logging.getLogger("livedub.speech")

MAX_MERGED_SECONDS = 12.0
TAIL_SLACK = 0.6  # seconds the last clip may run past the source speech before pushing anything


@dataclass(frozen=True)
class DubbedSegment:
    """One source segment and what it became (the transcript JSON's rows)."""

    source_start: float
    source_end: float
    source_text: str
    text: str
    start: float
    end: float
    speed: float

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class DubResult:
    track: DubTrack
    segments: list[DubbedSegment]
    source_language: str
    target_language: str
    duration: float  # of the source audio
    times: StageTimes = field(default_factory=StageTimes)


class ClipMaker:
    """Translate a sentence and speak it, fitted to a time slot (the MT + TTS stages)."""

    def __init__(
        self,
        translator: Translator | None,
        synthesizer: Synthesizer,
        *,
        min_speed: float = NATURAL_SLOWEST,
        max_speed: float = 1.3,
        times: StageTimes | None = None,
    ):
        self.translator = translator
        self.synthesizer = synthesizer
        self.min_speed, self.max_speed = min_speed, max_speed
        self.times = times or StageTimes()

    def translate(self, text: str) -> str:
        if self.translator is None:
            return text
        with self.times.stage("mt", log):
            return self.translator.translate(text).strip()

    def translate_all(self, texts: Sequence[str]) -> list[str]:
        """Many sentences in one call where the backend batches (Apertium starts once, not per sentence)."""
        if self.translator is None:
            return list(texts)
        batch = getattr(self.translator, "translate_sentences", None)
        if batch is None:
            return [self.translate(t) for t in texts]
        with self.times.stage("mt", log):
            return [t.strip() for t in batch(list(texts))]

    def speak(self, text: str, slot: float | None = None) -> tuple[Speech, float]:
        """Speech for `text`, at a speed that fits `slot` seconds when given; returns (speech, speed)."""
        with self.times.stage("tts", log):
            speech = self.synthesizer.synthesize(text)
            speed = 1.0
            if slot is not None and speech.duration > 0:
                speed = speed_fit(speech.duration, slot, self.min_speed, self.max_speed)
                if abs(speed - 1.0) > 0.02:
                    speech = self.synthesizer.synthesize(text, speed=speed)
        return speech, speed


def _split_at_sentence_ends(seg: Segment) -> list[Segment]:
    """One segment per sentence, timed by its words (whisper often puts two sentences in one segment)."""
    if not seg.words:
        return [seg]
    out: list[Segment] = []
    current: list = []
    for word in seg.words:
        current.append(word)
        if word.text.strip().endswith(SENTENCE_END):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return [Segment(ws[0].start, ws[-1].end, join_words(w.text for w in ws), tuple(ws), seg.language)
            for ws in out]


def sentences(segments: Sequence[Segment]) -> list[Segment]:
    """Recogniser segments regrouped into sentences, each timed from its first to its last word."""
    merged: list[Segment] = []
    for seg in (part for s in segments for part in _split_at_sentence_ends(s)):
        text = seg.text.strip()
        if not text:
            continue
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and not prev.text.rstrip().endswith(SENTENCE_END)
            and seg.start - prev.end < 0.6
            and seg.end - prev.start < MAX_MERGED_SECONDS
        ):
            merged[-1] = Segment(prev.start, seg.end, join_words([prev.text, text]), prev.words + seg.words,
                                 prev.language)
        else:
            merged.append(Segment(seg.start, seg.end, text, seg.words, seg.language))
    return merged


class SpeechDubber:
    """File mode of the speech half: a whole recording through ASR → MT → TTS onto a DubTrack."""

    def __init__(
        self,
        target: str,
        *,
        source: str | None = None,
        settings: Settings | None = None,
        pool: ModelPool | None = None,
        recognizer: Recognizer | None = None,
        min_speed: float = NATURAL_SLOWEST,
        max_speed: float = 1.3,
        output_rate: int | None = None,
        times: StageTimes | None = None,
        mt: str = "auto",
        voice_engine: str | None = None,
    ):
        if mt == "whisper" and target != "en":
            raise BadInputError(f"--mt whisper translates speech into English only, not into '{target}'")
        self.mt = mt
        self.voice_engine = voice_engine
        self.target, self.source = target, source
        self.pool = pool or ModelPool(settings)
        self._recognizer = recognizer
        self.min_speed, self.max_speed = min_speed, max_speed
        self.output_rate = output_rate
        self.times = times or StageTimes()

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = self.pool.recognizer()
        return self._recognizer

    def dub(self, pcm: np.ndarray, progress: Callable[[int], None] | None = None,
            total: Callable[[int], None] | None = None) -> DubResult:
        """Dub 16 kHz mono PCM. Raises BadInputError when it holds no speech."""
        from livedub.engines.asr.vad import speech_spans
        from livedub.engines.tts.voices import median_pitch_hz

        duration = len(pcm) / SAMPLE_RATE
        with self.times.stage("vad", log):
            spans = speech_spans(pcm)
        if not spans:
            raise BadInputError("no speech found in the input (only silence or noise)")
        with self.times.stage("asr", log):
            transcript = self.recognizer.transcribe(pcm, language=self.source)
        segs = sentences(transcript.segments)
        if not segs:
            raise BadInputError("no words recognised in the input's speech")
        source = self.source or transcript.language
        log.info("source language %s (p=%.2f), %d sentences", source, transcript.language_probability, len(segs))
        translator = None if self.mt == "whisper" else self.pool.translator(source, self.target)
        voiced = np.concatenate([pcm[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in spans])
        with self.times.stage("pitch", log):
            pitch = median_pitch_hz(voiced)
        synth = self.pool.synthesizer(self.target, pitch_hz=pitch, engine=self.voice_engine)
        maker = ClipMaker(translator, synth, min_speed=self.min_speed, max_speed=self.max_speed, times=self.times)
        track = DubTrack(output_rate=self.output_rate or synth.sample_rate)
        if total:
            total(len(segs))
        rows: list[DubbedSegment] = []
        translated = maker.translate_all([seg.text for seg in segs]) if translator is not None else []
        for i, seg in enumerate(segs):
            if translator is None:  # any → English straight from the speech
                with self.times.stage("asr-translate", log):
                    a, b = max(seg.start - 0.1, 0.0), min(seg.end + 0.1, duration)
                    text = self.recognizer.transcribe(
                        pcm[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)], language=source, task="translate"
                    ).text.strip()
            else:
                text = translated[i]
            next_start = segs[i + 1].start if i + 1 < len(segs) else seg.end + TAIL_SLACK
            start = max(seg.start, track.end + MIN_GAP) if track.clips else seg.start
            slot = next_start - start
            if text:
                speech, speed = maker.speak(text, slot=max(slot, 0.3))
                clip = track.place(speech, seg.start, text=text, source_text=seg.text,
                                   source_start=seg.start, source_end=seg.end, speed=speed)
                rows.append(DubbedSegment(seg.start, seg.end, seg.text, text, clip.start, clip.end, speed))
            if progress:
                progress(1)
        if not rows:
            raise BadInputError("the speech could not be translated into anything to say")
        return DubResult(track, rows, source, self.target, duration, self.times)


def dub_text(
    text: str,
    *,
    source: str,
    target: str,
    settings: Settings | None = None,
    pool: ModelPool | None = None,
    lead_in: float = 0.5,
    pause: float = 0.35,
    output_rate: int | None = None,
    times: StageTimes | None = None,
    voice_engine: str | None = None,
) -> DubResult:
    """Speak written `text` (in `source`) in `target`, sentence after sentence from `lead_in` seconds."""
    from livedub.engines.mt.text import split_sentences

    pool = pool or ModelPool(settings)
    times = times or StageTimes()
    parts = split_sentences(text)
    if not parts:
        raise BadInputError("the text to speak is empty")
    translator = pool.translator(source, target)
    if translator is None:
        raise BadInputError(
            f"no text translator for {source} → {target} (whisper translates speech, not text): "
            f"pass --mt-model {source}-{target}=DIR or give the text in {target}"
        )
    maker = ClipMaker(translator, pool.synthesizer(target, engine=voice_engine), times=times)
    track = DubTrack(output_rate=output_rate or maker.synthesizer.sample_rate)
    rows: list[DubbedSegment] = []
    at = lead_in
    for sentence in parts:
        said = maker.translate(sentence)
        if not said:
            continue
        speech, speed = maker.speak(said)
        clip = track.place(speech, at, text=said, source_text=sentence, source_start=at, source_end=at + speech.duration)
        rows.append(DubbedSegment(clip.start, clip.end, sentence, said, clip.start, clip.end, speed))
        at = clip.end + pause
    if not rows:
        raise BadInputError("the text could not be translated into anything to say")
    return DubResult(track, rows, source, target, track.end, times)
