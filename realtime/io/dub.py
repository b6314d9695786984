"""A `DubSession` as tracks: what the runners wire between sources and sinks.

`DubVideoTrack` wraps a source video track (each frame through the session's lip-sync, on its video thread);
`DubAudioTrack` is the session's output audio, paced by the session clock and held back by the A/V rule;
`AudioFeed` reads a source audio track into the session's recognizer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livedub.engines.audio import OUTPUT_RATE
from livedub.engines.errors import LivedubError

from .tracks import (
    MAX_AUDIO_GAP,
    PTIME,
    FrameGaps,
    LatestFrame,
    LatestFrameTrack,
    SessionClock,
    audio_frame,
    mono_float,
    seconds_of,
)

log = logging.getLogger("livedub.dub")


class DubVideoTrack(MediaStreamTrack):
    """A source video track through the session's lip-sync: each frame comes back with its own pts, its mouth
    speaking the dub at that time.

    The source is drained as frames arrive; the session's video thread takes the newest when it is free
    (frames it never saw: `dropped_before_lipsync`). Every reader (`recv()`, or one `subscribe()`d track per
    sink) gets the newest drawn frame. `reshape(bgr)` runs on the video thread before a frame is wrapped.
    """

    kind = "video"

    def __init__(self, session, *, to_session: Callable[[float | None], float] | None = None,
                 reshape: Callable[[np.ndarray], np.ndarray] | None = None,
                 on_error: Callable[[LivedubError], None] | None = None):
        super().__init__()
        self.session = session
        self.to_session = to_session or SessionClock(session.clock.now)
        self.reshape = reshape
        self.on_error = on_error
        self.inbound: LatestFrame[av.VideoFrame] = LatestFrame()
        self.gaps = FrameGaps()
        self.last_input = time.monotonic()  # when a source frame last arrived (idle detection)
        self._outputs: list[LatestFrameTrack] = []
        self._own: LatestFrameTrack | None = None
        self._tasks: list[asyncio.Task] = []
        self._started = False
        self._failed = False

    # -- wiring ---------------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    def start(self, source: MediaStreamTrack) -> None:
        """Begin reading `source` (once the session has started)."""
        self._started = True
        self._tasks += [asyncio.create_task(self._read(source), name=f"{self.session.name}-video-in"),
                        asyncio.create_task(self._process(), name=f"{self.session.name}-video")]

    def subscribe(self) -> LatestFrameTrack:
        """A track of the drawn frames for one more reader (a sink)."""
        track = LatestFrameTrack("video")
        self._outputs.append(track)
        return track

    async def recv(self) -> av.VideoFrame:
        if self._own is None:
            self._own = self.subscribe()
        if self.readyState != "live":
            raise MediaStreamError
        return await self._own.recv()

    @property
    def dropped_before_sink(self) -> int:
        return sum(out.frames.dropped for out in self._outputs)

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.inbound.close()
        for out in self._outputs:
            out.stop()
        super().stop()

    async def aclose(self) -> None:
        """Stop and wait for the reading and drawing tasks to end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        self.stop()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- the media path -------------------------------------------------------------------------------

    async def _read(self, source: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await source.recv()
                self.last_input = time.monotonic()
                self.inbound.put(frame)
        except MediaStreamError:
            pass
        except Exception as exc:  # a source that broke: the video ends, the call says why
            log.warning("%s: the video source failed: %s", self.session.name, exc)
        finally:
            self.inbound.close()

    async def _process(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = await self.inbound.get()
            except EOFError:
                break
            if frame.format.name == "bgr24":
                bgr = frame.to_ndarray()  # a copy
            else:  # a decoded stream (yuv): the colour conversion runs off the loop
                bgr = await loop.run_in_executor(None, lambda f=frame: f.to_ndarray(format="bgr24"))
            pts = self.to_session(seconds_of(frame))
            drawn: list[av.VideoFrame] = []

            def wrap(out: np.ndarray, _pts: float, drawn=drawn) -> None:  # on the session's video thread
                if self.reshape is not None:
                    out = self.reshape(out)
                # wrapped, not copied (1-2 ms a 720p frame): the drawn frame is this call's own, never reused
                drawn.append(av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(out), format="bgr24"))

            try:
                await self.session.process_video(bgr, pts, then=wrap)
            except LivedubError as exc:  # e.g. an engine that cannot load: the face goes out unchanged
                if self.on_error is not None:
                    self.on_error(exc)
            except Exception:  # a bug in one frame must not end the call: log it once, pass frames through
                if not self._failed:
                    log.exception("%s: drawing a frame failed; frames pass unchanged", self.session.name)
                self._failed = True
            out = drawn[0] if drawn else frame
            out.pts, out.time_base = frame.pts, frame.time_base
            for track in self._outputs:
                track.offer(out)
            self.gaps.tick()
        for track in self._outputs:
            track.frames.close()


class DubAudioTrack(MediaStreamTrack):
    """The session's output audio (the dub, plus the speaker ducked under it), paced by the session clock and
    held back by `delay()` seconds (the A/V rule; 0 for a recording, whose frames keep their capture times).
    Frames are stamped with the session time they are played at."""

    kind = "audio"

    def __init__(self, session, *, delay: Callable[[], float] | None = None, rate: int | None = None):
        super().__init__()
        self.session = session
        self.delay = delay or (lambda: 0.0)
        self.rate = rate or session.config.output_rate or OUTPUT_RATE
        self.samples = int(round(self.rate * PTIME))
        self._start: float | None = None
        self._n = 0
        self.late = 0  # frames skipped because the reader fell behind the clock

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        clock = self.session.clock
        if self._start is None:
            self._start = clock.now()
        t = self._start + self._n * PTIME
        delay = max(self.delay(), 0.0)
        # the frame played at t goes out at t (the dub is known ahead), but not before the dub time it holds
        # has passed: a clip is placed at the time it is ready, never in the past
        wait = max(t, t - delay + PTIME) - clock.now()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.2:  # the reader stalled: skip ahead rather than send old audio in a burst
            skipped = int(-wait / PTIME)
            self.late += skipped
            self._n += skipped
            t = self._start + self._n * PTIME
        pcm = self.session.audio_out(t - delay, t - delay + PTIME)
        pcm = np.pad(pcm, (0, max(self.samples - len(pcm), 0)))[: self.samples]
        frame = audio_frame(pcm, self.rate, t)
        self._n += 1
        return frame


class AudioFeed:
    """An audio source track into the session's recognizer, on one continuous timeline (gaps become silence)."""

    def __init__(self, session, *, to_session: Callable[[float | None], float] | None = None):
        self.session = session
        self.to_session = to_session or SessionClock(session.clock.now)
        self.last_input = time.monotonic()
        self.frames = 0
        self._next: float | None = None  # session time the next sample belongs to
        self._task: asyncio.Task | None = None
        self._started = False

    @property
    def started(self) -> bool:
        return self._started

    def start(self, source: MediaStreamTrack) -> None:
        self._started = True
        self._task = asyncio.create_task(self._read(source), name=f"{self.session.name}-audio-in")

    async def _read(self, source: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await source.recv()
                self.last_input = time.monotonic()
                self.push(mono_float(frame), frame.sample_rate, self.to_session(seconds_of(frame)))
        except MediaStreamError:
            pass
        except Exception as exc:  # a source that broke: no more speech comes in, the call says why
            log.warning("%s: the audio source failed: %s", self.session.name, exc)

    def push(self, pcm: np.ndarray, rate: int, t: float) -> None:
        if self._next is None:
            self._next = t
        gap = t - self._next
        if gap > 5 * PTIME:  # lost packets or a paused track: keep the recognizer on the clock
            silence = np.zeros(int(min(gap, MAX_AUDIO_GAP) * rate), np.float32)
            self.session.push_audio(silence, pts=self._next, rate=rate)
            self._next += len(silence) / rate
        self.session.push_audio(pcm, pts=self._next, rate=rate)
        self._next += len(pcm) / rate
        self.frames += 1

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
