"""Choosing a voice: the speaker's register (median pitch) picks among the voices of a language.

Piper voice configs carry no gender, so a voice's register is measured once from a short phrase it speaks
and cached by the model file's hash; a voice may also declare its register (`voice.register`).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np

from ..audio import SAMPLE_RATE, resample
from ..files import atomic_write

Register = Literal["low", "high"]
REGISTER_SPLIT_HZ = 165.0  # between typical adult male (~85–155 Hz) and female (~165–255 Hz) speaking F0

_FMIN, _FMAX = 60.0, 450.0
_FRAME_S, _HOP_S = 0.032, 0.010
_YIN_THRESHOLD = 0.15  # CMND dip below this = periodic frame
_MAX_ANALYSED_S = 30.0
_MIN_VOICED_FRAMES = 5  # 50 ms of voicing before a median means anything
_PROBE_PHRASE = "A, e, i, o, u. Mama, ama, oma, una. Hello, one, two, three."
PITCH_FILE = "voice_pitch.json"  # measured voice pitches in the cache, by model-file hash

V = TypeVar("V")

# The bundled Kokoro voices (all recorded in Japanese) that whisper-base, told nothing, most often hears as the
# language they speak (benchmarks/voice_language.py, 5 sentences each, this 2-core vm), the one for a speaker of
# unknown pitch first; a speaker's register still picks between the two. jf_alpha, the generic default, was
# heard as Japanese in 3 of 5 Portuguese and French sentences; jf_gongitsune in none of the Portuguese or Spanish
# ones (5/5 heard as the language). jm_kumo was the best voice in every language measured (it 5/5 at 6% WER
# where jf_nezumi was 4/5 at 26%; fr 3/5, 7–8/10 over ten sentences, where the high voices were 2/5): it goes
# first for fr and it. Galician is spoken with Spanish phonemes (see `espeak.BORROWED_VOICES`).
KOKORO_BUNDLED_BY_LANGUAGE: dict[str, tuple[str, str]] = {
    "es": ("jf_gongitsune", "jm_kumo"),
    "gl": ("jf_gongitsune", "jm_kumo"),
    "pt": ("jf_gongitsune", "jm_kumo"),
    "it": ("jm_kumo", "jf_nezumi"),
    "fr": ("jm_kumo", "jf_nezumi"),
}


def bundled_kokoro_voices(language: str, default: dict[str, str]) -> tuple[str, str]:
    """The bundled Kokoro voices (one per register) for `language`, the one for a speaker of unknown pitch
    first: the measured best, else `default`'s high then low voice."""
    return KOKORO_BUNDLED_BY_LANGUAGE.get(language.split("-")[0], (default["high"], default["low"]))


