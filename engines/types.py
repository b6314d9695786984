"""Small frozen result types shared by every engine (the data that flows between stages)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Word:
    """One recognised word with its time span in seconds on the input's timeline."""

    text: str
    start: float
    end: float
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """A stretch of recognised speech: a sentence or clause with its words."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()
    language: str = ""


@dataclass(frozen=True)
class Transcript:
    """What a recognizer heard in one buffer of audio."""

    segments: tuple[Segment, ...]
    language: str
    language_probability: float = 1.0
    duration: float = 0.0

    @property
    def text(self) -> str:
        from .text_join import join_words  # segments of unspaced scripts join without a space

        return join_words(s.text for s in self.segments)


@dataclass(frozen=True)
class SpeechSpan:
    """A voiced region found by the VAD, in seconds."""

    start: float
    end: float


@dataclass(frozen=True)
class Phoneme:
    """A phoneme (IPA symbol) with its time span inside a synthesized clip, in seconds."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True, eq=False)
class Speech:
    """Synthesized speech: mono float32 PCM in [-1, 1] at `sample_rate`, plus what was said."""

    pcm: np.ndarray
    sample_rate: int
    text: str = ""
    phonemes: tuple[Phoneme, ...] = field(default=())

    @property
    def duration(self) -> float:
        return len(self.pcm) / float(self.sample_rate)
