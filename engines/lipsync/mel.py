"""The one mel spectrogram of livedub: the Wav2Lip reference's features, computed frame by frame.

Official checkpoints were trained on these exact numbers (16 kHz, pre-emphasis 0.97, STFT 800/200 Hann with
centred reflect padding, 80 Slaney mel bands 55–7600 Hz, dB, clipped to [−4, 4]), so any drift here is a
lip-sync error. Every STFT column depends only on the 800 samples around it, so `mel_window` computes a video
frame's 16 columns from the PCM around that frame alone and gets the same numbers as slicing the whole-file
mel: live mode (a growing DubTrack) and file mode (a whole buffer) feed the model identical windows.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from scipy.signal import lfilter

from ..audio import SAMPLE_RATE

N_FFT = 800
HOP = 200
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
MEL_RATE = SAMPLE_RATE // HOP  # 80 columns per second
WINDOW_STEPS = 16  # columns per video frame: 200 ms
SILENCE = -4.0  # the value digital silence maps to (and the padding past the end)

_MIN_LEVEL = 1e-5  # −100 dB
_REF_LEVEL_DB = 20.0
_MAX_ABS = 4.0
_CHUNK = 1024  # STFT columns per block: bounds memory on long files


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's auditory scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3.0
    mels = hz / f_sp
    min_log_mel = 1000.0 / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(hz >= 1000.0, min_log_mel + np.log(np.maximum(hz, 1e-10) / 1000.0) / logstep, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3.0
    min_log_mel = 1000.0 / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, 1000.0 * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@cache
def mel_basis() -> np.ndarray:
    """(80, 401) triangular filters, Slaney scale and Slaney area norm (librosa's `filters.mel` default)."""
    fft_freqs = np.linspace(0.0, SAMPLE_RATE / 2.0, 1 + N_FFT // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(FMIN), _hz_to_mel(FMAX), N_MELS + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@cache
def _hann() -> np.ndarray:
    """Periodic Hann window of N_FFT samples (scipy `get_window('hann', 800)`)."""
    n = np.arange(N_FFT)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


def n_columns(n_samples: int) -> int:
    """Mel columns of a buffer of `n_samples` (centred STFT: one per hop, plus one)."""
    return 1 + n_samples // HOP


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """numpy 'reflect' padding as an index map (edge not repeated), valid for any overshoot."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.abs(index) % period
    return np.where(index >= n, period - index, index)


def _to_mel(frames: np.ndarray) -> np.ndarray:
    """(count, 800) pre-emphasized float64 frames → (80, count) normalized mel columns."""
    magnitude = np.abs(np.fft.rfft(frames * _hann(), axis=1)).astype(np.float32)
    mel = mel_basis().astype(np.float64) @ magnitude.T.astype(np.float64)  # float64: block-size independent
    db = 20.0 * np.log10(np.maximum(_MIN_LEVEL, mel)) - _REF_LEVEL_DB
    norm = (2.0 * _MAX_ABS) * ((db + 100.0) / 100.0) - _MAX_ABS
    return np.clip(norm, -_MAX_ABS, _MAX_ABS).astype(np.float32)


def _emphasize(pcm: np.ndarray) -> np.ndarray:
    """y[n] = x[n] − 0.97·x[n−1] from zero state; on a slice its values past the first equal the whole's."""
    return lfilter([1.0, -PREEMPHASIS], [1.0], pcm.astype(np.float64))


def _columns(pcm: np.ndarray, first: int, count: int) -> np.ndarray:
    """Mel columns [first, first+count) of the buffer `pcm`, reading only the samples those columns touch.

    Column c is centred on sample c·200 and reads [c·200−400, c·200+400) with reflect padding at both ends.
    """
    starts = (np.arange(first, first + count) * HOP - N_FFT // 2)[:, None]
    index = _reflect(starts + np.arange(N_FFT)[None, :], len(pcm))
    lo, hi = int(index.min()), int(index.max()) + 1
    seg_lo = max(lo - 1, 0)  # pre-emphasis needs the sample before lo
    return _to_mel(_emphasize(_clean(pcm[seg_lo:hi]))[index - seg_lo])


def _clean(pcm: np.ndarray) -> np.ndarray:
    """Mono float PCM with NaN/inf removed: the reference raises on NaN, we never produce it."""
    pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
    return np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0)


def melspectrogram(pcm16k: np.ndarray) -> np.ndarray:
    """(80, 1 + len//200) float32 mel of 16 kHz mono PCM, equal to the Wav2Lip reference's `melspectrogram`.

    Digital silence gives −4 everywhere; an empty buffer gives one silent column.
    """
    pcm = _clean(pcm16k)
    total = n_columns(len(pcm))
    if len(pcm) == 0:
        return np.full((N_MELS, total), SILENCE, np.float32)
    blocks = [_columns(pcm, c, min(_CHUNK, total - c)) for c in range(0, total, _CHUNK)]
    return np.concatenate(blocks, axis=1)


def window_start(frame_index: int, fps: float) -> int:
    """First mel column of video frame `frame_index` at `fps`, exactly as the reference slices it."""
    return int(frame_index * (float(MEL_RATE) / fps))


def time_start(t: float) -> int:
    """First mel column of a frame shown at `t` seconds (tolerant of float noise in t = i/fps)."""
    return math.floor(t * MEL_RATE + 1e-6)


def mel_window(source, frame_index: int, fps: float) -> np.ndarray:
    """(80, 16) window of video frame `frame_index` at `fps`: `melspectrogram(pcm)[:, s:s+16]`, s per reference.

    `source` is a PCM buffer (16 kHz, starting at time 0) or an `AudioTimeline`. Columns past the end of a
    buffer are −4 (the audio has ended: silence), where the reference would shift the last window back.
    """
    return mel_window_from(source, window_start(frame_index, fps))


def mel_window_at(source, t: float) -> np.ndarray:
    """(80, 16) window for the frame shown at `t` seconds (the 200 ms starting at t)."""
    return mel_window_from(source, time_start(t))


def mel_window_from(source, start: int) -> np.ndarray:
    """(80, 16) mel columns [start, start+16) of `source`, computed from the PCM around them only.

    A plain buffer or a timeline exposing its whole `pcm` (PcmTimeline) is a finite file: reflect padding at
    both ends and −4 past the last column, bit-equal to slicing the whole-file mel. Any other timeline (the
    live DubTrack) is read from time 0 onwards through `window()` and is silence after what it holds; its
    windows equal the whole-file mel of the PCM it will have rendered, away from that PCM's end.
    """
    start = max(int(start), 0)
    pcm = source if isinstance(source, np.ndarray) else getattr(source, "pcm", None)
    if pcm is not None:  # only the slice the window reads is converted: O(window), not O(file)
        return _finite_window(np.asarray(pcm).reshape(-1), start)
    return _timeline_window(source, start)


def _finite_window(pcm: np.ndarray, start: int) -> np.ndarray:
    out = np.full((N_MELS, WINDOW_STEPS), SILENCE, np.float32)
    total = n_columns(len(pcm))
    count = min(WINDOW_STEPS, total - start)
    if count > 0 and len(pcm):
        out[:, :count] = _columns(pcm, start, count)
    return out


def _timeline_window(timeline, start: int) -> np.ndarray:
    rate = int(getattr(timeline, "sample_rate", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise ValueError(f"mel_window needs a 16 kHz timeline, got {rate} Hz")
    first = start * HOP - N_FFT // 2  # first sample the window's columns read
    lo = max(first - 1, 0)  # one more for pre-emphasis
    hi = (start + WINDOW_STEPS - 1) * HOP + N_FFT // 2  # one past the last sample they read
    pcm = _clean(timeline.window(lo / SAMPLE_RATE, hi / SAMPLE_RATE))
    pcm = np.pad(pcm, (0, max(hi - lo - len(pcm), 0)))[: hi - lo]  # window() rounds times to samples
    if lo == 0:
        # near time 0 the columns reflect at sample 0 like the whole track; they never reach sample hi
        return _columns(pcm, start, WINDOW_STEPS)
    index = (np.arange(WINDOW_STEPS) * HOP)[:, None] + np.arange(N_FFT)[None, :] + (first - lo)
    return _to_mel(_emphasize(pcm)[index])
