"""Speech synthesis: the `Synthesizer` interface and its backends (Piper, Kokoro, espeak-ng)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

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
