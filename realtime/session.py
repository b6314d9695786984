"""`DubSession`: one speaker's call or one file, on a clock.

Audio in → streaming recognition → units that translate well → MT → TTS → clips on the session's DubTrack;
video in → face tracking → the mouth redrawn from the DubTrack audio at the frame's time → video out. File
mode (virtual clock) fills the track from the whole recording first and then pushes frames as fast as the
machine allows; live mode (wall clock) does both as media arrives, with every model call on its model's
worker thread so the event loop only moves media. The session never paces output: sinks do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from livedub.engines.audio import SAMPLE_RATE, StreamResampler
from livedub.engines.errors import LivedubError
from livedub.engines.face import Face, FaceTracker
from livedub.engines.lipsync import AudioTimeline, LipEngine
from livedub.engines.metrics import RollingStats, StageTimes
from livedub.engines.text_join import join_words
from livedub.engines.types import Word

from .clock import Clock, VirtualClock
from .config import OUTPUT_RATE, DubConfig
from .dubtrack import DubTrack
from .factory import ModelPool
from .speech import ClipMaker
from .units import Unit, UnitBuilder

log = logging.getLogger("livedub.session")

EVENT_QUEUE = 512  # events kept for a slow reader before the oldest are dropped
ORIGINAL_KEEP_S = 30.0  # seconds of the speaker's own voice kept for --keep-original (live)
MERGE_BACKLOG_S = 1.0  # translated speech queued beyond this: waiting units are merged into one clip
BEHIND_S = 0.3  # translated speech still to play beyond this: the next clip is sped up to catch up
CATCH_UP_S = 2.5  # lag beyond this (a monologue in a longer language): the speed cap rises to CATCH_UP_SPEED
CATCH_UP_SPEED = 1.7  # still intelligible, and what keeps the lag from drifting over a long monologue


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

    def as_dict(self) -> dict:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class _AudioRing:
    """The last `keep_s` seconds of the speaker's own voice, addressed by session time (--keep-original, pitch,
    whisper's translate task). A fixed circular buffer: pushing 20 ms never copies the whole history."""

    def __init__(self, rate: int, keep_s: float = ORIGINAL_KEEP_S):
        self.rate = int(rate)
        self._buf = np.zeros(int(keep_s * rate), np.float32)
        self._written = 0  # samples ever written; sample k of the stream lives at k % len(buf)
        self.start: float | None = None  # session time of stream sample 0
        self._lock = threading.Lock()

    def append(self, pcm: np.ndarray, pts: float) -> None:
        n, size = len(pcm), len(self._buf)
        with self._lock:
            if self.start is None:
                self.start = float(pts)
            if n >= size:
                pcm = pcm[-size:]
                self._written += n - size
                n = size
            at = self._written % size
            first = min(n, size - at)
            self._buf[at : at + first] = pcm[:first]
            self._buf[: n - first] = pcm[first:]
            self._written += n

    def window(self, t0: float, t1: float) -> np.ndarray:
        n = max(int(round((t1 - t0) * self.rate)), 0)
        out = np.zeros(n, np.float32)
        with self._lock:
            if self.start is None:
                return out
            size = len(self._buf)
            a = int(round((t0 - self.start) * self.rate))
            lo, hi = max(a, self._written - size, 0), min(a + n, self._written)
            if hi > lo:
                out[lo - a : hi - a] = self._buf[np.arange(lo, hi) % size]
        return out

    def recent(self, seconds: float) -> np.ndarray:
        """The last `seconds` heard."""
        with self._lock:
            n = min(int(seconds * self.rate), self._written, len(self._buf))
            end = self._written % len(self._buf)
            if n <= end:
                return self._buf[end - n : end].copy()
            return np.concatenate([self._buf[len(self._buf) - (n - end) :], self._buf[:end]])


