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


@pytest.fixture(scope="module")
def tracker():
    """A real mediapipe tracker with raw landmarks: tests measure, they do not smooth away."""
    from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker

    t = MediapipeFaceTracker(smoothing=0.0)
    yield t
    t.close()


@pytest.fixture(scope="module")
def portrait(tracker):
    """The astronaut photo's head and shoulders at webcam size (640x480, face ~185 px), and its tracked face.

    Her mouth is open in a smile (teeth showing), so silence must actively close it."""
    import cv2
    from skimage.data import astronaut

    bgr = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    frame = cv2.resize(bgr[0:240, 100:420], (640, 480), interpolation=cv2.INTER_CUBIC)
    tracker.reset()
    face = tracker.track(frame)
    assert face is not None and face.usable
    return frame, face
