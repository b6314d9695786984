"""Live speech: the streaming unit source and the live pacing loop around the shared `SpeechPath`.

`StreamingUnits` takes the speaker's audio from any thread, runs streaming recognition passes on the ASR
worker and cuts the committed words into units (and word / partial / language events). `LiveSpeech` says
each unit as soon as it can: the language pair and the voice are resolved on the MT and TTS workers (a
mid-call switch to a new language loads its models there, never on the event loop), then MT, TTS and
placement follow the live pacing. The loop itself only awaits workers and moves small objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from livedub.engines.asr.streaming import StreamingRecognizer
from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.errors import LivedubError
from livedub.engines.metrics import RollingStats
from livedub.engines.text_join import join_words
from livedub.engines.types import Word

from ..clock import Clock
from ..events import EventHub, SessionEvent
from ..pool import ModelPool
from .pacing import Pacing
from .path import SpeechPath
from .units import Unit, UnitBuilder

log = logging.getLogger("livedub.speech")

ErrorFn = Callable[[str, BaseException], None]

# a live clip's audio is kept this long after it ended: lips, captions and the mix read only the last seconds
KEEP_PLAYED_S = 30.0

class StreamingUnits:
    """Audio in (16 kHz, any thread) → streaming recognition on the ASR worker → units to `on_unit`."""

    def __init__(self, recognizer: StreamingRecognizer, pool: ModelPool, clock: Clock, hub: EventHub,
                 latency: RollingStats, *, on_unit: Callable[[Unit], None], on_error: ErrorFn,
                 language: str | None = None):
        self.streamer = recognizer
        self.pool, self.clock, self.hub, self.latency = pool, clock, hub, latency
        self.on_unit, self.on_error = on_unit, on_error
        self.language = language  # held once detected
        self._builder = UnitBuilder(language=language or "en")
        self._pending: deque[np.ndarray] = deque()
        self._pending_lock = threading.Lock()
        self._origin: float | None = None  # session time of the first sample pushed
        self._partial = ""  # the last partial said
        self._ready = asyncio.Event()
        self._busy = asyncio.Lock()  # one pass at a time; `finish` takes it to drain
        self._loop: asyncio.AbstractEventLoop | None = None

    def push(self, pcm16k: np.ndarray, pts: float) -> None:
        """Any thread; never blocks."""
        with self._pending_lock:
            if self._origin is None:
                self._origin = float(pts)
            self._pending.append(pcm16k)
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a device thread
                self._loop.call_soon_threadsafe(self._ready.set)

    def pending_seconds(self) -> float:
        with self._pending_lock:
            return sum(len(c) for c in self._pending) / SAMPLE_RATE

    def _take_pending(self) -> np.ndarray | None:
        with self._pending_lock:
            chunks = list(self._pending)
            self._pending.clear()
        return np.concatenate(chunks) if chunks else None

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        asr = self.pool.worker("asr")
        while True:
            await self._ready.wait()
            self._ready.clear()
            async with self._busy:
                pcm = self._take_pending()
                if pcm is None:
                    continue
                try:
                    started = time.perf_counter()
                    words = await asr.run(self.streamer.feed, pcm)
                    self.latency.add("asr", time.perf_counter() - started)
                except Exception as exc:
                    self.on_error("asr", exc)
                    continue
                self._take_words(words, speaking=self.streamer.speaking)

    async def finish(self) -> None:
        """The source has ended: recognise what is pending, commit what the recogniser still holds."""
        asr = self.pool.worker("asr")
        async with self._busy:
            pcm = self._take_pending()
            if pcm is not None:
                self._take_words(await asr.run(self.streamer.feed, pcm), speaking=self.streamer.speaking)
            self._take_words(await asr.run(self.streamer.flush), speaking=False)
            for unit in self._builder.flush(origin=self._origin or 0.0):
                self.on_unit(unit)

    def _take_words(self, words: list[Word], *, speaking: bool) -> None:
        origin = self._origin or 0.0
        now = self.clock.now()
        if self.language is None and (detected := self.streamer.detected_language):
            self.language = self._builder.language = detected
            self.streamer.language = detected  # held: later utterances are heard in it too
            self.hub.emit(SessionEvent("language", language=detected, at=now))
            log.info("source language: %s (held for the session)", detected)
        for w in words:
            log.info("word %r %.2f–%.2f s (committed at %.2f s)", w.text.strip(), origin + w.start,
                     origin + w.end, now)
            self.hub.emit(SessionEvent("word", text=w.text.strip(), start=origin + w.start, end=origin + w.end,
                                       at=now))
        hypothesis = self.streamer.hypothesis
        partial = join_words(w.text for w in hypothesis)
        if partial and partial != self._partial:  # each 20 ms of audio feeds a pass: say a partial once
            self.hub.emit(SessionEvent("partial", text=partial, at=now))
        self._partial = partial
        for unit in self._builder.add(words, origin=origin, utterance_over=not speaking and not hypothesis):
            self.on_unit(unit)


class LiveSpeech:
    """Units → clips on the wall clock (or a stepped test clock): clips start when ready, after the one
    playing; behind → fitted into the speaker's time; far behind → waiting units merged, catch-up cap."""

    def __init__(self, path: SpeechPath, pool: ModelPool, clock: Clock, hub: EventHub, latency: RollingStats,
                 *, on_error: ErrorFn, source_language: Callable[[], str | None]):
        self.path, self.pool, self.clock, self.hub, self.latency = path, pool, clock, hub, latency
        self.on_error = on_error
        self.source_language = source_language
        self.muted = False
        self._units: asyncio.Queue[Unit] = asyncio.Queue()
        self._in_flight = 0  # units queued or being said
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def units_waiting(self) -> int:
        return self._units.qsize()

    def queue(self, unit: Unit) -> None:
        """On the loop."""
        log.info("unit %.2f–%.2f s: %s", unit.start, unit.end, unit.text)
        self._in_flight += 1
        self._idle.clear()
        self._units.put_nowait(unit)

    async def idle(self) -> None:
        """Until every queued unit has been said (placed on the track)."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            unit = await self._units.get()
            taken = 1
            while not self._units.empty() and Pacing.merge_waiting(self._backlog()):
                unit = unit.merged(self._units.get_nowait())
                taken += 1
            try:
                await self.say(unit)
            except Exception as exc:  # one unit lost, the call goes on
                self.on_error("speech", exc)
            finally:
                self._in_flight -= taken
                if self._in_flight <= 0 and self._units.empty():
                    self._idle.set()

    def _backlog(self) -> float:
        return max(self.path.track.end - self.clock.now(), 0.0)

    async def say(self, unit: Unit) -> None:
        if self.muted or not unit.text.strip():
            return
        path = self.path
        source = self.source_language() or unit.language or "en"
        target = path.config.target
        mt, tts = self.pool.worker("mt"), self.pool.worker("tts")
        started = time.perf_counter()
        translation = await mt.run(path.translation, source, target)
        text = unit.text
        if translation.via_whisper:
            text = await self.pool.worker("asr").run(path.hear_in_english, unit, source)
        if translation.translator is not None:
            text = await mt.run(path.translate, translation, text)
        self.latency.add("mt", time.perf_counter() - started)
        if not text.strip():
            return
        started = time.perf_counter()
        if path.pitch_hz is None:
            await tts.run(path.learn_pitch)
        voice = await tts.run(path.voice, target)
        fit = Pacing.of(path.config).live_fit(unit, self._backlog(), not self._units.empty())
        speech, speed = await tts.run(path.speak, voice, text, fit)
        self.latency.add("tts", time.perf_counter() - started)
        clip = path.place(unit, text, speech, speed, self.clock.clip_start(unit.start))
        path.track.release_before(self.clock.now() - KEEP_PLAYED_S)  # a long call's memory stays flat
        self.latency.add("onset", max(clip.start - unit.end, 0.0))
        log.info("clip %.2f–%.2f s ×%.2f (%.2f s after the source ended) via %s: %s", clip.start, clip.end, speed,
                 clip.start - unit.end, translation.name, text)
        self.hub.emit(SessionEvent("sentence", text=unit.text, translation=text, language=target,
                                   start=clip.start, end=clip.end, at=self.clock.now(), route=translation.name))


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    """Cancel and await tasks (a task that failed is logged, not raised)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await task
            except LivedubError as exc:
                log.warning("%s", exc)
            except Exception:
                log.exception("task %s failed", task.get_name())
