"""`livedub translate INPUT --to LANG -o OUT.mp4`: dub a video (or photo) into another language."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from livedub.engines.errors import BadInputError
from livedub.engines.mt.text import speakable

from ..outputs import BANK, JSON, SUBTITLES, VIDEO, OutputPlan
from ..pool import ModelPool
from ..runners.file import TranslateJob, TranslateResult, translate_file
from ..runners.subtitles import subtitle_paths
from ..session import DubSession
from .common import (
    common_flags,
    config_from,
    dub_flags,
    lip_flags,
    model_flags,
    output_plan,
    progress_bar,
    say,
)


def register(sub) -> None:
    p = sub.add_parser(
        "translate", help="dub a video (or photo) into another language, lips in sync",
        description="Video in language A → the same video with the person speaking language B. The speech is "
                    "recognised, translated, spoken with a matching voice, placed where each sentence began "
                    "(sped up only when it would not fit its slot), and the mouth is redrawn to the new speech; "
                    "outside it the mouth is closed. Give the speech as the video's own audio, --audio FILE, "
                    "or --text.",
        epilog="examples:\n"
               "  livedub translate talk.mp4 --to es -o talk_es.mp4 --subs --report talk_es.json\n"
               "  livedub translate photo.jpg --audio message_fr.wav --to en -o message_en.mp4\n"
               "  livedub translate photo.jpg --text \"Hello everyone.\" --from en --to es -o hola.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="video with a face (and speech), or a photo")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mp4", help="H.264 + AAC mp4")
    p.add_argument("--to", required=True, metavar="LANG", help="language to speak, ISO 639-1 (es, en, ...)")
    p.add_argument("--from", dest="source", metavar="LANG", help="language of the speech or text (default: detect; "
                   "for --text: same as --to)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--audio", metavar="FILE", help="speech to use instead of the input's own audio")
    src.add_argument("--text", metavar="TEXT", help="text to speak (translated first if --from differs)")
    src.add_argument("--text-file", metavar="FILE", help="UTF-8 text file to speak")
    p.add_argument("--keep-original", type=float, default=0.0, metavar="VOLUME",
                   help="keep the original audio under the dub at this volume (e.g. 0.15; default 0: removed)")
    p.add_argument("--keep-if-no-speech", action="store_true",
                   help="when the input has no speech, write it unchanged instead of failing")
    p.add_argument("--subs", action="store_true", help="write OUT.LANG.srt and .vtt in both languages")
    p.add_argument("--report", metavar="OUT.json", help="segments, speeds, what drew the frames and time per stage")
    lip_flags(p)
    dub_flags(p)
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def read_text(args: argparse.Namespace) -> str | None:
    """The --text or --text-file to speak (the file already checked by `config_from`), refused when a voice
    would have nothing in it to say (only emoji, symbols or punctuation): no silent video is made of it."""
    if args.text is not None:
        text, where = args.text, f"--text {args.text!r}"
    elif args.text_file:
        where = f"--text-file {args.text_file}"
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadInputError(f"{where}: cannot be read as UTF-8 text ({exc})") from None
    else:
        return None
    if not speakable(text):
        raise BadInputError(f"{where}: nothing speakable in the text (no letters or digits to say)")
    return text


def job_from(args: argparse.Namespace) -> TranslateJob:
    return TranslateJob(
        input=Path(args.input), output=Path(args.output), audio=Path(args.audio) if args.audio else None,
        text=read_text(args), keep_if_no_speech=args.keep_if_no_speech, subs=args.subs,
        report=Path(args.report) if args.report else None,
    )


def plan_outputs(args: argparse.Namespace, config, job: TranslateJob) -> OutputPlan:
    """Every file this run writes, checked before any work (subtitles of a detected language: at write time)."""
    plan = output_plan(args, config.settings)
    plan.add("-o", args.output, VIDEO)
    if job.subs:
        for language in dict.fromkeys(x for x in (config.source, config.target) if x):
            for path in subtitle_paths(job.output.with_suffix(""), language):
                plan.add("--subs", path, SUBTITLES)
    plan.add("--report", args.report, JSON)
    plan.add("--bank", args.bank, BANK)
    return plan


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    job = job_from(args)
    # all outputs appear when the run succeeds, none otherwise; the pool's workers and pipelines stop with it
    with plan_outputs(args, config, job), ModelPool(config.settings) as pool:
        session = DubSession(config, pool)
        try:
            with progress_bar(args, "dubbing video", "frame") as bar:
                out = translate_file(session, job, progress=bar.update, total=lambda n: setattr(bar, "total", n))
        finally:
            session.close()
    if out.result and out.stats.face_frames == 0:
        print(f"livedub: warning: no usable face in {args.input}: the audio is dubbed, frames are unchanged",
              file=sys.stderr)
    say(args, summary(args.output, out))
    say(args, session.times.table(out.duration))
    for path in out.written[1:]:
        say(args, f"wrote {path}")
    return 0


def describe_sources(sources: dict[str, int]) -> str:
    """'exemplar 92%, viseme fallback 8% (bank not ready)' from an engine's frame counts."""
    total = sum(sources.values())
    if not total:
        return ""
    parts = []
    for key, n in sources.items():
        if n:
            name = key.replace("fallback_", "viseme fallback (").replace("_", " ")
            parts.append(f"{name}{')' if key.startswith('fallback_') else ''} {n / total:.0%}")
    return ", ".join(parts)


def summary(output: str, out: TranslateResult) -> str:
    result, stats = out.result, out.stats
    what = (f"{len(result.segments)} sentences {result.source_language} → {result.target_language}"
            if result else "no speech: unchanged")
    drawn = describe_sources(stats.sources)
    return (f"{output}: {stats.frames} frames at {out.fps:g} fps ({out.duration:.1f} s), {what}, face in "
            f"{stats.face_ratio:.0%} of frames, engine {out.engine}{f' ({drawn})' if drawn else ''}, "
            f"{out.seconds:.1f} s ({out.seconds / out.duration:.2f}× real time)")
