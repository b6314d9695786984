"""Media files as users have them, written for tests: an H.264 + AAC mp4 of frames and 16 kHz speech."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np

from livedub.engines.audio import SAMPLE_RATE


def write_av_mp4(path: Path, frames: list[np.ndarray], pcm16k: np.ndarray, *, fps: int = 25,
                 faststart: bool = False) -> None:
    """An H.264 + AAC mp4 as a phone or editor would write it (faststart: the index at the front)."""
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        video = out.add_stream("libx264", rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="bgr24")):
                out.mux(packet)
        for start in range(0, len(pcm16k), 1024):
            chunk = av.AudioFrame.from_ndarray(pcm16k[None, start : start + 1024].astype(np.float32), format="fltp",
                                               layout="mono")
            chunk.sample_rate, chunk.pts = SAMPLE_RATE, start
            chunk.time_base = fractions.Fraction(1, SAMPLE_RATE)
            for packet in audio.encode(chunk):
                out.mux(packet)
        for stream in (audio, video):
            for packet in stream.encode(None):
                out.mux(packet)
