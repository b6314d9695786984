"""What several subcommands share: flag groups, and the one place flags become a `DubConfig`."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from livedub.engines.errors import LivedubError
from livedub.engines.files import check_input_file
from livedub.engines.settings import Settings, load_settings, parse_mt_model

from ..config import LIP_ENGINES, WAV2LIP_BACKENDS, DubConfig
from ..io.files import MAX_SIDE, probe_size, working_size
from ..outputs import OutputPlan

DEFAULTS = DubConfig(target="en")  # every default lives in DubConfig; flags show and use its values

# Every flag that names something a command reads: no output may be the same file as one of them.
INPUT_FLAGS = {"input": "INPUT", "video": "VIDEO", "face": "--face", "audio": "--audio", "text_file": "--text-file",
               "checkpoint": "--checkpoint", "syncnet": "--syncnet", "config": "--config", "asr_model": "--asr-model",
               "source_file": "--source"}
# The flags among them that name one regular file (not a folder, a pipe or a device), with what to pass instead.
FILE_FLAGS = {"input": ("INPUT", "a video or a photo"), "video": ("VIDEO", "a video"),
              "face": ("--face", "a video or a photo"), "audio": ("--audio", "an audio or video file"),
              "text_file": ("--text-file", "a UTF-8 text file"),
              "checkpoint": ("--checkpoint", "a Wav2Lip checkpoint file such as wav2lip_gan.pth"),
              "syncnet": ("--syncnet", "a SyncNet checkpoint file such as syncnet_v2.model"),
              "config": ("--config", "a config.toml file")}

EPILOG = """\
models come from installed packages (whisper-base, tiny.en, the en_US joe Piper voice), Debian programs
(espeak-ng, apertium pairs) or paths you pass; nothing is downloaded during a run. See them with `livedub models`;
fetch bigger ones on purpose with `livedub models get --list`.
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
    g.add_argument("--min-speed", type=float, default=DEFAULTS.min_speed,
                   help="slowest rate a clip shorter than its slot is slowed to, to end with it, 0.95..1 "
                        f"({DEFAULTS.min_speed:g}); shorter clips keep their natural pace and leave a pause")
    g.add_argument("--voice-engine", choices=("auto", "piper", "kokoro", "festival", "espeak-ng"), default="auto",
                   help="who speaks the translation: auto picks Piper where it has a voice, else Kokoro, else "
                        "Festival (Catalan), else espeak-ng (live: the best that keeps up on this machine)")
    g.add_argument("--voice-match", choices=("off", "register", "timbre"), default=DEFAULTS.voice_match,
                   help="how the voice follows the speaker: off (the language's default voice), register (a voice "
                        "of the speaker's pitch register), timbre (that voice moved toward the speaker: pitch, "
                        f"formants, spectral colour; fitted once per voice, ~3 s for Piper) ({DEFAULTS.voice_match})")
    g.add_argument("--max-speed", type=float, default=DEFAULTS.max_speed,
                   help=f"fastest speech rate to fit a slot, 1..2 ({DEFAULTS.max_speed:g})")
    g.add_argument("--catch-up-speed", type=float, default=DEFAULTS.catch_up_speed,
                   help="live: the speed cap once translated speech runs more than "
                        f"{DEFAULTS.catch_up_after:g} s behind the speaker (a long monologue in a longer language), "
                        f"so the delay cannot keep growing; --max-speed..2 ({DEFAULTS.catch_up_speed:g}); "
                        "equal to --max-speed: never faster than it")


def lip_flags(p: argparse.ArgumentParser, *, fps: bool = True) -> None:
    g = p.add_argument_group("faces and lips", f"A photo or video larger than {MAX_SIDE} pixels a side is worked "
                             f"on (and written) scaled down to {MAX_SIDE}; a note says so, and --box is scaled "
                             "with it.")
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
                   help="Wav2Lip crop padding in pixels, 0..256 each (0 10 0 0, as the reference)")
    if fps:
        g.add_argument("--fps", type=float, default=25.0, help="frame rate for a photo, above 0 and at most 240 (25)")
    g.add_argument("--nosmooth", action="store_true", help="no temporal smoothing of the face landmarks")
    g.add_argument("--box", metavar="'TOP BOTTOM LEFT RIGHT'",
                   help="fixed face box in pixels of the image (after --resize-factor): skips detection; it must "
                        "lie inside the image")


