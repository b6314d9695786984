"""Voice activity: where the speech is in a buffer, and when a live speaker stops.

Both use the silero VAD that ships inside faster-whisper, so no extra model is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..audio import SAMPLE_RATE
from ..types import SpeechSpan

_WINDOW = 512  # silero v6 scores 32 ms windows at 16 kHz
_CONTEXT = 64  # samples of the previous window the model sees with each window


def _clean(pcm: np.ndarray) -> np.ndarray:
    """Mono float32 without NaN/inf, so a bad sample never poisons the model state."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    return np.clip(np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


def speech_spans(
    pcm16k: np.ndarray,
    *,
    threshold: float = 0.5,
    min_silence_ms: int = 300,
    min_speech_ms: int = 100,
    speech_pad_ms: int = 30,
    max_speech_s: float = float("inf"),
) -> list[SpeechSpan]:
    """Voiced regions of 16 kHz PCM, in seconds.

    A pause shorter than `min_silence_ms` does not split a span; blips shorter than `min_speech_ms` are
    dropped; each span is widened by `speech_pad_ms` so word edges are not clipped.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    pcm = _clean(pcm16k)
    if len(pcm) < _WINDOW // 2:
        return []
    options = VadOptions(
        threshold=threshold,
        min_silence_duration_ms=min_silence_ms,
        min_speech_duration_ms=min_speech_ms,
        speech_pad_ms=speech_pad_ms,
        max_speech_duration_s=max_speech_s,
    )
    stamps = get_speech_timestamps(pcm, options, sampling_rate=SAMPLE_RATE)
    return [SpeechSpan(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


@dataclass(frozen=True)
class VoiceEvent:
    """A change in voice activity: speech began at `time`, or speech that ended at `time` was followed by
    enough silence to call the utterance over. Seconds since the first sample fed."""

    kind: Literal["start", "end"]
    time: float


class VoiceActivity:
    """Streaming silero VAD for the live loop: feed chunks of any size (20 ms is typical).

    Keeps the model's recurrent state between chunks, so the probabilities equal those of one pass over
    the whole stream. `speaking` says whether an utterance is open; `feed` returns the start/end events.
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        neg_threshold: float | None = None,
        min_silence_ms: int = 500,
        min_speech_ms: int = 90,
    ) -> None:
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01) if neg_threshold is None else neg_threshold
        self.min_silence_s = min_silence_ms / 1000.0
        self.min_speech_s = min_speech_ms / 1000.0
        self.reset()

    def reset(self) -> None:
        """Forget all audio and state; time starts again at 0."""
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros((1, _CONTEXT), np.float32)
        self._pending = np.zeros(0, np.float32)
        self._samples = 0  # samples scored so far
        self.speaking = False
        self.probability = 0.0
        self.last_voice_end = 0.0  # end of the latest window scored as speech, in seconds
        self._candidate: float | None = None  # time speech may have started, not yet confirmed
        self._silence_from: float | None = None  # time the current silence began while speaking

    @property
    def time(self) -> float:
        """Seconds of audio scored so far (a partial window waits for the next chunk)."""
        return self._samples / SAMPLE_RATE

    def feed(self, pcm_chunk: np.ndarray) -> list[VoiceEvent]:
        """Add audio; return the events it caused, oldest first."""
        pcm = np.concatenate([self._pending, _clean(pcm_chunk)])
        n = len(pcm) // _WINDOW * _WINDOW
        self._pending = pcm[n:]
        if n == 0:
            return []
        probs = self._score(pcm[:n].reshape(-1, _WINDOW))
        events: list[VoiceEvent] = []
        for p in probs:
            t = self._samples / SAMPLE_RATE
            self._samples += _WINDOW
            self.probability = float(p)
            if p >= self.threshold:
                self.last_voice_end = self._samples / SAMPLE_RATE
            event = self._step(float(p), t)
            if event is not None:
                events.append(event)
        return events

    def _score(self, windows: np.ndarray) -> np.ndarray:
        """Speech probability per window; the model treats the batch axis as time and carries h/c."""
        from faster_whisper.vad import get_vad_model

        context = np.concatenate([self._context, windows[:-1, -_CONTEXT:]], axis=0)
        batch = np.concatenate([context, windows], axis=1)
        out, self._h, self._c = get_vad_model().session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = windows[-1:, -_CONTEXT:].copy()
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def _step(self, p: float, t: float) -> VoiceEvent | None:
        """Hysteresis: speech needs `threshold` to begin and falls below `neg_threshold` to pause."""
        if not self.speaking:
            if p >= self.threshold:
                if self._candidate is None:
                    self._candidate = t
                if t + _WINDOW / SAMPLE_RATE - self._candidate >= self.min_speech_s:
                    self.speaking = True
                    self._silence_from = None
                    return VoiceEvent("start", self._candidate)
            elif p < self.neg_threshold:
                self._candidate = None
            return None
        if p >= self.threshold:
            self._silence_from = None
        elif p < self.neg_threshold and self._silence_from is None:
            self._silence_from = t
        if (
            self._silence_from is not None
            and t + _WINDOW / SAMPLE_RATE - self._silence_from >= self.min_silence_s
        ):
            end = self._silence_from
            self.speaking = False
            self._candidate = None
            self._silence_from = None
            return VoiceEvent("end", end)
        return None
