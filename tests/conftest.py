"""Shared test fixtures: real speech from the embedded Piper voice, resampled to 16 kHz."""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pytest

os.environ.setdefault("LIVEDUB_LOG", "WARNING")


@cache
def _piper_voice():
    from piper import PiperVoice

    from livedub.engines.models import joe_voice_paths

    model, config = joe_voice_paths()
    return PiperVoice.load(model, config_path=config)


def say_english(text: str, sample_rate: int = 16_000) -> np.ndarray:
    """Speak `text` with the embedded joe voice; mono float32 at `sample_rate`."""
    from livedub.engines.audio import resample

    voice = _piper_voice()
    chunks = list(voice.synthesize(text))
    pcm = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(pcm, chunks[0].sample_rate, sample_rate)


@pytest.fixture(scope="session")
def english_speech():
    """A callable text → 16 kHz PCM spoken by the embedded English voice."""
    return say_english


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty livedub cache dir for tests that exercise first-run behaviour."""
    monkeypatch.setenv("LIVEDUB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"
