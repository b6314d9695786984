"""`livedub camera --to LANG`: your webcam and microphone, dubbed live, as a virtual camera and microphone."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from livedub.engines.metrics import format_table

from ..config import DubConfig
from ..outputs import BANK, VIDEO
from ..pool import ModelPool
from ..runners.live import LiveOptions, LiveReport, LiveRun
from .common import common_flags, config_from, lip_flags, model_flags, output_plan, say

EXAMPLES = """\
examples:
  livedub camera --to es                              # webcam + mic → 'livedub' camera and microphone
  livedub camera --to es --camera /dev/video2 --bank me.bank --stats
  livedub camera --to es --source talk.mp4 --record talk_live_es.mp4   # no devices needed

in the call app (Zoom, Meet, Teams) pick the camera livedub names at start (a v4l2loopback device on Linux:
sudo modprobe v4l2loopback exclusive_caps=1 card_label=livedub; OBS Virtual Camera elsewhere) and the
microphone 'livedub' (the monitor of livedub's PulseAudio/PipeWire sink). Expect the translation about a
second after each phrase on a laptop CPU, faster with a GPU; your face is never delayed.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "camera", help="live: webcam + microphone → a virtual camera and microphone speaking another language",
        description="Listen to the microphone, translate each phrase as soon as it is heard, speak it into the "
                    "virtual microphone, and redraw the mouth of every camera frame to that speech. Ctrl-C stops "
                    "(devices released, the mouth bank saved).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--to", required=True, metavar="LANG", help="language to speak, ISO 639-1 (es, en, ...)")
    p.add_argument("--from", dest="source", metavar="LANG", help="language you speak (default: detected on your "
                   "first phrase, then held)")
    p.add_argument("--camera", default="0", metavar="N|PATH", help="camera index or device path (0)")
    p.add_argument("--mic", metavar="NAME|N", help="microphone (default: the system's)")
    p.add_argument("--source", dest="source_file", metavar="FILE",
                   help="play a video file in real time instead of camera + microphone; ends when it has played")
    p.add_argument("--record", metavar="OUT.mp4", help="also write what the other side gets to an mp4")
    p.add_argument("--audio-out", metavar="DEVICE", help="also play the translation on this output device")
    p.add_argument("--no-virtual-camera", action="store_true", help="do not open a virtual camera")
    p.add_argument("--no-virtual-mic", action="store_true", help="do not make the 'livedub' microphone")
    p.add_argument("--keep-original", type=float, default=0.0, metavar="VOLUME",
                   help="your own voice under the translation at this volume (e.g. 0.1; default 0)")
    p.add_argument("--max-speed", type=float, default=1.3, help="fastest speech rate to catch up (1.3)")
    p.add_argument("--voice-engine", choices=("auto", "piper", "kokoro", "festival", "espeak-ng"), default="auto",
                   help="who speaks: auto takes the best voice that keeps up live on this machine (and says which)")
    p.add_argument("--captions", action="store_true", help="draw the translated sentence on the outgoing video")
    p.add_argument("--stats", action="store_true", help="print per-stage p50/p95 once a second")
    lip_flags(p, fps=False)
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def options_from(args: argparse.Namespace) -> LiveOptions:
    return LiveOptions(
        camera=args.camera, mic=int(args.mic) if args.mic and args.mic.isdigit() else args.mic,
        source=Path(args.source_file) if args.source_file else None,
        record=Path(args.record) if args.record else None,
        virtual_camera=not args.no_virtual_camera, virtual_mic=not args.no_virtual_mic,
        audio_out=args.audio_out, stats_every=1.0 if args.stats else 0.0,
    )


def stats_line(stats: dict) -> str:
    stages = " ".join(f"{k} {v['p50_ms']:.0f}/{v['p95_ms']:.0f}" for k, v in stats["stages"].items())
    return (f"[live] p50/p95 ms: {stages} | frames {stats['frames_out']} (max gap {stats['max_frame_gap_ms']:.0f} ms)"
            f" | lag {stats['lag_s'] or 0:.1f} s | audio delay {stats['audio_delay_ms']:.0f} ms")


def latency_table(report: LiveReport) -> str:
    rows = [["stage", "p50 ms", "p95 ms", "n"]]
    for name, v in report.stats.get("stages", {}).items():
        rows.append([name, f"{v['p50_ms']:.0f}", f"{v['p95_ms']:.0f}", str(v["n"])])
    return format_table(rows)


async def run_live(config: DubConfig, pool: ModelPool, options: LiveOptions, *, quiet: bool = False,
                   stats: bool = False) -> LiveReport:
    """Run until the source ends, or Ctrl-C/SIGTERM (which stop cleanly: devices released, bank saved)."""
    live = LiveRun(config, pool, options, notice=lambda text: print(f"livedub: {text}", file=sys.stderr),
                   on_stats=(lambda s: print(stats_line(s), file=sys.stderr)) if stats else None)
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, live.stop.set)
            signals.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    try:
        return await live.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    options = options_from(args)
    plan = output_plan(args, config.settings)  # checked before any device opens; written when the call ends
    plan.add("--record", args.record, VIDEO)
    plan.add("--bank", args.bank, BANK)
    pool = ModelPool(config.settings)
    try:
        with plan:
            report = asyncio.run(run_live(config, pool, options, quiet=args.quiet, stats=args.stats))
    finally:
        pool.close()
    for sink in report.sinks:
        say(args, f"livedub: {sink}")
    say(args, f"live: {report.frames_out} frames out ({report.dropped} dropped, max gap "
              f"{1000 * report.max_frame_gap_s:.0f} ms), {len(report.clips)} translated phrases, "
              f"{report.seconds:.1f} s")
    say(args, latency_table(report))
    if report.recorded:
        say(args, f"wrote {report.recorded}")
    return 0


def live_demo(out: Path, face: Path, speech: Path, pool: ModelPool, *, quiet: bool = False) -> int:
    """`make demo`'s live part: the sample played through a live session on the wall clock, no devices."""
    import numpy as np

    from livedub.engines.audio import OUTPUT_RATE, decode_audio

    from ..io.files import FaceVideo, Mp4Writer

    clip = out / "live_source_en.mp4"
    audio = decode_audio(speech, OUTPUT_RATE)  # 0.5 s of silence before the speech, 1 s after
    audio = np.concatenate([np.zeros(OUTPUT_RATE // 2, np.float32), audio, np.zeros(OUTPUT_RATE, np.float32)])
    still = next(FaceVideo(face).frames(1))
    fps = 25
    with Mp4Writer(clip, still.shape[1], still.shape[0], fps, audio, OUTPUT_RATE) as w:
        for _ in range(int(len(audio) / OUTPUT_RATE * fps) + 1):
            w.write(still)
    print(f"\n== live: {clip.name} played in real time through `livedub camera --to es` (no devices)",
          file=sys.stderr)
    config = DubConfig(target="es", source="en", engine="viseme")
    options = LiveOptions(source=clip, record=out / "live_es.mp4", virtual_camera=False, virtual_mic=False)
    report = asyncio.run(run_live(config, pool, options, quiet=quiet))
    for start, end, text, source_text, *_ in report.clips:
        print(f"  [{start:5.2f}–{end:5.2f}s] {source_text}\n  → {text}")
    print(latency_table(report))
    print(f"wrote {report.recorded} ({report.frames_out} frames, max frame gap {1000 * report.max_frame_gap_s:.0f} ms)")
    return 0
