"""`livedub models`: every role's model, where it came from, and whether it verifies; `livedub models get`:
fetch a well-known bigger model from the Hugging Face Hub, on purpose (the only command that downloads)."""

from __future__ import annotations

import argparse
import os

from livedub.engines import catalog, registry
from livedub.engines.errors import LivedubError
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

bigger models: `livedub models get --list` shows what can be fetched from the Hugging Face Hub.
"""

GET_HELP = """Fetch well-known models from the Hugging Face Hub into livedub's cache (LIVEDUB_CACHE/models), on purpose:
nothing else in livedub downloads. Each file is checked against the Hub's hash and the model is installed
whole or not at all; an interrupted fetch resumes when run again. Fetched models are used without flags:
NLLB translates every pair it covers, Piper and Kokoro voices speak their language, and a whisper size is
chosen by name (--asr-model small). HF_ENDPOINT names another Hub (a mirror).
"""
USES = {
    "asr": "use it with --asr-model {alias}",
    "mt": "it translates every pair it covers (`livedub models` lists the routes)",
    "piper": "it speaks {language} by default",
    "kokoro": "Kokoro speaks with a native voice where one was fetched",
}


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
    actions = p.add_subparsers(dest="models_action", metavar="ACTION")
    get = actions.add_parser("get", help="fetch bigger models (whisper, NLLB, voices) from the Hugging Face Hub",
                             description=GET_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    get.add_argument("names", nargs="*", metavar="NAME", help="models to fetch (see --list); `piper`: every voice")
    get.add_argument("--list", action="store_true", help="show what can be fetched, with sizes and licences")
    common_flags(get)
    get.set_defaults(func=run_get)


def run(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    rows = [["role", "model", "languages", "source", "size", "verified"]]
    for e in registry.entries(settings, verify=not args.no_verify):
        rows.append([e.role, e.model, e.languages, e.source, registry.human_size(e.size), e.verified])
    print(format_table(rows))
    print("\ntranslation routes, per target language (› a pivot; speech may start with whisper's English)")
    print(format_table(route_rows(registry.reach(settings)), max_width=90))
    return 0


def run_get(args: argparse.Namespace) -> int:
    """`livedub models get NAME…`: plan, say size and licence, fetch, verify, install — one model at a time."""
    from livedub.engines import hub

    hub.library_logs(verbose=bool(args.verbose))
    cache = settings_from(args).cache
    if args.list:
        print(format_table(catalog_rows(cache)))
        notes = dict.fromkeys(e.note for e in catalog.CATALOG if e.note)
        print("".join(f"\nnote: {n}" for n in notes))
        print(f"\n`livedub models get NAME…` fetches into {catalog.models_dir(cache)}")
        return 0
    if not args.names:
        raise LivedubError("name the models to fetch; `livedub models get --list` shows them")
    try:
        entries = catalog.resolve(args.names)
    except ValueError as exc:
        names = ", ".join([*(e.name for e in catalog.CATALOG), *catalog.GROUPS])
        raise LivedubError(f"unknown model {exc}: choose from {names}") from None
    endpoint = os.environ.get("HF_ENDPOINT") or None  # the CLI edge reads the environment, once
    for entry in entries:
        done = catalog.fetched_dir(cache, entry.name)
        if done is not None:
            print(f"{entry.name}: already fetched in {done}")
            continue
        plan = hub.plan(entry, cache, endpoint=endpoint)
        present = plan.present()
        resuming = f" (resuming: {_mb(present)} already here)" if present else ""
        print(f"{entry.name}: {entry.repo} @ {plan.commit[:7]}: {len(plan.files)} files, {_mb(plan.size)}, "
              f"licence {entry.licence} → {plan.target}{resuming}")
        if entry.note:
            print(f"{entry.name}: note: {entry.note}")
        folder = hub.fetch(plan, progress=not args.quiet)
        use = USES[entry.kind].format(alias=(entry.aliases or (entry.name,))[0], language=entry.languages)
        print(f"{entry.name}: verified and installed in {folder}; {use}")
    return 0


def catalog_rows(cache) -> list[list[str]]:
    rows = [["name", "kind", "languages", "size", "licence", "here"]]
    for e in catalog.CATALOG:
        here = "fetched" if catalog.fetched_dir(cache, e.name) else "-"
        rows.append([e.name, e.kind, e.languages, f"≈{_mb(e.size)}", e.licence, here])
    return rows


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


def route_rows(reach: list[registry.Reach]) -> list[list[str]]:
    """One row per (target, source): the text route, and the speech route where it differs."""
    rows = [["to", "from", "text", "speech"]]
    for r in reach:
        source = "any (speech)" if r.source == "any" else r.source
        rows.append([r.target, source, r.text, "same" if r.speech == r.text else r.speech])
    return rows
