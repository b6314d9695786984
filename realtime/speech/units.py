"""Units: the stretches of source speech translated as one, and the two ways they are cut.

MT needs whole thoughts (a half sentence translates badly) but a live listener needs speech soon, so a live
unit (`UnitBuilder`, fed by the streaming recogniser) ends at whichever comes first: a sentence end; a clause
boundary (a comma, or a conjunction starting the next clause) after `clause_words` words; the VAD's end of the
utterance; or `max_words` words. A recording has all its words at once, so file mode (`sentence_units`) cuts
whole sentences. Both decide sentence ends with the one rule text splitting uses (`ends_sentence`): "Dr."
never ends a unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from livedub.engines.mt.text import ends_sentence
from livedub.engines.text_join import join_words, unspaced
from livedub.engines.types import Segment, Word

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
CHARACTER_WEIGHT = 0.5  # a character of a script without spaces (zh, ja, th) as a share of a word
MAX_SENTENCE_S = 12.0  # file mode: fragments of one sentence are joined up to this length
JOIN_GAP_S = 0.6  # file mode: a fragment this close to an unfinished sentence continues it


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
    """Live: accumulates committed words and cuts them into `Unit`s."""

    def __init__(self, *, clause_words: int = 6, max_words: int = 24, language: str = "en"):
        self.clause_words = clause_words
        self.max_words = max_words
        self.language = language
        self._words: list[Word] = []
        self._origin = 0.0

    def _length(self) -> float:
        """Words so far; the streaming recogniser commits unspaced scripts a character at a time, and two
        characters of Chinese or Japanese carry about what one word does."""
        return sum(_weight(w.text) for w in self._words)

    def _cut(self, n: int) -> Unit:
        words, self._words = self._words[:n], self._words[n:]
        return Unit(join_words(w.text for w in words), self._origin + words[0].start,
                    self._origin + words[-1].end, self.language, len(words))

    def add(self, words: Sequence[Word], *, origin: float = 0.0, utterance_over: bool = False) -> list[Unit]:
        """Take newly committed words (stream times + `origin` = session times); return finished units."""
        self._origin = origin
        spoken = [w for w in words if w.text.strip()]
        out: list[Unit] = []
        for i, w in enumerate(spoken):
            if self._words and self._length() >= self.clause_words and self._opens_clause(w):
                out.append(self._cut(len(self._words)))
            self._words.append(w)
            text = w.text.strip()
            following = spoken[i + 1].text if i + 1 < len(spoken) else None
            length = self._length()
            if ends_sentence(text, following) or length >= self.max_words or (
                text.endswith(CLAUSE_END) and length >= self.clause_words
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


def _weight(text: str) -> float:
    letters = [c for c in text.strip() if c.isalnum()]
    if letters and all(unspaced(c) for c in letters):
        return CHARACTER_WEIGHT * len(letters)
    return 1.0


def _sentence_pieces(seg: Segment) -> list[Segment]:
    """One segment per sentence, timed by its words (whisper often puts two sentences in one segment)."""
    if not seg.words:
        return [seg]
    out: list[list[Word]] = []
    current: list[Word] = []
    for i, word in enumerate(seg.words):
        current.append(word)
        following = seg.words[i + 1].text if i + 1 < len(seg.words) else None
        if ends_sentence(word.text, following):
            out.append(current)
            current = []
    if current:
        out.append(current)
    return [Segment(ws[0].start, ws[-1].end, join_words(w.text for w in ws), tuple(ws), seg.language)
            for ws in out]


def sentence_units(segments: Sequence[Segment], language: str = "") -> list[Unit]:
    """File mode: recogniser segments regrouped into sentences, each timed from its first to its last word."""
    merged: list[Segment] = []
    for seg in (part for s in segments for part in _sentence_pieces(s)):
        text = seg.text.strip()
        if not text:
            continue
        prev = merged[-1] if merged else None
        last_word = prev.text.split()[-1] if prev is not None and prev.text.split() else ""
        if (
            prev is not None
            and not ends_sentence(last_word, text.split()[0])
            and seg.start - prev.end < JOIN_GAP_S
            and seg.end - prev.start < MAX_SENTENCE_S
        ):
            merged[-1] = Segment(prev.start, seg.end, join_words([prev.text, text]), prev.words + seg.words,
                                 prev.language)
        else:
            merged.append(Segment(seg.start, seg.end, text, seg.words, seg.language))
    return [Unit(s.text, s.start, s.end, language or s.language or "", len(s.words)) for s in merged]