def common_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="log stage timings (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def settings_from(args: argparse.Namespace) -> Settings:
    """Config file + environment, overridden by this command's flags: the one place the environment is read
    (the engines get the resulting `Settings`). The files the flags name are checked first: a pipe given as
    --config would otherwise block the read."""
    check_input_files(args)
    settings = load_settings(Path(args.config) if getattr(args, "config", None) else None, environ=os.environ)
    mt = dict(parse_mt_model(item, "--mt-model") for item in getattr(args, "mt_model", None) or ())
    return settings.with_flags(
        asr_model=getattr(args, "asr_model", None), mt_models=mt, voices=getattr(args, "voice", None) or (),
        wav2lip_checkpoint=getattr(args, "checkpoint", None), syncnet_checkpoint=getattr(args, "syncnet", None),
    )


def check_input_files(args: argparse.Namespace) -> None:
    """Every file flag of this command names a readable regular file (one error line naming the flag)."""
    for key, (flag, what) in FILE_FLAGS.items():
        if value := getattr(args, key, None):
            check_input_file(value, f"{flag} {value}", what)


def check_model_files(settings: Settings) -> None:
    """Checkpoints named by the environment or the config file, checked as a flag would be (one wording)."""
    for key, flag, env, table in (("wav2lip_checkpoint", "checkpoint", "LIVEDUB_WAV2LIP", "[lipsync] checkpoint"),
                                  ("syncnet_checkpoint", "syncnet", "LIVEDUB_SYNCNET", "[lipsync] syncnet")):
        path = getattr(settings, key)
        origin = settings.origin.get(key, "flag")
        if path is not None and origin != "flag":  # a flag was checked with the other flags
            label = env if origin == "env" else f"the config's {table}"
            check_input_file(path, f"{label} {path}", FILE_FLAGS[flag][1])


def face_box(args: argparse.Namespace) -> tuple[int, int, int, int] | None:
    """--box as x1, y1, x2, y2 in the pixels frames are worked at, after two checks against the face image.

    The box must lie inside the image (after --resize-factor) it is given for. An image larger than
    MAX_SIDE a side is scaled down: a note says so, and the box is scaled with it.
    """
    box = parse_box(getattr(args, "box", None))
    path = getattr(args, "face", None) or getattr(args, "input", None)
    size = probe_size(path) if path else None
    if size is None:
        return box
    factor = max(int(getattr(args, "resize_factor", None) or 1), 1)
    width, height = size[0] // factor, size[1] // factor  # what the user's box is in
    if box is not None and (box[2] > width or box[3] > height):
        resized = f" after --resize-factor {factor}" if factor > 1 else ""
        raise LivedubError(f"--box {args.box!r}: lies outside the {width}x{height} image {path}{resized} (bottom "
                           f"must be at most {height}, right at most {width})")
    if max(size) / factor <= MAX_SIDE:
        return box
    work_w, work_h = working_size(size[0], size[1], factor)
    print(f"livedub: note: {path} is {size[0]}x{size[1]}: livedub works at most {MAX_SIDE} pixels a side, so it is "
          f"scaled down to {work_w}x{work_h} (the output too){'; --box is scaled with it' if box else ''}",
          file=sys.stderr)
    if box is None:
        return None
    sx, sy = work_w / width, work_h / height
    return (int(box[0] * sx), int(box[1] * sy), max(int(box[2] * sx), int(box[0] * sx) + 1),
            max(int(box[3] * sy), int(box[1] * sy) + 1))


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


def check_range(flag: str, value: float | None, low: float, high: float, *, low_open: bool = False) -> None:
    """One numeric flag against its range; the error names the flag and the range."""
    if value is None:
        return
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value <= high):
        bound = f"above {low:g}" if low_open else f"at least {low:g}"
        raise LivedubError(f"{flag} {value:g}: must be a number {bound} and at most {high:g}")


def check_speeds(args: argparse.Namespace) -> None:
    if not (math.isfinite(args.min_speed) and math.isfinite(args.max_speed)
            and 0.95 <= args.min_speed <= 1.0 <= args.max_speed <= 2.0):
        raise LivedubError(f"--min-speed {args.min_speed:g} --max-speed {args.max_speed:g}: speeds must satisfy "
                           "0.95 <= --min-speed <= 1 <= --max-speed <= 2")
    catch_up = getattr(args, "catch_up_speed", None)
    if catch_up is not None and not (math.isfinite(catch_up) and args.max_speed <= catch_up <= 2.0):
        raise LivedubError(f"--catch-up-speed {catch_up:g}: must be at least --max-speed ({args.max_speed:g}) "
                           "and at most 2")


