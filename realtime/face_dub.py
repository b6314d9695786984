"""The video half of dubbing: track the face in each frame, redraw its mouth from the timeline, write.

File mode drives it on a virtual clock (frame i is at i / fps); the live camera loop runs the same tracker
and engine per frame on the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    """Write `n_frames` frames of `video` with the mouth following `timeline` (frame i at i / fps)."""
    times = times or StageTimes()
    stats = FaceDubStats()
    fps = writer.fps
    frames: list[np.ndarray] = []
    faces: list[Face | None] = []
    stamps: list[float] = []

    def flush() -> None:
        if not frames:
            return
        with times.stage("lipsync", log):
            out = engine.render(frames, faces, stamps, timeline)
        with times.stage("encode", log):
            for f in out:
                writer.write(f)
        if progress:
            progress(len(out))
        frames.clear()
        faces.clear()
        stamps.clear()

    for i, frame in enumerate(video.frames(n_frames)):
        with times.stage("track", log):
            face = tracker.track(frame)
        stats.frames += 1
        if face is not None and face.usable:
            stats.face_frames += 1
        frames.append(frame)
        faces.append(face)
        stamps.append(i / fps)
        if len(frames) >= batch_size:
            flush()
    flush()
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
