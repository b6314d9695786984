"""The one A/V rule of live output: translated audio is held back by the measured per-frame video latency.

Video is never delayed: each frame goes out as soon as its mouth is drawn, `latency` later than its capture
time. The mouth of the frame captured at session time t speaks the dub at t, so the dub's sound at t must be
heard `latency` later too, or sound leads the mouth (ITU-R BT.1359: +45 ms is noticeable, -125 ms is not).
The delay follows the p95 of the session's "video" stage, capped so a stall cannot hold speech back for long.
Every runner (devices, WebRTC) and every audio sink read the delay from here.
"""

from __future__ import annotations

from typing import Protocol

STAGE = "video"  # the session's per-frame latency (capture → frame drawn)
MAX_AUDIO_DELAY_S = 1.0  # the audio is never held back more than this, whatever the video costs
UPDATE_EVERY_S = 1.0  # how often runners call `update`


class _Latency(Protocol):
    def percentile(self, stage: str, q: float) -> float | None: ...


class _Session(Protocol):
    latency: _Latency
    audio_delay: float


class AvSync:
    """Holds the current audio delay of one session; `update()` re-reads the measured video latency."""

    def __init__(self, session: _Session, *, cap_s: float = MAX_AUDIO_DELAY_S):
        self.session = session
        self.cap_s = cap_s
        self.delay = 0.0  # seconds the translated audio is held back

    def update(self) -> float:
        """Follow the p95 of the per-frame latency (capped); the session learns it too (it waits that long
        after the last clip before a finished file run ends)."""
        p95 = self.session.latency.percentile(STAGE, 95)
        if p95 is not None:
            self.delay = round(min(max(float(p95), 0.0), self.cap_s), 3)
            self.session.audio_delay = self.delay
        return self.delay

    def stats(self) -> dict[str, float]:
        return {"audio_delay_ms": round(1000 * self.delay, 1)}
