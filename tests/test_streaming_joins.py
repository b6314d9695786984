"""Words are joined the way their script is written: no spaces inside Chinese, Japanese or Thai text."""

from __future__ import annotations

import pytest

from livedub.engines.text_join import join_words


@pytest.mark.parametrize(
    ("words", "text"),
    [
        (["這", "兩", "天", "央", "視", "。"], "這兩天央視。"),
        (["北京", "今天", "下雨,", "氣溫", "低了"], "北京今天下雨,氣溫低了"),
        (["東京", "へ", "行きます", "。"], "東京へ行きます。"),
        (["สวัสดี", "ครับ"], "สวัสดีครับ"),
        (["Good", "morning,", "everyone."], "Good morning, everyone."),
        (["안녕하세요", "여러분"], "안녕하세요 여러분"),  # Korean is written with spaces
        (["我用", "iPhone", "拍照"], "我用iPhone拍照"),
        (["Hello.", "你好", "world"], "Hello.你好world"),
        ([" leading", "trailing ", "", "  "], "leading trailing"),
    ],
    ids=["han", "han-words", "japanese", "thai", "english", "korean", "mixed", "mixed-edges", "whitespace"],
)
def test_words_join_in_the_spacing_of_their_script(words, text):
    assert join_words(words) == text


def test_nothing_to_join_is_empty_text():
    assert join_words([]) == ""
    assert join_words(["", " "]) == ""
