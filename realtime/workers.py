"""Model workers: one named thread per model, awaited from asyncio.

A whisper pass takes a second; a video frame has 40 ms. Every model call therefore runs on its model's own
thread and the event loop only awaits it, so media tasks never wait behind recognition. One thread per model
also means per-stream state (a streaming recognizer, a lip engine's mouth bank) is only ever touched by one
thread, so it needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def lower_priority(nice: int) -> None:
    """Make the calling thread (and every thread or process it starts: CTranslate2's pool, Apertium) yield the
    CPU to media threads. Linux niceness is per thread; elsewhere this does nothing."""
    if nice and hasattr(os, "setpriority"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class ModelWorker:
    """A single-thread executor with a name (it shows in thread dumps and `stats()`).

    `nice` > 0 lowers the thread's CPU priority: on a 2-core laptop a whisper pass then takes the cores only
    while no frame needs them, so video keeps its rate while recognition runs.
    """

    def __init__(self, name: str, *, nice: int = 0):
        self.name = name
        self.nice = nice
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"livedub-{name}",
                                            initializer=lower_priority, initargs=(nice,))
        self._lock = threading.Lock()
        self.busy_seconds = 0.0
        self.calls = 0
        self.closed = False
        # start the thread now: started lazily by the first `run`, its start-up would be paid on the event loop
        self._executor.submit(int).result()

    def _timed(self, fn: Callable[..., T], *args: object) -> T:
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.busy_seconds += time.perf_counter() - start
                self.calls += 1

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run `fn(*args)` on this worker's thread and await the result (exceptions propagate)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._timed, fn, *args)

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """The same from plain threads (file mode): blocks until done."""
        return self._executor.submit(self._timed, fn, *args).result()

    def close(self, wait: bool = True) -> None:
        self.closed = True
        self._executor.shutdown(wait=wait, cancel_futures=True)
