"""What several subcommands share: flag groups, and the one place flags become a `DubConfig`."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from livedub.engines.errors import LivedubError
from livedub.engines.settings import Settings, load_settings

from ..config import LIP_ENGINES, WAV2LIP_BACKENDS, DubConfig

EPILOG = """\
models come from installed packages (whisper-base, tiny.en, the en_US joe Piper voice), Debian programs
(espeak-ng, apertium pairs) or paths you pass; nothing is downloaded. See them with `livedub models`.
Defaults can live in ~/.config/livedub/config.toml; `livedub models --help` shows the format.
"""


def model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("models (override the config file and LIVEDUB_* variables)")
    g.add_argument("--asr-model", metavar="DIR", help="a faster-whisper (CTranslate2) model directory")
    g.add_argument("--mt-model", metavar="PAIR=DIR", action="append", default=[],
                   help="a CTranslate2 translation model for a pair, e.g. en-de=/models/opus-mt-en-de "
                        "(or any=DIR for NLLB/M2M100); repeatable")
    g.add_argument("--voice", metavar="VOICE.onnx", action="append", default=[],
                   help="a Piper voice (its .onnx.json beside it); repeatable")
    g.add_argument("--config", metavar="FILE", help="config file (default ~/.config/livedub/config.toml)")


def dub_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("translation and timing")
    g.add_argument("--mt", choices=("auto", "whisper"), default="auto",
                   help="auto: a text translator (your model, Apertium), whisper's translate task when none "
                        "serves the pair and --to is en; whisper: always whisper's speech → English translation")
    g.add_argument("--min-speed", type=float, default=0.8, help="slowest speech rate to fit a slot (0.8)")
    g.add_argument("--max-speed", type=float, default=1.3, help="fastest speech rate to fit a slot (1.3)")


def lip_flags(p: argparse.ArgumentParser, *, fps: bool = True) -> None:
    g = p.add_argument_group("faces and lips")
    g.add_argument("--engine", choices=LIP_ENGINES,
                   help="lip engine (default: wav2lip with a checkpoint; else exemplar for a video or with --bank "
                        "(the speaker's own mouths); else viseme (a warp, no weights))")
    g.add_argument("--bank", metavar="FILE",
                   help="mouth bank of the speaker for the exemplar engine: loaded if it exists, saved after the run")
    g.add_argument("--checkpoint", metavar="wav2lip_gan.pth", help="official Wav2Lip checkpoint (your file)")
    g.add_argument("--int8", action="store_true", help="Wav2Lip: static int8 model (faster on CPU, approximate)")
    g.add_argument("--engine-backend", choices=WAV2LIP_BACKENDS, default="auto",
                   help="where Wav2Lip runs: auto picks the fastest available (tensorrt > ort-trt > ort-cuda > "
                        "ort-cpu); an unavailable choice falls back with a warning")
    g.add_argument("--pads", type=int, nargs=4, default=[0, 10, 0, 0], metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                   help="Wav2Lip crop padding in pixels (0 10 0 0, as the reference)")
    if fps:
        g.add_argument("--fps", type=float, default=25.0, help="frame rate for a photo (25)")
    g.add_argument("--nosmooth", action="store_true", help="no temporal smoothing of the face landmarks")
    g.add_argument("--box", metavar="'TOP BOTTOM LEFT RIGHT'", help="fixed face box in pixels: skips detection")


def common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="log stage timings (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def settings_from(args: argparse.Namespace) -> Settings:
    """Config file + environment, overridden by this command's flags."""
    settings = load_settings(Path(args.config) if getattr(args, "config", None) else None)
    mt: dict[str, Path] = {}
    for item in getattr(args, "mt_model", []) or []:
        pair, sep, path = item.partition("=")
        if not sep or not pair or not path:
            raise LivedubError(f"--mt-model {item!r}: expected PAIR=DIR, e.g. en-de=/models/opus-mt-en-de")
        mt[pair.strip()] = Path(path)
    return settings.with_flags(
        asr_model=getattr(args, "asr_model", None), mt_models=mt, voices=getattr(args, "voice", None) or (),
        wav2lip_checkpoint=getattr(args, "checkpoint", None),
    )


def parse_box(text: str | None) -> tuple[int, int, int, int] | None:
    """--box "y1 y2 x1 x2" (the reference's order) → x1, y1, x2, y2; -1 values are not allowed."""
    if not text:
        return None
    try:
        y1, y2, x1, x2 = (int(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise LivedubError(f"--box {text!r}: expected four integers 'top bottom left right'") from None
    if not (0 <= y1 < y2 and 0 <= x1 < x2):
        raise LivedubError(f"--box {text!r}: need 0 <= top < bottom and 0 <= left < right")
    return x1, y1, x2, y2


def check_speeds(args: argparse.Namespace) -> None:
    if not 0.5 <= args.min_speed <= 1.0 <= args.max_speed <= 2.0:
        raise LivedubError("speeds must satisfy 0.5 <= --min-speed <= 1 <= --max-speed <= 2")


def check_fps(args: argparse.Namespace) -> None:
    fps = getattr(args, "fps", None)
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 240):
        raise LivedubError(f"--fps {fps:g}: must be a number above 0 and at most 240")


def config_from(args: argparse.Namespace, *, target: str | None = None) -> DubConfig:
    """The typed configuration of a dub, from this command's flags (validated here, once)."""
    from livedub.engines.mt.languages import check_language

    if hasattr(args, "min_speed"):
        check_speeds(args)
    check_fps(args)
    keep = float(getattr(args, "keep_original", 0.0) or 0.0)
    if not (math.isfinite(keep) and 0.0 <= keep <= 1.0):
        raise LivedubError("--keep-original takes a volume between 0 and 1 (e.g. 0.15)")
    to = target if target is not None else args.to
    source = getattr(args, "source", None)
    bank = getattr(args, "bank", None)
    return DubConfig(
        target=check_language(to, "--to") if to else "en",
        source=check_language(source, "--from") if source else None,
        mt=getattr(args, "mt", "auto"),
        min_speed=getattr(args, "min_speed", 0.8),
        max_speed=getattr(args, "max_speed", 1.3),
        keep_original=keep,
        engine=getattr(args, "engine", None),
        bank=Path(bank) if bank else None,
        int8=bool(getattr(args, "int8", False)),
        engine_backend=getattr(args, "engine_backend", "auto"),
        pads=tuple(getattr(args, "pads", (0, 10, 0, 0))),
        fps=float(getattr(args, "fps", 25.0) or 25.0),
        smooth=not getattr(args, "nosmooth", False),
        box=parse_box(getattr(args, "box", None)),
        resize_factor=int(getattr(args, "resize_factor", 1) or 1),
        captions=bool(getattr(args, "captions", False)),
        settings=settings_from(args),
    )


def progress_bar(args: argparse.Namespace, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, disable=args.quiet, file=sys.stderr, leave=False)


def say(args: argparse.Namespace, text: str) -> None:
    """A summary line on stderr unless --quiet."""
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)
