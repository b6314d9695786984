"""Natural pacing promises: a translated clip shorter than its slot keeps its natural speed (at most a slight
0.95× slow-down) and leaves the rest as pause; only a clip longer than its slot is sped up, up to max_speed."""

from __future__ import annotations

import numpy as np
import pytest

from livedub.engines.tts.espeak import EspeakSynthesizer
from livedub.realtime.dubtrack import NATURAL_SLOWEST, speed_fit


@pytest.mark.parametrize(("natural", "slot"), [(1.0, 2.0), (0.5, 3.0), (1.8, 2.0), (0.2, 0.25)])
def test_a_clearly_short_clip_keeps_its_natural_speed(natural, slot):
    assert speed_fit(natural, slot) == 1.0


@pytest.mark.parametrize(("natural", "slot"), [(1.9, 2.0), (1.96, 2.0), (0.99, 1.0)])
def test_a_clip_just_short_of_its_slot_is_slowed_slightly_to_fill_it(natural, slot):
    speed = speed_fit(natural, slot)
    assert NATURAL_SLOWEST <= speed < 1.0
    assert natural / speed == pytest.approx(slot)


def test_short_clips_are_never_slowed_below_095_whatever_min_speed_asks():
    for natural in np.linspace(0.05, 1.999, 200):
        assert speed_fit(float(natural), 2.0, min_speed=0.8) >= NATURAL_SLOWEST
        assert speed_fit(float(natural), 2.0, min_speed=0.5) >= NATURAL_SLOWEST


@pytest.mark.parametrize(("natural", "slot", "max_speed", "expected"),
                         [(2.4, 2.0, 1.3, 1.2), (2.6, 2.0, 1.3, 1.3), (4.0, 2.0, 1.3, 1.3), (3.0, 2.0, 1.6, 1.5)])
def test_only_a_long_clip_is_sped_up_and_no_faster_than_max_speed(natural, slot, max_speed, expected):
    assert speed_fit(natural, slot, max_speed=max_speed) == pytest.approx(expected)


def test_a_clip_that_can_fit_lands_inside_its_slot():
    for natural in (0.5, 1.5, 2.0, 2.5):
        assert natural / speed_fit(natural, 2.0) <= 2.0 + 1e-9


@pytest.mark.parametrize(("natural", "slot"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 2.0)])
def test_degenerate_slots_leave_speed_alone(natural, slot):
    assert speed_fit(natural, slot) == 1.0


def test_a_real_overlong_clip_spoken_at_the_fitted_speed_fits_its_slot():
    voice = EspeakSynthesizer("es")
    text = "Mañana por la mañana vamos a visitar el museo de la ciudad con mis amigos."
    natural = voice.synthesize(text).duration
    slot = natural / 1.2
    speed = speed_fit(natural, slot)
    assert speed == pytest.approx(1.2)
    assert voice.synthesize(text, speed=speed).duration <= slot * 1.05


class CountingVoice:
    """A real voice that counts how often it is asked to speak."""

    def __init__(self, voice):
        self.voice, self.calls = voice, 0
        self.language, self.sample_rate, self.name = voice.language, voice.sample_rate, voice.name

    def synthesize(self, text, *, speed=1.0):
        self.calls += 1
        return self.voice.synthesize(text, speed=speed)


def test_a_clip_fitted_into_its_slot_is_synthesized_once_and_keeps_its_pitch(english_speech):
    from livedub.engines.audio import SAMPLE_RATE, resample
    from livedub.engines.tts.voices import median_pitch_hz
    from livedub.realtime.config import DubConfig
    from livedub.realtime.dubtrack import DubTrack
    from livedub.realtime.pool import ModelPool
    from livedub.realtime.speech.pacing import Fit
    from livedub.realtime.speech.path import SpeechPath

    voice = CountingVoice(EspeakSynthesizer("es"))
    text = "Mañana por la mañana vamos a visitar el museo de la ciudad con mis amigos."
    natural = voice.synthesize(text)
    voice.calls = 0
    path = SpeechPath(DubConfig(target="es"), ModelPool(), DubTrack())
    speech, speed = path.speak(voice, text, Fit(natural.duration / 1.25, 1.3))
    assert voice.calls == 1
    assert speed == pytest.approx(1.25)
    assert speech.duration == pytest.approx(natural.duration / 1.25, abs=0.01)
    pitch = [median_pitch_hz(resample(s.pcm, s.sample_rate, SAMPLE_RATE)) for s in (natural, speech)]
    assert pitch[1] == pytest.approx(pitch[0], rel=0.05)  # faster, not higher
    if natural.phonemes:
        assert speech.phonemes[-1].end == pytest.approx(natural.phonemes[-1].end / 1.25, abs=1e-6)