def median_pitch_hz(pcm16k: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float | None:
    """Median F0 of the voiced frames (YIN), or None when nothing in the buffer is periodic speech.

    A long input is measured on evenly spaced excerpts totalling `_MAX_ANALYSED_S`: a register needs seconds,
    not hours, and the per-frame matrices would otherwise grow with the input (GBs for 10 minutes)."""
    x = np.asarray(pcm16k, dtype=np.float64).reshape(-1)
    x = np.nan_to_num(x)
    budget = int(_MAX_ANALYSED_S * sample_rate)
    if len(x) > budget:
        piece = sample_rate  # 1 s excerpts keep plenty of whole frames each
        starts = np.linspace(0, len(x) - piece, budget // piece).astype(int)
        x = np.concatenate([x[a : a + piece] for a in starts])
    frame = int(round(_FRAME_S * sample_rate))
    hop = int(round(_HOP_S * sample_rate))
    max_lag = int(np.ceil(sample_rate / _FMIN))
    min_lag = int(np.floor(sample_rate / _FMAX))
    span = frame + max_lag
    if len(x) < span:
        return None
    x = x - np.mean(x)
    n_frames = 1 + (len(x) - span) // hop
    frames = np.lib.stride_tricks.sliding_window_view(x, span)[::hop][:n_frames]

    head = frames[:, :frame]
    energy = np.sqrt(np.mean(head**2, axis=1))
    loud = energy > max(1e-3, 0.05 * float(energy.max(initial=0.0)))  # -60 dBFS floor and 26 dB below peak
    if not loud.any():
        return None
    frames, head = frames[loud], head[loud]

    # YIN difference d(τ) = Σ x_j² + Σ x_{j+τ}² − 2 Σ x_j x_{j+τ}, the cross term by FFT
    n_fft = 1 << int(np.ceil(np.log2(span + frame)))
    spec_a = np.fft.rfft(head, n_fft)
    spec_b = np.fft.rfft(frames, n_fft)
    cross = np.fft.irfft(np.conj(spec_a) * spec_b, n_fft)[:, : max_lag + 1]
    sq = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    e0 = sq[:, frame : frame + 1]
    lags = np.arange(max_lag + 1)
    e_tau = sq[:, lags + frame] - sq[:, lags]
    diff = np.maximum(e0 + e_tau - 2.0 * cross, 0.0)
    diff[:, 0] = 0.0
    running = np.cumsum(diff[:, 1:], axis=1) / np.arange(1, max_lag + 1)
    cmnd = np.ones_like(diff)
    cmnd[:, 1:] = np.where(running > 1e-12, diff[:, 1:] / np.maximum(running, 1e-12), 1.0)

    f0s: list[float] = []
    for row in cmnd:
        tau = _first_dip(row, min_lag, max_lag)
        if tau is None:
            continue
        f0s.append(sample_rate / _parabolic(row, tau))
    if len(f0s) < _MIN_VOICED_FRAMES:
        return None
    return float(np.median(f0s))


def _first_dip(row: np.ndarray, min_lag: int, max_lag: int) -> int | None:
    """YIN's absolute threshold: the first lag under the threshold, walked down to its local minimum."""
    below = np.nonzero(row[min_lag:max_lag] < _YIN_THRESHOLD)[0]
    if len(below) == 0:
        return None
    tau = int(below[0]) + min_lag
    while tau + 1 < max_lag and row[tau + 1] < row[tau]:
        tau += 1
    return tau


def _parabolic(row: np.ndarray, tau: int) -> float:
    """Sub-sample lag from the parabola through the minimum and its neighbours."""
    if tau <= 0 or tau + 1 >= len(row):
        return float(tau)
    a, b, c = row[tau - 1], row[tau], row[tau + 1]
    denom = a - 2.0 * b + c
    return float(tau) if abs(denom) < 1e-12 else tau + 0.5 * (a - c) / denom


def register_of(pitch_hz: float) -> Register:
    """'low' (typically male) or 'high' (typically female or child) speaking register."""
    return "low" if pitch_hz < REGISTER_SPLIT_HZ else "high"


# --- a voice's own pitch, measured once ---------------------------------------------------------------

_pitch_lock = threading.Lock()
_pitch_memo: dict[str, float | None] = {}


def voice_pitch_hz(voice, cache: Path | None = None) -> float | None:
    """Median pitch of `voice` speaking a short phrase, measured once per process and kept by model-file
    hash in `cache`/voice_pitch.json for later runs (`Settings.cache`; None: this process only)."""
    key = _voice_key(voice)
    store = cache / PITCH_FILE if cache is not None and key.startswith("sha256:") else None
    with _pitch_lock:
        if key in _pitch_memo:
            return _pitch_memo[key]
        stored = _load_pitches(store)
        if key in stored:
            _pitch_memo[key] = stored[key]
            return stored[key]
    speech = voice.synthesize(_PROBE_PHRASE)
    pitch = median_pitch_hz(resample(speech.pcm, speech.sample_rate, SAMPLE_RATE))
    with _pitch_lock:
        _pitch_memo[key] = pitch
        if store is not None:
            _save_pitches(store, {**_load_pitches(store), key: pitch})
    return pitch


def voice_register(voice, cache: Path | None = None) -> Register | None:
    """The voice's declared register, else the one measured from its speech (None if unmeasurable)."""
    declared = getattr(voice, "register", None)
    if declared in ("low", "high"):
        return declared
    pitch = voice_pitch_hz(voice, cache)
    return None if pitch is None else register_of(pitch)


def choose_voice(candidates: Sequence[V], pitch_hz: float | None, *, cache: Path | None = None) -> V:
    """The candidate whose register matches the speaker's; the first one when pitch or choice is missing.
    `cache` keeps measured registers between runs (see `voice_pitch_hz`)."""
    if not candidates:
        raise ValueError("choose_voice needs at least one candidate voice")
    if pitch_hz is None or len(candidates) == 1:
        return candidates[0]
    wanted = register_of(pitch_hz)
    for voice in candidates:
        if voice_register(voice, cache) == wanted:
            return voice
    return candidates[0]


def _voice_key(voice) -> str:
    model_path = getattr(voice, "model_path", None)
    if model_path is not None and os.path.isfile(model_path):
        from ..models import sha256_file

        return "sha256:" + _hash_memo(str(model_path), sha256_file)
    return "name:" + str(getattr(voice, "name", type(voice).__name__))


_hash_cache: dict[tuple[str, int, int], str] = {}


def _hash_memo(path: str, hasher) -> str:
    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = hasher(path)
    return _hash_cache[key]


def _load_pitches(store: Path | None) -> dict[str, float | None]:
    if store is None:
        return {}
    try:
        data = json.loads(store.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_pitches(store: Path, data: dict[str, float | None]) -> None:
    try:
        with atomic_write(store) as partial:
            partial.write_text(json.dumps(data, indent=1, sort_keys=True), "utf-8")
    except OSError:
        pass  # a read-only cache only costs a re-measure next run
