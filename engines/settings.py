"""User model settings from flags, environment variables and ~/.config/livedub/config.toml.

Precedence: a command-line flag beats an environment variable, which beats the config file. The environment
is read once, by the CLI (`load_settings(..., environ=os.environ)`); engines get the typed `Settings` (or
its `cache`) and never read the environment themselves. Example file:

    [asr]
    model = "/models/faster-whisper-small"      # a CTranslate2 whisper directory

    [mt]
    en-de = "/models/opus-mt-en-de-ct2"          # a pair → a CTranslate2 model directory
    any = "/models/nllb-200-distilled-600M-ct2"  # a multilingual NLLB/M2M100 model for any pair

    [tts]
    voices = ["/voices/de_DE-thorsten-medium.onnx"]

    [lipsync]
    checkpoint = "/models/wav2lip_gan.pth"
    syncnet = "/models/syncnet_v2.model"
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import LivedubError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config_path(environ: Mapping[str, str]) -> Path:
    """The config file: $LIVEDUB_CONFIG, else $XDG_CONFIG_HOME/livedub/config.toml, else ~/.config/livedub/…"""
    if env := environ.get("LIVEDUB_CONFIG"):
        return Path(env)
    base = Path(environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "livedub" / "config.toml"


def cache_path(environ: Mapping[str, str]) -> Path:
    """livedub's cache (joined models, exports, measured voices): $LIVEDUB_CACHE, else
    $XDG_CACHE_HOME/livedub, else ~/.cache/livedub."""
    if env := environ.get("LIVEDUB_CACHE"):
        return Path(env)
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "livedub"


@dataclass(frozen=True)
class Settings:
    """Every user-supplied model path, with where each came from (for `livedub models`)."""

    asr_model: Path | None = None
    mt_models: dict[str, Path] = field(default_factory=dict)  # "en-de" or "any" → model dir
    voices: tuple[Path, ...] = ()
    wav2lip_checkpoint: Path | None = None
    syncnet_checkpoint: Path | None = None
    origin: dict[str, str] = field(default_factory=dict)  # setting → "flag" | "env" | "config"
    cache: Path = field(default_factory=lambda: cache_path({}))  # where joined models and exports are kept

    def with_flags(self, **flags: object) -> Settings:
        """Override with command-line values that were given (None means not given)."""
        changes: dict[str, object] = {}
        origin = dict(self.origin)
        for key, value in flags.items():
            if value is None or value == () or value == {}:
                continue
            if key == "voices":
                value = tuple(Path(v) for v in value)  # type: ignore[union-attr]
            elif key == "mt_models":
                value = {**self.mt_models, **value}  # type: ignore[dict-item]
            elif isinstance(value, str | os.PathLike):
                value = Path(value)
            changes[key] = value
            origin[key] = "flag"
        return replace(self, origin=origin, **changes)


def with_fetched(settings: Settings) -> Settings:
    """`settings` with the NLLB `livedub models get` put in its cache as the multilingual `any` model, where the
    user named none: one neural hop between every two of its languages, preferred to Apertium and to pivots
    (`mt/routes.py`). A flag, a variable or the config file naming `any` still wins."""
    if "any" in settings.mt_models:
        return settings
    from .catalog import fetched_nllb

    path = fetched_nllb(settings.cache)
    if path is None:
        return settings
    return replace(settings, mt_models={**settings.mt_models, "any": path})


MT_MODEL_EXAMPLE = "en-de=/models/opus-mt-en-de"


def parse_mt_model(item: str, where: str) -> tuple[str, Path]:
    """'PAIR=DIR' → (pair, DIR), PAIR being `xx-yy` (language codes, normalised: "EN-deu" → "en-de") or `any`.

    The one rule for --mt-model, LIVEDUB_MT_MODELS and the config's [mt] table; `where` names the source in
    the error ("--mt-model", "LIVEDUB_MT_MODELS", "config.toml: [mt]").
    """
    from .mt.languages import ISO1, ISO3

    def code(text: str) -> str | None:
        text = text.strip().lower()
        return text if text in ISO3 else ISO1.get(text) if len(text) == 3 else None

    pair, sep, path = item.partition("=")
    pair, path = pair.strip().lower(), path.strip()
    source, dash, target = pair.partition("-")
    if pair != "any":
        source, target = code(source) or "", code(target) or ""
        pair = f"{source}-{target}" if dash and source and target else ""
    if not sep or not pair or not path:
        raise LivedubError(f"{where} {item!r}: expected PAIR=DIR, PAIR being two language codes (en-de) or any, "
                           f"e.g. {MT_MODEL_EXAMPLE}")
    return pair, Path(path)


# What each table of the config file holds: key → (the expected type, how the error describes it).
_TABLES = {
    "asr": {"model": (str, '"DIR"')},
    "tts": {"voices": ((list, str), '["VOICE.onnx", ...]')},
    "lipsync": {"checkpoint": (str, '"wav2lip_gan.pth"'), "syncnet": (str, '"syncnet_v2.model"')},
}


def _read_config(path: Path, *, required: bool) -> dict:
    """The parsed config file; {} when the default file does not exist. Errors name the file."""
    if not path.exists():
        if required:
            raise LivedubError(f"--config {path}: no such file")
        return {}
    if path.is_dir():
        raise LivedubError(f"{path}: is a folder, not a config file")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise LivedubError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise LivedubError(f"{path}: the config file is not UTF-8 text (byte {exc.start})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LivedubError(f"{path}: not a valid TOML config ({exc})") from None
    _check_config(path, data)
    return data


def _check_config(path: Path, data: dict) -> None:
    """Every known table and key has the type the code reads; the error says what was expected."""
    for table, keys in _TABLES.items():
        if table not in data:
            continue
        example = ", ".join(f"{k} = {shape}" for k, (_, shape) in keys.items())
        section = data[table]
        if not isinstance(section, dict):
            raise LivedubError(f"{path}: [{table}] must be a table with {example}")
        for key, (kind, shape) in keys.items():
            value = section.get(key)
            if value is None:
                continue
            if not isinstance(value, kind) or (isinstance(value, list) and not all(isinstance(v, str) for v in value)):
                raise LivedubError(f"{path}: [{table}] {key} must be {shape}, not {value!r}")
    if "mt" in data:
        mt = data["mt"]
        if not isinstance(mt, dict):
            raise LivedubError(f'{path}: [mt] must be a table of PAIR = "DIR", e.g. en-de = "/models/opus-mt-en-de"')
        for pair, value in mt.items():
            if not isinstance(value, str):
                raise LivedubError(f'{path}: [mt] {pair} must be "DIR" (a model directory), not {value!r}')
            parse_mt_model(f"{pair}={value}", f"{path}: [mt]")


def load_settings(path: Path | None = None, *, environ: Mapping[str, str]) -> Settings:
    """Settings from the config file (if any) overlaid with the LIVEDUB_* variables of `environ` (the CLI
    passes os.environ, once), with the cache they name.

    A `path` passed explicitly (--config) must exist; the default file (or LIVEDUB_CONFIG) may be absent.
    """
    data = _read_config(path or config_path(environ), required=path is not None)
    origin: dict[str, str] = {}

    def pick(key: str, env: str, value: object) -> object:
        if environ.get(env):
            origin[key] = "env"
            return environ[env]
        if value:
            origin[key] = "config"
        return value

    asr = pick("asr_model", "LIVEDUB_ASR_MODEL", data.get("asr", {}).get("model"))
    mt = dict(parse_mt_model(f"{k}={v}", "[mt]") for k, v in data.get("mt", {}).items())
    if mt:
        origin["mt_models"] = "config"
    if env_mt := environ.get("LIVEDUB_MT_MODELS"):  # "en-de=/path:any=/path"
        for item in filter(str.strip, env_mt.split(os.pathsep)):  # empty items: a stray separator
            pair, model = parse_mt_model(item, "LIVEDUB_MT_MODELS")
            mt[pair] = model
        origin["mt_models"] = "env"
    voices = pick("voices", "LIVEDUB_VOICES", data.get("tts", {}).get("voices"))
    if isinstance(voices, str):
        voices = [v for v in voices.split(os.pathsep) if v]
    ckpt = pick("wav2lip_checkpoint", "LIVEDUB_WAV2LIP", data.get("lipsync", {}).get("checkpoint"))
    sync = pick("syncnet_checkpoint", "LIVEDUB_SYNCNET", data.get("lipsync", {}).get("syncnet"))
    return Settings(
        asr_model=Path(str(asr)) if asr else None,
        mt_models=mt,
        voices=tuple(Path(str(v)) for v in (voices or ())),
        wav2lip_checkpoint=Path(str(ckpt)) if ckpt else None,
        syncnet_checkpoint=Path(str(sync)) if sync else None,
        origin=origin,
        cache=cache_path(environ),
    )
