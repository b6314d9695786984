"""The DubTrack: a timeline of translated speech clips, shared by file mode and the live loop.

File mode places each clip at its source segment's start (isochrony), fitted to its slot by TTS speed;
live mode appends clips as they become ready. Clips never overlap: an overrun pushes later clips back.
The track is also the `AudioTimeline` lip engines read, so a frame's mouth comes from the audio around it.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field, replace

import numpy as np

from livedub.engines.audio import SAMPLE_RATE, resample
from livedub.engines.types import Phoneme, Speech

MIN_GAP = 0.05  # seconds of breath between two clips pushed together


NATURAL_SLOWEST = 0.95  # the most a clip is ever slowed: more sounds dragged, and lips follow any pace


def speed_fit(
    natural_seconds: float, slot_seconds: float, min_speed: float = NATURAL_SLOWEST, max_speed: float = 1.3
) -> float:
    """The TTS speed for a clip of `natural_seconds` in a slot of `slot_seconds` (natural pacing).

    A clip longer than its slot is sped up to fit (at most `max_speed`; what still does not fit pushes the
    next clip). A shorter one keeps its natural speed and leaves the rest as pause, unless a slight
    slow-down (never below 0.95×, whatever `min_speed` asks) makes it fill the slot exactly: stretching
    speech to fill pauses costs naturalness and buys nothing, since the lips follow the audio anyway.
    """
    if natural_seconds <= 0 or slot_seconds <= 0:
        return 1.0
    ratio = natural_seconds / slot_seconds
    if ratio >= 1.0:
        return float(min(ratio, max(max_speed, 1.0)))
    return float(ratio) if ratio >= max(min_speed, NATURAL_SLOWEST) else 1.0


@dataclass(frozen=True, eq=False)
class DubClip:
    """One translated clip placed on the timeline."""

    start: float
    speech: Speech  # at the track's output rate
    pcm16k: np.ndarray  # the same speech at 16 kHz for lip engines and analysis
    text: str = ""
    source_text: str = ""
    source_start: float = 0.0
    source_end: float = 0.0
    speed: float = 1.0
    duration: float = -1.0  # seconds; the speech's own unless given (a released clip keeps its length)

    def __post_init__(self) -> None:
        if self.duration < 0:
            object.__setattr__(self, "duration", self.speech.duration)

    @property
    def end(self) -> float:
        return self.start + self.duration

    @property
    def released(self) -> bool:
        return len(self.pcm16k) == 0 and self.duration > 0


@dataclass
class DubTrack:
    """Translated speech on a timeline (seconds). Thread-safe: the live loop adds while frames read."""

    output_rate: int = 24_000
    sample_rate: int = SAMPLE_RATE  # what `window()` returns (the `AudioTimeline` contract)
    clips: list[DubClip] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _starts: list[float] = field(default_factory=list, repr=False)  # clips' starts, ascending (for bisect)

    @property
    def end(self) -> float:
        return self.clips[-1].end if self.clips else 0.0

    def place(
        self,
        speech: Speech,
        at: float,
        *,
        text: str = "",
        source_text: str = "",
        source_start: float | None = None,
        source_end: float | None = None,
        speed: float = 1.0,
    ) -> DubClip:
        """Add a clip starting at `at`, or right after the previous clip if that one is still playing."""
        pcm = resample(speech.pcm, speech.sample_rate, self.output_rate)
        pcm16k = resample(speech.pcm, speech.sample_rate, SAMPLE_RATE)
        with self._lock:
            start = max(float(at), self.end + MIN_GAP if self.clips else float(at))
            shift = start
            phonemes = tuple(Phoneme(p.symbol, p.start + shift, p.end + shift) for p in speech.phonemes)
            clip = DubClip(
                start=start,
                speech=Speech(pcm, self.output_rate, speech.text, phonemes),
                pcm16k=pcm16k,
                text=text or speech.text,
                source_text=source_text,
                source_start=at if source_start is None else source_start,
                source_end=(at + speech.duration) if source_end is None else source_end,
                speed=speed,
            )
            self.clips.append(clip)
            self._starts.append(start)  # after the clip: a reader that sees n starts finds n clips
        return clip

    def release_before(self, t: float) -> int:
        """Drop the audio of clips that ended before `t`, keeping their place, text and phonemes: a live call
        plays each clip once, and kept audio grows by ~256 KB a second of speech (460 MB in an hour's call).
        Reading those times then gives silence. Returns how many clips were released now."""
        released = 0
        with self._lock:
            for k in range(len(self.clips) - 1, -1, -1):
                clip = self.clips[k]
                if clip.end >= t:
                    continue
                if clip.released:
                    break  # released oldest first: everything before is released already
                empty = np.zeros(0, np.float32)
                speech = Speech(empty, clip.speech.sample_rate, clip.speech.text, clip.speech.phonemes)
                self.clips[k] = replace(clip, speech=speech, pcm16k=empty, duration=clip.duration)
                released += 1
        return released

    def _overlapping(self, start: float, end: float) -> list[DubClip]:
        """Clips playing during [start, end). Runs several times per video frame, so no copy and no scan:
        clips are only appended, start in ascending order and never overlap, so a bisect finds the first."""
        n = len(self._starts)
        i = max(bisect.bisect_right(self._starts, start, 0, n) - 1, 0)
        found = []
        for k in range(i, n):
            clip = self.clips[k]
            if clip.start >= end:
                break
            if clip.end > start:
                found.append(clip)
        return found

    def window(self, start: float, end: float) -> np.ndarray:
        """16 kHz PCM for [start, end): silence outside the clips (the `AudioTimeline` contract)."""
        return self._mix(start, end, SAMPLE_RATE, lambda c: c.pcm16k)

    def render(self, start: float, end: float) -> np.ndarray:
        """Output-rate PCM for [start, end)."""
        return self._mix(start, end, self.output_rate, lambda c: c.speech.pcm)

    def _mix(self, start: float, end: float, rate: int, pcm_of) -> np.ndarray:
        a = int(round(start * rate))
        n = max(int(round(end * rate)) - a, 0)
        out = np.zeros(n, np.float32)
        for clip in self._overlapping(start, end):
            pcm = pcm_of(clip)
            c0 = int(round(clip.start * rate))
            lo, hi = max(a, c0), min(a + n, c0 + len(pcm))
            if hi > lo:
                out[lo - a : hi - a] += pcm[lo - c0 : hi - c0]
        return out

    def phonemes(self, start: float, end: float) -> list[Phoneme]:
        return [p for c in self._overlapping(start, end) for p in c.speech.phonemes if p.end > start and p.start < end]

    def speaking(self, t: float) -> bool:
        """Whether a translated clip is playing at time t."""
        return bool(self._overlapping(t, t + 1e-6))
