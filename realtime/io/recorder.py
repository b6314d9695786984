"""`--record OUT.mp4`: what the other side gets, as a file — a sink that pulls the dubbed video and the
translated audio from their tracks.

Each outgoing frame is placed at its capture pts (gaps repeat the last frame, so the file keeps its rate and
timeline), and the translated audio on the same timeline: the recorder's audio track is not held back, the
mouth of the frame at t speaks the audio at t, as the call partner sees and hears them. Video is encoded on
its own thread as it comes; audio goes to a WAV beside it and is muxed in when the call ends; the mp4
appears only then (atomically). Opening and closing block: call them off the event loop.

The encoder shares the CPU with the call: x264's `veryfast` took ~30 ms of CPU per 1280×720 frame here (a
whole core at 30 fps), `ultrafast` ~9 ms, so a recording uses `ultrafast` at a lower CRF, and its thread
(and x264's own threads, started from it) yields the CPU to the video path.
"""

from __future__ import annotations

import asyncio
import os
import wave
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from livedub.engines.audio import OUTPUT_RATE

from ..workers import lower_priority  # one niceness helper for every thread
from .tracks import TrackPump, mono_float, seconds_of

PRESET, CRF = "ultrafast", 18  # fast enough to share 2 cores with a call; a CRF lower than files' keeps detail
ENCODER_NICE = 5  # the encoder thread's niceness: media threads first, the recording keeps up within `keep`


class Recorder:
    """Records one video track and one audio track (`record`), both stamped in session seconds."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, *, rate: int = OUTPUT_RATE):
        from livedub.engines.files import partial_path

        from .files import Mp4Writer

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.rate = float(fps), rate
        self._video_tmp = partial_path(self.path.with_name(f"{self.path.stem}.video.mp4"))
        self._audio_tmp = partial_path(self.path.with_name(f"{self.path.stem}.audio.wav"))
        self._writer = Mp4Writer(self._video_tmp, width, height, fps, None, crf=CRF, preset=PRESET)
        self._wav = wave.open(str(self._audio_tmp), "wb")  # noqa: SIM115 (closed in _finish())
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._t0: float | None = None
        self._next_frame = 0
        self._last: np.ndarray | None = None
        self._samples = 0  # audio samples written, from time 0 of the file
        self._pumps: list[TrackPump] = []
        self._niced = False
        self.frames = 0

    @property
    def origin(self) -> float | None:
        """Session time of the first frame (time 0 of the file)."""
        return self._t0

    def record(self, video: MediaStreamTrack, audio: MediaStreamTrack) -> None:
        """Start pulling both tracks (an encoder hiccup of up to a second is absorbed, not dropped)."""
        self._pumps = [TrackPump(video, self._add_frame, name="record-video", keep=max(int(self.fps), 1)),
                       TrackPump(audio, self._add_audio, name="record-audio", keep=250)]
        for pump in self._pumps:
            pump.start()

    def _add_frame(self, frame: av.VideoFrame) -> None:
        """On the video pump's thread: the frame at its pts; a gap repeats the last frame."""
        if not self._niced:  # before the first encode opens x264, whose threads inherit the niceness
            lower_priority(ENCODER_NICE)
            self._niced = True
        pts = seconds_of(frame) or 0.0
        if self._t0 is None:
            self._t0 = pts
        index = int(round((pts - self._t0) * self.fps))
        while self._last is not None and self._next_frame < index:
            self._writer.write(self._last)
            self._next_frame += 1
        if index < self._next_frame:
            return  # two frames for one slot: keep the first
        bgr = frame.to_ndarray(format="bgr24")
        self._writer.write(bgr)
        self._next_frame += 1
        self._last = bgr
        self.frames += 1

    def _add_audio(self, frame: av.AudioFrame) -> None:
        """On the audio pump's thread: audio from the first frame's time on, placed by its pts."""
        t0 = self._t0
        t = seconds_of(frame)
        if t0 is None or t is None:
            return
        pcm = mono_float(frame)
        at = int(round((t - t0) * self.rate))
        if at > self._samples:  # a gap (a stalled reader): silence keeps the timeline
            pcm = np.concatenate([np.zeros(at - self._samples, np.float32), pcm])
        elif at < self._samples:  # overlaps what is written: keep the rest
            pcm = pcm[self._samples - at :]
        if len(pcm):
            self._wav.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
            self._samples += len(pcm)

    async def aclose(self, *, keep: bool = True) -> Path | None:
        """Stop recording and finish the file (`keep=False`: discard it, nothing left behind)."""
        for pump in self._pumps:
            await pump.aclose()
        return await asyncio.to_thread(self._finish, keep)

    def _finish(self, keep: bool) -> Path | None:
        try:
            self._writer.close()
            self._wav.close()
            if keep and self.frames:
                from livedub.engines.audio import decode_audio

                from ..outputs import atomic_output
                from .files import remux_with_audio

                audio = decode_audio(self._audio_tmp, self.rate)
                with atomic_output(self.path) as tmp:
                    remux_with_audio(self._video_tmp, audio, self.rate, tmp)
                return self.path
            return None
        finally:
            self._video_tmp.unlink(missing_ok=True)
            self._audio_tmp.unlink(missing_ok=True)
