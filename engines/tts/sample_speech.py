"""Deterministic speech for tests, benchmarks and the demo: the embedded English joe voice, noise off.

Piper samples noise on every call (the VITS latent and the phoneme durations), so two renderings of one
sentence differ (28,160 vs 28,416 samples seen for one text). With both noise scales at zero the same text
gives the same samples on every call and in every process, so a test or a benchmark hears the same input
each run and a margin measures the code, not the draw.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, lru_cache

import numpy as np

from ..audio import SAMPLE_RATE, resample

PAUSE_S = 0.8  # seconds of silence before, between and after the two phrases of `two_phrases`
TWO_PHRASES = ("Hello there, how are you doing today?", "I am fine, thank you very much.")


@cache
def _joe_voice():
    from piper import PiperVoice

    from ..models import joe_voice_paths

    model, config = joe_voice_paths()
    return PiperVoice.load(model, config_path=config)


def render_english(text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesize `text` with the joe voice, noise off: mono float32 at `sample_rate`. Not cached (see
    `say_english`); the same text always gives the same samples."""
    from piper import SynthesisConfig

    quiet = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    chunks = list(_joe_voice().synthesize(text, syn_config=quiet))
    if not chunks:
        raise ValueError(f"the joe voice has nothing to say for {text!r}")
    pcm = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return resample(pcm, chunks[0].sample_rate, sample_rate)


@lru_cache(maxsize=512)
def _rendered(text: str, sample_rate: int) -> np.ndarray:
    pcm = render_english(text, sample_rate)
    pcm.flags.writeable = False
    return pcm


def say_english(text: str, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`render_english`, synthesized once per (text, rate) in a process; each caller gets its own copy."""
    return _rendered(text, int(sample_rate)).copy()


def two_phrases(sample_rate: int = SAMPLE_RATE, *, say: Callable[[str], np.ndarray] | None = None) -> np.ndarray:
    """`TWO_PHRASES` spoken (by `say`, text → PCM at `sample_rate`; the joe voice by default), separated and
    surrounded by `PAUSE_S` of digital silence."""
    speak = say or (lambda text: say_english(text, sample_rate))
    silence = np.zeros(int(PAUSE_S * sample_rate), np.float32)
    a, b = (speak(text) for text in TWO_PHRASES)
    return np.concatenate([silence, a, silence, b, silence])
