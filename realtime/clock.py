"""The two clocks one pipeline runs on.

A session never sleeps and never paces: it asks its clock what time it is and where a finished clip goes.
- `VirtualClock` (files): time is wherever the media is; a clip starts at its source sentence's start.
- `WallClock` (live): time is the monotonic clock since the session began; a clip starts when it is ready,
  right after the one playing. The sinks (devices, WebRTC) pace output by this clock.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    live: bool

    def now(self) -> float:
        """Seconds on the session's timeline."""
        ...

    def clip_start(self, source_start: float) -> float:
        """Where a translated clip of speech that began at `source_start` is placed (the DubTrack then pushes
        it past the clip still playing)."""
        ...


class VirtualClock:
    """File time: as fast as the machine allows; `advance` follows the media pushed."""

    live = False

    def __init__(self) -> None:
        self._t = 0.0

    def now(self) -> float:
        return self._t

    def advance(self, t: float) -> None:
        self._t = max(self._t, float(t))

    def clip_start(self, source_start: float) -> float:
        return float(source_start)


class WallClock:
    """Live time: monotonic seconds since `origin` (the session start unless given)."""

    live = True

    def __init__(self, origin: float | None = None):
        self.origin = time.monotonic() if origin is None else float(origin)

    def now(self) -> float:
        return time.monotonic() - self.origin

    def clip_start(self, source_start: float) -> float:
        return self.now()


class SteppedClock:
    """Live placement on time that moves only when told: live pacing run exactly, whatever the machine's
    speed (tests, and replaying a call's timing). Model calls take no time on it."""

    live = True

    def __init__(self, t: float = 0.0) -> None:
        self._t = float(t)

    def now(self) -> float:
        return self._t

    def set(self, t: float) -> None:
        self._t = max(self._t, float(t))

    def clip_start(self, source_start: float) -> float:
        return self._t
