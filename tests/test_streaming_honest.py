"""What the live loop can rely on: one pass per feed, commit times a caller really sees, no words whisper
made up in the silence after an utterance, and one language per utterance."""

from __future__ import annotations

import time

import numpy as np
import pytest
from speech_metrics import wer, words_of

from livedub.engines import registry
from livedub.engines.asr.streaming import StreamingRecognizer
from livedub.engines.audio import SAMPLE_RATE, resample
from livedub.engines.settings import Settings
from livedub.engines.text_join import join_words
from livedub.engines.tts.espeak import EspeakSynthesizer

SR = SAMPLE_RATE
UTTERANCES = ["Good morning everyone.", "Thank you for joining this call today.", "Please send me the report."]


@pytest.fixture(scope="module")
def offline_base():
    return registry.recognizer(Settings())


class CountingPasses:
    """The real recognizer; counts the passes made inside each feed() call."""

    def __init__(self, asr):
        self.asr, self.calls = asr, 0

    def transcribe(self, pcm, **kwargs):
        self.calls += 1
        return self.asr.transcribe(pcm, **kwargs)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


def test_one_pass_per_feed_and_commit_time_is_when_the_caller_gets_the_word(live_base, english_speech):
    """Two whole utterances arrive in one chunk (as after a slow pass): each feed() runs one pass at
    most, the second utterance waits for the next call, and every word's wall time is its hand-out."""
    first, second = english_speech(UTTERANCES[0]), english_speech(UTTERANCES[2])
    big = np.concatenate([silence(0.5), first, silence(1.0), second, silence(1.0)])
    counting = CountingPasses(live_base)
    stream = StreamingRecognizer(counting, language="en")
    received: list = []
    for pcm in [big] + [silence(0.02)] * 10:
        counting.calls = 0
        called = time.monotonic()
        words = stream.feed(pcm)
        returned = time.monotonic()
        assert counting.calls <= 1
        for commit in stream.commits[len(received) : len(received) + len(words)]:
            assert called <= commit.wall_time <= returned
        received += words
    assert [w.text for w in received] == [w.text for w in stream.committed]
    heard = words_of(join_words(w.text for w in received))
    # "place in the report" for "please send me the report" came twice in fresh-clone runs (open: see the note)
    assert wer(words_of(UTTERANCES[0]) + words_of(UTTERANCES[2]), heard) <= 0.375, heard  # 3 of 8 at most
    assert stream.utterance_ended is False and not stream.speaking


@pytest.mark.parametrize("text", UTTERANCES)
def test_no_invented_words_after_an_utterance_ends(live_base, offline_base, english_speech, text):
    """Whisper fills silence with "Thank you.", repeats the utterance's start ("... everyone. Good") and
    writes digits for a word's tail ("everyone 1 1"): a clip ending in silence commits nothing after what
    was said, and the utterance end is flagged. Piper samples its speech, so each utterance is heard in five
    renderings. Before the fixes 2 of 12 renderings of the first got digits; after, about 1 take in 30 still
    misses (a digit for the tail of "everyone", or whisper-base mishearing the last word): one of five may."""
    wrong = []
    for _take in range(5):
        pcm = np.concatenate([silence(0.4), english_speech(text), silence(1.5)])
        offline = offline_base.transcribe(pcm, language="en")
        stream = StreamingRecognizer(live_base, language="en")
        ended = False
        for i in range(0, len(pcm), 320):
            stream.feed(pcm[i : i + 320])
            ended = ended or stream.utterance_ended
        assert ended and not stream.hypothesis
        assert stream.flush() == []
        committed = words_of(join_words(w.text for w in stream.committed))
        reference = words_of(offline.text)
        if not (committed and committed[-1] == reference[-1] and len(committed) <= len(reference) + 1
                and wer(reference, committed) <= 0.25):
            wrong.append((reference, committed))
    assert len(wrong) <= 1, wrong


@pytest.mark.slow
def test_language_is_detected_once_per_utterance_and_held(live_base, english_speech):
    """English, then Spanish without a pause: the utterance stays English (what was committed is never
    heard again in another language). After a pause, the next utterance is detected as Spanish."""
    spanish = EspeakSynthesizer("es").synthesize("Hoy vamos a hablar de los planes para el próximo año.")
    spanish = resample(spanish.pcm, spanish.sample_rate, SR)
    english = english_speech("Good morning everyone, thank you for joining this call today.")
    pcm = np.concatenate([silence(0.3), english, spanish, silence(1.2), spanish, silence(1.2)])
    stream = StreamingRecognizer(live_base)
    seen: list[str | None] = []
    committed_before: list = []
    for i in range(0, len(pcm), 1600):
        stream.feed(pcm[i : i + 1600])
        seen.append(stream.detected_language)
        assert stream.committed[: len(committed_before)] == committed_before  # committed words stay
        committed_before = stream.committed
        if stream.utterance_ended:
            break
    held = [lang for lang in seen if lang]
    assert held and set(held) == {"en"}, seen
    first_utterance = len(stream.committed)
    assert wer(words_of("Good morning everyone, thank you for joining"),
               words_of(join_words(w.text for w in stream.committed[:7]))) <= 0.15
    for j in range(i + 1600, len(pcm), 1600):
        stream.feed(pcm[j : j + 1600])
    stream.flush()
    assert stream.detected_language == "es"
    assert len(stream.committed) > first_utterance
