"""The one media contract of live mode: aiortc's `MediaStreamTrack`, and what every transport shares.

A source is a track whose `async recv()` returns `av.VideoFrame`/`av.AudioFrame` with `pts`/`time_base`; a
transform (the session's `DubVideoTrack`, in `dub.py`) is a track that wraps a track; a sink pulls frames
from a track (`TrackPump` hands them to the sink's own thread). Local sources (camera, microphone, a file)
stamp frames in session seconds; a remote peer keeps its own clock, mapped onto the session's by
`StreamClock`.

Video hand-overs keep only the newest frame (`LatestFrame`): a slow stage lowers the frame rate, it never
builds a queue. Audio is never dropped on the way in; on the way out a sink that falls behind the session
clock skips ahead. The event loop only moves frames: pixel work runs on the session's video thread, device
writes on the sink's thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger("livedub.tracks")

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)  # RTP's video clock; local video frames are stamped in it
PTIME = 0.02  # seconds of audio per frame (one opus packet; PortAudio and PulseAudio blocks)
MAX_AUDIO_GAP = 2.0  # seconds of silence filled in when inbound audio stops and resumes
REANCHOR_S = 0.5  # a remote timestamp this far from the clock re-anchors the mapping (a jump, a wrap)
MAX_FRAME_TIMES = 100_000  # send times kept for tests and benchmarks (about an hour at 25 fps)

T = TypeVar("T")


def seconds_of(frame) -> float | None:
    """A frame's time in seconds, or None when it carries none."""
    if frame.pts is None or frame.time_base is None:
        return None
    return float(frame.pts * frame.time_base)


def video_frame(bgr: np.ndarray, t: float) -> av.VideoFrame:
    """A BGR picture as an `av.VideoFrame` stamped at session time `t`."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
    frame.pts, frame.time_base = int(round(t / VIDEO_TIME_BASE)), VIDEO_TIME_BASE
    return frame


def audio_frame(pcm: np.ndarray, rate: int, t: float) -> av.AudioFrame:
    """Mono float PCM as a 16-bit `av.AudioFrame` stamped at session time `t` (what aiortc's encoders take)."""
    data = (np.clip(pcm, -1.0, 1.0) * 32767.0).astype(np.int16)
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(data))
    frame.planes[0].update(data.tobytes())
    frame.sample_rate = rate
    frame.pts, frame.time_base = int(round(t * rate)), fractions.Fraction(1, rate)
    return frame


def mono_float(frame: av.AudioFrame) -> np.ndarray:
    """An audio frame of any sample format and layout as mono float32 in [-1, 1]."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        pcm = data.reshape(channels, -1).mean(axis=0)
    else:
        pcm = data.reshape(-1, channels).mean(axis=1)
    if data.dtype == np.int16:
        pcm = pcm / 32768.0
    elif data.dtype == np.int32:
        pcm = pcm / 2147483648.0
    return pcm.astype(np.float32)


class StreamClock:
    """Remote media seconds → session time: anchored on the first frame, re-anchored when they jump."""

    def __init__(self, now: Callable[[], float]):
        self._now = now
        self._offset: float | None = None

    def __call__(self, media_t: float | None) -> float:
        now = self._now()
        if media_t is None:
            return now
        if self._offset is None or abs(media_t + self._offset - now) > REANCHOR_S:
            self._offset = now - media_t
        return media_t + self._offset


class SessionClock:
    """Local media is stamped in session seconds already: its time is the session time."""

    def __init__(self, now: Callable[[], float]):
        self._now = now

    def __call__(self, media_t: float | None) -> float:
        return self._now() if media_t is None else media_t


class LatestFrame(Generic[T]):
    """A one-slot hand-over on the event loop: `put` replaces what the reader has not taken yet (counted in
    `dropped`); `delivered` counts what the reader took."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0
        self.delivered = 0

    def put(self, item: T) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._ready.set()

    async def get(self) -> T:
        """The newest item once there is one; raises `EOFError` once closed."""
        while self._item is None:
            if self._closed:
                raise EOFError
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        self.delivered += 1
        return item

    def close(self) -> None:
        self._closed = True
        self._ready.set()


class LatestFrameTrack(MediaStreamTrack):
    """A track fed by `offer(frame)`: its reader always gets the newest frame, never a backlog."""

    def __init__(self, kind: str = "video") -> None:
        super().__init__()
        self.kind = kind
        self.frames: LatestFrame = LatestFrame()

    def offer(self, frame) -> None:
        self.frames.put(frame)

    async def recv(self):
        if self.readyState != "live":
            raise MediaStreamError
        try:
            return await self.frames.get()
        except EOFError:
            self.stop()
            raise MediaStreamError from None

    def stop(self) -> None:
        self.frames.close()
        super().stop()


class FrameGaps:
    """When frames went out: count, the largest gap, and the send times (bounded) for tests and benchmarks."""

    def __init__(self) -> None:
        self.count = 0
        self.max_gap_s = 0.0
        self.times: list[float] = []
        self._last: float | None = None

    def tick(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            self.max_gap_s = max(self.max_gap_s, now - self._last)
        self._last = now
        self.count += 1
        if len(self.times) < MAX_FRAME_TIMES:
            self.times.append(now)


class TrackPump:
    """A sink's side of the contract: pull frames from a track on the event loop, hand them to `write` on the
    sink's own thread (device and encoder calls block). At most `keep` frames wait; past that the oldest is
    dropped (counted): `keep=1` is latest-frame video, more absorbs an encoder's hiccups."""

    def __init__(self, track: MediaStreamTrack, write: Callable[[object], None], *, name: str, keep: int = 1):
        self.track, self.write, self.name = track, write, name
        self._queue: collections.deque = collections.deque()
        self._keep = keep
        self._cond = threading.Condition()
        self._closing = False
        self.dropped = 0
        self.written = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"livedub-{name}", daemon=True)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._thread.start()
        self._task = asyncio.create_task(self._pull(), name=f"{self.name}-pull")

    async def _pull(self) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await self.track.recv()
                with self._cond:
                    if len(self._queue) >= self._keep:
                        self._queue.popleft()
                        self.dropped += 1
                    self._queue.append(frame)
                    self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                frame = self._queue.popleft()
            try:
                self.write(frame)
                self.written += 1
            except Exception as exc:  # a device hiccup must not stop the call; said once
                if self.error is None:
                    log.warning("%s: %s", self.name, exc)
                self.error = exc

    async def aclose(self) -> None:
        """Stop pulling; the thread writes what is queued, then ends (joined off the loop)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, 10)
