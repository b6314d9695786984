"""Chinese in one script. Whisper writes Simplified and Traditional characters mixed, within one sentence and
between two passes over the same audio (萬 in one pass, 万 in the next), so streaming passes disagree on what
they heard alike and captions mix scripts. Every Chinese transcript is therefore written in Simplified
characters, the script most speakers read and the one NLLB's Chinese (zho_Hans) expects; OpenCC's tables map
Traditional to Simplified (a piece of a character, U+FFFD, passes through)."""

from __future__ import annotations

from functools import cache


@cache
def _simplifier():
    import opencc

    return opencc.OpenCC("t2s")


def in_one_script(text: str, language: str | None) -> str:
    """`text` in Simplified characters when `language` is Chinese; any other text as it is."""
    if language != "zh" or not text:
        return text
    return _simplifier().convert(text)
