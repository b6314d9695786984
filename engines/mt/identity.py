"""The translator for source = target: text passes through, so the pipeline needs no special case."""

from __future__ import annotations


class IdentityTranslator:
    """Returns the text unchanged (whitespace collapsed), for dubbing into the speaker's own language."""

    name = "identity"

    def __init__(self, lang: str) -> None:
        self.source = lang
        self.target = lang

    def translate(self, text: str) -> str:
        return " ".join(text.split())

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        return [" ".join(s.split()) for s in sentences]
