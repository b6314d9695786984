"""Streaming recognition promises: words commit while the speaker talks, and add up to the offline text."""

from __future__ import annotations

import numpy as np
import pytest
from speech_metrics import wer, words_of

from livedub.engines.asr.streaming import StreamingRecognizer
from livedub.engines.asr.whisper import WhisperRecognizer
from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.models import whisper_tiny_en_dir

STORY = (
    "The quick brown fox jumps over the lazy dog. Yesterday we walked along the river to the old mill. "
    "My sister bought three apples and a loaf of bread at the market. "
    "Please call me tomorrow morning before nine o'clock."
)


def feed_in_chunks(stream: StreamingRecognizer, pcm: np.ndarray, seconds: float) -> list:
    n = int(seconds * SAMPLE_RATE)
    return [w for i in range(0, len(pcm), n) for w in stream.feed(pcm[i : i + n])]


@pytest.fixture(scope="module")
def tiny():
    return WhisperRecognizer(whisper_tiny_en_dir(), beam_size=1)


@pytest.fixture(scope="module")
def story_pcm(english_speech):
    """The story, cut 0.1 s after its last voiced sample: the speaker is still "talking" at the end."""
    pcm = english_speech(STORY)
    loud = np.flatnonzero(np.abs(pcm) > 0.02)
    pcm = pcm[: loud[-1] + SAMPLE_RATE // 10]
    assert len(pcm) / SAMPLE_RATE > 10.0
    return pcm


@pytest.fixture(scope="module")
def streamed(tiny, story_pcm):
    """The story fed in 0.5 s chunks with no pause long enough to end the utterance, then flushed.

    The last 0.6 s arrive as one chunk, so the final words are new to the last pass (only heard once) and
    must wait for the flush, whatever the clip's length modulo the chunk size."""
    stream = StreamingRecognizer(tiny, language="en")
    last = int(0.6 * SAMPLE_RATE)
    during = feed_in_chunks(stream, story_pcm[:-last], 0.5) + stream.feed(story_pcm[-last:])
    tail = stream.flush()
    return stream, during, tail


def test_committed_words_match_the_offline_transcript(tiny, streamed, story_pcm):
    stream, during, tail = streamed
    offline = tiny.transcribe(story_pcm, language="en")
    reference = words_of(" ".join(w.text for s in offline.segments for w in s.words))
    committed = words_of(" ".join(w.text for w in during + tail))
    assert [w.text for w in stream.committed] == [w.text for w in during + tail]
    assert wer(reference, committed) <= 0.1, (reference, committed)


def test_first_words_are_committed_long_before_the_speaker_stops(streamed, story_pcm):
    stream, during, _ = streamed
    duration = len(story_pcm) / SAMPLE_RATE
    assert len(during) >= len(stream.commits) // 2  # most words commit while audio still arrives
    assert stream.commits[0].committed_at < duration / 3


def test_flush_commits_the_tail(streamed, story_pcm):
    stream, _, tail = streamed
    assert tail, "the last words wait for flush"
    assert words_of(tail[-1].text) == ["clock"]  # whisper writes o'clock as two words
    assert all(c.by_flush for c in stream.commits[-len(tail) :])
    assert stream.hypothesis == []
    assert stream.flush() == []  # nothing left twice


def test_commits_carry_stream_times_and_lag(streamed, story_pcm):
    stream, _, _ = streamed
    duration = len(story_pcm) / SAMPLE_RATE
    words = stream.committed
    assert all(0.0 <= w.start <= w.end <= duration + 1e-6 for w in words)
    assert all(b.start >= a.end - 1e-6 for a, b in zip(words, words[1:], strict=False))
    assert all(c.lag >= -1e-6 for c in stream.commits)
    assert [c.committed_at for c in stream.commits] == sorted(c.committed_at for c in stream.commits)
    # a word ends before the audio that commits it; time fed so far is the stream clock
    assert stream.time == pytest.approx(duration)


def test_a_pause_ends_the_utterance_and_commits_it(tiny, english_speech):
    first, second = english_speech("Good morning everyone."), english_speech("Let us begin.")
    pause = np.zeros(SAMPLE_RATE, np.float32)
    stream = StreamingRecognizer(tiny, language="en")
    got_first = feed_in_chunks(stream, np.concatenate([first, pause]), 0.1)
    assert words_of(" ".join(w.text for w in got_first)) == ["good", "morning", "everyone"]
    assert not stream.speaking
    got_second = feed_in_chunks(stream, np.concatenate([second, pause]), 0.1)
    assert words_of(" ".join(w.text for w in got_second)) == ["let", "us", "begin"]
    assert got_second[0].start > len(first) / SAMPLE_RATE + 0.9  # absolute stream time, not buffer time
    assert stream.flush() == []


def test_silence_costs_no_recognition(tiny):
    stream = StreamingRecognizer(tiny)
    assert feed_in_chunks(stream, np.zeros(3 * SAMPLE_RATE, np.float32), 0.02) == []
    assert stream.flush() == []
    assert stream.passes == 0
