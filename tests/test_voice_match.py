"""The dub's voice moved toward the speaker's: the speaker model, a speaker's profile, and the timbre match,
on real recorded speech (moonshine-voice's WAVs) and the embedded joe voice with Piper's noise off.

Two real speakers with held-out speech: the narrator of two_cities.wav (the profile from its first 8 s, the
reference from the remaining 36 s) and Nagg in endgame_nagg_nell.wav (a two-person dialogue; the spans below
are his lines, found by whisper-base's segment times and by the speaker model clustering the lines into a low
~125 Hz voice and a high ~190 Hz one). Speed is measured in benchmarks/voices.py, not here.
"""

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from livedub.engines.audio import SAMPLE_RATE, decode_audio, resample, write_wav
from livedub.engines.errors import BadInputError
from livedub.engines.speaker import (
    SpeakerProfile,
    learn_profile,
    log_mel,
    similarity,
    speaker_embedding,
    speaker_similarity,
)
from livedub.engines.tts.match import PROBE_TEXT, MatchedVoice, VoiceMatch, apply_match, fit_match
from livedub.engines.types import Phoneme, Speech
from livedub.realtime.cli import main

PIPER_RATE = 22_050
JOE = "piper:en_US-joe-medium"  # the embedded voice `english_speech` renders (noise off)
SENTENCES = (  # what the dub says: other words than the probe the match was fitted on
    "My sister works in a hospital near the train station.",
    "Could you send me the report before Friday, please?",
    "The children play in the park after school.",
    "I think we should talk to the director about this problem.",
)
MIN_GAIN = 0.08  # similarity to the held-out speech, timbre over off; seen +0.29 (narrator), +0.13 (Nagg)
MAX_WER_RISE = 0.05  # the bound: round-trip WER no worse than off by more than 5 points
NAGG_PROFILE = ((1.9, 3.3), (4.6, 7.8))  # "Do you hear me?", "We laugh less heartily…"
NAGG_HELD_OUT = ((11.8, 14.1), (17.4, 18.9), (20.1, 21.8), (23.5, 27.2))


def _asset(name: str) -> np.ndarray:
    spec = importlib.util.find_spec("moonshine_voice")
    assert spec is not None and spec.submodule_search_locations, "moonshine-voice is not installed"
    return decode_audio(Path(next(iter(spec.submodule_search_locations))) / "assets" / name)


