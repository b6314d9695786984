"""Speech synthesis promises: Piper and espeak-ng speak, fit a time slot by speed, stream by sentence,
espeak-ng writes the IPA the neural voices read, and a speaker's register picks the voice."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest

from livedub.engines.audio import SAMPLE_RATE, resample, rms_db
from livedub.engines.errors import MissingModelError
from livedub.engines.models import joe_voice_paths
from livedub.engines.mt.text import split_sentences
from livedub.engines.tts import Synthesizer
from livedub.engines.tts.espeak import EspeakSynthesizer, espeak_languages
from livedub.engines.tts.phonemes import clauses_of, phonemize
from livedub.engines.tts.piper import PiperSynthesizer
from livedub.engines.tts.timings import PAUSE
from livedub.engines.tts.voices import choose_voice, median_pitch_hz, register_of, voice_register

SENTENCE = "The quick brown fox jumps over the lazy dog near the quiet river bank."
SPANISH = "Hola amigo, hoy hace muy buen tiempo en la ciudad y vamos a pasear."


@pytest.fixture(scope="module")
def joe() -> PiperSynthesizer:
    return PiperSynthesizer.joe()


def _assert_speech(speech, words: int) -> None:
    assert speech.pcm.dtype == np.float32 and speech.pcm.ndim == 1
    assert np.all(np.isfinite(speech.pcm))
    assert words * 0.2 <= speech.duration <= words * 0.6
    assert rms_db(speech.pcm) > -35.0


def _mean_duration(synth, text: str, speed: float, runs: int = 2) -> float:
    return float(np.mean([synth.synthesize(text, speed=speed).duration for _ in range(runs)]))


# --- Piper ------------------------------------------------------------------------------------------


def test_joe_speaks_a_sentence(joe):
    speech = joe.synthesize(SENTENCE)
    assert isinstance(joe, Synthesizer)
    assert (joe.language, joe.sample_rate, speech.sample_rate) == ("en", 22050, 22050)
    _assert_speech(speech, len(SENTENCE.split()))


def test_joe_gives_phoneme_timings_covering_the_clip(joe):
    speech = joe.synthesize("Hello there. How are you?")
    assert joe.has_phoneme_timings
    spans = speech.phonemes
    assert spans[0].start == 0.0 and spans[-1].end == pytest.approx(speech.duration, abs=1e-3)
    assert all(a.end == pytest.approx(b.start) for a, b in pairwise(spans))
    assert all(p.end > p.start and p.symbol for p in spans)
    assert {"h", "ɛ", "uː"} <= {p.symbol for p in spans}
    assert spans[0].symbol == PAUSE and spans[-1].symbol == PAUSE
    assert not any(a.symbol == b.symbol == PAUSE for a, b in pairwise(spans))


def test_speed_fits_duration(joe):
    normal = _mean_duration(joe, SENTENCE, 1.0)
    assert normal / _mean_duration(joe, SENTENCE, 1.3) == pytest.approx(1.3, rel=0.10)
    assert normal / _mean_duration(joe, SENTENCE, 0.8) == pytest.approx(0.8, rel=0.10)


def test_stream_yields_one_clip_per_sentence(joe):
    text = "This is the first sentence. Here comes a second one! And is this the third?"
    clips = list(joe.stream(text))
    assert [c.text for c in clips] == split_sentences(text) and len(clips) == 3
    whole = joe.synthesize(text)
    assert sum(c.duration for c in clips) == pytest.approx(whole.duration, rel=0.12)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_empty_speech(joe, text):
    for synth in (joe, EspeakSynthesizer("es")):
        speech = synth.synthesize(text)
        assert len(speech.pcm) == 0 and speech.sample_rate == synth.sample_rate
        assert list(synth.stream(text)) == []


def test_missing_user_voice_names_the_path(tmp_path):
    missing = tmp_path / "de_DE-nobody.onnx"
    with pytest.raises(MissingModelError, match="de_DE-nobody.onnx"):
        PiperSynthesizer(missing)


def test_user_voice_config_found_next_to_model():
    model, _ = joe_voice_paths()
    synth = PiperSynthesizer(str(model))
    assert (synth.language, synth.sample_rate, synth.name) == ("en", 22050, "piper:en_US-joe-medium")


# --- espeak-ng ----------------------------------------------------------------------------------------


def test_espeak_speaks_spanish_and_speed_works():
    synth = EspeakSynthesizer("es")
    assert isinstance(synth, Synthesizer) and synth.language == "es"
    normal = synth.synthesize(SPANISH)
    _assert_speech(normal, len(SPANISH.split()))
    assert normal.duration / synth.synthesize(SPANISH, speed=1.3).duration == pytest.approx(1.3, rel=0.10)
    assert normal.duration / synth.synthesize(SPANISH, speed=0.8).duration == pytest.approx(0.8, rel=0.10)


def test_espeak_knows_common_languages():
    codes = espeak_languages()
    assert {"en", "es", "fr", "de", "zh", "pt", "ar"} <= set(codes)
    assert EspeakSynthesizer("zh").name == "espeak-ng:cmn"
    assert EspeakSynthesizer("es_MX").name == "espeak-ng:es-419"  # Latin American Spanish


def test_espeak_unknown_language_is_a_clear_error():
    with pytest.raises(MissingModelError, match="no voice for language 'xx'"):
        EspeakSynthesizer("xx")


def test_espeak_male_and_female_variants_have_distinct_registers():
    low = EspeakSynthesizer("es", register="low").synthesize(SPANISH)
    high = EspeakSynthesizer("es", register="high").synthesize(SPANISH)
    low_hz = median_pitch_hz(resample(low.pcm, low.sample_rate, SAMPLE_RATE))
    high_hz = median_pitch_hz(resample(high.pcm, high.sample_rate, SAMPLE_RATE))
    assert register_of(low_hz) == "low" and register_of(high_hz) == "high"


# --- espeak-ng phonemes -----------------------------------------------------------------------------------


def test_phonemes_keep_the_clause_punctuation_espeak_drops():
    ipa = phonemize("Hola amigo, ¿cómo estás? Muy bien; gracias.", "es")
    assert ipa.count(",") == 1 and ipa.count("?") == 1 and ipa.count(";") == 1 and ipa.endswith(".")
    words = ipa.replace(",", "").replace("?", "").replace(";", "").replace(".", "").split()
    assert len(words) == 7 and "ˈ" in ipa  # one IPA word per word, stress kept
    assert phonemize("Hola", "es") == ipa.split()[0]  # a clause alone reads as in the sentence


def test_numbers_and_decimals_are_not_cut_at_their_marks():
    assert clauses_of("It costs 1,000 dollars, or 3.5 each.") == [("It costs 1,000 dollars", ","), ("or 3.5 each", ".")]
    assert "," not in phonemize("1,000", "en-us")


def test_phonemes_follow_the_language_and_drop_switch_flags():
    assert phonemize("une maison", "en-us") != phonemize("une maison", "fr")
    assert "(" not in phonemize("The boy said hello.", "fr")  # espeak-ng marks "(en)" words in French text
    assert "^" in phonemize("my house", "en-us", tie="^")  # a tie joins a diphthong's letters


def test_phonemes_of_nothing_speakable_are_empty():
    assert phonemize("", "es") == "" and phonemize(" ... ", "es") == ""
    with pytest.raises(MissingModelError, match="no voice for language 'xx'"):
        phonemize("hello", "xx")


# --- pitch and voice choice -------------------------------------------------------------------------------


def _harmonic_tone(f0: float, seconds: float = 1.0, rate: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    vibrato = 1.0 + 0.01 * np.sin(2 * np.pi * 5 * t)
    phase = 2 * np.pi * np.cumsum(f0 * vibrato) / rate
    return sum(0.3 / k * np.sin(k * phase) for k in range(1, 6)).astype(np.float32)


@pytest.mark.parametrize("f0", [120.0, 220.0])
def test_median_pitch_of_a_harmonic_tone(f0):
    assert median_pitch_hz(_harmonic_tone(f0)) == pytest.approx(f0, rel=0.05)


def test_no_pitch_in_silence_or_noise():
    assert median_pitch_hz(np.zeros(SAMPLE_RATE, np.float32)) is None
    noise = np.random.default_rng(0).normal(0, 0.2, SAMPLE_RATE).astype(np.float32)
    assert median_pitch_hz(noise) is None
    assert median_pitch_hz(np.zeros(100, np.float32)) is None


def test_choose_voice_follows_the_speakers_register():
    low, high = EspeakSynthesizer("es", register="low"), EspeakSynthesizer("es", register="high")
    assert choose_voice([high, low], 110.0) is low
    assert choose_voice([low, high], 210.0) is high
    assert choose_voice([high, low], None) is high


def test_piper_voice_register_is_measured_once_and_cached(tmp_cache):
    model, config = joe_voice_paths()
    undeclared = PiperSynthesizer(model, config)
    assert voice_register(undeclared, tmp_cache) == "low"
    stored = json.loads((tmp_cache / "voice_pitch.json").read_text())
    ((key, pitch_hz),) = stored.items()
    assert key.startswith("sha256:") and 70 < pitch_hz < 165


def test_missing_espeak_program_says_how_to_install(monkeypatch, tmp_path):
    synth = EspeakSynthesizer("es")
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the espeak-ng program
    with pytest.raises(MissingModelError, match="apt-get install espeak-ng"):
        synth.synthesize("hola")


def test_piper_serves_several_executor_threads():
    from concurrent.futures import ThreadPoolExecutor

    model, config = joe_voice_paths()
    fresh = PiperSynthesizer(model, config)  # not yet loaded: both threads race to load it
    with ThreadPoolExecutor(2) as pool:
        clips = list(pool.map(fresh.synthesize, ["One two three.", "Four five six."]))
    assert all(c.duration > 0.5 and np.all(np.isfinite(c.pcm)) for c in clips)
