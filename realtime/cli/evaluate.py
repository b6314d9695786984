"""`livedub evaluate VIDEO`: weight-free A/V sync (mouth opening vs speech envelope); with --speaker, how much
the dub's voice sounds like the source speaker."""

from __future__ import annotations

import argparse
import sys

from livedub.engines.errors import LivedubError

from .common import check_model_files, common_flags, model_flags, settings_from

MAX_OFFSET = 1000  # frames (40 s at 25 fps): far past any real A/V offset


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="measure lip-sync of a video: A/V offset and mouth/speech correlation",
        description="Weight-free sync metric: mouth opening per frame (face mesh) against the speech envelope, "
                    "cross-correlated over +-MAX_OFFSET frames. With --syncnet also LSE-D and LSE-C, the SyncNet "
                    "distance and confidence papers report (the public syncnet_v2.model and its evaluation: face "
                    "crops at 25 fps, MFCCs, offsets of +-15 frames).",
    )
    p.add_argument("video", metavar="VIDEO", help="a video with a face and speech")
    p.add_argument("--max-offset", type=int, metavar="FRAMES",
                   help="frames searched either way (15, or fewer for a short clip; 0..the clip's frames - 8)")
    p.add_argument("--syncnet", metavar="syncnet_v2.model",
                   help="SyncNet checkpoint (joonson/syncnet_python's syncnet_v2.model, your file) for LSE-D "
                        "(lower is better) and LSE-C (higher is better)")
    p.add_argument("--speaker", metavar="SOURCE",
                   help="the source video or audio: also print how alike the voice of VIDEO and the speaker of "
                        "SOURCE sound (cosine of speaker d-vectors: ~0.9 the same person, 0.2-0.35 different "
                        "people); VIDEO may then be an audio file")
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from livedub.engines.lipsync.sync_metric import MIN_MOUTH_MOTION, evaluate_sync

    settings = settings_from(args)  # with --syncnet; every file flag checked
    check_model_files(settings)
    check_max_offset(args.max_offset, args.video)
    voice = speaker_line(args.video, args.speaker) if getattr(args, "speaker", None) else None
    if voice is not None and not has_video(args.video):
        print(f"{args.video}: audio only, no lip sync to measure")
        print(voice)
        return 0
    report = evaluate_sync(args.video, max_offset=args.max_offset, syncnet_checkpoint=settings.syncnet_checkpoint)
    if report.warning:
        print(f"livedub: warning: {report.warning}", file=sys.stderr)
    lead = "audio leads the mouth" if report.offset_frames > 0 else "mouth leads the audio"
    print(f"{args.video}: {report.frames} frames, face in {report.face_frames}")
    if report.mouth_motion < MIN_MOUTH_MOTION:
        print("  AV offset        none: the mouth does not move, so it follows no speech")
    else:
        print(f"  AV offset        {report.offset_frames:+d} frames ({report.offset_seconds * 1000:+.0f} ms; "
              f"{lead if report.offset_frames else 'in sync'})")
    print(f"  peak correlation {report.peak_correlation:.3f} (mouth opening vs speech envelope, "
          f"+-{report.max_offset} frames)")
    print(f"  mouth motion     {report.mouth_motion:.4f}")
    if report.lse_d is not None:
        print(f"  LSE-D            {report.lse_d:.3f} (SyncNet distance at its best offset; lower is better)")
        print(f"  LSE-C            {report.lse_c:.3f} (SyncNet confidence; higher is better)")
        print(f"  SyncNet offset   {report.lse_offset:+d} frames at 25 fps ({report.lse_note})")
    else:
        print(f"  {report.lse_note}")
    if voice is not None:
        print(voice)
    return 0


def speaker_line(dub: str, source: str) -> str:
    """One report line: the speaker similarity of the dub's voice to the source's speaker."""
    from livedub.engines.audio import decode_audio
    from livedub.engines.errors import BadInputError
    from livedub.engines.files import check_input_file
    from livedub.engines.speaker import similarity, speaker_embedding

    check_input_file(source, f"--speaker {source}", "an audio or video file")
    voices = []
    for path in (dub, source):
        try:
            voices.append(speaker_embedding(decode_audio(path)))
        except BadInputError as exc:
            raise BadInputError(f"{path}: {exc}" if not str(exc).startswith(str(path)) else str(exc)) from None
    score = similarity(*voices)
    return f"  speaker similarity {score:.3f} (to the speaker of {source}; same person ~0.9, different 0.2-0.35)"


def has_video(path: str) -> bool:
    import av

    try:
        with av.open(path) as container:
            return bool(container.streams.video)
    except Exception:  # unreadable: evaluate_sync says so in its own words
        return True


def check_max_offset(value: int | None, video: str) -> None:
    """--max-offset: 0 or more, and short enough that the clip still overlaps itself at the largest lag."""
    from livedub.engines.lipsync.sync_metric import max_offset_limit, probe_frames

    if value is None:
        return
    if not 0 <= value <= MAX_OFFSET:
        raise LivedubError(f"--max-offset {value}: must be between 0 and {MAX_OFFSET} frames")
    frames = probe_frames(video)
    if frames is not None and value > max_offset_limit(frames):
        raise LivedubError(f"--max-offset {value}: {video} has {frames} frames, so at most {max_offset_limit(frames)}")
