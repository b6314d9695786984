"""Text → IPA phonemes with espeak-ng: what the neural voices read and what the lip engines can look at.

`espeak-ng -q --ipa` drops punctuation and prints a line per clause, but a prosody model needs the commas
and question marks (they shape pauses and intonation). So each clause of the text goes on its own
paragraph of one espeak-ng run and its closing mark is put back after its phonemes:
"Hola, ¿qué tal?" → "ˈola, kˈe tˈal?". With `tie`, espeak-ng joins the letters of one multi-letter phoneme
("a^ɪ", "t^ʃ") so a backend that spells diphthongs and affricates as one symbol can find them.
"""

from __future__ import annotations

import re

from .espeak import espeak_voice_for, run_espeak_ng

CLAUSE_MARKS = ",;:.!?…—"  # punctuation kept in the phoneme string (the rest shapes nothing)
# a clause ends at a run of marks before a space (or the end), or at a dash; "1,000" and "3.5" stay whole
_CLAUSE_END = re.compile(r"[,;:.!?…]+(?=[\s\"'”’»)\]]|$)|\s*[—–]\s*|\s+-\s+")
_SWITCH_FLAG = re.compile(r"\([^()]*\)")  # espeak-ng's language-switch marks, e.g. "(en)" in a Spanish text
_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def phonemize(text: str, language: str, *, tie: str | None = None) -> str:
    """IPA of `text` spoken in `language` (an ISO code such as "es" or "pt-br", or an espeak-ng voice):
    words separated by spaces, stress marks kept, clause punctuation put back. "" when nothing is speakable.

    Raises `MissingModelError` when espeak-ng is missing or has no voice for the language."""
    clauses = clauses_of(text)
    if not clauses:
        return ""
    voice = espeak_voice_for(language.strip().replace("_", "-").lower())
    spoken = _ipa_of_clauses(voice, [words for words, _ in clauses], tie)
    out = []
    for (_, mark), ipa in zip(clauses, spoken, strict=True):
        if ipa:
            out.append(ipa + mark)
        elif mark and out:  # a clause with nothing to say ("…") still pauses
            out[-1] += mark
    return " ".join(out)


def clauses_of(text: str) -> list[tuple[str, str]]:
    """(words, closing mark) per clause; the mark is "" when the text simply ends, "—" for any dash."""
    text = " ".join(text.split())
    clauses: list[tuple[str, str]] = []
    start = 0
    for m in _CLAUSE_END.finditer(text):
        words = text[start:m.start()].strip()
        mark = m.group(0).strip()
        mark = "—" if mark in ("—", "–", "-") else "".join(c for c in mark if c in CLAUSE_MARKS)
        if words or mark:
            clauses.append((words, mark))
        start = m.end()
    rest = text[start:].strip()
    if rest:
        clauses.append((rest, ""))
    return clauses


def _ipa_of_clauses(voice: str, clauses: list[str], tie: str | None) -> list[str]:
    """One IPA string per clause: all clauses in one espeak-ng run (a blank line between them), or one run
    each when the blank lines did not come back one-to-one (a clause espeak-ng had nothing to say for)."""
    args = ["-q", "--ipa", "-v", voice] + ([f"--tie={tie}"] if tie else [])
    speakable = [c if any(ch.isalnum() for ch in c) else "" for c in clauses]
    todo = [c for c in speakable if c]
    if not todo:
        return ["" for _ in clauses]
    out = _run(args, "\n\n".join(todo))
    parts = [_tidy(p) for p in _PARAGRAPH.split(out.strip("\n"))]
    if len(parts) != len(todo) or not all(parts):
        parts = [_tidy(_run(args, c)) for c in todo]
    spoken = iter(parts)
    return [next(spoken) if c else "" for c in speakable]


def _run(args: list[str], text: str) -> str:
    return run_espeak_ng(args, text.encode("utf-8")).decode("utf-8", "replace")


def _tidy(ipa: str) -> str:
    """One line of words: language-switch flags dropped, espeak-ng's extra clause breaks joined."""
    ipa = _SWITCH_FLAG.sub("", ipa)
    ipa = ipa.replace("-", "")  # espeak-ng's word-joining hyphen ("la- vˈi") is not a sound
    return " ".join(ipa.split())
