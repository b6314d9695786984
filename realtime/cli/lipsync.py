"""`livedub lipsync --face VIDEO|IMAGE --audio AUDIO -o OUT.mp4`: a face speaks an audio file."""

from __future__ import annotations

import argparse
import time

from ..outputs import BANK, VIDEO
from ..pool import ModelPool
from ..runners.file import lipsync_file
from ..session import DubSession
from .common import common_flags, config_from, lip_flags, model_flags, output_plan, progress_bar, say
from .translate import describe_sources


def register(sub) -> None:
    p = sub.add_parser(
        "lipsync", help="make a face (video or photo) speak an audio file",
        description="Track the face in --face and redraw its mouth to match --audio, frame by frame, streamed. "
                    "A photo becomes a still video; audio longer than the video plays the frames back and forth.",
        epilog="examples:\n  livedub lipsync --face me.jpg --audio speech.wav -o me_speaking.mp4\n"
               "  livedub lipsync --face talk.mp4 --audio dub.wav --checkpoint wav2lip_gan.pth -o out.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--face", required=True, metavar="VIDEO|IMAGE", help="video or photo with a face")
    p.add_argument("--audio", required=True, metavar="AUDIO", help="speech to lip-sync (any audio/video file)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="H.264 + AAC mp4")
    lip_flags(p)
    p.add_argument("--resize-factor", type=int, default=1, help="divide the input resolution by this (1..16; 1)")
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args, target="en")  # no translation: the language is never used
    started = time.perf_counter()
    plan = output_plan(args, config.settings)
    plan.add("-o", args.output, VIDEO)
    plan.add("--bank", args.bank, BANK)
    # the video and the bank appear together when the run succeeds, neither otherwise
    with plan, ModelPool(config.settings) as pool:
        session = DubSession(config, pool)
        try:
            with progress_bar(args, "lip-sync", "frame") as bar:
                out = lipsync_file(session, args.face, args.audio, args.output, progress=bar.update,
                                   total=lambda n: setattr(bar, "total", n))
        finally:
            session.close()
    drawn = describe_sources(out.stats.sources)
    say(args, f"{args.output}: {out.stats.frames} frames at {out.fps:g} fps, face in {out.stats.face_ratio:.0%}, "
              f"engine {out.engine}{f' ({drawn})' if drawn else ''}, {time.perf_counter() - started:.1f} s")
    say(args, session.times.table(out.frames / out.fps))
    return 0
