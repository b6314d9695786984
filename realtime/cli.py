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


def _dub_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("translation and timing")
    g.add_argument("--mt", choices=("auto", "whisper"), default="auto",
                   help="auto: a text translator (your model, Apertium), whisper's translate task when none "
                        "serves the pair and --to is en; whisper: always whisper's speech → English translation")
    g.add_argument("--min-speed", type=float, default=0.8, help="slowest speech rate to fit a slot (0.8)")
    g.add_argument("--max-speed", type=float, default=1.3, help="fastest speech rate to fit a slot (1.3)")


def _lip_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("faces and lips")
    g.add_argument("--engine", choices=("exemplar", "viseme", "wav2lip"),
                   help="lip engine (default: wav2lip with a checkpoint; else exemplar for a video or with --bank "
                        "(the speaker's own mouths); else viseme (a warp, no weights))")
    g.add_argument("--bank", metavar="FILE",
                   help="mouth bank of the speaker for the exemplar engine: loaded if it exists, saved after the run")
    g.add_argument("--checkpoint", metavar="wav2lip_gan.pth", help="official Wav2Lip checkpoint (your file)")
    g.add_argument("--int8", action="store_true", help="Wav2Lip: static int8 model (faster on CPU, approximate)")
    g.add_argument("--engine-backend", choices=("auto", "tensorrt", "ort-trt", "ort-cuda", "ort-cpu"), default="auto",
                   help="where Wav2Lip runs: auto picks the fastest available (tensorrt > ort-trt > ort-cuda > "
                        "ort-cpu); an unavailable choice falls back with a warning")
    g.add_argument("--pads", type=int, nargs=4, default=[0, 10, 0, 0], metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                   help="Wav2Lip crop padding in pixels (0 10 0 0, as the reference)")
    g.add_argument("--fps", type=float, default=25.0, help="frame rate for a photo (25)")
    g.add_argument("--nosmooth", action="store_true", help="no temporal smoothing of the face landmarks")
    g.add_argument("--box", metavar="'TOP BOTTOM LEFT RIGHT'", help="fixed face box in pixels: skips detection")


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
    _dub_flags(p)
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
        "translate", help="dub a video (or photo) into another language, lips in sync",
        description="Video in language A → the same video with the person speaking language B. The speech is "
                    "recognised, translated, spoken with a matching voice, placed where each sentence began "
                    "(fitted to its slot), and the mouth is redrawn to the new speech; outside it the mouth is "
                    "closed. Give the speech as the video's own audio, --audio FILE, or --text.",
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
    p.add_argument("--report", metavar="OUT.json", help="segments, speeds and time per stage")
    _lip_flags(p)
    _dub_flags(p)
    _model_flags(p)
    _common(p)
    p.set_defaults(func=_translate)

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
    _lip_flags(p)
    p.add_argument("--resize-factor", type=int, default=1, help="divide the input resolution by this (1)")
    _model_flags(p)
    _common(p)
    p.set_defaults(func=commands.lipsync)

    p = sub.add_parser(
        "evaluate", help="measure lip-sync of a video: A/V offset and mouth/speech correlation",
        description="Weight-free sync metric: mouth opening per frame (face mesh) against the speech envelope, "
                    "cross-correlated over +-MAX_OFFSET frames. LSE-D/LSE-C need a SyncNet checkpoint.",
    )
    p.add_argument("video", metavar="VIDEO", help="a video with a face and speech")
    p.add_argument("--max-offset", type=int, default=15, help="frames searched either way (15)")
    p.add_argument("--syncnet", metavar="CKPT", help="SyncNet checkpoint for LSE-D/LSE-C")
    _model_flags(p)
    _common(p)
    p.set_defaults(func=commands.evaluate)

    p = sub.add_parser(
        "export", help="convert a Wav2Lip checkpoint to ONNX (and a TensorRT engine) ahead of time",
        description="Export the generator of an official Wav2Lip checkpoint to ONNX (dynamic batch, inputs "
                    "'mel' (B,1,80,16) and 'face' (B,6,96,96)). lipsync does this itself on first use and "
                    "caches the result by the checkpoint's sha256.",
    )
    p.add_argument("--checkpoint", required=True, metavar="PATH", help="wav2lip.pth or wav2lip_gan.pth")
    p.add_argument("--onnx", metavar="OUT.onnx", help="output path (default: beside the checkpoint)")
    p.add_argument("--fp16", action="store_true", help="half precision: fp16 ONNX weights, fp16 TensorRT kernels")
    p.add_argument("--tensorrt", metavar="OUT.plan", help="also build a TensorRT engine (needs an NVIDIA GPU and "
                   "pip install 'livedub[gpu]'); cached by checkpoint, GPU and TensorRT version")
    p.add_argument("--max-batch", type=int, default=64, metavar="N", help="largest batch of the TensorRT engine (64)")
    _common(p)
    p.set_defaults(func=commands.export)

    p = sub.add_parser(
        "demo", help="dub a face photo both ways, EN → ES and ES → EN (what `make demo` runs)",
        description="With embedded models only: English speech from the Piper voice is dubbed into Spanish "
                    "(whisper + Apertium + espeak-ng) and Spanish speech from espeak-ng into English (whisper's "
                    "translate task + Piper), each lip-synced onto a public-domain face photo.",
    )
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (demo_out)")
    _common(p)
    p.set_defaults(func=commands.demo)
    return parser


def _translate(args: argparse.Namespace) -> int:
    from .translate import run

    return run(args)


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
