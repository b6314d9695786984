"""Voice matching: the synthesized voice moved toward the speaker's (pitch, formants, spectral colour).

A `SpeakerProfile` (`engines/speaker.py`) is learned once from the first seconds of the speaker: a d-vector,
the median and spread of their pitch, and the long-term average spectrum of their speech in the d-vector's 40
mel bands. A `VoiceMatch` says how one voice is moved toward one profile; it is fitted once on a probe
sentence the voice speaks: pitch is mapped (the voice's median to the speaker's, its spread scaled to theirs),
the formants are shifted by the ratio (from a small grid) whose result the speaker model rates closest, and a
fixed equaliser takes the remaining difference of average spectra. Applying a match to a clip is then two
cheap steps (Praat's PSOLA "Change gender", an FIR filter), clip by clip, so live mode can use it too.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ..audio import SAMPLE_RATE, resample
from ..errors import BadInputError
from ..files import atomic_write
from ..speaker import (
    N_MELS,
    PITCH_CEILING_HZ,
    PITCH_FLOOR_HZ,
    SpeakerProfile,
    band_centres_hz,
    pitch_stats,
    similarity,
    speaker_embedding,
    speech_envelope_db,
    voiced_f0,
)
from ..types import Speech

VoiceMatchMode = Literal["off", "register", "timbre"]
MODES: tuple[str, ...] = ("off", "register", "timbre")

FORMANT_RATIOS = (0.88, 0.94, 1.0, 1.06, 1.12, 1.19, 1.26)  # tried when fitting; beyond these speech smears
PITCH_RANGE_LIMITS = (0.5, 2.0)  # of the voice's own spread: flatter or livelier, never a siren
EQ_LIMIT_DB = 12.0  # per band, when fitted to the speaker's average spectrum: colour, not a new voice
EQ_STRENGTHS = (1.25, 1.5)  # then tried: the speaker model rated an overshooting equaliser closer (+0.01–0.08)
_EQ_TAPS = 255
_EQ_PASSES = 3
_PEAK = 0.99
_CLIP_PITCH_STEP_S = 0.02  # a clip's median pitch needs no finer frames (a third of the cost of 10 ms ones)
_KEEP_RATIO_MARGIN = 0.01  # a shifted ratio must beat no shift by this much similarity to be chosen

PROBE_VERSION = 2  # bump when PROBE_TEXT or a voice's sound changes (2: Kokoro's int8 convs rewritten, kokoro_graph.py)
PROBE_TEXT: dict[str, str] = {  # a probe sentence per language (others read the English one)
    "en": "Tomorrow morning we are going to visit the museum. My sister works in a hospital near the station.",
    "es": "Mañana por la mañana vamos a visitar el museo. Mi hermana trabaja en un hospital cerca de la estación.",
    "pt": "Amanhã de manhã vamos visitar o museu. Minha irmã trabalha em um hospital perto da estação.",
    "de": "Morgen früh besuchen wir das Museum. Meine Schwester arbeitet in einem Krankenhaus beim Bahnhof.",
    "fr": "Demain matin, nous allons visiter le musée. Ma sœur travaille dans un hôpital près de la gare.",
    "it": "Domani mattina andiamo a visitare il museo. Mia sorella lavora in un ospedale vicino alla stazione.",
}


# -- one voice moved toward one speaker ----------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceMatch:
    """How one voice's clips are moved toward one speaker (fitted by `fit_match`, applied by `apply_match`)."""

    voice: str  # the voice's name: a match applies to that voice only
    pitch_ratio: float  # a clip's median pitch is multiplied by this
    pitch_range: float  # its spread around the median is scaled by this
    formant_ratio: float
    eq_db: tuple[float, ...]  # gain per speaker-model mel band, dB
    similarity_before: float  # of the probe to the speaker, as spoken
    similarity_after: float  # of the probe after the match

    def to_dict(self) -> dict:
        return {
            "voice": self.voice, "pitch_ratio": round(self.pitch_ratio, 4), "pitch_range": round(self.pitch_range, 4),
            "formant_ratio": round(self.formant_ratio, 4), "eq_db": [round(float(g), 2) for g in self.eq_db],
            "similarity_before": round(self.similarity_before, 4),
            "similarity_after": round(self.similarity_after, 4),
        }

    @classmethod
    def from_dict(cls, data: dict) -> VoiceMatch:
        """The match `to_dict` wrote; ValueError names what is wrong with anything else."""
        try:
            match = cls(
                voice=str(data["voice"]), pitch_ratio=float(data["pitch_ratio"]),
                pitch_range=float(data["pitch_range"]), formant_ratio=float(data["formant_ratio"]),
                eq_db=tuple(float(g) for g in data["eq_db"]),
                similarity_before=float(data["similarity_before"]), similarity_after=float(data["similarity_after"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a voice match ({type(exc).__name__}: {exc})") from None
        numbers = [match.pitch_ratio, match.pitch_range, match.formant_ratio, *match.eq_db]
        if not (all(np.isfinite(numbers)) and match.pitch_ratio > 0 and match.pitch_range > 0
                and match.formant_ratio > 0):
            raise ValueError("not a voice match (ratios must be positive finite numbers)")
        return match

    @property
    def is_identity(self) -> bool:
        return (self.pitch_ratio == 1.0 and self.pitch_range == 1.0 and self.formant_ratio == 1.0
                and not any(self.eq_db))


def identity_match(voice: str) -> VoiceMatch:
    """A match that leaves the voice as it is."""
    return VoiceMatch(voice, 1.0, 1.0, 1.0, (0.0,) * N_MELS, 0.0, 0.0)


def apply_match(speech: Speech, match: VoiceMatch) -> Speech:
    """`speech` moved toward the speaker: same length, rate, text and phoneme timings; loudness kept."""
    pcm = np.nan_to_num(np.asarray(speech.pcm, dtype=np.float32).reshape(-1))
    if len(pcm) == 0 or match.is_identity:
        return speech
    moved = _move(pcm, speech.sample_rate, match)
    return replace(speech, pcm=moved)


def _move(pcm: np.ndarray, sample_rate: int, match: VoiceMatch) -> np.ndarray:
    changed = _change_voice(pcm, sample_rate, match.pitch_ratio, match.pitch_range, match.formant_ratio)
    return _colour(changed, pcm, sample_rate, match.eq_db)


def _colour(out: np.ndarray, pcm: np.ndarray, sample_rate: int, eq_db: Sequence[float]) -> np.ndarray:
    """`out` through the equaliser, at the loudness of the original `pcm`."""
    if any(eq_db):
        out = _equalise(out, sample_rate, eq_db)
    rms_in = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    rms_out = float(np.sqrt(np.mean(np.square(out, dtype=np.float64))))
    if rms_out > 1e-9:
        out = out * (rms_in / rms_out)
    peak = float(np.max(np.abs(out), initial=0.0))
    if peak > _PEAK:  # scaled down, never clipped: a boosted band must not crackle
        out = out * (_PEAK / peak)
    return out.astype(np.float32)


def _change_voice(pcm: np.ndarray, sample_rate: int, pitch_ratio: float, pitch_range: float,
                  formant_ratio: float) -> np.ndarray:
    """Praat's "Change gender" (PSOLA, formants shifted by resampling) with the clip's median pitch × ratio;
    unvoiced or too-short clips come back unchanged."""
    if pitch_ratio == 1.0 and pitch_range == 1.0 and formant_ratio == 1.0:
        return pcm
    f0 = voiced_f0(pcm, sample_rate, time_step=_CLIP_PITCH_STEP_S)
    if len(f0) < 3:
        return pcm
    import parselmouth
    from parselmouth.praat import call

    sound = parselmouth.Sound(pcm.astype(np.float64), sampling_frequency=sample_rate)
    new_median = float(np.median(f0)) * pitch_ratio
    try:
        changed = call(sound, "Change gender", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, formant_ratio, new_median,
                       pitch_range, 1.0)
    except parselmouth.PraatError:
        return pcm
    out = np.asarray(changed.values, dtype=np.float32).reshape(-1)
    if len(out) != len(pcm):  # keep the clip's length so its phoneme timings stay true
        out = np.pad(out, (0, max(0, len(pcm) - len(out))))[: len(pcm)]
    return np.nan_to_num(out)


_fir_lock = threading.Lock()
_fir_memo: dict[tuple[int, tuple[float, ...]], np.ndarray] = {}


def _equalise(pcm: np.ndarray, sample_rate: int, eq_db: Sequence[float]) -> np.ndarray:
    from scipy.signal import oaconvolve

    taps = _eq_filter(sample_rate, tuple(float(g) for g in eq_db))
    return oaconvolve(pcm, taps, mode="same").astype(np.float32)


def _eq_filter(sample_rate: int, eq_db: tuple[float, ...]) -> np.ndarray:
    """Linear-phase FIR with the given gain at each speaker-model mel band's centre (the last band's gain
    held from 8 kHz up to Nyquist: the speaker model hears nothing there to fit it to)."""
    key = (sample_rate, eq_db)
    with _fir_lock:
        if key in _fir_memo:
            return _fir_memo[key]
    from scipy.signal import firwin2

    centres = band_centres_hz()
    gains = np.asarray(eq_db, dtype=np.float64)
    nyquist = sample_rate / 2.0
    freqs = np.concatenate([[0.0], centres[centres < nyquist], [nyquist]])
    levels = np.concatenate([[gains[0]], gains[centres < nyquist], [gains[centres < nyquist][-1]]])
    taps = firwin2(_EQ_TAPS, freqs / nyquist, 10.0 ** (levels / 20.0)).astype(np.float32)
    with _fir_lock:
        if len(_fir_memo) > 64:
            _fir_memo.clear()
        _fir_memo[key] = taps
    return taps


# -- fitting a match: the probe sentence ---------------------------------------------------------------------


PROBE_FOLDER = "voice_probes"  # in the cache: each voice's probe sentence at 16 kHz, spoken once per machine
_probe_lock = threading.Lock()
_probe_memo: dict[str, np.ndarray] = {}


def probe_speech(voice, cache: Path | None = None) -> np.ndarray:
    """The voice speaking its language's probe sentence at 16 kHz: spoken once per process, and kept in
    `cache` (`Settings.cache`; None: this process only) so a slow neural voice is not run again next time."""
    key = _probe_key(voice)
    with _probe_lock:
        if key in _probe_memo:
            return _probe_memo[key]
    stored = None if cache is None else cache / PROBE_FOLDER / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".npy")
    pcm = _load_probe(stored)
    if pcm is None:
        base = str(getattr(voice, "language", "en")).split("-")[0]
        speech = voice.synthesize(PROBE_TEXT.get(base, PROBE_TEXT["en"]))
        pcm = resample(speech.pcm, speech.sample_rate, SAMPLE_RATE)
        if stored is not None:
            try:
                with atomic_write(stored) as partial, open(partial, "wb") as f:
                    np.save(f, pcm.astype(np.float16))
            except OSError:
                pass  # a read-only cache only costs speaking the probe again next run
    with _probe_lock:
        _probe_memo[key] = pcm
    return pcm


def _probe_key(voice) -> str:
    """The voice's name and language, and its model file's size and time when it has one (a replaced file
    with the same name is another voice)."""
    key = f"{getattr(voice, 'name', type(voice).__name__)}|{getattr(voice, 'language', '')}|{PROBE_VERSION}"
    for attribute in ("model_path", "voice_file"):
        path = getattr(voice, attribute, None)
        if path is not None and os.path.isfile(path):
            info = os.stat(path)
            key += f"|{info.st_size}|{info.st_mtime_ns}"
    return key


def _load_probe(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        pcm = np.load(path, allow_pickle=False).astype(np.float32)
    except (OSError, ValueError):
        return None
    return pcm if pcm.ndim == 1 and len(pcm) and np.isfinite(pcm).all() else None


def fit_voice(voice, profile: SpeakerProfile, cache: Path | None = None) -> VoiceMatch:
    """`fit_match` on `voice` speaking its probe sentence (`probe_speech`, kept in `cache`)."""
    name = str(getattr(voice, "name", type(voice).__name__))
    return fit_match(probe_speech(voice, cache), profile, voice_name=name)


def fit_match(probe16k: np.ndarray, profile: SpeakerProfile, *, voice_name: str) -> VoiceMatch:
    """How the voice named `voice_name`, heard speaking `probe16k` (16 kHz), is best moved toward `profile`: pitch
    mapped from the probe's stats to the speaker's, then each formant ratio of `FORMANT_RATIOS` tried with the
    equaliser it leaves, the speaker model choosing (no shift unless one gains `_KEEP_RATIO_MARGIN`)."""
    probe = np.nan_to_num(np.asarray(probe16k, dtype=np.float32).reshape(-1))
    try:
        before = similarity(speaker_embedding(probe), profile.embedding)
    except BadInputError:
        return identity_match(voice_name)  # a voice that says nothing here cannot be measured, so it is left alone
    pitch_ratio, pitch_range = 1.0, 1.0
    voice_pitch = pitch_stats(probe, SAMPLE_RATE)
    if voice_pitch is not None and profile.pitch is not None:
        pitch_ratio = profile.pitch.median_hz / voice_pitch.median_hz
        pitch_range = float(np.clip(profile.pitch.spread_st / max(voice_pitch.spread_st, 1e-3), *PITCH_RANGE_LIMITS))
    def rated(changed: np.ndarray, eq: np.ndarray) -> float:
        try:
            return similarity(speaker_embedding(_colour(changed, probe, SAMPLE_RATE, eq)), profile.embedding)
        except BadInputError:
            return -1.0

    best = (before, 1.0, np.zeros_like(profile.envelope_db), probe)  # (similarity, ratio, eq, changed probe)
    best_score = before
    for ratio in FORMANT_RATIOS:
        changed = _change_voice(probe, SAMPLE_RATE, pitch_ratio, pitch_range, ratio)
        eq = _fit_equaliser(changed, profile.envelope_db)
        after = rated(changed, eq)
        score = after - (_KEEP_RATIO_MARGIN if ratio != 1.0 else 0.0)
        if score > best_score:
            best, best_score = (after, ratio, eq, changed), score
    after, ratio, eq, changed = best
    for strength in EQ_STRENGTHS:  # then how far the equaliser goes
        stronger = np.clip(eq * strength, -EQ_LIMIT_DB * strength, EQ_LIMIT_DB * strength)
        if (rating := rated(changed, stronger)) > after + _KEEP_RATIO_MARGIN:
            after, best = rating, (rating, ratio, stronger, changed)
    after, ratio, eq, _ = best
    if after <= before:
        return replace(identity_match(voice_name), similarity_before=before, similarity_after=before)
    return VoiceMatch(voice_name, pitch_ratio, pitch_range, ratio, tuple(float(g) for g in eq), before, after)


def _fit_equaliser(pcm16k: np.ndarray, target_db: np.ndarray) -> np.ndarray:
    """Band gains that bring the speech's average spectrum to `target_db`, refined on the filtered result
    (neighbouring bands overlap, so one pass under-corrects), each within ±`EQ_LIMIT_DB`."""
    eq = np.zeros_like(target_db, dtype=np.float64)
    shaped = pcm16k
    for _ in range(_EQ_PASSES):
        eq = np.clip(eq + target_db - speech_envelope_db(shaped), -EQ_LIMIT_DB, EQ_LIMIT_DB)
        shaped = _equalise(pcm16k, SAMPLE_RATE, eq)
    return eq


# -- choosing among voices, and a voice that speaks matched ---------------------------------------------------


def closest_voice(candidates: Sequence, profile: SpeakerProfile, cache: Path | None = None) -> tuple[object, VoiceMatch]:
    """The candidate voice that comes closest to the speaker once matched, with its match (each candidate's
    probe sentence is spoken once and kept in `cache`)."""
    if not candidates:
        raise ValueError("closest_voice needs at least one candidate voice")
    fitted = [(voice, fit_voice(voice, profile, cache)) for voice in candidates]
    return max(fitted, key=lambda pair: pair[1].similarity_after)


class MatchedVoice:
    """A voice whose every clip is moved toward one speaker; speaks like any `Synthesizer`."""

    def __init__(self, voice, match: VoiceMatch):
        if match.voice != voice.name:
            raise ValueError(f"the match was fitted for {match.voice}, not {voice.name}: fit it again")
        self.voice = voice
        self.match = match
        self.language = voice.language
        self.sample_rate = voice.sample_rate
        self.name = f"{voice.name}+timbre"

    def __getattr__(self, attribute: str):  # register, has_phoneme_timings, …: the voice's own
        return getattr(self.voice, attribute)

    def synthesize(self, text: str, *, speed: float = 1.0) -> Speech:
        return apply_match(self.voice.synthesize(text, speed=speed), self.match)

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        for speech in self.voice.stream(text, speed=speed):
            yield apply_match(speech, self.match)
