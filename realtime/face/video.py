"""File mode's video half: every frame of a video through a `DubSession` on the virtual clock, into an mp4.

Frame i is at i / fps on the session's timeline. Three stages overlap: decoding (a thread), tracking + the
lip engine (this thread, in batches so network engines fill theirs), encoding (a thread). The live camera
loop pushes the same session one frame at a time on the wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livedub.engines.errors import BadInputError
from livedub.engines.face import Face

from ..io.files import BackgroundWriter, FaceVideo, Mp4Writer, prefetch
from ..outputs import atomic_output
from ..session import DubSession

log = logging.getLogger("livedub.face")

PREFILL_SECONDS = 10.0  # of the input video scanned for mouth exemplars before dubbing starts


@dataclass
class FaceDubStats:
    frames: int = 0
    face_frames: int = 0  # frames whose face the engine could edit
    sources: dict[str, int] = field(default_factory=dict)  # what drew the frames, when the engine says

    @property
    def face_ratio(self) -> float:
        return self.face_frames / self.frames if self.frames else 0.0

    def shares(self) -> dict[str, float]:
        """Share of frames by what drew them (exemplar, fallback_<why>, passthrough), summing to 1."""
        total = sum(self.sources.values())
        return {k: round(v / total, 4) for k, v in self.sources.items()} if total else {}

    def drawn_by(self, engine: str) -> str:
        """The engine that really drew the frames: never `exemplar` for a video the exemplar engine did not draw."""
        if engine != "exemplar" or not self.sources or self.sources.get("exemplar", 0) > 0:
            return engine
        reasons = {k: v for k, v in self.sources.items() if k.startswith("fallback_") and v}
        if not reasons:
            return "passthrough"
        why = max(reasons, key=reasons.get).removeprefix("fallback_").replace("_", " ")
        return f"viseme (exemplar fallback: {why})"


def dub_frames(session: DubSession, video: FaceVideo, n_frames: int, writer: Mp4Writer, *, batch_size: int = 8,
               progress: Callable[[int], None] | None = None) -> FaceDubStats:
    """Write `n_frames` frames of `video` with the mouth following the session's timeline."""
    times = session.times
    stats = FaceDubStats()
    fps = writer.fps
    frames: list[np.ndarray] = []
    faces: list[Face | None] = []
    stamps: list[float] = []
    sink = BackgroundWriter(writer, times)

    def flush() -> None:
        if not frames:
            return
        out = session.render(frames, faces, stamps)
        for f in out:
            sink.put(f)
        if progress:
            progress(len(out))
        frames.clear()
        faces.clear()
        stamps.clear()

    try:
        source = prefetch(video.frames(n_frames), size=8)
        i = 0
        while True:
            with times.stage("decode-wait"):
                frame = next(source, None)
            if frame is None:
                break
            face = session.track_face(frame, i / fps)
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
    counts = getattr(session.engine, "source_counts", None)
    if callable(counts):
        stats.sources = dict(counts())
    return stats


def write_dubbed_video(output: str | Path, session: DubSession, video: FaceVideo, n_frames: int,
                       audio_out: np.ndarray, audio_rate: int, *, progress: Callable[[int], None] | None = None,
                       require_face: bool = True) -> FaceDubStats:
    """The whole video job: frames + audio → an mp4 that appears only when complete.

    With `require_face`, a video in which no frame had a usable face is an error (and nothing is written).
    """
    with atomic_output(output) as tmp:
        with Mp4Writer(tmp, video.info.width, video.info.height, video.info.fps, audio_out, audio_rate) as writer:
            stats = dub_frames(session, video, n_frames, writer, progress=progress)
        if require_face and stats.face_frames == 0:
            raise BadInputError(f"{video.path}: no usable face found in any frame (none, too small, or in profile)")
    return stats


def prefill_bank(session: DubSession, video: FaceVideo) -> None:
    """Collect the speaker's mouths from the video's first seconds, so exemplars are used from frame one."""
    bank = getattr(session.engine, "bank", None)
    if bank is None or video.info.is_image or bank.ready:
        return
    fps = video.info.fps
    n = int(min(video.info.duration, PREFILL_SECONDS) * fps)
    step = max(1, int(round(fps / 10)))  # ~10 looks a second: mouths change faster than that rarely matters
    picked = [(i, f) for i, f in enumerate(video.frames(n)) if i % step == 0]
    session.prefill_bank([f for _, f in picked], [i / fps for i, _ in picked])
    log.info("mouth bank: %d exemplars from the first %.0f s (ready: %s)", len(bank), n / fps, bank.ready)


def save_bank(session: DubSession) -> None:
    """--bank FILE: keep what this run learned of the speaker's mouth for the next run or call."""
    bank = getattr(session.face.engine_built, "bank", None)
    if session.config.bank and bank is not None:
        bank.save(session.config.bank)  # atomic; held by the run's output plan until its other outputs land
