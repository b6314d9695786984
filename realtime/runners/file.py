"""The file runner of `livedub translate`: a video (or photo) in language A → the same face speaking B.

One `DubSession` on the virtual clock: its speech half fills the DubTrack from the whole recording (or the
text), then every frame goes through the session, its mouth redrawn from the DubTrack audio around the
frame, so the mouth is closed wherever no translated speech plays.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from livedub.engines.audio import SAMPLE_RATE, decode_audio, resample
from livedub.engines.errors import BadInputError
from livedub.engines.lipsync import PcmTimeline

from ..face.video import FaceDubStats, prefill_bank, save_bank, write_dubbed_video
from ..io.files import FaceVideo
from ..outputs import atomic_output
from ..session import DubSession
from ..speech.path import DubResult
from .subtitles import write_subtitles

log = logging.getLogger("livedub.translate")

TAIL = 0.5  # seconds of picture kept after the last translated word


class Passthrough:
    """A lip engine that leaves frames alone (the unchanged-video answer to input without speech)."""

    name = "passthrough"

    def render(self, frames, faces, times, audio):
        return list(frames)


@dataclass(frozen=True)
class TranslateJob:
    """What to dub and where the results go (paths already checked by the caller)."""

    input: Path
    output: Path
    audio: Path | None = None  # speech to use instead of the input's own
    text: str | None = None  # or text to speak
    keep_if_no_speech: bool = False
    subs: bool = False
    report: Path | None = None


@dataclass
class TranslateResult:
    result: DubResult | None
    stats: FaceDubStats
    frames: int
    fps: float
    duration: float
    engine: str
    seconds: float
    written: list[Path] = field(default_factory=list)


def _dub_speech(session: DubSession, job: TranslateJob, video: FaceVideo) -> tuple[DubResult | None, np.ndarray | None]:
    """The translated speech on the session's track, and the original audio to keep under it (or None)."""
    config, times = session.config, session.times
    if job.text is not None:
        return session.dub_text(job.text), None
    speech_file = job.audio or job.input
    if not job.audio and not video.info.has_audio:
        raise BadInputError(f"{job.input}: has no audio track: pass --audio FILE or --text \"...\" to dub it")
    with times.stage("decode-audio", log):
        if config.keep_original > 0:  # decode once at the output rate; the recognizer's copy is resampled
            original = decode_audio(speech_file, config.output_rate)
            pcm = resample(original, config.output_rate, SAMPLE_RATE)
        else:
            original, pcm = None, decode_audio(speech_file)
    try:
        return session.dub_recording(pcm), original
    except BadInputError as exc:
        if job.keep_if_no_speech and "no speech" in str(exc):
            log.warning("%s: %s; writing the video unchanged (--keep-if-no-speech)", speech_file, exc)
            return None, original if original is not None else decode_audio(speech_file, config.output_rate)
        raise


def translate_file(session: DubSession, job: TranslateJob, *, progress: Callable[[int], None] | None = None,
                   total: Callable[[int], None] | None = None) -> TranslateResult:
    started = time.perf_counter()
    config, times = session.config, session.times
    rate = config.output_rate
    with times.stage("open", log):
        video = FaceVideo(job.input, fps=config.fps)
    session.fps = video.info.fps
    session.face_from(moving=not video.info.is_image)
    result, original = _dub_speech(session, job, video)
    fps = video.info.fps
    speech_end = result.track.end if result else 0.0
    duration = max(0.0 if video.info.is_image else video.info.duration, speech_end + TAIL)
    if result is None and video.info.is_image:
        duration = len(original) / rate if original is not None else 1.0
    n_frames = max(1, math.ceil(duration * fps))
    with times.stage("mix", log):
        audio = result.track.render(0.0, n_frames / fps) if result else np.zeros(int(n_frames / fps * rate), np.float32)
        if original is not None:
            gain = 1.0 if result is None else config.keep_original
            k = min(len(audio), len(original))
            audio[:k] += gain * original[:k]
    with times.stage("lip-engine", log):
        if result is None:
            session.engine = Passthrough()
            session.use_timeline(PcmTimeline(np.zeros(0, np.float32)))
        else:
            prefill_bank(session, video)
    if total:
        total(n_frames)
    stats = write_dubbed_video(job.output, session, video, n_frames, audio, rate, progress=progress,
                               require_face=False)
    save_bank(session)
    written = [job.output]
    if job.subs and result:
        base = job.output.with_suffix("")
        if result.source_language != result.target_language:
            written += write_subtitles(base, result.source_language,
                                       [(s.source_start, s.source_end, s.source_text) for s in result.segments])
        written += write_subtitles(base, result.target_language, [(s.start, s.end, s.text) for s in result.segments])
    out = TranslateResult(result, stats, n_frames, fps, n_frames / fps, stats.drawn_by(session.engine.name),
                          time.perf_counter() - started, written)
    if job.report:
        _write_report(session, job, out)
        written.append(job.report)
    return out


def _write_report(session: DubSession, job: TranslateJob, out: TranslateResult) -> None:
    result, stats = out.result, out.stats
    doc = {
        "input": str(job.input),
        "output": str(job.output),
        "mode": "text" if job.text is not None else ("audio" if job.audio else "video"),
        "source_language": result.source_language if result else None,
        "target_language": session.config.target,
        "duration": round(out.duration, 3),
        "engine": out.engine,
        "frames": stats.frames,
        "face_frames": stats.face_frames,
        "segments": [s.as_dict() for s in result.segments] if result else [],
        "stage_seconds": session.times.as_dict(),
        "total_seconds": round(out.seconds, 3),
        "realtime_factor": round(out.seconds / out.duration, 3) if out.duration else None,
    }
    if stats.sources:  # what drew the frames: exemplar, fallback_<why> (bank not ready, pose uncovered), passthrough
        doc["frame_sources"] = stats.sources
        doc["frame_shares"] = stats.shares()
    with atomic_output(job.report) as tmp:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


@dataclass
class LipsyncResult:
    stats: FaceDubStats
    frames: int
    fps: float
    engine: str


def lipsync_file(session: DubSession, face: str | Path, audio: str | Path, output: str | Path, *,
                 progress: Callable[[int], None] | None = None, total: Callable[[int], None] | None = None
                 ) -> LipsyncResult:
    """`livedub lipsync`: the face in `face` speaks `audio` (no translation)."""
    from livedub.engines.asr.vad import speech_spans

    times = session.times
    with times.stage("decode"):
        video = FaceVideo(face, fps=session.config.fps, resize_factor=session.config.resize_factor)
        audio_out = decode_audio(audio, session.config.output_rate)  # decoded once; the analysis copy is resampled
        pcm = resample(audio_out, session.config.output_rate, SAMPLE_RATE)
    with times.stage("vad"):
        if not speech_spans(pcm):
            raise BadInputError(f"{audio}: no speech found (silence or noise): nothing to lip-sync")
    session.fps = video.info.fps
    session.face_from(moving=not video.info.is_image)
    session.use_timeline(PcmTimeline(pcm))
    prefill_bank(session, video)
    n_frames = max(1, math.ceil(len(pcm) / SAMPLE_RATE * video.info.fps))
    if total:
        total(n_frames)
    stats = write_dubbed_video(output, session, video, n_frames, audio_out, session.config.output_rate,
                               progress=progress)
    save_bank(session)
    return LipsyncResult(stats, n_frames, video.info.fps, stats.drawn_by(session.engine.name))
