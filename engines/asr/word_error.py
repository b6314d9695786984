"""Word error rate: how tests and benchmarks score what a recognizer heard against what was said."""

from __future__ import annotations

import re


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
