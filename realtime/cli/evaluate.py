"""`livedub evaluate VIDEO`: weight-free A/V sync (mouth opening vs speech envelope)."""

from __future__ import annotations

import argparse

from .common import common_flags, model_flags, settings_from


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="measure lip-sync of a video: A/V offset and mouth/speech correlation",
        description="Weight-free sync metric: mouth opening per frame (face mesh) against the speech envelope, "
                    "cross-correlated over +-MAX_OFFSET frames. LSE-D/LSE-C need a SyncNet checkpoint.",
    )
    p.add_argument("video", metavar="VIDEO", help="a video with a face and speech")
    p.add_argument("--max-offset", type=int, default=15, help="frames searched either way (15)")
    p.add_argument("--syncnet", metavar="CKPT", help="SyncNet checkpoint for LSE-D/LSE-C")
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from livedub.engines.lipsync.sync_metric import evaluate_sync

    settings = settings_from(args).with_flags(syncnet_checkpoint=args.syncnet)
    report = evaluate_sync(args.video, max_offset=args.max_offset, syncnet_checkpoint=settings.syncnet_checkpoint)
    lead = "audio leads the mouth" if report.offset_frames > 0 else "mouth leads the audio"
    print(f"{args.video}: {report.frames} frames, face in {report.face_frames}")
    print(f"  AV offset        {report.offset_frames:+d} frames ({report.offset_seconds * 1000:+.0f} ms; "
          f"{lead if report.offset_frames else 'in sync'})")
    print(f"  peak correlation {report.peak_correlation:.3f} (mouth opening vs speech envelope, +-{args.max_offset} frames)")
    print(f"  mouth motion     {report.mouth_motion:.4f}")
    if report.lse_d is not None:
        print(f"  LSE-D {report.lse_d:.3f}  LSE-C {report.lse_c:.3f}")
    else:
        print(f"  {report.lse_note}")
    return 0
