"""File mode's speech: a whole recording (or a written text) through the speech path on the virtual clock.

The unit source here is the whole-recording recogniser: VAD, one whisper pass over everything (beam search
sees whole sentences), then sentence units at their source times. Every unit then takes the same
`SpeechPath` steps as live speech; only the pacing differs (each clip starts where its sentence began).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.errors import BadInputError

from ..dubtrack import DubTrack
from .pacing import Fit, Pacing
from .path import DubbedSegment, DubResult, SpeechPath, segment_of
from .units import Unit, sentence_units

log = logging.getLogger("livedub.speech")


def _track_for(path: SpeechPath, rate: int) -> None:
    """The track at the output rate, or at the voice's own rate for a speech-only WAV."""
    if not path.track.clips and path.track.output_rate != rate:
        path.track = DubTrack(output_rate=rate)


def dub_recording(path: SpeechPath, pcm: np.ndarray, *, source: str | None = None,
                  progress: Callable[[int], None] | None = None,
                  total: Callable[[int], None] | None = None) -> DubResult:
    """Dub 16 kHz mono PCM onto `path.track`. Raises BadInputError when it holds no speech."""
    from livedub.engines.asr.vad import speech_spans

    times = path.times
    duration = len(pcm) / SAMPLE_RATE
    with times.stage("vad", log):
        spans = speech_spans(pcm)
    if not spans:
        raise BadInputError("no speech found in the input (only silence or noise)")
    with times.stage("asr", log):
        transcript = path.recognizer().transcribe(pcm, language=source)
    language = source or transcript.language
    units = sentence_units(transcript.segments, language)
    if not units:
        raise BadInputError("no words recognised in the input's speech")
    log.info("source language %s (p=%.2f), %d sentences", language, transcript.language_probability, len(units))
    translation = path.translation(language)
    voiced = np.concatenate([pcm[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in spans])
    path.learn_pitch(voiced)
    path.learn_speaker(voiced)
    voice = path.voice()
    _track_for(path, path.config.output_rate or voice.sample_rate)
    if total:
        total(len(units))
    if translation.via_whisper:
        def window(u: Unit) -> np.ndarray:
            a, b = max(u.start - 0.1, 0.0), min(u.end + 0.1, duration)
            return pcm[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]

        heard = [path.hear_in_english(u, language, window(u)) for u in units]
    else:
        heard = [u.text for u in units]
    said = path.translate_many(translation, heard) if translation.translator is not None else heard
    pacing = Pacing.of(path.config)
    rows: list[DubbedSegment] = []
    for i, (unit, text) in enumerate(zip(units, said, strict=True)):
        if text:
            fit = pacing.file_fit(unit, units[i + 1].start if i + 1 < len(units) else None, path.track)
            speech, speed = path.speak(voice, text, fit)
            rows.append(segment_of(path.place(unit, text, speech, speed, unit.start), translation.name))
        if progress:
            progress(1)
    if not rows:
        raise BadInputError("the speech could not be translated into anything to say")
    return DubResult(path.track, rows, language, path.config.target, duration, times)


def dub_text(path: SpeechPath, text: str, *, source: str, lead_in: float = 0.5, pause: float = 0.35) -> DubResult:
    """Speak written `text` (in `source`) in the target language, sentence after sentence from `lead_in`."""
    from livedub.engines.mt.text import split_sentences

    parts = split_sentences(text)
    if not parts:
        raise BadInputError("the text to speak is empty")
    translation = path.translation(source, from_speech=False)
    if translation.via_whisper:
        raise BadInputError(
            f"no text translator for {source} → {path.config.target} (whisper translates speech, not text): "
            f"pass --mt-model {source}-{path.config.target}=DIR or give the text in {path.config.target}"
        )
    voice = path.voice()
    _track_for(path, path.config.output_rate or voice.sample_rate)
    rows: list[DubbedSegment] = []
    at = lead_in
    for sentence in parts:
        said = path.translate(translation, sentence)
        if not said:
            continue
        speech, speed = path.speak(voice, said, Fit(None, path.config.max_speed))
        unit = Unit(sentence, at, at + speech.duration, source)
        rows.append(segment_of(path.place(unit, said, speech, speed, at), translation.name))
        at = rows[-1].end + pause
    if not rows:
        raise BadInputError("the text could not be translated into anything to say")
    return DubResult(path.track, rows, source, path.config.target, path.track.end, path.times)
