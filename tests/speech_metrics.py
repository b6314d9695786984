"""Helpers for speech tests: word error rate, and a test utterance with pauses."""

import re

import numpy as np

PAUSE_S = 0.8  # seconds of silence before, between and after the two phrases of `two_phrases`


def words_of(text: str) -> list[str]:
    """Lowercase words without punctuation ("don't" stays one word; whisper's "o 'clock" gives "o", "clock")."""
    words = (w.strip("'") for w in re.sub(r"[^\w' ]+", " ", text.lower()).split())
    return [w for w in words if w]


def wer(reference: list[str], hypothesis: list[str]) -> float:
    """Word error rate: word-level edit distance over the reference length."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        diag, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (ref != hyp))
    return row[-1] / max(1, len(reference))


def two_phrases(say, sample_rate: int = 16_000) -> np.ndarray:
    """Two spoken phrases separated and surrounded by `PAUSE_S` of digital silence (`say`: text → PCM)."""
    silence = np.zeros(int(PAUSE_S * sample_rate), np.float32)
    a = say("Hello there, how are you doing today?")
    b = say("I am fine, thank you very much.")
    return np.concatenate([silence, a, silence, b, silence])
