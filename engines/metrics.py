"""Per-stage timing: every stage reports how long it took, so latency is visible everywhere."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class StageTimes:
    """Wall-clock seconds and call counts per named stage (thread-safe enough for += on floats)."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @contextmanager
    def stage(self, name: str, logger: logging.Logger | None = None) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed
            self.calls[name] += 1
            if logger is not None:
                logger.debug("%s took %.1f ms", name, elapsed * 1000)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds
        self.calls[name] += 1

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {k: {"seconds": round(v, 4), "calls": self.calls[k]} for k, v in self.seconds.items()}

    def table(self, media_seconds: float | None = None) -> str:
        """A plain-text table of the stages, with the ratio to the media's duration when given."""
        rows = [["stage", "calls", "seconds", "× real time" if media_seconds else ""]]
        for name, secs in self.seconds.items():
            ratio = f"{secs / media_seconds:.3f}" if media_seconds else ""
            rows.append([name, str(self.calls[name]), f"{secs:.2f}", ratio])
        return format_table(rows)


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100) of `values`, interpolated between the two nearest ranks as numpy's
    default does; None when there are no values. The one percentile of `--stats`, `/stats` and benchmarks."""
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * min(max(float(q), 0.0), 100.0) / 100.0
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


class RollingStats:
    """The last `size` samples of each named latency (seconds): p50/p95 for `--stats`, `/stats`, benchmarks."""

    def __init__(self, size: int = 1000):
        from collections import deque

        self._size = size
        self._samples: dict[str, deque] = {}

    def add(self, name: str, seconds: float) -> None:
        from collections import deque

        self._samples.setdefault(name, deque(maxlen=self._size)).append(float(seconds))

    def percentile(self, name: str, q: float) -> float | None:
        return percentile(self._samples.get(name, ()), q)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50_ms", "p95_ms", "n"}} over the samples kept."""
        out = {}
        for name, values in list(self._samples.items()):
            if values:
                out[name] = {"p50_ms": round(1000 * (self.percentile(name, 50) or 0.0), 1),
                             "p95_ms": round(1000 * (self.percentile(name, 95) or 0.0), 1), "n": len(values)}
        return out


def format_table(rows: list[list[str]], max_width: int = 60) -> str:
    """Left-aligned columns with a rule under the header row (stage timings, `livedub models`, benchmarks)."""
    widths = [min(max(len(r[i]) for r in rows), max_width) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@contextmanager
def timed(name: str, logger: logging.Logger) -> Iterator[None]:
    """Log how long a block took at INFO level."""
    start = time.perf_counter()
    try:
        yield
    finally:
        logger.info("%s: %.0f ms", name, (time.perf_counter() - start) * 1000)
