"""A video file played in real time as camera + microphone (`livedub camera --source`, demos, tests,
benchmarks): a video track and an audio track stamped on the session clock, as the devices would give them.

Both tracks start on the first frame asked for. A video frame whose time has passed by more than a frame
interval when it is due is dropped (counted), as a camera would drop it; after its last frame the video
holds that picture (a paused camera) until stopped, while the session finishes speaking. The audio ends with
the file. Decoding runs on its own thread, a few frames ahead; opening (which decodes the audio) blocks:
build it off the event loop. A decoded picture goes out without a copy: the frame wraps the decoder's array
(a 1280×720 copy on the event loop cost 1–3 ms a frame), which nothing writes to again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livedub.engines.audio import OUTPUT_RATE, decode_audio
from livedub.engines.errors import LivedubError

from .files import FaceVideo
from .tracks import PTIME, VIDEO_TIME_BASE, audio_frame

DECODE_AHEAD = 8  # frames decoded before they are due: a camera's frames come whether or not our CPU is busy


class FileSource:
    """`video` and `audio` tracks of a file on the session clock `now`; `played()` waits until both ended."""

    def __init__(self, path: str | os.PathLike, now: Callable[[], float]):
        self.path = Path(path)
        self.now = now
        self.file = FaceVideo(self.path)
        if self.file.info.is_image:
            raise LivedubError(f"{self.path}: --source needs a video with speech, not a photo")
        self.fps = self.file.info.fps
        self.width, self.height = self.file.info.width, self.file.info.height
        has_audio = self.file.info.has_audio
        self.pcm = decode_audio(self.path, OUTPUT_RATE) if has_audio else np.zeros(0, np.float32)
        self.duration = max(self.file.info.duration, len(self.pcm) / OUTPUT_RATE)
        self._t0: float | None = None
        self.video = _FileVideoTrack(self)
        self.audio = _FileAudioTrack(self)

    def start_time(self) -> float:
        """Session time of the file's time 0 (fixed by the first frame asked for)."""
        if self._t0 is None:
            self._t0 = self.now()
        return self._t0

    @property
    def dropped(self) -> int:
        return self.video.dropped

    async def played(self) -> None:
        await asyncio.gather(self.video.ended.wait(), self.audio.ended.wait())

    def close(self) -> None:
        """Stop both tracks and the decoder thread (joins it: call off the loop)."""
        self.video.stop()
        self.audio.stop()
        self.video.decoder.close()


class _Decoder:
    """Frames of the file decoded on a thread, at most `DECODE_AHEAD` ahead of the reader (BGR + av frame)."""

    def __init__(self, file: FaceVideo):
        self._file = file
        self._frames: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stop = False
        self._done = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="livedub-decode", daemon=True)

    def _run(self) -> None:
        try:
            for bgr in self._file.frames(self._file.info.frames):
                with self._cond:
                    while len(self._frames) >= DECODE_AHEAD and not self._stop:
                        self._cond.wait()
                    if self._stop:
                        return
                    self._frames.append(bgr)
                self._wake()
        except Exception as exc:  # handed to the reader
            self.error = exc
        finally:
            self._done = True
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed under us
            self._loop.call_soon_threadsafe(self._ready.set)

    async def next(self) -> np.ndarray | None:
        """The next frame, or None at the end of the file."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._thread.start()
        while True:
            with self._cond:
                if self._frames:
                    bgr = self._frames.popleft()
                    self._cond.notify()
                    return bgr
                if self._done:
                    if self.error is not None:
                        raise self.error
                    return None
                self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class _FileVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, source: FileSource):
        super().__init__()
        self.source = source
        self.decoder = _Decoder(source.file)
        self.ended = asyncio.Event()
        self._i = 0
        self._last: np.ndarray | None = None
        self.dropped = 0
        self.delivered = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        t0, fps, now = self.source.start_time(), self.source.fps, self.source.now
        interval = 1.0 / fps
        while not self.ended.is_set():
            try:
                bgr = await self.decoder.next()
            except Exception:
                self.ended.set()  # the file has played as far as it could be decoded
                raise
            if bgr is None:
                self.ended.set()
                break
            pts = t0 + self._i / fps
            self._i += 1
            wait = pts - now()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -interval:
                self.dropped += 1
                continue
            self._last = bgr
            self.delivered += 1
            return _wrapped(bgr, pts)
        if self._last is None:
            raise MediaStreamError
        # the file has played: hold the last picture at the file's rate (never a burst after a stall)
        self._i = max(self._i, math.ceil((now() - t0) * fps))
        pts = t0 + self._i / fps
        self._i += 1
        await asyncio.sleep(max(pts - now(), 0.0))
        return _wrapped(self._last, pts)


def _wrapped(bgr: np.ndarray, t: float) -> av.VideoFrame:
    """A decoded BGR picture as a frame stamped at session time `t`, sharing the array (no copy)."""
    frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(bgr), format="bgr24")
    frame.pts, frame.time_base = int(round(t / VIDEO_TIME_BASE)), VIDEO_TIME_BASE
    return frame


class _FileAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, source: FileSource):
        super().__init__()
        self.source = source
        self.ended = asyncio.Event()
        self._pos = 0
        self._block = int(round(PTIME * OUTPUT_RATE))

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pcm = self.source.pcm
        if self._pos >= len(pcm):
            self.ended.set()
            self.stop()
            raise MediaStreamError
        t0 = self.source.start_time()
        start = t0 + self._pos / OUTPUT_RATE
        chunk = pcm[self._pos : self._pos + self._block]
        wait = start + len(chunk) / OUTPUT_RATE - self.source.now()  # a block is heard once it has been spoken
        if wait > 0:
            await asyncio.sleep(wait)
        self._pos += len(chunk)
        return audio_frame(chunk, OUTPUT_RATE, start)
