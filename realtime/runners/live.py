"""The live runner: a camera + microphone (or a file played in real time) through a `DubSession` on the wall
clock, out to the virtual camera, the virtual microphone and an optional recording.

It only wires tracks: source video → `DubVideoTrack` (the session's lip-sync) → one subscription per video
sink; source audio → the session's recognizer; the session's audio → one `DubAudioTrack` per audio sink,
held back by `AvSync` (the recording's is not: its frames keep their capture times). Video is never delayed.
Every device open and close, `pactl`, the recorder and the bank save run on threads, so the event loop only
schedules and moves media. A sink that cannot be had is reported in one line and the run goes on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from livedub.engines.errors import LivedubError

from ..clock import WallClock
from ..config import DubConfig
from ..face.video import save_bank
from ..io.devices import AudioOut, CameraTrack, DeviceError, MicrophoneTrack, VirtualCamera, VirtualMicrophone
from ..io.dub import AudioFeed, DubAudioTrack, DubVideoTrack
from ..io.filesource import FileSource
from ..io.recorder import Recorder
from ..media.avsync import UPDATE_EVERY_S, AvSync
from ..pool import ModelPool
from ..session import DubSession, SessionEvent
from .heap import frozen_heap

log = logging.getLogger("livedub.live")


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
    frame_times: list[float] = field(default_factory=list)  # monotonic time each drawn frame went out (bounded)
    sinks: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    recorded: Path | None = None
    record_origin: float | None = None  # session time of the recording's first frame
    clips: list = field(default_factory=list)  # (start, end, text, source_text, source_start, source_end): session s
    seconds: float = 0.0


class _Devices:
    """Camera + microphone as one source (the microphone may be missing: the video is still dubbed)."""

    def __init__(self, camera: CameraTrack, mic: MicrophoneTrack | None):
        self.video, self.audio = camera, mic
        self.fps, self.width, self.height = camera.fps, camera.width, camera.height

    @property
    def dropped(self) -> int:
        return self.video.dropped

    def close(self) -> None:
        self.video.close()
        if self.audio is not None:
            self.audio.close()


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
        self.sync: AvSync | None = None
        self._dub: DubVideoTrack | None = None
        self._recorder: Recorder | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []  # sinks, closed last opened first
        self._error: LivedubError | None = None

    def _say(self, text: str) -> None:
        self.report.notices.append(text)
        self.notice(text)

    # -- the run ------------------------------------------------------------------------------------

    async def run(self) -> LiveReport:
        started = time.monotonic()
        clock = WallClock()
        source = await asyncio.to_thread(self._open_source, clock)
        session = self.session = DubSession(self.config, self.pool, clock, fps=source.fps, video=True, name="live")
        self.sync = AvSync(session)
        dub = self._dub = DubVideoTrack(session, on_error=self._fail)
        feed = AudioFeed(session)
        tasks: list[asyncio.Task] = []
        heap = contextlib.ExitStack()
        try:
            if not await self._until(session.start()):  # stopped while the models load
                return self.report
            heap.enter_context(frozen_heap())  # the warm models: out of the collector's full passes
            for note in session.notes:
                self._say(note)
            dub.start(source.video)
            if source.audio is not None:
                feed.start(source.audio)
            await self._open_sinks(source, session, dub)
            tasks.append(asyncio.create_task(self._housekeeping(), name="live-housekeeping"))
            if self.on_event is not None:
                tasks.append(asyncio.create_task(self._forward_events(session), name="live-events"))
            if isinstance(source, FileSource):
                # the file plays; then its last words are translated and spoken while its last frame holds
                if await self._until(source.played()):
                    await self._until(session.finish())
            else:
                await self.stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await dub.aclose()
            await feed.aclose()
            self._fill_report(source, session)
            await self._close_sinks()
            await asyncio.to_thread(source.close)
            await session.aclose()
            await asyncio.to_thread(save_bank, session)
            heap.close()
            self.report.seconds = time.monotonic() - started
        if self._error is not None:
            raise self._error
        return self.report

    def _open_source(self, clock: WallClock) -> FileSource | _Devices:
        """On a thread: opening a camera, a microphone or a file (its audio is decoded) blocks."""
        if self.options.source is not None:
            return FileSource(self.options.source, clock.now)
        camera = CameraTrack(self.options.camera, clock.now)
        try:
            mic = MicrophoneTrack(self.options.mic, clock.now)
        except DeviceError as exc:
            self._say(f"{exc}; the video is still dubbed (no speech will come in)")
            mic = None
        return _Devices(camera, mic)

    async def _until(self, work: Awaitable) -> bool:
        """Await `work` unless `stop` is set first (then cancel it); True when it completed."""
        task = asyncio.ensure_future(work)
        stopper = asyncio.create_task(self.stop.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, stopper):
                t.cancel()
            for t in (task, stopper):
                with contextlib.suppress(asyncio.CancelledError):
                    await t  # re-raises what `work` raised
        return not self.stop.is_set()

    def _fail(self, exc: LivedubError) -> None:
        """A frame could not be drawn for a reason the user must fix (an engine that cannot load): stop."""
        if self._error is None:
            self._error = exc
            self.stop.set()

    # -- sinks --------------------------------------------------------------------------------------

    async def _open_sinks(self, source, session: DubSession, dub: DubVideoTrack) -> None:
        """Each opened on a thread; each pulls its own track."""
        options = self.options
        delayed = lambda: self.sync.delay if self.sync is not None else 0.0  # noqa: E731
        if options.virtual_camera:
            try:
                cam = await asyncio.to_thread(VirtualCamera, source.width, source.height, source.fps,
                                              backend=options.virtual_camera_backend)
            except DeviceError as exc:
                self._say(str(exc))
            else:
                self._closers.append(cam.aclose)
                cam.play(dub.subscribe())
                self.report.sinks.append(f"virtual camera {cam.name}")
        if options.virtual_mic:
            try:
                mic = await asyncio.to_thread(VirtualMicrophone)
                self._closers.append(lambda: asyncio.to_thread(mic.close))
                out = await asyncio.to_thread(AudioOut, sink=mic.name)
            except DeviceError as exc:
                self._say(f"{exc}; no virtual microphone")
            else:
                self._closers.append(out.aclose)  # closed before the sink goes
                out.play(DubAudioTrack(session, delay=delayed))
                self.report.sinks.append(f"virtual microphone: pick '{mic.monitor}' (or 'livedub_mic') in the call app")
        if options.audio_out:
            try:
                out = await asyncio.to_thread(AudioOut, device=options.audio_out)
            except DeviceError as exc:
                self._say(str(exc))
            else:
                self._closers.append(out.aclose)
                out.play(DubAudioTrack(session, delay=delayed))
                self.report.sinks.append(f"audio out {options.audio_out}")
        if options.record:
            self._recorder = await asyncio.to_thread(Recorder, options.record, source.width, source.height,
                                                     source.fps, rate=session.track.output_rate)
            self._recorder.record(dub.subscribe(), DubAudioTrack(session))
            self.report.sinks.append(f"recording {options.record}")

    async def _close_sinks(self) -> None:
        for close in reversed(self._closers):
            try:
                await close()
            except Exception as exc:  # a device that fails to close must not keep the others open
                log.debug("closing a sink failed: %s", exc)
        self._closers = []
        if self._recorder is not None:
            self.report.record_origin = self._recorder.origin
            keep = not self.stop.is_set() or self.report.frames_out > 0
            self.report.recorded = await self._recorder.aclose(keep=keep)

    # -- while it runs ------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """The audio delay follows the video latency; stats lines."""
        every = min(UPDATE_EVERY_S, self.options.stats_every or UPDATE_EVERY_S)
        last_stats = 0.0
        while True:
            await asyncio.sleep(every)
            assert self.sync is not None
            self.sync.update()
            now = time.monotonic()
            if self.on_stats and self.options.stats_every and now - last_stats >= self.options.stats_every - 1e-3:
                last_stats = now
                self.on_stats(self.stats())

    async def _forward_events(self, session: DubSession) -> None:
        async for event in session.events():
            if self.on_event is not None:
                self.on_event(event)

    def stats(self) -> dict:
        assert self.session is not None and self.sync is not None and self._dub is not None
        dub = self._dub
        stats = self.session.stats()
        stats.update(frames_out=dub.gaps.count, max_frame_gap_ms=round(1000 * dub.gaps.max_gap_s, 1),
                     dropped_frames={"before_lipsync": dub.inbound.dropped, "before_sinks": dub.dropped_before_sink},
                     cpu_s=self.pool.busy_seconds(), **self.sync.stats())
        return stats

    def _fill_report(self, source, session: DubSession) -> None:
        dub, report = self._dub, self.report
        assert dub is not None
        report.frames_in = dub.inbound.delivered + dub.inbound.dropped
        report.frames_out = dub.gaps.count
        report.max_frame_gap_s = dub.gaps.max_gap_s
        report.frame_times = dub.gaps.times
        report.dropped = source.dropped + dub.inbound.dropped
        report.stats = self.stats()
        report.clips = [(c.start, c.end, c.text, c.source_text, c.source_start, c.source_end)
                        for c in session.track.clips]
