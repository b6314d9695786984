"""Text translation: the `Translator` interface, its backends (CTranslate2, Bergamot, Apertium, identity) and
pivot chains of them (`chain.py`, chosen by `routes.py`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Translator(Protocol):
    """Translates text from `source` to `target` (ISO 639-1 codes such as "en", "es"). `name` says what
    translates, for logs and transcripts: "apertium eng-spa", "bergamot en-pt", or a chain's route
    "apertium eng-spa › apertium spa-ita". A backend whose weights load lazily in-process may add `preload()`,
    which loads them now (a server calls it before its calls, because native loads hold the GIL)."""

    source: str
    target: str
    name: str

    def translate(self, text: str) -> str:
        """Translate one passage; long text is split into sentences and chunked by the backend."""
        ...
