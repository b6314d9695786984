"""Speech synthesis: the `Synthesizer` interface and its backends (Piper, Kokoro, Festival, espeak-ng)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Speech


@runtime_checkable
class Synthesizer(Protocol):
    """Speaks text in one language. `speed` > 1 talks faster (used to fit a clip into a time slot)."""

    language: str
    sample_rate: int
    name: str

    def synthesize(self, text: str, *, speed: float = 1.0) -> Speech:
        """The whole text as one clip (with phoneme timings when the backend knows them)."""
        ...

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        """Sentence by sentence, so playback can start before the whole text is spoken."""
        ...


def check_speed(speed: float) -> float:
    """`speed` itself, or a clear error for one no voice can take."""
    if not (np.isfinite(speed) and speed > 0):
        raise ValueError(f"speed must be a positive number, got {speed!r}")
    return speed


class SpokenBySentence:
    """For a backend that speaks one sentence at a time (a program run per sentence): the whole text is its
    sentences joined, without phoneme timings."""

    sample_rate: int

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        raise NotImplementedError

    def synthesize(self, text: str, *, speed: float = 1.0) -> Speech:
        """The whole text as one clip (no phoneme timings)."""
        parts = list(self.stream(text, speed=speed))
        pcm = np.concatenate([p.pcm for p in parts]) if parts else np.zeros(0, np.float32)
        return Speech(pcm, self.sample_rate, text=text)
