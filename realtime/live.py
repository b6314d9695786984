"""The live runner: a camera + microphone (or a file played in real time) through a `DubSession` on the wall
clock, out to the virtual camera, the virtual microphone and an optional recording.

Video is never delayed: each frame is processed as it arrives and sent at once. Translated audio is held back
by the measured video latency (p95), so sound never leads the mouth. A sink that cannot be had is reported in
one line and the run goes on with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .clock import WallClock
from .config import DubConfig
from .factory import ModelPool
from .filemode import save_bank
from .io.devices import (
    AudioOut,
    CameraSource,
    DeviceError,
    FileSource,
    MicSource,
    Recorder,
    VirtualCamera,
    VirtualMicrophone,
)
from .session import DubSession, SessionEvent

log = logging.getLogger("livedub.live")

DELAY_UPDATE_S = 1.0  # how often the audio delay follows the measured video latency
RECORD_AUDIO_EVERY_S = 0.25


@dataclass(frozen=True)
class LiveOptions:
    """Where media comes from and goes to (built by the CLI)."""

    camera: str | int = 0
    mic: str | int | None = None
    source: Path | None = None  # a video file played in real time instead of camera + microphone
    record: Path | None = None
    virtual_camera: bool = True
    virtual_camera_backend: str | None = None
    virtual_mic: bool = True
    audio_out: str | None = None  # another output device for the translated audio
    stats_every: float = 0.0  # seconds between stats lines (0: none)


@dataclass
class LiveReport:
    """What a run did (for the CLI summary, tests and the benchmark)."""

    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    max_frame_gap_s: float = 0.0
    frame_times: list[float] = field(default_factory=list)  # monotonic send time of each frame (bounded)
    sinks: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    recorded: Path | None = None
    record_origin: float | None = None  # session time of the recording's first frame
    clips: list = field(default_factory=list)  # (start, end, text, source_text, source_start, source_end): session s
    seconds: float = 0.0


class LiveRun:
    """One live session with its devices; `run()` until the source ends or `stop` is set."""

    def __init__(self, config: DubConfig, pool: ModelPool, options: LiveOptions, *,
                 notice: Callable[[str], None] | None = None, on_stats: Callable[[dict], None] | None = None,
                 on_event: Callable[[SessionEvent], None] | None = None):
        self.config, self.pool, self.options = config, pool, options
        self.notice = notice or (lambda text: log.warning("%s", text))
        self.on_stats = on_stats
        self.on_event = on_event
        self.report = LiveReport()
        self.stop = asyncio.Event()
        self.session: DubSession | None = None
        self._sinks: list = []
        self._recorder: Recorder | None = None
        self._closers: list[Callable[[], None]] = []
        self._last_sent: float | None = None
        self._last_frame: np.ndarray | None = None

    def _say(self, text: str) -> None:
        self.report.notices.append(text)
        self.notice(text)

    # -- setup --------------------------------------------------------------------------------------

    def _open_source(self):
        if self.options.source is not None:
            return FileSource(self.options.source), None
        camera = CameraSource(self.options.camera)
        try:
            mic = MicSource(self.options.mic)
        except DeviceError as exc:
            self._say(f"{exc}; the video is still dubbed (no speech will come in)")
            mic = None
        return camera, mic

    def _open_sinks(self, width: int, height: int, fps: float, session: DubSession, clock: WallClock) -> None:
        if self.options.virtual_camera:
            try:
                cam = VirtualCamera(width, height, fps, backend=self.options.virtual_camera_backend)
                self._sinks.append(cam)
                self._closers.append(cam.close)
                self.report.sinks.append(f"virtual camera {cam.name}")
            except DeviceError as exc:
                self._say(str(exc))
        delay = lambda: session.video_delay  # noqa: E731
        if self.options.virtual_mic:
            try:
                mic = VirtualMicrophone()
                self._closers.append(mic.close)
                out = AudioOut(session.audio_out, clock.now, delay, sink=mic.name)
                self._closers.insert(len(self._closers) - 1, out.close)  # stop playing before the sink goes
                self.report.sinks.append(f"virtual microphone: pick '{mic.monitor}' (or 'livedub_mic') in the call app")
            except DeviceError as exc:
                self._say(f"{exc}; no virtual microphone")
        if self.options.audio_out:
            try:
                out = AudioOut(session.audio_out, clock.now, delay, device=self.options.audio_out)
                self._closers.append(out.close)
                self.report.sinks.append(f"audio out {self.options.audio_out}")
            except DeviceError as exc:
                self._say(str(exc))
        if self.options.record:
            self._recorder = Recorder(self.options.record, width, height, fps, rate=session.track.output_rate)
            self.report.sinks.append(f"recording {self.options.record}")

    # -- the loop -----------------------------------------------------------------------------------

    def _send(self, frame: np.ndarray, pts: float) -> None:
        """On the session's video thread, right after the frame is drawn."""
        for sink in self._sinks:
            try:
                sink.send(frame, pts)
            except Exception as exc:  # a sink hiccup must not stop the call
                log.debug("sink %s failed: %s", sink, exc)
        if self._recorder is not None:
            self._recorder.send(frame, pts)
        now = time.monotonic()
        if self._last_sent is not None:
            self.report.max_frame_gap_s = max(self.report.max_frame_gap_s, now - self._last_sent)
        self._last_sent = now
        self.report.frames_out += 1
        if len(self.report.frame_times) < 100_000:
            self.report.frame_times.append(now)

    async def _on_frame(self, frame: np.ndarray, pts: float) -> None:
        self.report.frames_in += 1
        self._last_frame = frame
        assert self.session is not None
        await self.session.process_video(frame, pts, then=self._send)

    async def _housekeeping(self, clock: WallClock) -> None:
        """Audio delay ← video latency; the recording's audio; stats lines."""
        assert self.session is not None
        session = self.session
        last_delay = last_stats = 0.0
        while True:
            await asyncio.sleep(RECORD_AUDIO_EVERY_S)
            now = clock.now()
            if now - last_delay >= DELAY_UPDATE_S:
                p95 = session.latency.percentile("video", 95)
                if p95 is not None:
                    session.video_delay = p95
                last_delay = now
            if self._recorder is not None:
                await asyncio.get_running_loop().run_in_executor(None, self._recorder.add_audio, session.audio_out, now)
            if self.options.stats_every and now - last_stats >= self.options.stats_every:
                last_stats = now
                stats = self.stats()
                if self.on_stats:
                    self.on_stats(stats)

    def stats(self) -> dict:
        assert self.session is not None
        stats = self.session.stats()
        stats.update(frames_out=self.report.frames_out, max_frame_gap_ms=round(1000 * self.report.max_frame_gap_s, 1),
                     audio_delay_ms=round(1000 * self.session.video_delay, 1), cpu_s=self.pool.busy_seconds())
        return stats

    async def run(self) -> LiveReport:
        started = time.monotonic()
        clock = WallClock()
        source, mic = self._open_source()
        session = self.session = DubSession(self.config, self.pool, clock, fps=source.fps, video=True, name="live")
        await session.start()
        for note in session.notes:
            self._say(note)
        house = asyncio.create_task(self._housekeeping(clock), name="live-housekeeping")
        events = asyncio.create_task(self._forward_events(session), name="live-events") if self.on_event else None
        try:
            self._open_sinks(source.width, source.height, source.fps, session, clock)
            if mic is not None:
                mic.start(clock.now, session.push_audio)
                self._closers.append(mic.close)
            if isinstance(source, FileSource):
                play = asyncio.create_task(source.run(clock.now, self._on_frame, session.push_audio))
                stopper = asyncio.create_task(self.stop.wait())
                await asyncio.wait({play, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if play.done():
                    play.result()
                    # the file has played: say what is still pending, keep sending the last frame meanwhile
                    await self._finish(session, source)
                else:
                    play.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await play
            else:
                await source.run(clock.now, self._on_frame, session.push_audio, stop=self.stop)
        finally:
            for task in (house, events):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            self.report.dropped = getattr(source, "dropped", 0)
            self.report.stats = self.stats()
            self.report.clips = [(c.start, c.end, c.text, c.source_text, c.source_start, c.source_end)
                                 for c in session.track.clips]
            await asyncio.get_running_loop().run_in_executor(None, self._close_devices)
            if self._recorder is not None:
                self.report.record_origin = self._recorder.origin
                keep = not self.stop.is_set() or self.report.frames_out > 0
                self.report.recorded = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self._recorder.close(session.audio_out, keep=keep))
            await session.aclose()
            save_bank(session)
            self.report.seconds = time.monotonic() - started
        return self.report

    def _close_devices(self) -> None:
        """Off the event loop: closing a device can block (pactl, PortAudio)."""
        for close in self._closers:
            with contextlib.suppress(Exception):
                close()

    async def _forward_events(self, session: DubSession) -> None:
        async for event in session.events():
            if self.on_event is not None:
                self.on_event(event)

    async def _finish(self, session: DubSession, source: FileSource) -> None:
        """After the source: the last words are translated and spoken while the last frame keeps going out."""
        last = self._last_frame if self._last_frame is not None else np.zeros((source.height, source.width, 3), np.uint8)
        finishing = asyncio.create_task(session.finish())
        interval = 1.0 / source.fps
        clock = session.clock
        due = clock.now()
        while not finishing.done() and not self.stop.is_set():
            await self._on_frame(last, due)
            due += interval
            await asyncio.sleep(max(due - clock.now(), 0.0))
        if not finishing.done():
            finishing.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await finishing
