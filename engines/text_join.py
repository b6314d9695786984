"""Words back into text, in the spacing their script uses.

Recognisers hand out words one by one; Chinese, Japanese, Thai, Lao, Khmer and Burmese are written without
spaces between words, so "這 兩 天" is not Chinese text. Spaced Chinese in a whisper prompt makes whisper
imitate it and loop; spaced Chinese sent to MT or drawn as a caption reads wrong. This is the one join that
every caller uses (prompts, text handed to MT, captions, transcripts): the script of the letters on either
side of a join decides, so mixed text ("我用 iPhone" or "Tokyo 東京") needs no language code.
"""

from __future__ import annotations

from collections.abc import Iterable

# Unicode blocks of scripts written without spaces between words (Korean Hangul uses spaces: not here).
_UNSPACED = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3000, 0x303F),  # CJK symbols and punctuation (、。「」)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x31F0, 0x31FF),  # Katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # full-width forms (，！？) and half-width katakana
    (0x20000, 0x3FFFF),  # CJK extensions B and later
)


def unspaced(char: str) -> bool:
    """Whether `char` belongs to a script written without spaces between words."""
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in _UNSPACED)


# whisper's byte-level tokens can end inside a UTF-8 character: decoded alone, such a piece is U+FFFD
PARTIAL_CHARACTER = "\ufffd"


def has_partial_character(text: str) -> bool:
    """Whether `text` holds a piece of a character (a byte token decoded before the rest of its bytes)."""
    return PARTIAL_CHARACTER in text


def join_words(words: Iterable[str]) -> str:
    """Join words with a space, except where the letter before or after the join is of an unspaced script."""
    out = ""
    for word in words:
        word = word.strip()
        if not word:
            continue
        if out and not (unspaced(out[-1]) or unspaced(word[0])):
            out += " "
        out += word
    return out
