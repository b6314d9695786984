"""The one A/V rule of live output: translated audio is held back by the measured per-frame video latency.

Video is never delayed: each frame goes out as soon as its mouth is drawn, `latency` later than its capture
time. The mouth of the frame captured at session time t speaks the dub at t, so the dub's sound at t must be
heard `latency` later too. Frames do not all take as long, and people notice sound that leads the picture
much sooner than sound that lags it (ITU-R BT.1359: 45 ms of lead, 125 ms of lag), so the delay is the median
frame latency, raised until the slowest frames (p95) lead by no more than 45 ms: on a steady machine that is
the median, on a loaded one the sound lags the typical frame by p95 - p50 - 45 ms instead of p95 - p50 (the
p95 alone made it +117 ms on a loaded CI run). Capped, so a stall cannot hold speech back for long.
Every runner (devices, WebRTC) and every audio sink read the delay from here.
"""

from __future__ import annotations

from typing import Protocol

STAGE = "video"  # the session's per-frame latency (capture → frame drawn)
MAX_AUDIO_DELAY_S = 1.0  # the audio is never held back more than this, whatever the video costs
NOTICED_LEAD_S = 0.045  # sound this much ahead of the mouth is noticed (ITU-R BT.1359)
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
        """Follow the per-frame latency (the module's rule, capped); the session learns the delay too (it waits
        that long after the last clip before a finished file run ends)."""
        p50 = self.session.latency.percentile(STAGE, 50)
        p95 = self.session.latency.percentile(STAGE, 95)
        if p50 is not None and p95 is not None:
            delay = max(float(p50), float(p95) - NOTICED_LEAD_S, 0.0)
            self.delay = round(min(delay, self.cap_s), 3)
            self.session.audio_delay = self.delay
        return self.delay

    def stats(self) -> dict[str, float]:
        return {"audio_delay_ms": round(1000 * self.delay, 1)}
