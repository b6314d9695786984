"""Text translation: the `Translator` interface and its backends (CTranslate2, Bergamot, Apertium, identity)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Translator(Protocol):
    """Translates text from `source` to `target` (ISO 639-1 codes such as "en", "es")."""

    source: str
    target: str
    name: str

    def translate(self, text: str) -> str:
        """Translate one passage; long text is split into sentences and chunked by the backend."""
        ...
