"""What a `livedub serve` node can still take: one figure for admission (`/offer`), operators (`/health`,
`/stats`) and the load balancer's agent check, so all three always agree."""

from __future__ import annotations

from dataclasses import asdict, dataclass

READY, FULL, DRAINING = "ready", "full", "draining"


@dataclass(frozen=True)
class Capacity:
    """`sessions_more`: calls that still fit at full quality (never above `max_sessions - sessions`);
    `state`: "ready" (takes calls), "full" (takes none until one ends) or "draining" (stopping: takes none)."""

    sessions: int
    max_sessions: int
    sessions_more: int
    state: str

    @property
    def weight(self) -> int:
        """Capacity left as a percentage of the node's whole (0-100): a balancer's weight for new calls."""
        if self.state != READY:
            return 0
        return max(1, min(100, round(100 * self.sessions_more / max(self.max_sessions, 1))))

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "weight": self.weight}


def capacity(sessions: int, max_sessions: int, *, draining: bool = False) -> Capacity:
    """The node's capacity from its session count and cap alone (measured headroom refines `sessions_more`)."""
    more = max(0, max_sessions - sessions)
    state = DRAINING if draining else (READY if more else FULL)
    return Capacity(sessions, max_sessions, more if state == READY else 0, state)