def check_fps(args: argparse.Namespace) -> None:
    check_range("--fps", getattr(args, "fps", None), 0, 240, low_open=True)


def check_lip_numbers(args: argparse.Namespace) -> None:
    """--resize-factor and --pads (0 and negatives were silently treated as 1 / accepted before)."""
    check_range("--resize-factor", getattr(args, "resize_factor", None), 1, 16)
    for name, pad in zip(("TOP", "BOTTOM", "LEFT", "RIGHT"), getattr(args, "pads", None) or (), strict=False):
        if not 0 <= pad <= 256:
            raise LivedubError(f"--pads {name} {pad}: each pad must be between 0 and 256 pixels")


def input_paths(args: argparse.Namespace, settings: Settings | None = None) -> list[tuple[str, object]]:
    """(flag, path) of everything this command reads: the files its outputs must never be."""
    found: list[tuple[str, object]] = [(flag, getattr(args, key)) for key, flag in INPUT_FLAGS.items()
                                       if getattr(args, key, None)]
    found += [("--voice", v) for v in getattr(args, "voice", None) or ()]
    if settings is not None:
        found += [("[tts] voice", v) for v in settings.voices]
        found += [(f"[mt] {pair}", p) for pair, p in settings.mt_models.items()]
        found += [(label, p) for label, p in (("the Wav2Lip checkpoint", settings.wav2lip_checkpoint),
                                              ("the SyncNet checkpoint", settings.syncnet_checkpoint),
                                              ("the ASR model", settings.asr_model)) if p]
    return found


def output_plan(args: argparse.Namespace, settings: Settings | None = None) -> OutputPlan:
    """An empty plan that knows this command's inputs; the command adds its outputs before any work."""
    return OutputPlan(input_paths(args, settings))


def config_from(args: argparse.Namespace, *, target: str | None = None) -> DubConfig:
    """The typed configuration of a dub, from this command's flags (validated here, once)."""
    from livedub.engines.mt.languages import check_language

    settings = settings_from(args)  # checks the input files first
    check_model_files(settings)
    if hasattr(args, "min_speed"):
        check_speeds(args)
    check_fps(args)
    check_lip_numbers(args)
    keep = float(getattr(args, "keep_original", 0.0) or 0.0)
    if not (math.isfinite(keep) and 0.0 <= keep <= 1.0):
        raise LivedubError(f"--keep-original {keep:g}: takes a volume between 0 and 1 (e.g. 0.15)")
    to = target if target is not None else args.to
    source = getattr(args, "source", None)
    bank = getattr(args, "bank", None)
    return DubConfig(
        target=check_language(to, "--to") if to is not None else "en",
        source=check_language(source, "--from") if source is not None else None,
        mt=getattr(args, "mt", "auto"),
        min_speed=getattr(args, "min_speed", DEFAULTS.min_speed),
        max_speed=getattr(args, "max_speed", DEFAULTS.max_speed),
        catch_up_speed=getattr(args, "catch_up_speed", DEFAULTS.catch_up_speed),
        voice_match=getattr(args, "voice_match", DEFAULTS.voice_match),
        keep_original=keep,
        voice_engine=None if getattr(args, "voice_engine", "auto") in (None, "auto") else args.voice_engine,
        engine=getattr(args, "engine", None),
        bank=Path(bank) if bank else None,
        int8=bool(getattr(args, "int8", False)),
        engine_backend=getattr(args, "engine_backend", "auto"),
        pads=tuple(getattr(args, "pads", (0, 10, 0, 0))),
        fps=float(getattr(args, "fps", None) or 25.0),
        smooth=not getattr(args, "nosmooth", False),
        box=face_box(args),
        resize_factor=int(getattr(args, "resize_factor", None) or 1),
        captions=bool(getattr(args, "captions", False)),
        settings=settings,
    )


def progress_bar(args: argparse.Namespace, desc: str, unit: str):
    from tqdm import tqdm

    return tqdm(desc=desc, unit=unit, disable=args.quiet, file=sys.stderr, leave=False)


def say(args: argparse.Namespace, text: str) -> None:
    """A summary line on stderr unless --quiet."""
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr)
