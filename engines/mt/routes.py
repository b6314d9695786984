"""Choosing how to get from one language to another through the translators a machine has.

Each installed translator is a `Hop` (one direction, one backend). When none goes straight from the source to
the target, hops are chained: a search over the languages, where a neural hop costs less than a rule-based
one, so the cheapest route prefers neural hops and few of them (one rule-based hop beats two neural ones only
on the hop count: they cost the same). Whisper's translate task is a hop too, but only from speech: it takes
the audio of any language straight to English, so it can only come first. It costs as much as a rule-based
hop although it is neural: it is a second whisper pass over the sentence's audio on the recognition worker
(whisper-base took ≈1.0 s for 5.9 s of speech on 2 cores; Apertium takes milliseconds a sentence). So fr → en
speech still goes to whisper (one hop against two), while gl → ca speech stays on Apertium's close-language
pairs (gl → es → ca) rather than paying for whisper's English.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from . import Translator

NEURAL_COST = 1
RULE_COST = 2
WHISPER_COST = RULE_COST
MAX_HOPS = 3  # rule-based errors compound: a fourth hop is rarely worth hearing
WHISPER = "whisper"
# Among routes of equal cost and length: a user's model, then the embedded neural one, then Apertium, then whisper.
_BACKEND_RANK = {"ctranslate2": 0, "bergamot": 1, "apertium": 2, WHISPER: 3}


@dataclass(frozen=True)
class Hop:
    """One direct translator: `source` → `target` by `backend`, labelled as it appears in logs and reports."""

    source: str
    target: str
    backend: str  # "apertium" | "bergamot" | "ctranslate2" | "whisper"
    label: str  # "apertium eng-spa"
    neural: bool
    load: Callable[[], Translator] | None = field(default=None, compare=False, repr=False)  # None for whisper

    @property
    def cost(self) -> int:
        if self.backend == WHISPER:
            return WHISPER_COST
        return NEURAL_COST if self.neural else RULE_COST


def whisper_hop(source: str) -> Hop:
    """Whisper's any → English translate task, from the speech of `source`."""
    return Hop(source, "en", WHISPER, f"whisper translate {source}-en", neural=True)


@dataclass(frozen=True)
class Route:
    """The hops that take `source` to `target`, in order."""

    hops: tuple[Hop, ...]

    @property
    def source(self) -> str:
        return self.hops[0].source

    @property
    def target(self) -> str:
        return self.hops[-1].target

    @property
    def cost(self) -> int:
        return sum(h.cost for h in self.hops)

    @property
    def whisper_first(self) -> bool:
        """The first hop is whisper's translate task: it needs the speech, not a transcript."""
        return self.hops[0].backend == WHISPER

    @property
    def name(self) -> str:
        """Readable route: "apertium eng-spa › apertium spa-ita"."""
        return " › ".join(h.label for h in self.hops)


def best_route(hops: Iterable[Hop], source: str, target: str, *, max_hops: int = MAX_HOPS) -> Route | None:
    """The cheapest chain of `hops` from `source` to `target`, never passing through the source again; None
    when none reaches it. A whisper hop counts only as the first one. Ties go to fewer hops, then the
    preferred backends, then pivots with more pairs of their own (Apertium's best-kept pairs meet in
    Spanish, so gl → ca goes through es rather than en)."""
    if source == target:
        raise ValueError("a route needs two different languages")
    by_source: dict[str, list[Hop]] = {}
    for hop in hops:
        if hop.source != hop.target and hop.target != source and (hop.backend != WHISPER or hop.source == source):
            by_source.setdefault(hop.source, []).append(hop)
    degree = {lang: len(out) for lang, out in by_source.items()}
    queue: list[tuple[int, int, tuple[int, ...], tuple[str, ...], tuple[Hop, ...]]] = [(0, 0, (), (), ())]
    done: set[tuple[str, int]] = set()  # (language, hops taken): a dearer but shorter way there may go further
    while queue:
        cost, n, ranks, labels, path = heapq.heappop(queue)
        here = path[-1].target if path else source
        if here == target:
            return Route(path)
        if (here, n) in done or n == max_hops:
            continue
        done.add((here, n))
        visited = {source, *(h.target for h in path)}
        for hop in by_source.get(here, ()):
            if hop.target in visited or (hop.backend == WHISPER and path):
                continue
            rank = (_BACKEND_RANK.get(hop.backend, 9), -degree.get(hop.target, 0))
            heapq.heappush(queue, (cost + hop.cost, n + 1, (*ranks, *rank), (*labels, hop.label), (*path, hop)))
    return None
