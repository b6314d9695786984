"""`livedub speech IN --to LANG -o OUT.wav`: the translated speech alone, sentence by sentence in its slot."""

from __future__ import annotations

import argparse
import json
import time

from livedub.engines.audio import decode_audio, write_wav

from ..outputs import JSON, WAV, atomic_output
from ..pool import ModelPool
from ..session import DubSession
from .common import common_flags, config_from, dub_flags, model_flags, output_plan, progress_bar, say


def register(sub) -> None:
    p = sub.add_parser(
        "speech", help="translate the speech of an audio/video file into a WAV in another language",
        description="Recognise the speech in IN, translate it, and speak it in --to. Each translated sentence "
                    "starts where the original did, at its natural pace; one too long for its slot is sped up "
                    "(up to --max-speed) and what still does not fit pushes the next sentence later.",
        epilog="example: livedub speech talk.mp4 --to es -o talk_es.wav --transcript talk_es.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", help="any audio or video file (wav, mp3, mp4, mkv, ...)")
    p.add_argument("--to", required=True, metavar="LANG", help="target language, ISO 639-1 (es, en, de, ...)")
    p.add_argument("--from", dest="source", metavar="LANG", help="source language (default: detect)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="translated speech (16-bit WAV)")
    p.add_argument("--transcript", metavar="OUT.json", help="segments with times, texts and speeds")
    dub_flags(p)
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args).replace(output_rate=None)  # the voice's own rate: a speech WAV needs no 48 kHz
    started = time.perf_counter()
    plan = output_plan(args, config.settings)
    plan.add("-o", args.output, WAV)
    plan.add("--transcript", args.transcript, JSON)
    # the speech and its transcript appear together when the run succeeds, neither otherwise
    with plan, ModelPool(config.settings) as pool:
        pcm = decode_audio(args.input)
        session = DubSession(config, pool, video=False)
        with progress_bar(args, "dubbing", "sentence") as bar:
            result = session.dub_recording(pcm, progress=bar.update,
                                           total=lambda n: (setattr(bar, "total", n), bar.refresh()))
        track = result.track
        with session.times.stage("write"):
            audio = track.render(0.0, max(result.duration, track.end))
            with atomic_output(args.output) as tmp:
                write_wav(tmp, audio, track.output_rate)
            if args.transcript:
                _write_transcript(args.transcript, result, args.input)
    say(args, f"{args.output}: {len(result.segments)} sentences, {result.source_language} → "
              f"{result.target_language}, {len(audio) / track.output_rate:.1f} s (source {result.duration:.1f} s) "
              f"in {time.perf_counter() - started:.1f} s")
    say(args, session.times.table(result.duration))
    return 0


def _write_transcript(path: str, result, source: str) -> None:
    doc = {
        "source": str(source),
        "source_language": result.source_language,
        "target_language": result.target_language,
        "source_duration": round(result.duration, 3),
        "segments": [s.as_dict() for s in result.segments],
        "stage_seconds": result.times.as_dict(),
    }
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")
