"""Session events and the hub that hands them to every reader (captions, logs, datachannels).

Readers subscribe with `events()`; each gets its own bounded queue, so a slow reader loses its oldest events
and never holds up the session or another reader. Any thread may emit: events from worker threads hop onto
the loop that owns the queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

log = logging.getLogger("livedub.events")

EVENT_QUEUE = 512  # events kept for a slow reader before the oldest are dropped


@dataclass(frozen=True)
class SessionEvent:
    """Something a caption, a log or a datachannel shows. `type`: word (committed source word), partial (the
    uncommitted hypothesis), sentence (a source unit and its translation, placed at `start`), language
    (detected source language), error."""

    type: str
    text: str = ""
    translation: str = ""
    language: str = ""
    start: float = 0.0  # session time: word start, or where the translated clip plays
    end: float = 0.0
    at: float = 0.0  # session time when it happened
    route: str = ""  # sentence: which translators made it (e.g. "apertium eng-spa")

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class EventHub:
    """Fan-out of `SessionEvent`s to subscribers on one event loop."""

    def __init__(self) -> None:
        self._subscribers: list[asyncio.Queue] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop readers live on: emits from other threads are handed to it."""
        self._loop = loop

    def subscribe(self) -> AsyncIterator[SessionEvent]:
        """Events from now on, for one reader (each call is its own subscription)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=EVENT_QUEUE)
        self._subscribers.append(queue)
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()

        async def stream() -> AsyncIterator[SessionEvent]:
            try:
                while True:
                    event = await queue.get()
                    if event is None:
                        return
                    yield event
            finally:
                with contextlib.suppress(ValueError):
                    self._subscribers.remove(queue)

        return stream()

    def emit(self, event: SessionEvent) -> None:
        """From any thread."""
        loop = self._loop
        if loop is None:
            self._deliver(event)  # no loop yet: nobody is waiting on a queue, they are only filled
            return
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._deliver(event)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed under a worker thread
                loop.call_soon_threadsafe(self._deliver, event)

    def _deliver(self, event: SessionEvent) -> None:
        log.debug("event %s", event)
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription."""
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(None)
