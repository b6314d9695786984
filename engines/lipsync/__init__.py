"""Lip-sync engines behind one `LipEngine` interface.

An engine draws the mouth of a tracked face so it speaks the audio around a frame's time. The audio comes
from an `AudioTimeline` (the DubTrack in live and file mode, or a plain PCM buffer), so look-ahead is free:
the translated audio exists before it plays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from ..audio import SAMPLE_RATE, resample
from ..face import Face
from ..types import Phoneme


@runtime_checkable
class AudioTimeline(Protocol):
    """Speech audio addressed by time in seconds (16 kHz mono float32)."""

    sample_rate: int

    def window(self, start: float, end: float) -> np.ndarray:
        """PCM for [start, end), zero-filled outside the audio (negative times included)."""
        ...

    def phonemes(self, start: float, end: float) -> list[Phoneme]:
        """Phonemes (absolute times) overlapping [start, end) when known; empty otherwise."""
        ...


class PcmTimeline:
    """An `AudioTimeline` over one PCM buffer that starts at time 0 (file inputs, tests)."""

    def __init__(self, pcm: np.ndarray, sample_rate: int = SAMPLE_RATE, phonemes: Sequence[Phoneme] = ()):
        if sample_rate != SAMPLE_RATE:
            pcm = resample(pcm, sample_rate, SAMPLE_RATE)
        self.pcm = np.nan_to_num(np.asarray(pcm, dtype=np.float32))
        self.sample_rate = SAMPLE_RATE
        self._phonemes = list(phonemes)

    @property
    def duration(self) -> float:
        return len(self.pcm) / self.sample_rate

    def window(self, start: float, end: float) -> np.ndarray:
        a = int(round(start * self.sample_rate))
        b = int(round(end * self.sample_rate))
        out = np.zeros(max(b - a, 0), np.float32)
        lo, hi = max(a, 0), min(b, len(self.pcm))
        if hi > lo:
            out[lo - a : hi - a] = self.pcm[lo:hi]
        return out

    def phonemes(self, start: float, end: float) -> list[Phoneme]:
        return [p for p in self._phonemes if p.end > start and p.start < end]


@runtime_checkable
class LipEngine(Protocol):
    """Redraws the mouth of `face` in `frame` (BGR uint8) to match the audio at time `t` seconds.

    Frames whose face is None or not usable come back unchanged. Silence keeps the mouth closed.
    """

    name: str

    def render(
        self, frames: Sequence[np.ndarray], faces: Sequence[Face | None], times: Sequence[float],
        audio: AudioTimeline,
    ) -> list[np.ndarray]:
        """A batch of consecutive frames (batching lets network engines fill their batch)."""
        ...
