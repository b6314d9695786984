"""`livedub translate`: a video (or photo) in language A → the same face speaking language B, as an mp4.

The speech half (SpeechDubber or dub_text) fills a DubTrack; the video half (write_dubbed_video) redraws
the mouth of every frame from the DubTrack audio around that frame, so the mouth is closed wherever no
translated speech plays. Both run on a virtual clock: this is the live pipeline, as fast as the CPU allows.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

from livedub.engines.audio import SAMPLE_RATE, decode_audio, resample
from livedub.engines.errors import BadInputError
from livedub.engines.lipsync import PcmTimeline
from livedub.engines.metrics import StageTimes
from livedub.engines.settings import Settings

from .commands import check_speeds, face_tracker, lip_engine, progress_bar, save_bank, settings_from
from .face_dub import write_dubbed_video
from .files import atomic_output
from .speech import DubResult, SpeechDubber, dub_text
from .subtitles import write_subtitles
from .video import FaceVideo

log = logging.getLogger("livedub.translate")

OUTPUT_RATE = 48_000
TAIL = 0.5  # seconds of picture kept after the last translated word


class Passthrough:
    """A lip engine that leaves frames alone (the unchanged-video answer to input without speech)."""

    name = "passthrough"

    def render(self, frames, faces, times, audio):
        return list(frames)


def _read_text(args: argparse.Namespace) -> str | None:
    if args.text is not None:
        return args.text
    if args.text_file:
        path = Path(args.text_file)
        if not path.exists():
            raise BadInputError(f"{path}: no such file")
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    return None


def _dub(args: argparse.Namespace, settings: Settings, video: FaceVideo,
         times: StageTimes) -> tuple[DubResult | None, np.ndarray | None]:
    """The translated speech, and the original audio to keep under it (or None)."""
    text = _read_text(args)
    if text is not None:
        return dub_text(text, source=args.source or args.to, target=args.to, settings=settings,
                        output_rate=OUTPUT_RATE, times=times), None
    speech_file = args.audio or args.input
    if not args.audio and not video.info.has_audio:
        raise BadInputError(f"{args.input}: has no audio track: pass --audio FILE or --text \"...\" to dub it")
    with times.stage("decode-audio", log):
        if args.keep_original > 0:  # decode once at the output rate; the recognizer's copy is resampled
            original = decode_audio(speech_file, OUTPUT_RATE)
            pcm = resample(original, OUTPUT_RATE, SAMPLE_RATE)
        else:
            original, pcm = None, decode_audio(speech_file)
    dubber = SpeechDubber(args.to, source=args.source, settings=settings, min_speed=args.min_speed,
                          max_speed=args.max_speed, output_rate=OUTPUT_RATE, times=times, mt=args.mt)
    try:
        return dubber.dub(pcm), original
    except BadInputError as exc:
        if args.keep_if_no_speech and "no speech" in str(exc):
            log.warning("%s: %s; writing the video unchanged (--keep-if-no-speech)", speech_file, exc)
            return None, original if original is not None else decode_audio(speech_file, OUTPUT_RATE)
        raise


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    times = StageTimes()
    if not 0.0 <= args.keep_original <= 1.0:
        raise BadInputError("--keep-original takes a volume between 0 and 1 (e.g. 0.15)")
    check_speeds(args)
    with times.stage("open", log):
        video = FaceVideo(args.input, fps=args.fps)
    settings = settings_from(args).with_flags(wav2lip_checkpoint=args.checkpoint)
    result, original = _dub(args, settings, video, times)
    fps = video.info.fps
    speech_end = result.track.end if result else 0.0
    duration = max(0.0 if video.info.is_image else video.info.duration, speech_end + TAIL)
    if result is None and video.info.is_image:
        duration = len(original) / OUTPUT_RATE if original is not None else 1.0
    n_frames = max(1, math.ceil(duration * fps))
    with times.stage("mix", log):
        audio = result.track.render(0.0, n_frames / fps) if result else np.zeros(int(n_frames / fps * OUTPUT_RATE), np.float32)
        if original is not None:
            gain = 1.0 if result is None else args.keep_original
            k = min(len(audio), len(original))
            audio[:k] += gain * original[:k]
    with times.stage("lip-engine", log):
        engine = lip_engine(args, settings, video) if result else Passthrough()
    tracker = face_tracker(args, fps)
    with progress_bar(args, "dubbing video", "frame") as bar:
        bar.total = n_frames
        stats = write_dubbed_video(args.output, video, n_frames, result.track if result else PcmTimeline(np.zeros(0, np.float32)),
                                   audio, OUTPUT_RATE, engine, tracker, times=times, progress=bar.update,
                                   require_face=False)
    save_bank(engine, args)
    if result and stats.face_frames == 0:
        print(f"livedub: warning: no usable face in {args.input}: the audio is dubbed, frames are unchanged",
              file=sys.stderr)
    written = [Path(args.output)]
    if args.subs and result:
        base = Path(args.output).with_suffix("")
        if result.source_language != result.target_language:
            written += write_subtitles(base, result.source_language,
                                       [(s.source_start, s.source_end, s.source_text) for s in result.segments])
        written += write_subtitles(base, result.target_language, [(s.start, s.end, s.text) for s in result.segments])
    total = time.perf_counter() - started
    if args.report:
        _write_report(args, result, stats, n_frames / fps, times, total, engine.name)
        written.append(Path(args.report))
    if not args.quiet:
        what = (f"{len(result.segments)} sentences {result.source_language} → {result.target_language}"
                if result else "no speech: unchanged")
        print(f"{args.output}: {stats.frames} frames at {fps:g} fps ({n_frames / fps:.1f} s), {what}, face in "
              f"{stats.face_ratio:.0%} of frames, engine {engine.name}, {total:.1f} s "
              f"({total / (n_frames / fps):.2f}× real time)", file=sys.stderr)
        print(times.table(n_frames / fps), file=sys.stderr)
        for path in written[1:]:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _write_report(args, result: DubResult | None, stats, duration: float, times: StageTimes, total: float,
                  engine: str) -> None:
    doc = {
        "input": str(args.input),
        "output": str(args.output),
        "mode": "text" if (args.text is not None or args.text_file) else ("audio" if args.audio else "video"),
        "source_language": result.source_language if result else None,
        "target_language": args.to,
        "duration": round(duration, 3),
        "engine": engine,
        "frames": stats.frames,
        "face_frames": stats.face_frames,
        "segments": [s.as_dict() for s in result.segments] if result else [],
        "stage_seconds": times.as_dict(),
        "total_seconds": round(total, 3),
        "realtime_factor": round(total / duration, 3) if duration else None,
    }
    with atomic_output(args.report) as tmp:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
