"""`livedub models`: every role's model, where it came from, and whether it verifies."""

from __future__ import annotations

import argparse
import os

from livedub.engines import registry
from livedub.engines.metrics import format_table
from livedub.engines.settings import config_path

from .common import common_flags, model_flags, settings_from

CONFIG_HELP = f"""\
config file ({config_path(os.environ)}), all keys optional:

  [asr]
  model = "/models/faster-whisper-small"        # CTranslate2 whisper directory
  [mt]
  en-de = "/models/opus-mt-en-de-ct2"            # pair → CTranslate2 model directory
  any = "/models/nllb-200-distilled-600M-ct2"    # multilingual NLLB / M2M100
  [tts]
  voices = ["/voices/de_DE-thorsten-medium.onnx"]
  [lipsync]
  checkpoint = "/models/wav2lip_gan.pth"
  syncnet = "/models/syncnet_v2.model"

environment: LIVEDUB_ASR_MODEL, LIVEDUB_MT_MODELS ("en-de=DIR:any=DIR"), LIVEDUB_VOICES ("a.onnx:b.onnx"),
LIVEDUB_WAV2LIP, LIVEDUB_SYNCNET, LIVEDUB_CONFIG, LIVEDUB_CACHE. Flags beat variables beat the file.
"""


def register(sub) -> None:
    p = sub.add_parser(
        "models", help="list every model this machine can use, where it came from, and whether it verifies",
        description="Resolve every role (ASR, MT, TTS, lip-sync) to a model and show its source.",
        epilog=CONFIG_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--no-verify", action="store_true", help="skip sha256 checks (faster)")
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rows = [["role", "model", "languages", "source", "size", "verified"]]
    for e in registry.entries(settings, verify=not args.no_verify):
        rows.append([e.role, e.model, e.languages, e.source, registry.human_size(e.size), e.verified])
    print(format_table(rows))
    print("\ntranslation routes, per target language (› a pivot; speech may start with whisper's English)")
    print(format_table(route_rows(registry.reach(settings)), max_width=90))
    return 0


def route_rows(reach: list[registry.Reach]) -> list[list[str]]:
    """One row per (target, source): the text route, and the speech route where it differs."""
    rows = [["to", "from", "text", "speech"]]
    for r in reach:
        source = "any (speech)" if r.source == "any" else r.source
        rows.append([r.target, source, r.text, "same" if r.speech == r.text else r.speech])
    return rows
