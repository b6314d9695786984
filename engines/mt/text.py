"""Sentence splitting, chunking and reassembly shared by the text translators.

Translators work best on one sentence at a time and have an input budget (tokens for neural models), so a
passage is split into sentences, over-long sentences are cut at clause marks or spaces (never inside a
word), and the translations are joined back with tidy spacing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# Ends a sentence when followed by a space or the end of the text.
_TERMINAL = ".!?…؟।۔"
# Ends a sentence even when the next sentence follows without a space (CJK full-width marks).
_CJK_TERMINAL = "。！？"
_CLOSERS = "\"'”’»)]}」』）"
# What a recognised word ends with when it ends a sentence (word-level: for sentence grouping of ASR output).
SENTENCE_END = (".", "!", "?", "。", "！", "？", "…")
_BOUNDARY = re.compile(
    rf"(?:[{re.escape(_TERMINAL)}]+[{re.escape(_CLOSERS)}]*(?=\s|$)|[{_CJK_TERMINAL}]+[{re.escape(_CLOSERS)}]*)"
)
# Words whose trailing period never ends a sentence: titles come before a name, Latin forms mid-sentence.
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "sra", "srta", "dra", "jr", "mt", "ft", "no", "nr", "nº",
    "vol", "vols", "fig", "figs", "pp", "approx", "ca", "cf", "vs", "e.g", "i.e", "eg", "ie", "a.m", "p.m",
    "sen", "rep", "gen", "col", "lt", "sgt", "capt", "hon", "rev", "messrs", "mme", "mlle", "hr", "fr", "frl",
    "art",
})
# Abbreviations that often do end a sentence: split after them only when a capital follows.
_SOFT_ABBREVIATIONS = frozenset({"etc", "al", "inc", "ltd", "co", "corp", "bros", "dept", "univ"})
_WORD_BEFORE = re.compile(r"(\S+?)\.+$")
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
_CLAUSE = re.compile(r"[,;:，；、：—–]\s*")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")
# Languages written without spaces between sentences.
_NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "zho", "jpn", "tha"})


def split_sentences(text: str) -> list[str]:
    """Split `text` into sentences, keeping their punctuation and quotes; whitespace is normalised.

    A blank line always ends a sentence (a paragraph break); a single line break is just a space.
    """
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        sentences.extend(_split_paragraph(" ".join(paragraph.split())))
    return _merge_bare_punctuation(sentences)


def _split_paragraph(text: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if not _ends_sentence(text, start, m):
            continue
        piece = text[start:m.end()].strip()
        if piece:
            sentences.append(piece)
        start = m.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return sentences


def _ends_sentence(text: str, start: int, m: re.Match[str]) -> bool:
    mark = m.group(0)
    if any(c in _CJK_TERMINAL for c in mark) or mark.rstrip(_CLOSERS)[-1:] != ".":
        return True
    following = text[m.end():].lstrip()
    if not following or mark.rstrip(_CLOSERS) != mark:
        return True  # the end of the text, or 'said "no."'
    next_upper = following[0].isupper() or following[0] in "¿¡\"'«“‘("
    if len(mark) > 1:
        return next_upper  # an ellipsis ends a sentence only before a capital: "Wait... what?"
    word_match = _WORD_BEFORE.search(text[start:m.start() + 1])
    word = word_match.group(1).lower().lstrip("(\"'¿¡«“‘") if word_match else ""
    if word in _ABBREVIATIONS:
        return False
    if word in _SOFT_ABBREVIATIONS:
        return next_upper
    if len(word) == 1 and word.isalpha() and word_match and word_match.group(1).isupper():
        return False  # an initial: "J. Smith"
    if "." in word and all(part.isalpha() and len(part) <= 3 for part in word.split(".")):
        return False  # a dotted acronym ("U.S. Army", "a.m."): keeping a sentence whole is the safer error
    # a lowercase word after a period continues the sentence: an abbreviation we do not know ("approx. three")
    return not following[0].islower()


def speakable(text: str) -> bool:
    """Whether `text` holds anything a voice can say: a letter or a digit, in any script. Emoji, symbols and
    punctuation on their own are silent."""
    return any(c.isalnum() for c in text)


def _merge_bare_punctuation(sentences: list[str]) -> list[str]:
    """Attach a piece with nothing to say ("?!", "…", an emoji) to the sentence before it."""
    out: list[str] = []
    for s in sentences:
        if out and not speakable(s):
            out[-1] = f"{out[-1]}{s}"
        else:
            out.append(s)
    return out


def chunk_text(text: str, max_len: int = 400, measure: Callable[[str], int] = len) -> list[str]:
    """Sentences of `text`, with any sentence longer than `max_len` (as `measure`d) cut into pieces.

    Pieces end at clause marks (, ; :) when possible, else at spaces; a word is never cut, except in
    scripts written without spaces (CJK), which are cut between characters.
    """
    if max_len < 1:
        raise ValueError("max_len must be positive")
    chunks: list[str] = []
    for sentence in split_sentences(text):
        chunks.extend(_cut(sentence, max_len, measure))
    return chunks


def _cut(piece: str, max_len: int, measure: Callable[[str], int]) -> list[str]:
    if measure(piece) <= max_len:
        return [piece]
    for pattern in (_CLAUSE, re.compile(r"\s+")):
        cuts = [m.end() for m in pattern.finditer(piece) if 0 < m.end() < len(piece)]
        if cuts:
            return _pack(piece, cuts, max_len, measure)
    if _CJK.search(piece):
        half = len(piece) // 2
        return _cut(piece[:half], max_len, measure) + _cut(piece[half:], max_len, measure)
    return [piece]  # one unbreakable word: better long than broken


def _pack(piece: str, cuts: list[int], max_len: int, measure: Callable[[str], int]) -> list[str]:
    """Greedily fill pieces up to `max_len` from the spans between cut points; go finer where one overflows."""
    spans = [piece[a:b] for a, b in zip([0, *cuts], [*cuts, len(piece)], strict=True)]
    out: list[str] = []
    current = ""
    for span in spans:
        if current and measure((current + span).strip()) > max_len:
            out.append(current.strip())
            current = ""
        current += span
        if measure(current.strip()) > max_len:
            out.extend(_cut(current.strip(), max_len, measure))
            current = ""
    if current.strip():
        out.append(current.strip())
    return out


def join_sentences(parts: Iterable[str], language: str = "") -> str:
    """Join translated sentences into one passage, with a space between them unless the script uses none."""
    sep = "" if language.lower() in _NO_SPACE_LANGS else " "
    return sep.join(p for p in (tidy(part, language) for part in parts) if p)


def tidy(text: str, language: str = "") -> str:
    """Collapse runs of whitespace and drop spaces before closing punctuation (French keeps ';:!?' spaced)."""
    text = " ".join(text.split())
    marks = ",.)]}…" if language.lower() in ("fr", "fra") else ",.;:!?)]}…"
    text = re.sub(rf"\s+([{re.escape(marks)}])", r"\1", text)
    return re.sub(r"([(\[{¿¡])\s+", r"\1", text)


def batched(items: list[str], size: int) -> Iterable[list[str]]:
    """Consecutive slices of at most `size` items."""
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]


def ends_sentence(word: str, following: str | None = None) -> bool:
    """Whether a recognised word closes its sentence, by the rule `split_sentences` applies to text.

    `following` is the next word when it is known. When it is not (the last word a streaming recogniser has
    committed so far), a period after a title, an initial or a dotted acronym ("Dr.", "J.", "U.S.") does not
    end the sentence, and any other terminal mark does.
    """
    word = word.strip()
    last = next(reversed(list(_BOUNDARY.finditer(word))), None)
    if last is None or last.end() != len(word):
        return False
    nxt = following.strip() if following and following.strip() else "X"  # unknown: as if a sentence began
    return _ends_sentence(f"{word} {nxt}", 0, last)
