"""The video half of dubbing: track the face in each frame, redraw its mouth from the timeline, write.

File mode drives it on a virtual clock (frame i is at i / fps); the live camera loop runs the same tracker
and engine per frame on the wall clock.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from livedub.engines.face import Face, FaceTracker
from livedub.engines.lipsync import AudioTimeline, LipEngine
from livedub.engines.metrics import StageTimes

from .video import FaceVideo, Mp4Writer

log = logging.getLogger("livedub.facedub")


@dataclass
class FaceDubStats:
    frames: int = 0
    face_frames: int = 0  # frames whose face the engine could edit

    @property
    def face_ratio(self) -> float:
        return self.face_frames / self.frames if self.frames else 0.0


def _prefetch(items: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Run a frame iterator in a thread, `size` frames ahead: decoding overlaps tracking on another core."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # hand decoder errors to the consumer
            q.put(exc)

    thread = threading.Thread(target=worker, name="livedub-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class _BackgroundWriter:
    """Encodes frames on a thread so x264 works while the next batch is tracked and rendered."""

    def __init__(self, writer: Mp4Writer, times: StageTimes, size: int = 16):
        self.writer, self.times = writer, times
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="livedub-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (frame := self.q.get()) is not None:
            if self.error is None:
                try:
                    with self.times.stage("encode"):
                        self.writer.write(frame)
                except BaseException as exc:
                    self.error = exc

    def put(self, frame: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(frame)

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def dub_frames(
    video: FaceVideo,
    n_frames: int,
    timeline: AudioTimeline,
    engine: LipEngine,
    tracker: FaceTracker,
    writer: Mp4Writer,
    *,
    batch_size: int = 8,
    times: StageTimes | None = None,
    progress: Callable[[int], None] | None = None,
) -> FaceDubStats:
    """Write `n_frames` frames of `video` with the mouth following `timeline` (frame i at i / fps).

    Three stages overlap: decoding (thread), tracking + lip engine (this thread), encoding (thread).
    """
    times = times or StageTimes()
    stats = FaceDubStats()
    fps = writer.fps
    frames: list[np.ndarray] = []
    faces: list[Face | None] = []
    stamps: list[float] = []
    sink = _BackgroundWriter(writer, times)

    def flush() -> None:
        if not frames:
            return
        with times.stage("lipsync", log):
            out = engine.render(frames, faces, stamps, timeline)
        for f in out:
            sink.put(f)
        if progress:
            progress(len(out))
        frames.clear()
        faces.clear()
        stamps.clear()

    try:
        source = _prefetch(video.frames(n_frames), size=8)
        i = 0
        while True:
            with times.stage("decode-wait"):
                frame = next(source, None)
            if frame is None:
                break
            with times.stage("track", log):
                face = tracker.track(frame)
            stats.frames += 1
            if face is not None and face.usable:
                stats.face_frames += 1
            frames.append(frame)
            faces.append(face)
            stamps.append(i / fps)
            i += 1
            if len(frames) >= batch_size:
                flush()
        flush()
    finally:
        sink.close()
    return stats


def write_dubbed_video(
    output: str,
    video: FaceVideo,
    n_frames: int,
    timeline: AudioTimeline,
    audio_out: np.ndarray,
    audio_rate: int,
    engine: LipEngine,
    tracker: FaceTracker,
    *,
    times: StageTimes | None = None,
    progress: Callable[[int], None] | None = None,
    require_face: bool = True,
) -> FaceDubStats:
    """The whole video job: frames + audio → an mp4 that appears only when complete.

    With `require_face`, a video in which no frame had a usable face is an error (and nothing is written).
    """
    from livedub.engines.errors import BadInputError

    from .files import atomic_output

    with atomic_output(output) as tmp:
        with Mp4Writer(tmp, video.info.width, video.info.height, video.info.fps, audio_out, audio_rate) as writer:
            stats = dub_frames(video, n_frames, timeline, engine, tracker, writer, times=times, progress=progress)
        if require_face and stats.face_frames == 0:
            raise BadInputError(f"{video.path}: no usable face found in any frame (none, too small, or in profile)")
    return stats