def _spans(pcm: np.ndarray, spans) -> np.ndarray:
    return np.concatenate([pcm[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in spans])


@pytest.fixture(scope="module")
def speakers() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name → (the first seconds a profile is learned from, held-out speech of the same person)."""
    narrator = _asset("two_cities.wav")
    dialogue = _asset("endgame_nagg_nell.wav")
    return {
        "narrator": (narrator[: 8 * SAMPLE_RATE], narrator[8 * SAMPLE_RATE :]),
        "nagg": (_spans(dialogue, NAGG_PROFILE), _spans(dialogue, NAGG_HELD_OUT)),
    }


@pytest.fixture(scope="module")
def dub_clips(english_speech) -> list[Speech]:
    return [Speech(english_speech(t, PIPER_RATE), PIPER_RATE, text=t) for t in SENTENCES]


@pytest.fixture(scope="module")
def matched(speakers, dub_clips, english_speech) -> dict[str, tuple[VoiceMatch, list[Speech]]]:
    """Per speaker: the joe voice's match fitted on its probe sentence, and the dub clips moved by it."""
    probe = english_speech(PROBE_TEXT["en"])
    out = {}
    for name, (first, _) in speakers.items():
        match = fit_match(probe, learn_profile(first), voice_name=JOE)
        out[name] = (match, [apply_match(clip, match) for clip in dub_clips])
    return out


def _at_16k(clips: list[Speech]) -> np.ndarray:
    return np.concatenate([resample(c.pcm, c.sample_rate, SAMPLE_RATE) for c in clips])


# -- the speaker model --------------------------------------------------------------------------------------


def test_features_are_the_ones_the_model_was_trained_on():
    """The package's recipe (librosa: Hamming 400 in 512, hop 160, 40 Slaney mel bands, power, log10)."""
    import librosa

    pcm = _asset("beckett.wav")
    expected = librosa.feature.melspectrogram(
        y=pcm, sr=SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160, n_mels=40, window="hamming",
        center=False, power=2.0)
    np.testing.assert_allclose(log_mel(pcm), np.log10(expected + 1e-10).T, atol=1e-3)


def test_one_speaker_scores_high_and_different_speakers_low(speakers):
    narrator_first, narrator_rest = speakers["narrator"]
    nagg_first, nagg_rest = speakers["nagg"]
    high_voice = _asset("clone-test.wav")  # a third person, ~185 Hz
    assert similarity(speaker_embedding(narrator_first), speaker_embedding(narrator_rest)) >= 0.85
    assert similarity(speaker_embedding(nagg_first), speaker_embedding(nagg_rest)) >= 0.8
    assert similarity(speaker_embedding(narrator_rest), speaker_embedding(high_voice)) <= 0.4
    assert similarity(speaker_embedding(nagg_rest), speaker_embedding(high_voice)) <= 0.4


def test_silence_is_no_speaker():
    with pytest.raises(BadInputError, match="too little speech"):
        speaker_embedding(np.zeros(3 * SAMPLE_RATE, np.float32))
    with pytest.raises(BadInputError, match="too little speech"):
        speaker_embedding(_asset("beckett.wav")[: SAMPLE_RATE // 4])


# -- the timbre match ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["narrator", "nagg"])
def test_timbre_match_sounds_more_like_the_speaker(name, speakers, dub_clips, matched):
    reference = speaker_embedding(speakers[name][1])
    match, moved = matched[name]
    off = similarity(speaker_embedding(_at_16k(dub_clips)), reference)
    timbre = similarity(speaker_embedding(_at_16k(moved)), reference)
    assert timbre - off >= MIN_GAIN, (name, off, timbre, match.to_dict())


def test_timbre_match_keeps_the_words(dub_clips, matched):
    from livedub.engines import models
    from livedub.engines.asr.whisper import WhisperRecognizer
    from livedub.engines.asr.word_error import wer, words_of

    asr = WhisperRecognizer(models.whisper_base_dir())

    def corpus_wer(clips: list[Speech]) -> float:
        edits = words = 0.0
        for clip in clips:
            ref = words_of(clip.text)
            heard = asr.transcribe(resample(clip.pcm, clip.sample_rate, SAMPLE_RATE), language="en").text
            edits += wer(ref, words_of(heard)) * len(ref)
            words += len(ref)
        return edits / words

    off = corpus_wer(dub_clips)
    for name, (_, moved) in matched.items():
        assert corpus_wer(moved) <= off + MAX_WER_RISE, name


def test_match_keeps_length_rate_text_and_timings(matched):
    match, _ = matched["narrator"]
    phonemes = (Phoneme("a", 0.0, 0.2), Phoneme("b", 0.2, 0.5))
    pcm = resample(_asset("beckett.wav")[: SAMPLE_RATE], SAMPLE_RATE, PIPER_RATE)
    speech = Speech(pcm, PIPER_RATE, text="ever tried", phonemes=phonemes)
    moved = apply_match(speech, match)
    assert (len(moved.pcm), moved.sample_rate, moved.text, moved.phonemes) == (len(pcm), PIPER_RATE, "ever tried",
                                                                            phonemes)
    assert not np.allclose(moved.pcm, pcm, atol=1e-3)  # it did change the sound
    level = np.sqrt(np.mean(pcm**2))
    assert np.sqrt(np.mean(moved.pcm**2)) == pytest.approx(level, rel=0.01)


def test_silence_stays_silent_and_tiny_clips_keep_their_length(matched):
    match, _ = matched["narrator"]
    silence = apply_match(Speech(np.zeros(PIPER_RATE, np.float32), PIPER_RATE), match)
    assert np.array_equal(silence.pcm, np.zeros(PIPER_RATE, np.float32))
    tiny = apply_match(Speech(np.full(40, 0.1, np.float32), PIPER_RATE), match)  # too short to hear a pitch in
    assert len(tiny.pcm) == 40 and np.isfinite(tiny.pcm).all()


def test_matched_voice_speaks_through_the_synthesizer_interface(matched):
    from livedub.engines.tts.piper import PiperSynthesizer

    joe = PiperSynthesizer.joe()
    match, _ = matched["narrator"]
    voice = MatchedVoice(joe, match)
    assert (voice.name, voice.language, voice.sample_rate, voice.register) == (
        f"{JOE}+timbre", "en", joe.sample_rate, "low")
    parts = list(voice.stream("Good morning. See you soon."))
    assert len(parts) == 2 and all(p.sample_rate == joe.sample_rate and len(p.pcm) for p in parts)
    with pytest.raises(ValueError, match="fit it again"):
        MatchedVoice(joe, replace(match, voice="kokoro:jm_kumo:es"))


def test_a_voice_speaks_its_probe_once_per_machine(tmp_path):
    """The probe sentence is kept in the cache: a later process fits a match without running the voice."""
    from livedub.engines.tts import match as voice_match
    from livedub.engines.tts.piper import PiperSynthesizer

    class Counted:  # the real joe voice, counting how often it is asked to speak
        def __init__(self):
            self.joe, self.calls = PiperSynthesizer.joe(), 0
            self.name, self.language, self.model_path = self.joe.name, self.joe.language, self.joe.model_path

        def synthesize(self, text, *, speed=1.0):
            self.calls += 1
            return self.joe.synthesize(text, speed=speed)

    voice = Counted()
    first = voice_match.probe_speech(voice, tmp_path)
    assert voice.calls == 1 and len(list((tmp_path / voice_match.PROBE_FOLDER).glob("*.npy"))) == 1
    voice_match._probe_memo.clear()  # as a new process would start
    again = voice_match.probe_speech(voice, tmp_path)
    assert voice.calls == 1
    np.testing.assert_allclose(again, first, atol=1e-3)  # stored as float16


# -- kept in the bank file -------------------------------------------------------------------------------------


def test_profile_and_match_survive_json(speakers, matched):
    profile = learn_profile(speakers["narrator"][0])
    back = SpeakerProfile.from_dict(json.loads(json.dumps(profile.to_dict())))
    assert similarity(back.embedding, profile.embedding) > 0.99999
    assert back.pitch.median_hz == pytest.approx(profile.pitch.median_hz, abs=0.01)
    assert back.pitch.spread_st == pytest.approx(profile.pitch.spread_st, abs=0.001)
    assert back.seconds == pytest.approx(8.0)
    np.testing.assert_allclose(back.envelope_db, profile.envelope_db, atol=1e-3)
    match, _ = matched["narrator"]
    again = VoiceMatch.from_dict(json.loads(json.dumps(match.to_dict())))
    assert again.to_dict() == match.to_dict()
    for broken in ({}, {**profile.to_dict(), "embedding": [0.1] * 3}, {**profile.to_dict(), "seconds": "x"}):
        with pytest.raises(ValueError, match="not a speaker profile"):
            SpeakerProfile.from_dict(broken)
    for broken in ({}, {**match.to_dict(), "formant_ratio": -1.0}, {**match.to_dict(), "eq_db": None}):
        with pytest.raises(ValueError, match="not a voice match"):
            VoiceMatch.from_dict(broken)


# -- livedub evaluate --speaker ------------------------------------------------------------------------------


def test_evaluate_prints_the_speaker_similarity(tmp_path, speakers, capsys):
    narrator_first, narrator_rest = speakers["narrator"]
    dub, source = tmp_path / "dub.wav", tmp_path / "source.wav"
    write_wav(dub, narrator_rest, SAMPLE_RATE)
    write_wav(source, narrator_first, SAMPLE_RATE)
    assert main(["evaluate", str(dub), "--speaker", str(source)]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if "speaker similarity" in x]
    assert len(line) == 1 and float(line[0].split()[2]) >= 0.85
    silent = tmp_path / "silent.wav"
    write_wav(silent, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    assert main(["evaluate", str(dub), "--speaker", str(silent)]) != 0
    err = capsys.readouterr().err
    assert "silent.wav" in err and "too little speech" in err and "Traceback" not in err
    assert main(["evaluate", str(dub), "--speaker", str(tmp_path)]) != 0  # a folder
    assert f"--speaker {tmp_path}" in capsys.readouterr().err


def test_a_file_dub_with_timbre_matching_sounds_more_like_its_speaker(tmp_path):
    """`livedub speech --voice-match timbre` on real speech: the dub's voice is closer to the speaker than the
    register-chosen voice alone (English → English, so Piper's joe speaks and whisper's words stay checkable)."""
    source = _asset("beckett.wav")[: 12 * SAMPLE_RATE]
    wav = tmp_path / "beckett.wav"
    write_wav(wav, source, SAMPLE_RATE)
    scores = {}
    for mode in ("register", "timbre"):
        out = tmp_path / f"{mode}.wav"
        assert main(["speech", str(wav), "--from", "en", "--to", "en", "--voice-match", mode, "-o", str(out),
                     "-q"]) == 0
        scores[mode] = speaker_similarity(decode_audio(out), source)
    assert scores["timbre"] >= scores["register"] + 0.08, scores
