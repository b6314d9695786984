"""Speech played faster or slower at its own pitch (WSOLA), so a clip is synthesized once.

Fitting a clip into its time slot needs its natural length first; synthesizing again at the fitted speed
doubled the TTS cost exactly when a live session was already behind. Instead the natural clip is re-timed:
overlapping 30 ms windows are laid out at the new pace, each shifted by up to ±10 ms to where it best
continues the previous one (waveform-similarity overlap-add), which keeps pitch and voice quality over the
0.9–1.7× range pacing uses. Phoneme timings scale with it, so lips stay on the sounds.
"""

from __future__ import annotations

import numpy as np

from ..types import Phoneme, Speech

WINDOW_S = 0.030
SEEK_S = 0.010


def stretch_pcm(pcm: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """`pcm` lasting len/speed samples, pitch unchanged."""
    pcm = np.asarray(pcm, np.float32).reshape(-1)
    if speed <= 0:
        raise ValueError("speed must be positive")
    if abs(speed - 1.0) < 1e-3 or len(pcm) == 0:
        return pcm.copy()
    frame = max(int(WINDOW_S * rate) // 2 * 2, 8)
    hop_out = frame // 2
    seek = max(int(SEEK_S * rate), 1)
    n_out = int(round(len(pcm) / speed))
    window = np.hanning(frame + 2)[1:-1].astype(np.float32)
    pad = frame + seek
    x = np.concatenate([np.zeros(pad, np.float32), pcm, np.zeros(2 * pad + frame, np.float32)])
    out = np.zeros(n_out + 2 * frame, np.float32)
    norm = np.zeros_like(out)
    prev = None  # where the last window was taken from, in x
    for k, at in enumerate(range(0, n_out + hop_out, hop_out)):
        nominal = pad + int(round(k * hop_out * speed)) - hop_out
        nominal = min(max(nominal, seek), len(x) - frame - seek)
        if prev is None:
            start = nominal
        else:
            follow = x[prev + hop_out : prev + hop_out + frame]  # what would naturally come next
            region = x[nominal - seek : nominal + seek + frame]
            if not np.any(follow) or not np.any(region):
                start = nominal
            else:
                score = np.correlate(region, follow, mode="valid")
                start = nominal - seek + int(np.argmax(score))
        out[at : at + frame] += x[start : start + frame] * window
        norm[at : at + frame] += window
        prev = start
    out = out[hop_out : hop_out + n_out]
    norm = norm[hop_out : hop_out + n_out]
    return (out / np.maximum(norm, 1e-3)).astype(np.float32)


def change_tempo(speech: Speech, speed: float) -> Speech:
    """The clip `speed`× faster (shorter), same voice and pitch; phoneme timings follow."""
    if abs(speed - 1.0) < 1e-3:
        return speech
    pcm = stretch_pcm(speech.pcm, speech.sample_rate, speed)
    phonemes = tuple(Phoneme(p.symbol, p.start / speed, p.end / speed) for p in speech.phonemes)
    return Speech(pcm, speech.sample_rate, speech.text, phonemes)
