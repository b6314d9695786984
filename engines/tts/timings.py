"""Phoneme timings of neural voices: per-token frame counts → phoneme spans, and sentence clips joined.

Piper and Kokoro both predict a duration per input token; these turn them into `Phoneme` spans the lip
engines read, the same way for both voices.
"""

from __future__ import annotations

import unicodedata

import numpy as np

from ..types import Phoneme, Speech

PAUSE = "_"  # symbol of silent stretches in phoneme timings (sentence edges, punctuation)
_STRESS = frozenset("ˈˌ")


def phoneme_spans(
    groups: list[tuple[str, int]], rounded: np.ndarray, hop: int, offset: int, rate: int
) -> list[Phoneme]:
    """Per-phoneme spans: stress marks join the next phone, length/diacritic marks the previous one,
    word gaps extend the previous phone, sentence edges and punctuation become pauses."""
    spans: list[list] = []  # [symbol, start sample, end sample]
    stress_start: int | None = None
    pos, i = offset, 0
    for symbol, count in groups:
        start, pos = pos, pos + int(rounded[i : i + count].sum()) * hop
        i += count
        if symbol in _STRESS:
            stress_start = start if stress_start is None else stress_start
        elif symbol == " " and spans:
            spans[-1][2] = pos
        elif _is_pause(symbol):
            start = start if stress_start is None else stress_start
            stress_start = None
            if spans and spans[-1][0] == PAUSE:
                spans[-1][2] = pos
            else:
                spans.append([PAUSE, start, pos])
        elif _is_mark(symbol) and spans and spans[-1][0] != PAUSE:
            spans[-1][0] += symbol
            spans[-1][2] = pos
        else:
            start = start if stress_start is None else stress_start
            stress_start = None
            spans.append([symbol, start, pos])
    if stress_start is not None and spans:
        spans[-1][2] = pos
    return [Phoneme(unicodedata.normalize("NFC", s), a / rate, b / rate) for s, a, b in spans]


def _is_pause(symbol: str) -> bool:
    return symbol in ("^", "$", " ") or unicodedata.category(symbol[0]).startswith(("P", "Z"))


def _is_mark(symbol: str) -> bool:
    """Length marks, diacritics and modifier letters (ː ̃ ʰ ʲ) that belong to the phone before them."""
    return bool(unicodedata.combining(symbol[0])) or unicodedata.category(symbol[0]) in ("Lm", "Sk")


def concat_speech(parts: list[Speech], rate: int, text: str) -> Speech:
    """Sentence clips joined into one, their phoneme timings shifted onto it (seams' pauses merged)."""
    offset, phonemes = 0.0, []
    for part in parts:
        for p in part.phonemes:
            if p.symbol == PAUSE and phonemes and phonemes[-1].symbol == PAUSE:  # sentence seam
                phonemes[-1] = Phoneme(PAUSE, phonemes[-1].start, p.end + offset)
            else:
                phonemes.append(Phoneme(p.symbol, p.start + offset, p.end + offset))
        offset += part.duration
    return Speech(np.concatenate([p.pcm for p in parts]), rate, text=text, phonemes=tuple(phonemes))
