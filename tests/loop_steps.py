"""Measure event-loop steps: each callback or task step of one loop thread that runs longer than a threshold,
with the CPU time the loop thread and the whole process used in it, so a failure says why: the loop ran heavy
code (loop CPU ≈ wall), another thread of this process held the GIL or the cores (process CPU high, loop CPU
low), or the process was off the CPU while other programs ran (both low)."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

SLOW_STEP_S = 0.05  # a loop step longer than this stalls media (over one frame interval at 25 fps)


@dataclass(frozen=True)
class SlowStep:
    wall_s: float
    cpu_s: float  # the loop thread's CPU time during the step
    process_cpu_s: float  # every thread of this process, during the step
    what: str
    at: float  # time.monotonic() when it ended

    def __str__(self) -> str:
        return (f"{self.what}: {1000 * self.wall_s:.0f} ms (CPU: loop thread {1000 * self.cpu_s:.0f} ms, "
                f"process {1000 * self.process_cpu_s:.0f} ms)")


def _describe(handle: asyncio.Handle) -> str:
    callback = handle._callback
    if callback is None:
        return "a cancelled callback"
    task = getattr(callback, "__self__", None)
    if isinstance(task, asyncio.Task):
        coro = task.get_coro()
        return f"task {task.get_name()} ({getattr(coro, '__qualname__', coro)})"
    return f"callback {getattr(callback, '__qualname__', callback)}"


class LoopSteps:
    """`with LoopSteps(thread) as steps:` records every step over `threshold` run by the loop on `thread`
    (default: the calling thread) in `steps.slow`."""

    def __init__(self, thread: threading.Thread | None = None, threshold: float = SLOW_STEP_S):
        self.ident = (thread or threading.current_thread()).ident
        self.threshold = threshold
        self.slow: list[SlowStep] = []
        self.steps = 0
        self._original = None

    def __enter__(self) -> LoopSteps:
        original = self._original = asyncio.events.Handle._run
        ident, threshold, slow = self.ident, self.threshold, self.slow

        def timed(handle: asyncio.Handle) -> None:
            if threading.get_ident() != ident:
                return original(handle)
            wall0, cpu0, process0 = time.perf_counter(), time.thread_time(), time.process_time()
            try:
                return original(handle)
            finally:
                self.steps += 1
                wall = time.perf_counter() - wall0
                if wall > threshold:
                    slow.append(SlowStep(wall, time.thread_time() - cpu0, time.process_time() - process0,
                                         _describe(handle), time.monotonic()))

        asyncio.events.Handle._run = timed
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.events.Handle._run = self._original
