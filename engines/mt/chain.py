"""A pivot chain: translators run one after another (en → es → it) where no single one serves the pair.

Each hop's translator is loaded on first use, in the thread that calls (the MT worker), and every hop runs
there too: the chain adds no thread and no loop work. Sentences stay one-to-one through every hop, so the
caller's sentence timing survives the pivots.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from . import Translator
from .routes import Route
from .text import join_sentences, split_sentences

log = logging.getLogger("livedub.mt")


class ChainTranslator:
    """Translates `route.source` → `route.target` through the route's hops; `name` is the route
    ("apertium eng-spa › apertium spa-ita")."""

    def __init__(self, route: Route) -> None:
        if not route.hops or any(h.load is None for h in route.hops):
            raise ValueError(f"a text chain needs text translators on every hop: {route.name}")
        self.route = route
        self.source, self.target = route.source, route.target
        self.name = route.name
        self._hops: list[Translator | None] = [None] * len(route.hops)
        self._lock = threading.Lock()

    def hops(self) -> list[Translator]:
        """The hop translators, loaded on the first call."""
        with self._lock:
            for i, hop in enumerate(self.route.hops):
                if self._hops[i] is None:
                    assert hop.load is not None
                    self._hops[i] = hop.load()
            return list(self._hops)  # type: ignore[arg-type]

    def preload(self) -> None:
        """Load every hop now and each hop's own weights where it has a `preload`."""
        for hop in self.hops():
            preload = getattr(hop, "preload", None)
            if preload is not None:
                preload()

    def translate(self, text: str) -> str:
        """Translate a passage sentence by sentence through every hop and join the results."""
        return join_sentences(self.translate_sentences(split_sentences(text)), self.target)

    def translate_sentences(self, sentences: Sequence[str]) -> list[str]:
        """One translation per input sentence, in order; empty inputs give empty outputs."""
        out = [" ".join(s.split()) for s in sentences]
        for hop in self.hops():
            t0 = time.perf_counter()
            todo = [i for i, s in enumerate(out) if s]
            if not todo:
                break
            batch = getattr(hop, "translate_sentences", None)
            done = batch([out[i] for i in todo]) if batch else [hop.translate(out[i]) for i in todo]
            for i, translated in zip(todo, done, strict=True):
                out[i] = " ".join(translated.split())
            log.debug("mt chain %s: hop %s, %d sentences in %.3f s", self.name, hop.name, len(todo),
                      time.perf_counter() - t0)
        return out

    def close(self) -> None:
        """Close the hops that hold processes (Apertium pipelines)."""
        with self._lock:
            for hop in self._hops:
                close = getattr(hop, "close", None)
                if close is not None:
                    close()
