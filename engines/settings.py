"""User model settings from flags, environment variables and ~/.config/livedub/config.toml.

Precedence: a command-line flag beats an environment variable, which beats the config file. Example file:

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
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import LivedubError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def config_path() -> Path:
    if env := os.environ.get("LIVEDUB_CONFIG"):
        return Path(env)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "livedub" / "config.toml"


@dataclass(frozen=True)
class Settings:
    """Every user-supplied model path, with where each came from (for `livedub models`)."""

    asr_model: Path | None = None
    mt_models: dict[str, Path] = field(default_factory=dict)  # "en-de" or "any" → model dir
    voices: tuple[Path, ...] = ()
    wav2lip_checkpoint: Path | None = None
    syncnet_checkpoint: Path | None = None
    origin: dict[str, str] = field(default_factory=dict)  # setting → "flag" | "env" | "config"

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


def load_settings(path: Path | None = None) -> Settings:
    """Settings from the config file (if any) overlaid with LIVEDUB_* environment variables."""
    path = path or config_path()
    data: dict = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise LivedubError(f"{path}: not a valid TOML config ({exc})") from None
    origin: dict[str, str] = {}

    def pick(key: str, env: str, value: object) -> object:
        if os.environ.get(env):
            origin[key] = "env"
            return os.environ[env]
        if value:
            origin[key] = "config"
        return value

    asr = pick("asr_model", "LIVEDUB_ASR_MODEL", data.get("asr", {}).get("model"))
    mt = {str(k): Path(str(v)) for k, v in data.get("mt", {}).items()}
    if mt:
        origin["mt_models"] = "config"
    if env_mt := os.environ.get("LIVEDUB_MT_MODELS"):  # "en-de=/path:any=/path"
        for item in env_mt.split(os.pathsep):
            if "=" in item:
                pair, _, p = item.partition("=")
                mt[pair.strip()] = Path(p.strip())
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
    )
