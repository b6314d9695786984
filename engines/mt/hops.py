"""The text translators installed here, as hops for the route search (`routes.py`), and what they reach.

Hops come from the user's CTranslate2 models (a pair model, and a multilingual one between every two languages
it has tokens for), the embedded Bergamot en ↔ pt, and each installed Apertium pair. Nothing is loaded until a
hop is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial

from ..settings import Settings
from .routes import Hop, best_route, whisper_hop


@cache
def apertium_modes() -> dict[tuple[str, str], str]:
    """Installed Apertium pairs → the mode that runs each ("eng-spa", "en-gl"); read once per process."""
    from .apertium import apertium_modes as modes

    return modes()


@cache
def bergamot_pairs() -> tuple[tuple[str, str], ...]:
    from .bergamot import bergamot_pairs as pairs

    return tuple(pairs())


def installed_hops(settings: Settings) -> list[Hop]:
    """Every direct text translator here, as a hop."""
    return [*multilingual_hops(settings), *pair_hops(settings)]


def multilingual_hops(settings: Settings) -> list[Hop]:
    """The user's multilingual model ("any"), between every two languages it names."""
    from .ctranslate2 import CTranslate2Translator, model_languages

    path = settings.mt_models.get("any")
    if path is None:
        return []
    languages = sorted(model_languages(path))
    return [Hop(a, b, "ctranslate2", f"ctranslate2 {path.name} {a}-{b}", True,
                partial(CTranslate2Translator, path, a, b)) for a in languages for b in languages if a != b]


def pair_hops(settings: Settings) -> list[Hop]:
    """Translators of one direction each: the user's pair models (those present), Bergamot, Apertium."""
    from .apertium import ApertiumTranslator
    from .bergamot import BergamotTranslator
    from .ctranslate2 import CTranslate2Translator
    from .languages import to_iso1

    hops: list[Hop] = []
    for key, path in settings.mt_models.items():
        if key == "any" or not (path / "model.bin").is_file():
            continue
        src, _, tgt = (to_iso1(code) for code in key.partition("-"))
        hops.append(Hop(src, tgt, "ctranslate2", f"ctranslate2 {path.name} {src}-{tgt}", True,
                        partial(CTranslate2Translator, path, src, tgt)))
    hops += [Hop(a, b, "bergamot", f"bergamot {a}-{b}", True, partial(BergamotTranslator, a, b))
             for a, b in bergamot_pairs()]
    hops += [Hop(a, b, "apertium", f"apertium {mode}", False, partial(ApertiumTranslator, a, b))
             for (a, b), mode in apertium_modes().items()]
    return hops


@dataclass(frozen=True)
class Reach:
    """A row of `livedub models`' route table: how text and speech in `source` reach `target`."""

    target: str
    source: str  # a language, or "any" for speech in any language whisper knows
    text: str  # the text route's name, "-" when none
    speech: str  # the speech route's name, "-" when none


def reach(settings: Settings) -> list[Reach]:
    """For every target a translator here reaches: each source that reaches it and the route taken. Speech in
    a language no translator knows still reaches what English reaches, through whisper ("any")."""
    pairs = pair_hops(settings)  # a multilingual model's hundreds of languages would drown the table
    languages = sorted({h.source for h in pairs} | {h.target for h in pairs})
    every = [*multilingual_hops(settings), *pairs]
    rows: list[Reach] = []
    for target in languages:
        for source in ["any", *(s for s in languages if s != target)]:
            text = None if source == "any" else best_route(every, source, target)
            spoken = best_route([*every, whisper_hop(source)] if source != "en" else every, source, target)
            if text or spoken:
                rows.append(Reach(target, source, text.name if text else "-", spoken.name if spoken else "-"))
    return rows
