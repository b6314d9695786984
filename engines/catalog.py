"""The models `livedub models get` can fetch, and where the fetched ones are found.

Pure data and file lookups: nothing here touches the network (the download is `hub.py`, which only that
command runs). A fetched model is a folder `<cache>/models/<name>/` holding the repository's files and
`livedub-fetch.json` (the repository, the commit and each file's hash); a folder without that manifest is not a
fetched model, so a download in progress (a hidden `.<name>.partial` folder beside it) is never picked up.

Repositories and files were checked against the Hub's public file listings (sizes are approximate, for
`--list` without a network); `get` always shows the exact size the Hub reports before downloading.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = "models"
MANIFEST = "livedub-fetch.json"
MB = 1_000_000


@dataclass(frozen=True)
class CatalogEntry:
    """One fetchable model. `files` are repository paths or globs; "a|b" takes the first alternative the
    repository has, and a leading "?" marks a file that may be missing."""

    name: str
    kind: str  # "asr" | "mt" | "piper" | "kokoro"
    repo: str
    files: tuple[str, ...]
    size: int  # approximate bytes, for --list
    licence: str
    languages: str
    note: str = ""  # said before fetching
    aliases: tuple[str, ...] = ()
    revision: str = "main"


# faster-whisper's own model map (faster_whisper.utils._MODELS) names these repositories; the files are the
# ones its download_model fetches.
_WHISPER_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.*", "?preprocessor_config.json")
# NLLB converted with ct2-transformers-converter --quantization int8, with its tokenizer copied in: the
# sentencepiece model when the repository has one (5 MB), else tokenizer.json (17 MB).
_NLLB_FILES = ("config.json", "model.bin", "shared_vocabulary.*", "sentencepiece.bpe.model|tokenizer.json")
_NLLB_NOTE = ("NLLB-200 is licensed CC-BY-NC-4.0 by Meta: non-commercial use only. Fetch it only if your use "
              "is non-commercial.")

# One good single-speaker voice per language (rhasspy/piper-voices, medium quality: ≈63 MB each). Piper has no
# Japanese or Korean voice there; Kokoro speaks Japanese (embedded) and the fetched Kokoro set adds more.
_PIPER = {
    "es": "es_ES-davefx-medium", "fr": "fr_FR-siwis-medium", "de": "de_DE-thorsten-medium",
    "it": "it_IT-paola-medium", "pt": "pt_BR-faber-medium", "ca": "ca_ES-upc_ona-medium",
    "zh": "zh_CN-huayan-medium", "ru": "ru_RU-irina-medium", "nl": "nl_BE-nathalie-medium",
    "pl": "pl_PL-gosia-medium", "uk": "uk_UA-ukrainian_tts-medium", "tr": "tr_TR-dfki-medium",
    "ro": "ro_RO-mihai-medium",
}


def _piper_entry(language: str, voice: str) -> CatalogEntry:
    region, name, quality = voice.split("-")
    folder = f"{language}/{region}/{name}/{quality}/{voice}"
    return CatalogEntry(
        f"piper-{language}", "piper", "rhasspy/piper-voices",
        (f"{folder}.onnx", f"{folder}.onnx.json", f"?{folder.rsplit('/', 1)[0]}/MODEL_CARD"),
        63 * MB, "MIT; voice data: its MODEL_CARD", f"{language} ({voice})",
    )


CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("whisper-small", "asr", "Systran/faster-whisper-small", _WHISPER_FILES, 487 * MB, "MIT",
                 "99 languages; any → en translate", aliases=("small",)),
    CatalogEntry("whisper-medium", "asr", "Systran/faster-whisper-medium", _WHISPER_FILES, 1533 * MB, "MIT",
                 "99 languages; any → en translate", aliases=("medium",)),
    CatalogEntry("whisper-large-v3-turbo", "asr", "mobiuslabsgmbh/faster-whisper-large-v3-turbo", _WHISPER_FILES,
                 1624 * MB, "MIT", "99 languages (no translate task)",
                 aliases=("large-v3-turbo", "turbo")),
    CatalogEntry("nllb-600m", "mt", "JustFrederik/nllb-200-distilled-600M-ct2-int8", _NLLB_FILES, 631 * MB,
                 "CC-BY-NC-4.0 (non-commercial)", "200 languages, any ↔ any", _NLLB_NOTE),
    CatalogEntry("nllb-1.3b", "mt", "JustFrederik/nllb-200-distilled-1.3B-ct2-int8", _NLLB_FILES, 1388 * MB,
                 "CC-BY-NC-4.0 (non-commercial)", "200 languages, any ↔ any", _NLLB_NOTE),
    *(_piper_entry(lang, voice) for lang, voice in _PIPER.items()),
    CatalogEntry("kokoro-voices", "kokoro", "onnx-community/Kokoro-82M-v1.0-ONNX", ("voices/*.bin",), 28 * MB,
                 "Apache-2.0", "en es fr hi it ja pt zh (native)"),
)
GROUPS = {"piper": tuple(e.name for e in CATALOG if e.kind == "piper")}  # `get piper`: every Piper voice


def entry(name: str) -> CatalogEntry | None:
    """The catalog entry called `name` (or one of its aliases, "small" for whisper-small)."""
    name = name.strip().lower()
    return next((e for e in CATALOG if name == e.name or name in e.aliases), None)


def resolve(names: list[str]) -> list[CatalogEntry]:
    """Entries for NAMEs (groups expanded, duplicates dropped, order kept); ValueError names the unknown ones."""
    wanted: list[str] = []
    for name in names:
        wanted += GROUPS.get(name.strip().lower(), (name,))
    found = {n: entry(n) for n in wanted}
    unknown = [n for n, e in found.items() if e is None]
    if unknown:
        raise ValueError(", ".join(unknown))
    return list(dict.fromkeys(e for e in found.values() if e is not None))


# ---------------------------------------------------------------- what is fetched


def models_dir(cache: Path) -> Path:
    return Path(cache) / MODELS_DIR


def fetched_dir(cache: Path, name: str) -> Path | None:
    """The folder of a fetched catalog model (by name or alias), None when it is not (wholly) there."""
    found = entry(name)
    if found is None:
        return None
    folder = models_dir(cache) / found.name
    return folder if (folder / MANIFEST).is_file() else None


def manifest(folder: Path) -> dict:
    """The fetch record of a fetched model folder ({} when unreadable)."""
    try:
        data = json.loads((folder / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def fetched(cache: Path) -> list[tuple[CatalogEntry, Path]]:
    """Every fetched catalog model, in catalog order."""
    return [(e, folder) for e in CATALOG if (folder := fetched_dir(cache, e.name)) is not None]


def fetched_nllb(cache: Path) -> Path | None:
    """The fetched NLLB to translate with: the bigger one when both are there."""
    return fetched_dir(cache, "nllb-1.3b") or fetched_dir(cache, "nllb-600m")


def fetched_whisper(cache: Path, name: str) -> Path | None:
    """A fetched whisper model by catalog name or size ("small", "whisper-small")."""
    found = entry(name)
    return fetched_dir(cache, found.name) if found is not None and found.kind == "asr" else None


def fetched_piper_voices(cache: Path) -> list[tuple[str, Path]]:
    """(catalog name, voice .onnx) for every fetched Piper voice whose config lies beside it."""
    voices = []
    for e, folder in fetched(cache):
        if e.kind == "piper":
            voices += [(e.name, p) for p in sorted(folder.rglob("*.onnx")) if Path(f"{p}.json").is_file()]
    return voices


def fetched_kokoro_voices(cache: Path) -> dict[str, Path]:
    """Fetched Kokoro voice styles: name ("ff_siwis") → its .bin file."""
    folder = fetched_dir(cache, "kokoro-voices")
    if folder is None:
        return {}
    return {p.stem: p for p in sorted((folder / "voices").glob("*.bin"))}


def fetched_label(path: Path, cache: Path) -> str | None:
    """"fetched: nllb-600m" when `path` lies in a fetched model folder of `cache`, else None."""
    try:
        relative = Path(path).resolve().relative_to(models_dir(cache).resolve())
    except (OSError, ValueError):
        return None
    name = relative.parts[0] if relative.parts else ""
    return f"fetched: {name}" if entry(name) is not None else None
