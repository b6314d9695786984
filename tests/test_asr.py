"""Speech recognition promises, on real models and real (synthesized) speech."""

from __future__ import annotations

import numpy as np
import pytest
from speech_metrics import wer, words_of

from livedub.engines.asr import Recognizer
from livedub.engines.asr.vad import VoiceActivity, speech_spans
from livedub.engines.asr.whisper import WhisperRecognizer
from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.errors import LivedubError, MissingModelError
from livedub.engines.models import whisper_base_dir, whisper_tiny_en_dir

SENTENCE = "My sister bought three apples and a loaf of bread at the market."


@pytest.fixture(scope="module")
def base():
    return WhisperRecognizer(whisper_base_dir())


@pytest.fixture(scope="module")
def tiny():
    return WhisperRecognizer(whisper_tiny_en_dir(), beam_size=1)


@pytest.fixture(scope="module")
def sentence_pcm(english_speech):
    return english_speech(SENTENCE)


@pytest.fixture(scope="module")
def heard(base, sentence_pcm):
    """whisper-base with language auto-detection on the sentence."""
    return base.transcribe(sentence_pcm)


def test_whisper_is_a_recognizer(base):
    assert isinstance(base, Recognizer)


def test_base_transcribes_english_word_for_word(heard):
    assert wer(words_of(SENTENCE), words_of(heard.text)) <= 0.1, heard.text


def test_language_is_detected_as_english(heard):
    assert heard.language == "en"
    assert heard.language_probability > 0.5


def test_word_timestamps_are_monotonic_and_inside_the_audio(heard, sentence_pcm):
    words = [w for s in heard.segments for w in s.words]
    assert len(words) >= 10
    duration = len(sentence_pcm) / SAMPLE_RATE
    for prev, word in zip(words, words[1:], strict=False):
        assert word.start >= prev.end - 1e-6
    assert all(0.0 <= w.start <= w.end <= duration for w in words)
    assert words[-1].end > duration * 0.7


@pytest.mark.parametrize(
    "pcm",
    [
        np.zeros(0, np.float32),
        np.zeros(3 * SAMPLE_RATE, np.float32),
        np.zeros(200, np.float32),
        np.full(SAMPLE_RATE, np.nan, np.float32),
        (np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE) * 1e-4).astype(np.float32),
    ],
    ids=["empty", "silence", "very-short", "all-nan", "faint-noise"],
)
def test_nothing_to_hear_gives_an_empty_transcript(tiny, pcm):
    transcript = tiny.transcribe(pcm)
    assert transcript.segments == ()
    assert transcript.text == ""


def test_nan_samples_inside_speech_are_ignored(tiny, sentence_pcm):
    pcm = sentence_pcm.copy()
    pcm[4000:4100] = np.nan
    pcm[9000] = np.inf
    assert wer(words_of(SENTENCE), words_of(tiny.transcribe(pcm).text)) <= 0.2


def test_translate_task_gives_english(base, sentence_pcm):
    out = base.transcribe(sentence_pcm, language="en", task="translate")
    assert wer(words_of(SENTENCE), words_of(out.text)) <= 0.2


@pytest.mark.parametrize("request_", [{"language": "es"}, {"task": "translate"}])
def test_english_only_model_refuses_other_languages(tiny, sentence_pcm, request_):
    with pytest.raises(LivedubError, match="English-only"):
        tiny.transcribe(sentence_pcm, **request_)


def test_unknown_language_code_is_a_clear_error(base):
    with pytest.raises(LivedubError, match="language code"):
        base.transcribe(np.zeros(SAMPLE_RATE, np.float32), language="xx")


def test_missing_model_names_the_problem(tmp_path):
    with pytest.raises(MissingModelError, match="model.bin"):
        WhisperRecognizer(tmp_path).transcribe(np.ones(SAMPLE_RATE, np.float32) * 0.1)


# ---- voice activity ---------------------------------------------------------------------------------


def voiced_edges(pcm: np.ndarray) -> tuple[float, float]:
    """First and last loud 10 ms frame: where speech really is in a synthesized clip."""
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160)
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > 0.01)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


@pytest.fixture(scope="module")
def two_utterances(english_speech):
    """speech, 1.5 s silence, speech, 1 s silence; with the true voiced intervals."""
    first = english_speech("Good morning everyone.")
    second = english_speech("Let us begin the meeting.")
    gap, tail = np.zeros(int(1.5 * SAMPLE_RATE), np.float32), np.zeros(SAMPLE_RATE, np.float32)
    pcm = np.concatenate([gap, first, gap, second, tail])
    a0, a1 = voiced_edges(first)
    b0, b1 = voiced_edges(second)
    off2 = (2 * len(gap) + len(first)) / SAMPLE_RATE
    return pcm, [(1.5 + a0, 1.5 + a1), (off2 + b0, off2 + b1)]


def test_vad_finds_speech_spans_within_a_fifth_of_a_second(two_utterances):
    pcm, truth = two_utterances
    spans = speech_spans(pcm, min_silence_ms=500)
    assert len(spans) == 2
    for span, (start, end) in zip(spans, truth, strict=True):
        assert abs(span.start - start) <= 0.2
        assert abs(span.end - end) <= 0.2


def test_vad_on_silence_and_garbage_finds_nothing():
    assert speech_spans(np.zeros(0, np.float32)) == []
    assert speech_spans(np.zeros(2 * SAMPLE_RATE, np.float32)) == []
    assert speech_spans(np.full(SAMPLE_RATE, np.nan, np.float32)) == []


def test_streaming_vad_reports_each_utterance_once(two_utterances):
    pcm, truth = two_utterances
    vad = VoiceActivity(min_silence_ms=500)
    events = []
    for i in range(0, len(pcm), 320):  # 20 ms chunks, as the live loop delivers them
        events += [(e, vad.time) for e in vad.feed(pcm[i : i + 320])]
    assert [e.kind for e, _ in events] == ["start", "end", "start", "end"]
    times = [e.time for e, _ in events]
    flat = [t for span in truth for t in span]
    assert np.allclose(times, flat, atol=0.2), (times, flat)
    for event, reported_at in events:
        if event.kind == "end":  # an utterance ends only after the silence lasted min_silence
            assert 0.5 <= reported_at - event.time <= 0.6
    assert not vad.speaking
