"""`DubSession`: one speaker's call or one file, on a clock — a composition of the pieces below.

    audio in ─► unit source ─► SpeechPath (MT → TTS → placement) ─► DubTrack ─► audio out (held back by
                (streaming: live; whole recording: file)                 │        `audio_delay`)
    video in ─► FacePath (track → lip engine at the frame's time) ◄──────┘ ─► video out

Live mode (wall clock) runs recognition and speech as tasks that only await model workers; file mode
(virtual clock) fills the track from the whole recording first, then renders frames as fast as the machine
allows. Both take the same speech path. The session never paces output: sinks do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence

import numpy as np

from livedub.engines.audio import OUTPUT_RATE, SAMPLE_RATE, StreamResampler
from livedub.engines.errors import LivedubError
from livedub.engines.face import Face
from livedub.engines.lipsync import AudioTimeline, LipEngine
from livedub.engines.metrics import RollingStats, StageTimes

from .clock import Clock, VirtualClock
from .config import DubConfig
from .dubtrack import DubTrack
from .events import EventHub, SessionEvent
from .face.path import FacePath
from .media.ring import AudioRing
from .pool import ModelPool
from .speech.path import DubResult, SpeechPath
from .speech.streaming import LiveSpeech, StreamingUnits, cancel_all

log = logging.getLogger("livedub.session")

__all__ = ["DubSession", "SessionEvent"]


class DubSession:
    """One dub: `push_audio`, `process_video`, `audio_out`, `events()`, `stats()`, `aclose()`.

    Live use: `await start()` inside the event loop, then push media as it arrives (`push_audio` from any
    thread, `await process_video(frame, pts)` per frame), `await finish()` when the source ends. File use:
    `dub_recording` / `dub_text` / `use_timeline`, then `render` batches of frames.
    """

    def __init__(self, config: DubConfig, pool: ModelPool, clock: Clock | None = None, *, fps: float = 25.0,
                 video: bool = True, name: str = "session"):
        self.config = config
        self.pool = pool
        self.clock: Clock = clock or VirtualClock()
        self.name = name
        self.times = StageTimes()
        self.latency = RollingStats()
        self.audio_delay = 0.0  # seconds translated audio is held back so sound never leads the mouth
        self.hub = EventHub()
        self._original = AudioRing(config.output_rate or OUTPUT_RATE) if config.keep_original > 0 else None
        self._heard = AudioRing(SAMPLE_RATE)  # the speaker at 16 kHz: pitch, whisper's translate task
        self._resamplers: dict[tuple[int, int], StreamResampler] = {}
        track = DubTrack(output_rate=config.output_rate or OUTPUT_RATE)
        self.speech = SpeechPath(config, pool, track, heard=self._heard, times=self.times, live=self.clock.live,
                                 recognizer=lambda: pool.recognizer(streaming=self.clock.live, live=self.clock.live))
        self.face = FacePath(config, pool, track, fps=fps, moving=video, times=self.times, latency=self.latency,
                             on_error=self._error)
        if config.captions:
            self.face.captions = track
        self._units: StreamingUnits | None = None
        self._live: LiveSpeech | None = None
        self._tasks: list[asyncio.Task] = []
        self._calls = contextlib.ExitStack()  # this session counted among the pool's live calls while open
        self._errors: dict[str, int] = {}
        self._file_language: str | None = None  # what the whole-recording recogniser heard
        self._closed = False

    # -- what the runners read and set ---------------------------------------------------------------

    @property
    def track(self) -> DubTrack:
        return self.speech.track

    @property
    def timeline(self) -> AudioTimeline:
        return self.face.timeline

    @property
    def fps(self) -> float:
        return self.face.fps

    @fps.setter
    def fps(self, fps: float) -> None:
        self.face.fps = float(fps)

    @property
    def engine(self) -> LipEngine:
        return self.face.engine

    @engine.setter
    def engine(self, engine: LipEngine) -> None:
        self.face.engine = engine

    @property
    def notes(self) -> list[str]:
        """One-line decisions a user should know (e.g. which voice speaks live)."""
        return self.speech.notes

    @property
    def source_language(self) -> str | None:
        held = self._units.language if self._units is not None else None
        return held or self.config.source or self._file_language

    @property
    def muted(self) -> bool:
        return self._live.muted if self._live is not None else False

    @muted.setter
    def muted(self, value: bool) -> None:
        if self._live is not None:
            self._live.muted = bool(value)

    def face_from(self, *, moving: bool) -> None:
        """Whether faces come from moving video (the exemplar engine can learn mouths) or a still photo."""
        self.face.face_from(moving=moving)

    def use_timeline(self, timeline: AudioTimeline) -> None:
        """Lips follow another timeline than the session's translations (lipsync: the user's audio)."""
        self.face.timeline = timeline

    def set_target(self, language: str) -> None:
        """Speak another language from the next unit on (a control message mid-call). Its models load on the
        workers when the next unit needs them, never here."""
        from livedub.engines.mt.languages import check_language

        self.config = self.config.replace(target=check_language(language, "target"))
        self.speech.config = self.config

    def set_engine(self, name: str) -> None:
        """Draw with another lip engine from the next frame on."""
        self.config = self.config.replace(engine=name)
        self.face.set_engine(self.config)

    # -- file mode ----------------------------------------------------------------------------------

    def dub_recording(self, pcm: np.ndarray, **kwargs) -> DubResult:
        """The whole recording's speech onto the track at its source times (file mode's unit source)."""
        from .speech.recording import dub_recording

        result = dub_recording(self.speech, pcm, source=self.config.source, **kwargs)
        self._file_language = result.source_language
        self.face.timeline = result.track
        if self.face.captions is not None:
            self.face.captions = result.track
        return result

    def dub_text(self, text: str) -> DubResult:
        from .speech.recording import dub_text

        result = dub_text(self.speech, text, source=self.config.source or self.config.target)
        self._file_language = result.source_language
        self.face.timeline = result.track
        return result

    def prefill_bank(self, frames: Sequence[np.ndarray], stamps: Sequence[float]) -> None:
        self.face.prefill_bank(frames, stamps)

    def track_face(self, frame: np.ndarray, pts: float) -> Face | None:
        return self.face.track_face(frame, pts)

    def render(self, frames: Sequence[np.ndarray], faces: Sequence[Face | None],
               stamps: Sequence[float]) -> list[np.ndarray]:
        return self.face.render(frames, faces, stamps)

    # -- live ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Warm the models up on their workers, then start recognition and speech on the running loop."""
        if self._live is not None:
            return
        from livedub.engines.asr.streaming import StreamingRecognizer

        loop = asyncio.get_running_loop()
        self.hub.bind(loop)
        self._calls.enter_context(self.pool.live_call())  # the live voice is chosen for every call speaking
        await asyncio.to_thread(self.face.open_worker, f"{self.name}-{id(self):x}")
        self._live = LiveSpeech(self.speech, self.pool, self.clock, self.hub, self.latency, on_error=self._error,
                                source_language=lambda: self.source_language)
        recognizer = await self.pool.worker("asr").run(
            lambda: self.pool.recognizer(streaming=True, live=self.clock.live))
        streamer = await self.pool.worker("asr").run(  # builds its VAD (an ONNX session): off the loop
            lambda: StreamingRecognizer(recognizer, language=self.config.source))
        self._units = StreamingUnits(streamer, self.pool,
                                     self.clock, self.hub, self.latency, on_unit=self._live.queue,
                                     on_error=self._error, language=self.config.source)
        await self._warm_up(recognizer)
        self._tasks = [asyncio.create_task(self._units.run(), name=f"{self.name}-asr"),
                       asyncio.create_task(self._live.run(), name=f"{self.name}-speech")]

    async def _warm_up(self, recognizer) -> None:
        """Load every model before media flows, so the first frame and the first phrase pay no load time."""
        started = time.perf_counter()
        assert self.face.worker is not None
        jobs = [self.pool.worker("asr").run(lambda: getattr(recognizer, "model", None)),
                self.face.worker.run(self.face.warm_up)]
        if self.config.source:
            jobs.append(self.pool.worker("mt").run(self._warm_translation, self.config.source))
        results = list(await asyncio.gather(*jobs, return_exceptions=True))
        # the voice is timed last, alone: the live choice depends on how fast it runs on this machine
        results += await asyncio.gather(self.pool.worker("tts").run(self.speech.voice), return_exceptions=True)
        for result in results:
            if isinstance(result, LivedubError):
                raise result
            if isinstance(result, Exception):
                log.warning("warm-up: %s", result)
        log.info("session %s warmed up in %.1f s", self.name, time.perf_counter() - started)

    def _warm_translation(self, source: str) -> None:
        translation = self.speech.translation(source)
        if translation.translator is not None:
            translation.translator.translate("Hello.")

    def push_audio(self, pcm: np.ndarray, pts: float, rate: int = SAMPLE_RATE) -> None:
        """The speaker's audio (mono float32 at `rate`) that began at session time `pts`. Any thread; never
        blocks."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if self._original is not None:
            self._original.append(self._resampler(rate, self._original.rate)(pcm), pts)
        pcm16 = self._resampler(rate, SAMPLE_RATE)(pcm)
        self._heard.append(pcm16, pts)
        if self._units is not None:
            self._units.push(pcm16, pts)

    def _resampler(self, from_rate: int, to_rate: int) -> StreamResampler:
        key = (from_rate, to_rate)
        if key not in self._resamplers:
            self._resamplers[key] = StreamResampler(from_rate, to_rate)
        return self._resamplers[key]

    def push_video(self, frame: np.ndarray, pts: float) -> np.ndarray:
        """One frame at session time `pts` → the frame to send, on the caller's thread (live transports use
        `process_video`, which runs it on the session's video worker)."""
        return self.face.step(frame, pts)

    async def process_video(self, frame: np.ndarray, pts: float,
                            then: Callable[[np.ndarray, float], None] | None = None) -> np.ndarray:
        """`push_video` on the session's video worker; `then(out, pts)` runs on the same thread right after
        (sinks that encode or copy the frame)."""
        if self.face.worker is None:
            raise RuntimeError("start() the session before pushing live video")
        return await self.face.worker.run(self.face.step, frame, pts, then)

    async def finish(self, timeout: float = 60.0) -> None:
        """The source has ended: commit what the recogniser holds, say it, wait until it has played out."""
        if self._units is None or self._live is None:
            return
        try:
            await asyncio.wait_for(self._units.finish(), timeout)
            await asyncio.wait_for(self._live.idle(), timeout)
        except asyncio.TimeoutError:
            log.warning("the last phrases were not dubbed within %.0f s", timeout)
            return
        left = self.track.end + self.audio_delay - self.clock.now()
        if self.clock.live and left > 0:
            await asyncio.sleep(left)

    # -- out ----------------------------------------------------------------------------------------

    def audio_out(self, t0: float, t1: float) -> np.ndarray:
        """Output-rate PCM of session time [t0, t1): the dub, plus the speaker's own voice ducked under it."""
        pcm = self.track.render(t0, t1)
        if self._original is not None:
            pcm = pcm + self.config.keep_original * self._original.window(t0, t1)[: len(pcm)]
        return np.clip(pcm, -1.0, 1.0)

    def events(self) -> AsyncIterator[SessionEvent]:
        """Events from now on, for one reader (each call is its own subscription)."""
        return self.hub.subscribe()

    def _error(self, stage: str, exc: BaseException) -> None:
        count = self._errors.get(stage, 0) + 1
        self._errors[stage] = count
        if count == 1:
            log.warning("%s failed (%s); carrying on (this is logged once)", stage, exc)
        else:
            log.debug("%s failed again: %s", stage, exc)
        self.hub.emit(SessionEvent("error", text=f"{stage}: {exc}", at=self.clock.now()))

    def stats(self) -> dict:
        """Per-stage p50/p95, frames, lag and queue sizes (for `--stats`, `/stats` and benchmarks)."""
        return {
            "stages": self.latency.summary(),
            "frames_in": self.face.frames_in,
            "frames_unchanged": self.face.frames_unchanged,
            "frames_passed_through": self.face.frames_unchanged,  # the name operators scripted against
            "clips": len(self.track.clips),
            "lag_s": round(max(self.track.end - self.clock.now(), 0.0), 3) if self.clock.live else None,
            "audio_pending_s": round(self._units.pending_seconds(), 3) if self._units is not None else 0.0,
            "units_waiting": self._live.units_waiting if self._live is not None else 0,
            "source_language": self.source_language,
            "target_language": self.config.target,
            "errors": dict(self._errors),
        }

    async def aclose(self) -> None:
        """Stop the tasks, the video worker and the tracker. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        await cancel_all(self._tasks)
        self._tasks = []
        self._calls.close()
        self.hub.close()
        await asyncio.to_thread(self.face.close)

    def close(self) -> None:
        """Release what the session holds (file mode: no tasks to stop)."""
        self._closed = True
        self.face.close()
