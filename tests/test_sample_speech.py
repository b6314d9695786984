"""The test speech is deterministic: one text gives the same samples on every rendering, in every process,
so a margin in any speech test measures the code, not Piper's noise draw."""

import hashlib
import subprocess
import sys

import numpy as np

from livedub.engines.tts.sample_speech import PAUSE_S, render_english, say_english, two_phrases

TEXT = "Thank you for joining this call today."


def _digest(pcm: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pcm, np.float32).tobytes()).hexdigest()


def test_two_renderings_are_bit_identical():
    first, second = render_english(TEXT), render_english(TEXT)
    assert first.dtype == np.float32 and len(first) > 16_000  # about two seconds of speech
    assert np.sqrt(np.mean(first**2)) > 0.01
    assert np.array_equal(first, second)


def test_another_process_renders_the_same_samples():
    code = ("import hashlib, numpy as np; from livedub.engines.tts.sample_speech import render_english; "
            f"print(hashlib.sha256(render_english({TEXT!r}).tobytes()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _digest(render_english(TEXT))


def test_cached_speech_is_the_rendering_and_each_caller_gets_its_own_copy():
    a = say_english(TEXT)
    assert np.array_equal(a, render_english(TEXT))
    a[:] = 0.0  # a test that scales or mutes its copy changes no one else's input
    assert np.array_equal(say_english(TEXT), render_english(TEXT))
    assert len(say_english(TEXT, 48_000)) == len(render_english(TEXT, 48_000)) > 2.9 * len(a)


def test_different_texts_sound_different():
    assert not np.array_equal(say_english("Good morning everyone."), say_english("Good evening everyone."))


def test_two_phrases_are_framed_by_silence():
    pcm = two_phrases()
    pause = int(PAUSE_S * 16_000)
    assert np.abs(pcm[:pause]).max() == 0.0 and np.abs(pcm[-pause:]).max() == 0.0
    assert np.array_equal(pcm, two_phrases())
