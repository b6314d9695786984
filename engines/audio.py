"""Decode, resample and write audio. The one place PCM changes sample rate or format."""

from __future__ import annotations

import os
import wave
from pathlib import Path

import numpy as np

from .errors import BadInputError
from .files import check_input_file

SAMPLE_RATE = 16_000  # recognizers, VAD, pitch, the mouth's audio timeline and the Wav2Lip mel work at this rate
OUTPUT_RATE = 48_000  # the rate of every translated audio output (mp4 AAC, virtual microphone, WebRTC opus)


def resample(pcm: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality resampling (soxr) of mono float32 PCM."""
    pcm = np.asarray(pcm, dtype=np.float32)
    if from_rate == to_rate or len(pcm) == 0:
        return pcm.copy()
    import soxr

    return soxr.resample(pcm, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


class StreamResampler:
    """Chunked resampling for live audio (a microphone's 48 kHz frames → 16 kHz) without seams between chunks."""

    def __init__(self, from_rate: int, to_rate: int):
        self.from_rate, self.to_rate = int(from_rate), int(to_rate)
        self._stream = None
        if self.from_rate != self.to_rate:
            import soxr

            self._stream = soxr.ResampleStream(self.from_rate, self.to_rate, 1, dtype="float32", quality="HQ")

    def __call__(self, pcm: np.ndarray, last: bool = False) -> np.ndarray:
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if self._stream is None:
            return pcm.copy()
        return self._stream.resample_chunk(pcm, last=last).astype(np.float32, copy=False)


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode the first audio stream of any file av can read into mono float32 PCM at `sample_rate`.

    Raises BadInputError with a readable message for missing, empty, corrupt or audio-less files.
    """
    import av

    path = Path(path)
    check_input_file(path, what="an audio or video file")
    try:
        container = av.open(str(path))
    except Exception as exc:  # av raises many InvalidData/FFmpeg error types
        raise BadInputError(f"{path}: cannot be read as audio or video ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise BadInputError(f"{path}: has no audio track")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except Exception as exc:
            if not chunks:
                raise BadInputError(f"{path}: the audio track cannot be decoded ({_reason(exc)})") from None
            # a truncated file: keep what decoded
    pcm = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if len(pcm) == 0:
        raise BadInputError(f"{path}: the audio track holds no samples")
    return np.nan_to_num(pcm, copy=False)


def write_wav(path: str | os.PathLike, pcm: np.ndarray, sample_rate: int) -> None:
    """Write mono float PCM as 16-bit WAV."""
    data = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes((data * 32767.0).astype("<i2").tobytes())


def rms_db(pcm: np.ndarray) -> float:
    """Loudness of a buffer in dBFS (−120 for digital silence)."""
    if len(pcm) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    return 20.0 * np.log10(max(rms, 1e-6))


def _reason(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:160]
