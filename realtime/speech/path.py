"""`SpeechPath`: unit → MT → TTS → a clip on the DubTrack, the one way speech is dubbed on either clock.

Each step is a plain blocking call, so file mode runs them in order and live mode runs each on its model's
worker thread: resolving a language pair (a translator may load a model), choosing the voice (the live
chooser times candidate voices), translating, speaking and placing. The pacing policy (`pacing.py`) decides
the slot a clip must fit; the path synthesizes it once and re-times it when it must be faster or slower.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from livedub.engines.asr import Recognizer
from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.errors import BadInputError
from livedub.engines.metrics import StageTimes
from livedub.engines.mt import Translator
from livedub.engines.tts import Synthesizer
from livedub.engines.tts.tempo import change_tempo
from livedub.engines.types import Speech

from ..config import DubConfig
from ..dubtrack import DubClip, DubTrack, speed_fit
from ..media.ring import AudioRing
from ..pool import ModelPool
from .pacing import Fit
from .units import Unit

log = logging.getLogger("livedub.speech")

TEMPO_TOLERANCE = 0.02  # a fitted speed this close to 1 plays the clip as synthesized


@dataclass(frozen=True)
class Translation:
    """How one language pair is translated: whisper's translate task from the unit's audio (any → English)
    first when `via_whisper`, then `translator` when there is one. `name` says which hops, for the transcript
    and the log ("whisper translate zh-en › apertium eng-spa")."""

    source: str
    target: str
    translator: Translator | None
    via_whisper: bool = False
    name: str = "as spoken"


@dataclass(frozen=True)
class DubbedSegment:
    """One source unit and what it became (the transcript JSON's rows)."""

    source_start: float
    source_end: float
    source_text: str
    text: str
    start: float
    end: float
    speed: float
    route: str = ""

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


class SpeechPath:
    """The speech half of one session: its DubTrack, the language pairs and voices it resolved."""

    def __init__(self, config: DubConfig, pool: ModelPool, track: DubTrack, *, heard: AudioRing | None = None,
                 recognizer: Callable[[], Recognizer] | None = None, times: StageTimes | None = None,
                 live: bool = False):
        self.config = config
        self.pool = pool
        self.track = track
        self.heard = heard  # the speaker's voice at 16 kHz by session time (whisper's translate task, pitch)
        self.times = times or StageTimes()
        self.live = live
        self.recognizer: Callable[[], Recognizer] = recognizer or pool.recognizer
        self._translations: dict[tuple[str, str, bool], Translation] = {}  # (source, target, from speech)
        self._lock = threading.Lock()
        self.pitch_hz: float | None = None
        self._speaker_pcm: np.ndarray | None = None  # the speaker's voice for --voice-match timbre
        self._fits: dict[str, Future] = {}  # voice name → its timbre fit
        self.notes: list[str] = []  # decisions a user should know (which voice speaks live)

    # -- resolving (blocking: run on a worker in live mode) ----------------------------------------

    def translation(self, source: str, target: str | None = None, *, from_speech: bool = True) -> Translation:
        """How `source` becomes the target language; loads translators (call on the MT worker). Speech may
        start with whisper's translate task (from the unit's audio); written text needs text translators."""
        target = target or self.config.target
        key = (source, target, from_speech)
        with self._lock:
            if key in self._translations:
                return self._translations[key]
        found = self._resolve(source, target, from_speech)
        with self._lock:
            self._translations[key] = found
        log.info("%s → %s: %s", source, target, found.name)
        return found

    def _resolve(self, source: str, target: str, from_speech: bool) -> Translation:
        if source == target:
            return Translation(source, target, None)
        if self.config.mt == "whisper":
            if target != "en":
                raise BadInputError(f"--mt whisper translates speech into English only, not into '{target}'")
            return Translation(source, target, None, via_whisper=True, name="whisper translate")
        if not from_speech:
            translator = self.pool.translator(source, target)
            if translator is None:
                return Translation(source, target, None, via_whisper=True, name="whisper translate")
            return Translation(source, target, translator, name=str(getattr(translator, "name", "")))
        route = self.pool.speech_route(source, target)
        return Translation(source, target, route.translator, via_whisper=route.whisper_to_english, name=route.name)

    def voice(self, target: str | None = None) -> Synthesizer:
        """The voice for the target, by the speaker's register when known (live: the best that keeps up on
        this machine; its one-line reason lands in `notes`), moved toward the speaker with `--voice-match
        timbre`. Call on the TTS worker."""
        target = target or self.config.target
        engine = self.config.voice_engine
        pitch = None if self.config.voice_match == "off" else self.pitch_hz
        if not self.live:
            voice = self.pool.synthesizer(target, pitch_hz=pitch, engine=engine)
        else:
            voice, note = self.pool.live_synthesizer(target, pitch_hz=pitch, engine=engine)
            self.note(note)
        return self._matched(voice) if self.config.voice_match == "timbre" else voice

    def note(self, text: str) -> None:
        if text and text not in self.notes:
            self.notes.append(text)
            log.info("%s", text)

    def learn_speaker(self, pcm16k: np.ndarray) -> None:
        """Keep the speaker's first seconds of speech for `--voice-match timbre` (file mode: the voiced spans)."""
        self._speaker_pcm = pcm16k

    def _matched(self, voice: Synthesizer) -> Synthesizer:
        """`voice` moved toward the speaker. The fit (a probe sentence analysed, a few seconds) is made once per
        voice; live, the voice speaks unmatched until its fit, made on a thread of its own, is ready."""
        from livedub.engines.tts.match import MatchedVoice

        with self._lock:
            fit = self._fits.get(voice.name)
            if fit is None:
                pcm = self._speaker_pcm if self._speaker_pcm is not None else (
                    self.heard.recent(10.0) if self.heard is not None else None)
                if pcm is None or len(pcm) < 3 * SAMPLE_RATE:
                    return voice  # not enough of the speaker heard yet
                fit = self._fits[voice.name] = Future()
                start = True
            else:
                start = False
        if start:
            def work() -> None:
                fit.set_result(self._fit(voice, pcm))

            if self.live:
                threading.Thread(target=work, name="livedub-voice-fit", daemon=True).start()
            else:
                work()
        if not fit.done():
            return voice
        match = fit.result()
        return voice if match is None else MatchedVoice(voice, match)

    def _fit(self, voice: Synthesizer, pcm16k: np.ndarray):
        from livedub.engines.errors import LivedubError
        from livedub.engines.speaker import learn_profile
        from livedub.engines.tts.match import fit_voice

        try:
            with self.times.stage("voice-fit", log):
                match = fit_voice(voice, learn_profile(pcm16k), self.pool.settings.cache)
        except LivedubError as exc:
            self.note(f"voice match for {voice.name}: not fitted ({exc})")
            return None
        self.note(f"voice match for {voice.name}: speaker similarity {match.similarity_before:.2f} → "
                  f"{match.similarity_after:.2f}")
        return match

    def learn_pitch(self, pcm16k: np.ndarray | None = None) -> float | None:
        """The speaker's median pitch, once: from `pcm16k` or the last 10 s heard (needs a second of it)."""
        if self.pitch_hz is None:
            from livedub.engines.tts.voices import median_pitch_hz

            if pcm16k is None and self.heard is not None:
                pcm16k = self.heard.recent(10.0)
            if pcm16k is not None and len(pcm16k) > SAMPLE_RATE:
                with self.times.stage("pitch", log):
                    self.pitch_hz = median_pitch_hz(pcm16k)
        return self.pitch_hz

    # -- the steps ----------------------------------------------------------------------------------

    def hear_in_english(self, unit: Unit, source: str, pcm16k: np.ndarray | None = None) -> str:
        """Whisper's translate task on the unit's own speech (from `pcm16k`, else the heard ring)."""
        if pcm16k is None:
            if self.heard is None:
                raise RuntimeError("no audio kept for whisper's translate task")
            pcm16k = self.heard.window(unit.start - 0.1, unit.end + 0.1)
        with self.times.stage("asr-translate", log):
            return self.recognizer().transcribe(pcm16k, language=source, task="translate").text.strip()

    def translate(self, translation: Translation, text: str) -> str:
        if translation.translator is None:
            return text
        with self.times.stage("mt", log):
            return translation.translator.translate(text).strip()

    def translate_many(self, translation: Translation, texts: Sequence[str]) -> list[str]:
        """Many sentences in one call where the backend batches (a one-off Apertium run per passage)."""
        batch = getattr(translation.translator, "translate_sentences", None)
        if batch is None:
            return [self.translate(translation, t) for t in texts]
        with self.times.stage("mt", log):
            return [t.strip() for t in batch(list(texts))]

    def speak(self, voice: Synthesizer, text: str, fit: Fit) -> tuple[Speech, float]:
        """`text` spoken once, re-timed into `fit.slot` when given (within the speed bounds)."""
        with self.times.stage("tts", log):
            speech = voice.synthesize(text)
        speed = 1.0
        if fit.slot is not None and speech.duration > 0:
            speed = speed_fit(speech.duration, fit.slot, self.config.min_speed, fit.max_speed)
            if abs(speed - 1.0) > TEMPO_TOLERANCE:
                with self.times.stage("tempo", log):
                    speech = change_tempo(speech, speed)
            else:
                speed = 1.0
        return speech, speed

    def place(self, unit: Unit, text: str, speech: Speech, speed: float, at: float) -> DubClip:
        return self.track.place(speech, at, text=text, source_text=unit.text, source_start=unit.start,
                                source_end=unit.end, speed=speed)


def segment_of(clip: DubClip, route: str) -> DubbedSegment:
    return DubbedSegment(clip.source_start, clip.source_end, clip.source_text, clip.text, clip.start, clip.end,
                         clip.speed, route)
