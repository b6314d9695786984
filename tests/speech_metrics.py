"""What speech tests share: word error rate (from the package, which benchmarks use too) and the
two-phrase utterance with pauses spoken by any voice (the deterministic joe voice in
`livedub.engines.tts.sample_speech`)."""

from collections.abc import Callable

import numpy as np

from livedub.engines.asr.word_error import wer, words_of
from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.tts import sample_speech
from livedub.engines.tts.sample_speech import PAUSE_S

__all__ = ["PAUSE_S", "two_phrases", "wer", "words_of"]


def two_phrases(say: Callable[[str], np.ndarray], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`sample_speech.two_phrases` spoken by `say` (text → PCM at `sample_rate`)."""
    return sample_speech.two_phrases(sample_rate, say=say)
