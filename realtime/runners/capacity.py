"""What a `livedub serve` node can still take: one figure for admission (`/offer`), operators (`/health`,
`/stats`) and the load balancer's agent check, so all three always agree.

The figure comes from measured headroom: what one call costs this machine (`SessionCost`: the CPU time of a
camera frame through the face path and the codecs, times the frames a second the caller sends, plus the
share of the model workers — recognition passes, translation, speech — one call keeps busy) against the
cores there are. A node first fits calls at full quality; when the next one does not fit, it asks the
running callers to send less (`REDUCED`: fewer frames) so one more fits; past that it is full. `--max-sessions`
stays the upper bound. Pure functions: the measuring lives in `headroom.py`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

READY, FULL, DRAINING = "ready", "full", "draining"
RESERVE = 0.15  # share of the cores kept free: the event loop, RTP/ICE, audio, the operating system
RESTORE_RESERVE = 0.3  # free share needed before callers asked to send less are told to send in full again


@dataclass(frozen=True)
class Quality:
    """What callers are asked to send: at most `max_fps` frames a second, at most `max_width` pixels wide
    (None: as the camera gives)."""

    name: str
    max_fps: int
    max_width: int | None = None

    def as_json(self) -> dict[str, object]:
        return {"quality": self.name, "max_fps": self.max_fps, "max_width": self.max_width}


FULL_QUALITY = Quality("full", 30)  # a browser camera's default rate
REDUCED = Quality("reduced", 15, 640)  # what `send_less` asks for
# Only the frame rate is counted in the cost: the face path's cost barely follows the width at 640 and
# below (the tracker works on its own small copy), so a smaller picture is not counted as room.


@dataclass(frozen=True)
class SessionCost:
    """What one call costs this node, measured: `frame_s` CPU seconds per camera frame (face path + codecs),
    `model_duty` the share of one core the model workers spend on one call (busy seconds per second)."""

    frame_s: float
    model_duty: float = 0.0
    source: str = "measured"  # "warm-up", "calls" or "given": where the figure came from

    def cores(self, quality: Quality) -> float:
        """Cores one call keeps busy at `quality`."""
        return self.frame_s * quality.max_fps + self.model_duty


def sessions_fit(cost: SessionCost, cores: float, quality: Quality, *, reserve: float = RESERVE) -> int:
    """Calls this machine carries at `quality`: the cores (less the reserve) over one call's share, and none
    when a single frame takes longer than its interval (a call's frames are drawn one at a time)."""
    if cost.frame_s * quality.max_fps > 1.0:
        return 0
    per_call = cost.cores(quality)
    if per_call <= 0:
        raise ValueError(f"a call cannot cost nothing: {cost}")
    return max(0, math.floor(cores * (1.0 - reserve) / per_call + 1e-9))


@dataclass(frozen=True)
class Fit:
    """Calls that fit in all at each quality (full ≤ reduced)."""

    full: int
    reduced: int


def fit_of(cost: SessionCost, cores: float, *, reserve: float = RESERVE) -> Fit:
    full = sessions_fit(cost, cores, FULL_QUALITY, reserve=reserve)
    return Fit(full, max(full, sessions_fit(cost, cores, REDUCED, reserve=reserve)))


def all_fit_at_full(sessions: int, cost: SessionCost | None, cores: float, *, reserve: float = RESERVE) -> bool:
    """Every running call fits at full quality, leaving `reserve` of the cores free."""
    return cost is None or sessions_fit(cost, cores, FULL_QUALITY, reserve=reserve) >= sessions


@dataclass(frozen=True)
class Capacity:
    """`sessions_more`: calls that still fit (never above `max_sessions - sessions`), at `quality` for the
    next one ("full", or "reduced": the running callers are asked to send less first); `sessions_more_full`:
    of those, the ones that fit with everyone at full quality. `state`: "ready" (takes calls), "full"
    (takes none until one ends) or "draining" (stopping: takes none). `per_call_cores` and `cost_source`
    say what the figure rests on (0 and "cap" when only the cap is known)."""

    sessions: int
    max_sessions: int
    sessions_more: int
    state: str
    sessions_more_full: int = 0
    quality: str = FULL_QUALITY.name
    max_fps: int = FULL_QUALITY.max_fps
    max_width: int | None = FULL_QUALITY.max_width
    per_call_cores: float = 0.0
    cost_source: str = "cap"

    @property
    def weight(self) -> int:
        """Capacity left as a percentage of the node's whole (0-100): a balancer's weight for new calls."""
        if self.state != READY:
            return 0
        return max(1, min(100, round(100 * self.sessions_more / max(self.max_sessions, 1))))

    @property
    def reduced(self) -> bool:
        """The next call fits only once the callers send less."""
        return self.quality == REDUCED.name

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "weight": self.weight}


def capacity(sessions: int, max_sessions: int, *, draining: bool = False, cost: SessionCost | None = None,
             cores: float = 0.0) -> Capacity:
    """The node's capacity from its session count and cap, refined by the measured `cost` of one call on
    `cores` when known."""
    cap_more = max(0, max_sessions - sessions)
    more, more_full, quality, per_call = cap_more, cap_more, FULL_QUALITY, 0.0
    if cost is not None:
        fit = fit_of(cost, cores)
        more_full = min(cap_more, max(0, fit.full - sessions))
        more = min(cap_more, max(0, fit.reduced - sessions))
        if sessions == 0 and cap_more:
            more = max(more, 1)  # a node with no call takes one, however slow: the best this machine can do
        quality = FULL_QUALITY if more_full else REDUCED
        per_call = round(cost.cores(quality), 3)
    state = DRAINING if draining else (READY if more else FULL)
    if state != READY:
        more = more_full = 0
    return Capacity(sessions, max_sessions, more, state, more_full, quality.name, quality.max_fps,
                    quality.max_width, per_call, cost.source if cost is not None else "cap")
