"""When a translated clip plays and how fast: the pacing policy of each clock, from `DubConfig` only.

File mode (isochrony): a clip starts where its source sentence began and is fitted into the time before the
next sentence. Live mode: a clip starts when it is ready, after the one playing, at its natural pace (a pause
is free); once the session falls behind it is fitted into the time the speaker took, and past a longer lag
the speed cap rises to the catch-up speed so the delay cannot drift over a monologue.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import DubConfig
from ..dubtrack import MIN_GAP, DubTrack
from .units import Unit

BEHIND_S = 0.3  # translated speech still to play beyond this: the next clip is fitted, not natural
MERGE_BACKLOG_S = 1.0  # translated speech queued beyond this: waiting units are said as one clip
TAIL_SLACK_S = 0.6  # file mode: the last clip may run this far past the source speech before it is sped up
MIN_SLOT_S = 0.3


@dataclass(frozen=True)
class Fit:
    """The slot a clip should fit (None: its natural length) and the fastest it may be spoken."""

    slot: float | None
    max_speed: float


@dataclass(frozen=True)
class Pacing:
    min_speed: float
    max_speed: float
    catch_up_speed: float
    catch_up_after: float

    @classmethod
    def of(cls, config: DubConfig) -> Pacing:
        return cls(config.min_speed, config.max_speed, max(config.catch_up_speed, config.max_speed),
                   config.catch_up_after)

    # -- file ---------------------------------------------------------------------------------------

    def file_fit(self, unit: Unit, next_start: float | None, track: DubTrack) -> Fit:
        """The time from where the clip can start to the next sentence (or a little past the speech's end)."""
        end = next_start if next_start is not None else unit.end + TAIL_SLACK_S
        start = max(unit.start, track.end + MIN_GAP) if track.clips else unit.start
        return Fit(max(end - start, MIN_SLOT_S), self.max_speed)

    # -- live ---------------------------------------------------------------------------------------

    def live_fit(self, unit: Unit, backlog: float, units_waiting: bool) -> Fit:
        """`backlog`: seconds of translated speech still to play. Behind → fit into the speaker's time less
        the backlog; far behind → the catch-up cap."""
        cap = self.catch_up_speed if backlog > self.catch_up_after else self.max_speed
        if backlog > BEHIND_S or units_waiting:
            return Fit(max(max(unit.end - unit.start, 0.5) - backlog, MIN_SLOT_S), cap)
        return Fit(None, cap)

    @staticmethod
    def merge_waiting(backlog: float) -> bool:
        """Whether units queued behind a long backlog are said as one (fewer, longer clips catch up)."""
        return backlog > MERGE_BACKLOG_S