class DubSession:
    """One dub: `push_audio`, `push_video`, `audio_out`, `events()`, `stats()`, `aclose()`.

    Live use: `await start()` inside the event loop, then push media as it arrives (`push_audio` from any
    thread, `await process_video(frame, pts)` per frame). File use: `dub_recording`/`use_timeline`, then
    `render` batches of frames.
    """

    def __init__(self, config: DubConfig, pool: ModelPool, clock: Clock | None = None, *, fps: float = 25.0,
                 video: bool = True, name: str = "session"):
        self.config = config
        self.pool = pool
        self.clock: Clock = clock or VirtualClock()
        self.fps = float(fps)
        self.name = name
        self.track = DubTrack(output_rate=config.output_rate or OUTPUT_RATE)
        self.timeline: AudioTimeline = self.track
        self.times = StageTimes()
        self.latency = RollingStats()
        self.muted = False
        self.frames_in = 0
        self.frames_passed = 0  # frames that went out unchanged because tracking or the engine failed
        self.source_language: str | None = config.source
        self.video_delay = 0.0  # seconds the audio is held back so sound never leads the mouth
        self._video = video
        self._engine: LipEngine | None = None
        self._tracker: FaceTracker | None = None
        self._original = _AudioRing(config.output_rate or OUTPUT_RATE) if config.keep_original > 0 else None
        self._heard = _AudioRing(SAMPLE_RATE)  # the last 30 s at 16 kHz: pitch, whisper's translate task
        self._pitch: float | None = None
        self._subscribers: list[asyncio.Queue] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._pending: deque[np.ndarray] = deque()  # 16 kHz audio not yet fed to the recognizer
        self._pending_lock = threading.Lock()
        self._audio_ready: asyncio.Event | None = None
        self._audio_origin: float | None = None  # session time of the first audio sample pushed
        self._resamplers: dict[int, StreamResampler] = {}
        self._units: asyncio.Queue[Unit | None] | None = None
        self._builder = UnitBuilder(language=config.source or "en")
        self._streamer = None
        self._video_worker = None
        self._idle: asyncio.Event | None = None
        self._backlog_units = 0
        self._closed = False
        self._errors: dict[str, int] = {}
        self.notes: list[str] = []  # one-line decisions a user should know (e.g. which voice speaks live)
        self._utterance_end: float | None = None  # session time the last unit's source speech ended

    # -- engines ------------------------------------------------------------------------------------

    @property
    def engine(self) -> LipEngine:
        if self._engine is None:
            self._engine = self.pool.lip_engine(self.config, video=self._video)
        return self._engine

    @engine.setter
    def engine(self, engine: LipEngine) -> None:
        self._engine = engine

    @property
    def tracker(self) -> FaceTracker:
        if self._tracker is None:
            self._tracker = self.pool.face_tracker(self.config, self.fps)
        return self._tracker

    def face_from(self, *, moving: bool) -> None:
        """Whether faces come from moving video (the exemplar engine can learn mouths) or a still photo."""
        if moving != self._video:
            self._video = moving
            self._engine = None

    def use_timeline(self, timeline: AudioTimeline) -> None:
        """Lips follow another timeline than the session's translations (lipsync: the user's audio)."""
        self.timeline = timeline

    def set_target(self, language: str) -> None:
        """Speak another language from the next unit on (a control message mid-call)."""
        from livedub.engines.mt.languages import check_language

        self.config = self.config.replace(target=check_language(language, "target"))

    def set_engine(self, name: str) -> None:
        """Draw with another lip engine from the next frame on."""
        self.config = self.config.replace(engine=name)
        self._engine = None

    # -- file mode ----------------------------------------------------------------------------------

    def dub_recording(self, pcm: np.ndarray, **kwargs):
        """The whole recording's speech onto the track at its source times (the virtual clock's speech half).

        Returns the `DubResult`; the session's track becomes the result's track."""
        from .speech import SpeechDubber

        dubber = SpeechDubber(self.config.target, source=self.config.source, pool=self.pool,
                              min_speed=self.config.min_speed, max_speed=self.config.max_speed,
                              output_rate=self.config.output_rate, times=self.times, mt=self.config.mt,
                              voice_engine=self.config.voice_engine)
        result = dubber.dub(pcm, **kwargs)
        self.track = result.track
        self.timeline = self.track
        self.source_language = result.source_language
        return result

    def dub_text(self, text: str):
        from .speech import dub_text

        result = dub_text(text, source=self.config.source or self.config.target, target=self.config.target,
                          pool=self.pool, output_rate=self.config.output_rate, times=self.times,
                          voice_engine=self.config.voice_engine)
        self.track = result.track
        self.timeline = self.track
        self.source_language = result.source_language
        return result

    def prefill_bank(self, frames: Sequence[np.ndarray], stamps: Sequence[float]) -> None:
        """Offer frames to the exemplar engine's bank before dubbing (the speaker's mouths from frame one)."""
        learn = getattr(self.engine, "learn", None)
        if learn is None:
            return
        tracker = self.pool.face_tracker(self.config, self.fps)  # its own: the session's starts at frame 0
        try:
            for frame, t in zip(frames, stamps, strict=True):
                learn([frame], [tracker.track(frame, timestamp=t)])
        finally:
            closer = getattr(tracker, "close", None)
            if closer is not None:
                closer()

    def track_face(self, frame: np.ndarray, pts: float) -> Face | None:
        with self.times.stage("track"):
            try:
                return self.tracker.track(frame, timestamp=pts)
            except Exception as exc:  # a tracker failure is one frame without a face, never a stop
                self._error("track", exc)
                return None

    def render(self, frames: Sequence[np.ndarray], faces: Sequence[Face | None],
               stamps: Sequence[float]) -> list[np.ndarray]:
        """Redraw the mouths of a batch of frames for the timeline audio at their times."""
        with self.times.stage("lipsync", log):
            try:
                out = self.engine.render(frames, faces, stamps, self.timeline)
            except LivedubError:
                raise
            except Exception as exc:  # an engine error on a frame: the frame goes out unchanged
                self._error("lipsync", exc)
                self.frames_passed += len(frames)
                return [np.asarray(f) for f in frames]
        if self.config.captions:
            out = [self._caption(f, t) for f, t in zip(out, stamps, strict=True)]
        return out

    # -- live: media in -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the live tasks (recognition, translation) on the running loop."""
        if self._loop is not None:
            return
        from livedub.engines.asr.streaming import StreamingRecognizer

        self._loop = asyncio.get_running_loop()
        self._audio_ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._units = asyncio.Queue()
        self._video_worker = self.pool.worker(f"video-{self.name}-{id(self):x}", media=True)
        recognizer = self.pool.recognizer(streaming=True, live=self.clock.live)
        self._streamer = StreamingRecognizer(recognizer, language=self.config.source)
        await self._warm_up(recognizer)
        self._tasks = [asyncio.create_task(self._recognise_loop(), name=f"{self.name}-asr"),
                       asyncio.create_task(self._speak_loop(), name=f"{self.name}-speech")]

    async def _warm_up(self, recognizer) -> None:
        """Load every model before media flows, so the first frame and the first phrase pay no load time."""
        started = time.perf_counter()
        jobs = [self.pool.worker("asr").run(lambda: getattr(recognizer, "model", None)),
                self._video_worker.run(self._warm_video)]
        if self.config.source and self.config.mt != "whisper":
            jobs.append(self.pool.worker("mt").run(self._warm_translator, self.config.source))
        results = list(await asyncio.gather(*jobs, return_exceptions=True))
        # the voice is timed last, alone: the choice depends on how fast it runs on this machine
        results += await asyncio.gather(self.pool.worker("tts").run(self._live_voice, self.config.target),
                                        return_exceptions=True)
        for result in results:
            if isinstance(result, LivedubError):
                raise result
            if isinstance(result, Exception):
                log.warning("warm-up: %s", result)
        log.info("session %s warmed up in %.1f s", self.name, time.perf_counter() - started)

    def _warm_video(self) -> None:
        blank = np.full((480, 640, 3), 128, np.uint8)
        face = self.tracker.track(blank, timestamp=-1.0)
        self.engine.render([blank], [face], [0.0], self.timeline)
        reset = getattr(self.tracker, "reset", None)
        if reset is not None:
            reset()

    def _warm_translator(self, source: str) -> None:
        translator = self.pool.translator(source, self.config.target)
        if translator is not None:
            translator.translate("Hello.")

    def _live_voice(self, target: str):
        voice, why = self.pool.live_synthesizer(target, pitch_hz=self._pitch, engine=self.config.voice_engine)
        if why and why not in self.notes:
            log.info("%s", why)
            self.notes.append(why)
        return voice

    def push_audio(self, pcm: np.ndarray, pts: float, rate: int = SAMPLE_RATE) -> None:
        """Microphone audio (mono float32 at `rate`) that began at session time `pts`. Any thread; never blocks."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if self._original is not None:
            out_rate = self._original.rate
            self._original.append(self._resampler(rate, out_rate)(pcm), pts)
        pcm16 = self._resampler(rate, SAMPLE_RATE)(pcm)
        self._heard.append(pcm16, pts)
        with self._pending_lock:
            if self._audio_origin is None:
                self._audio_origin = float(pts)
            self._pending.append(pcm16)
        if self._loop is not None and self._audio_ready is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed under a device thread
                self._loop.call_soon_threadsafe(self._audio_ready.set)

    def _resampler(self, from_rate: int, to_rate: int) -> StreamResampler:
        key = from_rate * 1_000_000 + to_rate
        if key not in self._resamplers:
            self._resamplers[key] = StreamResampler(from_rate, to_rate)
        return self._resamplers[key]

    def push_video(self, frame: np.ndarray, pts: float) -> np.ndarray:
        """One camera frame at session time `pts` → the frame to send (the mouth speaks the dub). Runs on the
        caller's thread; live transports use `process_video`, which runs it on the session's video worker."""
        started = time.perf_counter()
        self.frames_in += 1
        face = self.track_face(frame, pts)
        out = self.render([frame], [face], [pts])[0]
        self.latency.add("video", time.perf_counter() - started)
        return out

    async def process_video(self, frame: np.ndarray, pts: float,
                            then: Callable[[np.ndarray, float], None] | None = None) -> np.ndarray:
        """`push_video` off the event loop (one thread per session: the engine's state needs no lock);
        `then(out, pts)` runs on the same thread right after (sinks that encode or copy the frame)."""
        if self._video_worker is None:
            raise RuntimeError("start() the session before pushing live video")
        return await self._video_worker.run(self._video_step, frame, pts, then)

    def _video_step(self, frame: np.ndarray, pts: float, then) -> np.ndarray:
        out = self.push_video(frame, pts)
        if then is not None:
            then(out, pts)
        return out

    # -- live: recognition → units → clips ----------------------------------------------------------

    async def _recognise_loop(self) -> None:
        assert self._audio_ready is not None and self._units is not None
        asr = self.pool.worker("asr")
        while True:
            await self._audio_ready.wait()
            self._audio_ready.clear()
            with self._pending_lock:
                chunks = list(self._pending)
                self._pending.clear()
            if not chunks:
                continue
            try:
                started = time.perf_counter()
                words = await asr.run(self._streamer.feed, np.concatenate(chunks))
                self.latency.add("asr", time.perf_counter() - started)
            except Exception as exc:
                self._error("asr", exc)
                continue
            self._take_words(words, speaking=self._streamer.speaking)

    def _take_words(self, words: list[Word], *, speaking: bool) -> None:
        origin = self._audio_origin or 0.0
        if self.source_language is None:
            detected = self._streamer.detected_language
            if detected:
                self.source_language = detected
                self._builder.language = detected
                self._streamer.language = detected  # held: later utterances are heard in it too
                self._emit(SessionEvent("language", language=detected, at=self.clock.now()))
                log.info("source language: %s (held for the session)", detected)
        for w in words:
            log.info("word %r %.2f–%.2f s (committed at %.2f s)", w.text.strip(), origin + w.start, origin + w.end,
                     self.clock.now())
            self._emit(SessionEvent("word", text=w.text.strip(), start=origin + w.start, end=origin + w.end,
                                    at=self.clock.now()))
        hypothesis = self._streamer.hypothesis
        if hypothesis:
            self._emit(SessionEvent("partial", text=join_words(w.text for w in hypothesis),
                                    at=self.clock.now()))
        for unit in self._builder.add(words, origin=origin, utterance_over=not speaking and not hypothesis):
            self._queue_unit(unit)

    def _queue_unit(self, unit: Unit) -> None:
        assert self._units is not None and self._idle is not None
        log.info("unit %.2f–%.2f s: %s", unit.start, unit.end, unit.text)
        self._idle.clear()
        self._backlog_units += 1
        self._units.put_nowait(unit)

    async def _speak_loop(self) -> None:
        assert self._units is not None and self._idle is not None
        while True:
            unit = await self._units.get()
            if unit is None:
                return
            # backlog: translated speech still to play, or units waiting → say them as one, faster
            while not self._units.empty() and self.track.end - self.clock.now() > MERGE_BACKLOG_S:
                nxt = self._units.get_nowait()
                if nxt is None:
                    self._units.put_nowait(None)
                    break
                self._backlog_units -= 1
                unit = unit.merged(nxt)
            try:
                await self._speak(unit)
            except LivedubError as exc:
                self._error("speech", exc)
            except Exception as exc:
                self._error("speech", exc)
            finally:
                self._backlog_units -= 1
                if self._backlog_units <= 0 and self._units.empty():
                    self._idle.set()

    async def _speak(self, unit: Unit) -> None:
        if self.muted or not unit.text.strip():
            return
        source = self.source_language or self.config.source
        target = self.config.target
        if source is None:  # the recognizer has not said yet: take whisper's guess for this unit
            source = unit.language or "en"
            self.source_language = source
        maker = self._maker(source, target)
        started = time.perf_counter()
        text = unit.text
        if maker.translator is not None:
            text = await self.pool.worker("mt").run(maker.translate, unit.text)
        elif target != source:
            text = await self.pool.worker("asr").run(self._whisper_translate, unit)
        self.latency.add("mt", time.perf_counter() - started)
        if not text.strip():
            return
        # behind (translated speech still playing, or more units waiting): say it within the time the speaker
        # took for it, less the backlog, up to max_speed; otherwise at its natural pace (a pause is free)
        backlog = max(self.track.end - self.clock.now(), 0.0)
        behind = backlog > BEHIND_S or (self._units is not None and not self._units.empty())
        slot = max(max(unit.end - unit.start, 0.5) - backlog, 0.3) if behind else None
        if backlog > CATCH_UP_S:
            maker.max_speed = max(maker.max_speed, CATCH_UP_SPEED)
        started = time.perf_counter()
        speech, speed = await self.pool.worker("tts").run(maker.speak, text, slot)
        self.latency.add("tts", time.perf_counter() - started)
        at = self.clock.clip_start(unit.start)
        clip = self.track.place(speech, at, text=text, source_text=unit.text, source_start=unit.start,
                                source_end=unit.end, speed=speed)
        self.latency.add("onset", max(clip.start - unit.end, 0.0))
        self._utterance_end = unit.end
        log.info("clip %.2f–%.2f s ×%.2f (%.2f s after the source ended): %s", clip.start, clip.end, speed,
                 clip.start - unit.end, text)
        self._emit(SessionEvent("sentence", text=unit.text, translation=text, language=target, start=clip.start,
                                end=clip.end, at=self.clock.now()))

    def _maker(self, source: str, target: str) -> ClipMaker:
        from livedub.engines.tts.voices import median_pitch_hz

        translator = None if self.config.mt == "whisper" else self.pool.translator(source, target)
        if self._pitch is None:  # the speaker's register, once, from what has been heard so far
            heard = self._heard.recent(10.0)
            if len(heard) > SAMPLE_RATE:
                self._pitch = median_pitch_hz(heard)
        synth = (self._live_voice(target) if self.clock.live
                 else self.pool.synthesizer(target, pitch_hz=self._pitch, engine=self.config.voice_engine))
        # live: never slow down (a pause is free); speed up to max_speed when behind
        return ClipMaker(translator, synth, min_speed=1.0, max_speed=self.config.max_speed, times=self.times)

    def _whisper_translate(self, unit: Unit) -> str:
        """Any → English straight from the unit's speech (no text translator serves the pair)."""
        pcm = self._heard.window(unit.start - 0.1, unit.end + 0.1)
        return self.pool.recognizer(streaming=True, live=self.clock.live).transcribe(pcm, language=self.source_language,
                                                               task="translate").text.strip()

    async def finish(self, timeout: float = 60.0) -> None:
        """The source has ended: commit what the recognizer still holds, speak it, wait until it has played."""
        if self._loop is None or self._streamer is None:
            return
        assert self._idle is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drain_audio(), timeout)
            words = await self.pool.worker("asr").run(self._streamer.flush)
            self._take_words(words, speaking=False)
            for unit in self._builder.flush(origin=self._audio_origin or 0.0):
                self._queue_unit(unit)
            await asyncio.wait_for(self._idle.wait(), timeout)
            while self.clock.now() < self.track.end + self.video_delay:
                await asyncio.sleep(0.05)

    async def _drain_audio(self) -> None:
        while True:
            with self._pending_lock:
                empty = not self._pending
            if empty:
                await asyncio.sleep(0.05)  # let the recognise loop finish the pass in flight
                return
            await asyncio.sleep(0.05)

    # -- out ----------------------------------------------------------------------------------------

    def audio_out(self, t0: float, t1: float) -> np.ndarray:
        """Output-rate PCM of session time [t0, t1): the dub, plus the speaker's own voice ducked under it."""
        pcm = self.track.render(t0, t1)
        if self._original is not None:
            pcm = pcm + self.config.keep_original * self._original.window(t0, t1)[: len(pcm)]
        return np.clip(pcm, -1.0, 1.0)

    def events(self) -> AsyncIterator[SessionEvent]:
        """Events from now on, for one reader (each call is its own subscription)."""
        queue: asyncio.Queue = asyncio.Queue(maxsize=EVENT_QUEUE)
        self._subscribers.append(queue)

        async def stream() -> AsyncIterator[SessionEvent]:
            try:
                while True:
                    ev = await queue.get()
                    if ev is None:
                        return
                    yield ev
            finally:
                with contextlib.suppress(ValueError):
                    self._subscribers.remove(queue)

        return stream()

    def _emit(self, event: SessionEvent) -> None:
        log.debug("event %s", event)
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    def _error(self, stage: str, exc: BaseException) -> None:
        count = self._errors.get(stage, 0) + 1
        self._errors[stage] = count
        if count == 1:
            log.warning("%s failed (%s); carrying on (this is logged once)", stage, exc)
        else:
            log.debug("%s failed again: %s", stage, exc)
        if self._loop is not None:
            try:
                running = asyncio.get_running_loop() is self._loop
            except RuntimeError:
                running = False
            ev = SessionEvent("error", text=f"{stage}: {exc}", at=self.clock.now())
            if running:
                self._emit(ev)
            else:
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._emit, ev)

    def _caption(self, frame: np.ndarray, t: float) -> np.ndarray:
        from .captions import draw_caption

        clip = next((c for c in self.track.clips[-3:] if c.start <= t < c.end + 1.0), None)
        return draw_caption(frame, clip.text) if clip is not None else frame

    def stats(self) -> dict:
        """Per-stage p50/p95, frames, lag and queue sizes (for `--stats`, `/stats` and benchmarks)."""
        with self._pending_lock:
            pending = sum(len(c) for c in self._pending) / SAMPLE_RATE
        return {
            "stages": self.latency.summary(),
            "frames_in": self.frames_in,
            "frames_passed_through": self.frames_passed,
            "clips": len(self.track.clips),
            "lag_s": round(max(self.track.end - self.clock.now(), 0.0), 3) if self.clock.live else None,
            "audio_pending_s": round(pending, 3),
            "units_waiting": self._units.qsize() if self._units is not None else 0,
            "source_language": self.source_language,
            "target_language": self.config.target,
            "errors": dict(self._errors),
        }

    async def aclose(self) -> None:
        """Stop the tasks, release the per-session worker, close the tracker. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)
        if self._video_worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._video_worker.close)
        self.close()

    def close(self) -> None:
        """Release what the session holds (file mode: no tasks to stop)."""
        self._closed = True
        closer = getattr(self._tracker, "close", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                closer()
        self._tracker = None

