"""Captions draw the letters of the languages livedub speaks — CJK, Arabic (joined, right to left), Cyrillic —
from real fonts, once per caption, and say clearly when the fonts are missing."""

import logging

import cv2
import numpy as np
import pytest

from livedub.realtime.media import captions
from livedub.realtime.media.captions import caption_band, draw_caption

GREY = 120


def frame() -> np.ndarray:
    return np.full((360, 640, 3), GREY, np.uint8)


def ink(text: str) -> np.ndarray:
    """Where the caption put light letters (the band under them is darkened, never lighter than grey)."""
    out = draw_caption(frame(), text)
    return (out > 200).all(axis=2)


@pytest.mark.parametrize(("one", "other"), [
    ("今天天气很好", "我们去公园吧"),  # Chinese
    ("こんにちは世界", "ありがとう皆"),  # Japanese kana and kanji
    ("안녕하세요 친구", "감사합니다 여러분"),  # Korean
    ("Привет, мир", "Пока, друзья"),  # Cyrillic
    ("مرحبا بالعالم", "شكرا لكم جميعا"),  # Arabic
])
def test_each_script_draws_its_own_glyphs(one, other):
    a, b = ink(one), ink(other)
    rows = np.nonzero(a.any(axis=1))[0]
    assert a.sum() > 150 and rows.min() > 360 * 0.75  # real letters, in the band at the bottom
    # a font without these letters draws one and the same box (OpenCV's font: '?') for each of them, so two
    # texts of other letters would leave the same ink where their lengths overlap
    assert (a != b).sum() > 100


def components(mask: np.ndarray) -> list[tuple[int, int, int]]:
    """(left, right, pixels) of each connected blob of ink, left to right."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    blobs = [(s[cv2.CC_STAT_LEFT], s[cv2.CC_STAT_LEFT] + s[cv2.CC_STAT_WIDTH], s[cv2.CC_STAT_AREA])
             for s in stats[1:]]
    return sorted(b for b in blobs if b[2] > 3)  # specks of antialiasing are not letters


def test_arabic_letters_join_into_one_word():
    # seen + lam + meem: joining letters without dots. Drawn letter by letter they are three blobs.
    assert len(components(ink("سلم"))) == 1


def test_arabic_reads_right_to_left():
    # a short word, then a long one: right to left, the first (short) word is the blob on the right
    blobs = components(ink("سلم سلسلسلسلم"))
    assert len(blobs) == 2
    (left_start, left_end, _), (right_start, right_end, _) = blobs
    assert right_end - right_start < (left_end - left_start) / 2


def test_mixed_chinese_and_latin_keeps_latin_words_whole():
    assert captions._pieces("我用 iPhone 拍照") == ["我", "用", "iPhone", "拍", "照"]
    assert captions._pieces("Tokyo 東京です") == ["Tokyo", "東", "京", "で", "す"]


def test_a_caption_is_rendered_once_then_blended():
    text = "Una frase que se dibuja en cada fotograma"
    first = draw_caption(frame(), text)
    before = caption_band.cache_info()
    again = draw_caption(frame(), text)
    after = caption_band.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    assert np.array_equal(first, again)


def test_missing_font_warns_once_and_falls_back(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(captions, "TEXT_FONT", tmp_path / "DejaVuSans.ttf")  # a machine without the fonts
    for cache in (captions._font, captions._warn_once, caption_band):
        cache.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="livedub.captions"):
            one, two = ink("Hello there"), ink("General Kenobi")
        warnings = [r.getMessage() for r in caplog.records if r.name == "livedub.captions"]
        assert len(warnings) == 1 and "fonts-dejavu-core" in warnings[0]
        assert one.sum() > 100 and (one != two).sum() > 100  # ASCII still drawn, by OpenCV's font
    finally:
        for cache in (captions._font, captions._warn_once, caption_band):
            cache.cache_clear()
