"""Committed words → units that translate well: a sentence, a clause once it is long enough, or an utterance.

MT needs whole thoughts (a half sentence translates badly) but a live listener needs speech soon, so a unit
ends at whichever comes first: a sentence end; a clause boundary (a comma, or a conjunction starting the
next clause) after `clause_words` words; the VAD's end of the utterance; or `max_words` words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from livedub.engines.mt.text import SENTENCE_END
from livedub.engines.text_join import join_words
from livedub.engines.types import Word

CLAUSE_END = (",", ";", ":", "，", "；", "、")
# words that open a new clause, per language (a unit may end before them once long enough)
CONJUNCTIONS = {
    "en": {"and", "but", "so", "because", "or", "although", "while", "which", "when", "then"},
    "es": {"y", "pero", "porque", "o", "aunque", "mientras", "cuando", "entonces", "que"},
    "pt": {"e", "mas", "porque", "ou", "embora", "enquanto", "quando", "então"},
    "fr": {"et", "mais", "parce", "ou", "donc", "quand", "alors", "pendant"},
    "de": {"und", "aber", "weil", "oder", "obwohl", "während", "wenn", "dann", "denn"},
    "it": {"e", "ma", "perché", "o", "mentre", "quando", "allora"},
}


@dataclass(frozen=True)
class Unit:
    """A stretch of source speech to translate as one: its text and session times."""

    text: str
    start: float
    end: float
    language: str = ""
    words: int = 0

    def merged(self, other: Unit) -> Unit:
        """This unit and the next said as one (the backlog grew: fewer, longer clips catch up)."""
        return Unit(join_words([self.text, other.text]), self.start, other.end, self.language or other.language,
                    self.words + other.words)


class UnitBuilder:
    """Accumulates committed words and cuts them into `Unit`s."""

    def __init__(self, *, clause_words: int = 6, max_words: int = 24, language: str = "en"):
        self.clause_words = clause_words
        self.max_words = max_words
        self.language = language
        self._words: list[Word] = []
        self._origin = 0.0

    def _cut(self, n: int) -> Unit:
        words, self._words = self._words[:n], self._words[n:]
        return Unit(join_words(w.text for w in words), self._origin + words[0].start, self._origin + words[-1].end, self.language,
                    len(words))

    def add(self, words: Sequence[Word], *, origin: float = 0.0, utterance_over: bool = False) -> list[Unit]:
        """Take newly committed words (stream times + `origin` = session times); return finished units."""
        self._origin = origin
        out: list[Unit] = []
        for w in words:
            if not w.text.strip():
                continue
            if self._words and len(self._words) >= self.clause_words and self._opens_clause(w):
                out.append(self._cut(len(self._words)))
            self._words.append(w)
            text = w.text.strip()
            if text.endswith(SENTENCE_END) or len(self._words) >= self.max_words or (
                text.endswith(CLAUSE_END) and len(self._words) >= self.clause_words
            ):
                out.append(self._cut(len(self._words)))
        if utterance_over and self._words:
            out.append(self._cut(len(self._words)))
        return out

    def flush(self, *, origin: float = 0.0) -> list[Unit]:
        self._origin = origin
        return [self._cut(len(self._words))] if self._words else []

    def _opens_clause(self, word: Word) -> bool:
        return word.text.strip().lower().strip(".,;:!?") in CONJUNCTIONS.get(self.language, set())
