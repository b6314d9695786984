"""Committed words become units that translate well, as soon as they can."""

from livedub.engines.types import Word
from livedub.realtime.speech.units import UnitBuilder


def words(text: str, start: float = 0.0, step: float = 0.3) -> list[Word]:
    return [Word(w, start + i * step, start + i * step + 0.25) for i, w in enumerate(text.split())]


def test_a_sentence_end_closes_a_unit_at_once():
    b = UnitBuilder()
    out = b.add(words("The house is very big. My brother"), origin=10.0)
    assert [u.text for u in out] == ["The house is very big."]
    assert out[0].start == 10.0 and abs(out[0].end - (10.0 + 4 * 0.3 + 0.25)) < 1e-9
    assert b.flush(origin=10.0)[0].text == "My brother"


def test_a_long_clause_is_cut_at_a_comma_or_before_a_conjunction():
    b = UnitBuilder(clause_words=6)
    out = b.add(words("Yesterday afternoon my brother and I walked along the river, and then we talked"))
    assert out[0].text == "Yesterday afternoon my brother and I walked along the river,"
    out = UnitBuilder(clause_words=6).add(words("Yesterday afternoon my brother and I walked to the bridge but it rained"))
    assert out[0].text == "Yesterday afternoon my brother and I walked to the bridge"  # cut before "but"
    assert UnitBuilder(clause_words=6).add(words("Hi, my friend")) == []  # too short to cut at the comma


def test_the_end_of_an_utterance_closes_what_is_pending():
    b = UnitBuilder()
    assert b.add(words("well I think")) == []
    out = b.add([], utterance_over=True)
    assert [u.text for u in out] == ["well I think"]


def test_units_never_grow_without_bound():
    b = UnitBuilder(max_words=10)
    out = b.add(words(" ".join(["word"] * 25)))
    assert [u.words for u in out] == [10, 10]


def test_merged_units_span_both_and_cjk_joins_without_spaces():
    b = UnitBuilder(language="zh")
    out = b.add([Word("這", 0, 0.2), Word("兩", 0.2, 0.4), Word("天。", 0.4, 0.6)])
    assert out[0].text == "這兩天。"
    a, c = UnitBuilder().add(words("One. Two.", start=1.0))
    m = a.merged(c)
    assert m.text == "One. Two." and m.start == a.start and m.end == c.end and m.words == 2


def test_chinese_committed_a_character_at_a_time_is_cut_at_clauses_not_every_few_characters():
    from livedub.engines.types import Word

    # a 30-character clause: 24 single-character "words" would cut it mid-phrase; 15 words' worth does not
    chars = "今天我们要在会议上详细讨论一下公司明年所有部门的工作计划，然后大家一起吃午饭。"
    words = [Word(c, 0.2 * i, 0.2 * i + 0.2) for i, c in enumerate(chars)]
    units = UnitBuilder(language="zh").add(words)
    assert [u.text for u in units] == ["今天我们要在会议上详细讨论一下公司明年所有部门的工作计划，", "然后大家一起吃午饭。"]
