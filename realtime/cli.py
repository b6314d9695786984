"""The `livedub` command line: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from livedub.engines.errors import LivedubError

from . import commands

EPILOG = """\
models come from installed packages (whisper-base, tiny.en, the en_US joe Piper voice), Debian programs
(espeak-ng, apertium pairs) or paths you pass; nothing is downloaded. See them with `livedub models`.
Defaults can live in ~/.config/livedub/config.toml; `livedub models --help` shows the format.
"""


def _model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (override the config file and LIVEDUB_* variables)")
    g.add_argument("--asr-model", metavar="DIR", help="a faster-whisper (CTranslate2) model directory")
    g.add_argument("--mt-model", metavar="PAIR=DIR", action="append", default=[],
                   help="a CTranslate2 translation model for a pair, e.g. en-de=/models/opus-mt-en-de "
                        "(or any=DIR for NLLB/M2M100); repeatable")
    g.add_argument("--voice", metavar="VOICE.onnx", action="append", default=[],
                   help="a Piper voice (its .onnx.json beside it); repeatable")
    g.add_argument("--config", metavar="FILE", help="config file (default ~/.config/livedub/config.toml)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="log stage timings (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livedub",
        description="Translate a talking face: speech in one language in, the same face speaking another out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "speech", help="translate the speech of an audio/video file into a WAV in another language",
        description="Recognise the speech in IN, translate it, and speak it in --to. Each translated sentence "
                    "starts where the original did and is sped up or slowed down (within --min-speed/--max-speed) "
                    "to fit before the next one; what still does not fit pushes the next sentence later.",
        epilog="example: livedub speech talk.mp4 --to es -o talk_es.wav --transcript talk_es.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="IN", help="any audio or video file (wav, mp3, mp4, mkv, ...)")
    p.add_argument("--to", required=True, metavar="LANG", help="target language, ISO 639-1 (es, en, de, ...)")
    p.add_argument("--from", dest="source", metavar="LANG", help="source language (default: detect)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="translated speech (16-bit WAV)")
    p.add_argument("--transcript", metavar="OUT.json", help="segments with times, texts and speeds")
    p.add_argument("--min-speed", type=float, default=0.8, help="slowest speech rate to fit a slot (0.8)")
    p.add_argument("--max-speed", type=float, default=1.3, help="fastest speech rate to fit a slot (1.3)")
    _model_flags(p)
    _common(p)
    p.set_defaults(func=commands.speech)

    p = sub.add_parser(
        "models", help="list every model this machine can use, where it came from, and whether it verifies",
        description="Resolve every role (ASR, MT, TTS, lip-sync) to a model and show its source.",
        epilog=commands.CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--no-verify", action="store_true", help="skip sha256 checks (faster)")
    _model_flags(p)
    _common(p)
    p.set_defaults(func=commands.models)

    p = sub.add_parser(
        "demo", help="make a sample with the embedded voice and dub it (what `make demo` runs)",
        description="Generate English speech with the embedded Piper voice and dub it into Spanish with "
                    "whisper + Apertium + espeak-ng, using only embedded models.",
    )
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (demo_out)")
    _common(p)
    p.set_defaults(func=commands.demo)
    return parser


def _configure_logging(verbose: int) -> None:
    level = os.environ.get("LIVEDUB_LOG", "").upper() or ("DEBUG" if verbose > 1 else "INFO" if verbose else "WARNING")
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("faster_whisper", "absl", "PIL", "matplotlib"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except LivedubError as exc:
        print(f"livedub: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("livedub: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
