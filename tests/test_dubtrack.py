"""The DubTrack keeps clips in their slots, never overlapping, and serves the audio around any time."""

import numpy as np
import pytest

from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.types import Phoneme, Speech
from livedub.realtime.dubtrack import MIN_GAP, DubTrack


def tone(seconds: float, rate: int = 22_050, freq: float = 220.0) -> Speech:
    t = np.arange(int(seconds * rate)) / rate
    return Speech((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, "x",
                  (Phoneme("a", 0.0, seconds / 2), Phoneme("b", seconds / 2, seconds)))


def test_overrun_pushes_next_clip_instead_of_overlapping():
    track = DubTrack(output_rate=SAMPLE_RATE)
    a = track.place(tone(2.0), 0.5)
    b = track.place(tone(1.0), 1.0)  # wants to start while a still plays
    assert a.start == 0.5
    assert b.start == pytest.approx(a.end + MIN_GAP)
    c = track.place(tone(0.5), 10.0)  # free slot: starts where asked
    assert c.start == 10.0
    assert track.end == pytest.approx(10.5)


def test_window_is_silent_outside_clips_and_mixes_inside():
    track = DubTrack(output_rate=24_000)
    track.place(tone(1.0), 1.0)
    assert track.window(-0.5, 0.9).shape == (int(round(1.4 * SAMPLE_RATE)),)
    assert np.all(track.window(-0.5, 0.99) == 0)
    inside = track.window(1.2, 1.4)
    assert np.sqrt(np.mean(inside**2)) > 0.1
    assert np.all(track.window(2.01, 3.0) == 0)
    assert len(track.render(0, 3.0)) == 72_000
    assert track.speaking(1.5) and not track.speaking(0.5) and not track.speaking(2.5)


def test_phonemes_are_on_the_track_timeline():
    track = DubTrack()
    track.place(tone(1.0), 3.0)
    ph = track.phonemes(3.6, 3.7)
    assert [p.symbol for p in ph] == ["b"]
    assert ph[0].start == pytest.approx(3.5)


def test_released_clips_keep_their_place_and_text_but_not_their_audio():
    track = DubTrack(output_rate=24_000)
    old = track.place(tone(1.0), 0.0)
    recent = track.place(tone(1.0), 40.0)
    assert track.release_before(35.0) == 1
    assert track.release_before(35.0) == 0  # already released
    first, second = track.clips
    assert first.released and not second.released
    assert (first.start, first.end, first.text) == (old.start, old.end, old.text)
    assert len(first.speech.phonemes) == 2  # captions and reports still read them
    assert track.end == pytest.approx(recent.end)
    assert not np.any(track.window(0.0, 1.0))  # a released time reads as silence
    assert np.any(track.window(40.2, 40.8))  # the recent clip plays as before
    nxt = track.place(tone(0.5), 40.5)  # placing after a release still keeps clips apart
    assert nxt.start == pytest.approx(recent.end + MIN_GAP)
