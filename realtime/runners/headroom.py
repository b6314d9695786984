"""`Headroom`: what one call costs this node, measured — at warm-up before any call, then from the calls.

Warm-up (`measure_warm_up`) times what a call will spend here, in the process's CPU seconds: camera frames
of a real face at 640×480 through a session's face path, the same frames through aiortc's VP8 encoder and
libvpx's decoder (every call decodes its camera and encodes its dub), and one recognition pass on the ASR
worker. During calls the figure follows what the calls measure: each call's video stage (p50 per frame)
and the model workers' busy seconds per second per call. `capacity.py` turns the figure into calls that fit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..io.tracks import VIDEO_TIME_BASE
from .capacity import FULL_QUALITY, SessionCost

log = logging.getLogger("livedub.headroom")

WARM_FRAMES = 24  # frames timed at warm-up (the first few, which load caches, are not counted)
WARM_SKIP = 4
WARM_SIZE = (640, 480)  # what browsers send by default
MIN_FRAMES = 30  # video samples a call needs before its per-frame figure counts
DUTY_WINDOW_S = 3.0  # the model workers' duty is measured over at least this long
PASS_EVERY_S = 0.3  # a speaking caller's streaming recognizer runs a pass per 0.3 s of new audio
SPEAKING_SHARE = 0.5  # before any call: a caller is taken to speak half of the time
PASS_AUDIO_S = 2.0  # the buffer one warm-up pass recognises
MODEL_WORKERS = ("asr", "mt", "tts")


def available_cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class WarmUp:
    """What warm-up measured, in CPU seconds: a frame through the face path, through the codecs (encode the
    dub + decode the camera), and one recognition pass."""

    face_s: float
    codec_s: float
    pass_s: float

    def cost(self) -> SessionCost:
        duty = min(1.0, self.pass_s / PASS_EVERY_S) * SPEAKING_SHARE
        return SessionCost(self.face_s + self.codec_s, duty, source="warm-up")


class Headroom:
    """The node's current figure for one call's cost (the server owns one). `cost` given: that figure is used
    as it is (an operator who measured it, or a test that must not depend on this machine's speed).

    Once warm-up has given a first figure, the running calls refine it: a frame costs their video stage p50
    (median over the calls; wall time, so a machine whose cores are contended counts as a dearer one) plus
    the codecs as timed at warm-up; the model duty is the model workers' busy seconds per second per call,
    over windows of at least `DUTY_WINDOW_S` with a steady call count. A node never warmed (embedding code,
    tests of other things) has no figure and admits up to its cap.
    """

    def __init__(self, *, cores: float | None = None, cost: SessionCost | None = None):
        self.cores = float(cores or available_cores())
        self.given = cost
        self.warm: WarmUp | None = None
        self._stage_s: float | None = None  # the calls' video stage p50 (face path), when known
        self._duty: float | None = None  # model busy seconds per second per call, when known
        self._mark: Reading | None = None

    def warmed(self, warm: WarmUp) -> None:
        self.warm = warm
        log.info("one call measured at warm-up: face path %.1f ms + codecs %.1f ms a frame, a recognition pass "
                 "%.0f ms → %.2f cores a call at %d fps", 1000 * warm.face_s, 1000 * warm.codec_s,
                 1000 * warm.pass_s, warm.cost().cores(FULL_QUALITY), FULL_QUALITY.max_fps)

    def observe(self, reading: Reading, frame_p50s: list[float]) -> None:
        """Take the calls' readings: the counters now, and each call's video stage p50 (seconds per frame;
        calls with enough frames only)."""
        # the running calls' figure only: one measured on a call that has ended (perhaps while the machine
        # was busy with something else) must not keep a node with no calls from taking any
        self._stage_s = statistics.median(frame_p50s) if frame_p50s else None
        last = self._mark
        if reading.calls == 0:
            self._duty = None  # likewise for the models: back to the warm-up's figure
        if last is None or reading.calls != last.calls or reading.busy_s < last.busy_s:
            self._mark = reading  # a new window: the duty is measured with a steady call count
            return
        span = reading.at - last.at
        if span < DUTY_WINDOW_S:
            return
        self._mark = reading
        if reading.calls > 0:
            self._duty = (reading.busy_s - last.busy_s) / span / reading.calls

    def cost(self) -> SessionCost | None:
        """One call's cost: the given figure, else the warm-up's refined by the calls, else None (only the cap
        is known)."""
        if self.given is not None:
            return self.given
        if self.warm is None:
            return None
        warm = self.warm.cost()
        if self._stage_s is None and self._duty is None:
            return warm
        frame_s = self._stage_s + self.warm.codec_s if self._stage_s is not None else warm.frame_s
        duty = self._duty if self._duty is not None else warm.model_duty
        return SessionCost(frame_s, duty, source="calls")


@dataclass(frozen=True)
class Reading:
    """Counters read at one moment: `at` (monotonic s), the model workers' busy seconds, the calls running."""

    at: float
    busy_s: float
    calls: int


def model_busy_seconds(busy: dict[str, float]) -> float:
    """The model workers' busy seconds (`ModelPool.busy_seconds()`), added up."""
    return sum(busy.get(name, 0.0) for name in MODEL_WORKERS)


# -- warm-up measurement ------------------------------------------------------------------------------------


def face_frames(size: tuple[int, int] = WARM_SIZE, n: int = WARM_FRAMES) -> list[np.ndarray]:
    """A real face (scikit-image's public-domain astronaut portrait) at camera size, nodding slightly."""
    import cv2
    from skimage.data import astronaut

    bgr = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)[0:384, 64:576]
    base = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    out = []
    for i in range(n):
        shift = np.float32([[1, 0, 0], [0, 1, 3.0 * np.sin(2 * np.pi * i / n)]])
        out.append(cv2.warpAffine(base, shift, size, borderMode=cv2.BORDER_REPLICATE))
    return out


def time_codecs(frames: list[np.ndarray]) -> float:
    """CPU seconds per frame for what aiortc does to each frame of a call besides the face path: the dub
    converted and encoded by its VP8 encoder, the camera decoded by libvpx and converted to BGR."""
    import av
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder
    from aiortc.jitterbuffer import JitterFrame

    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    first = av.VideoFrame.from_ndarray(frames[0], format="bgr24")
    first.pts, first.time_base = 0, VIDEO_TIME_BASE
    encoder.encode(first)  # opens the encoder with aiortc's settings
    cpu = _CpuClock()
    for i, bgr in enumerate(frames):
        cpu.frame(i)
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
        frame.pts, frame.time_base = (i + 1) * 3000, VIDEO_TIME_BASE
        if i == 0:  # the decoder starts on a key frame, as a call's does
            frame.pict_type = av.video.frame.PictureType.I
        for packet in encoder.codec.encode(frame):
            for decoded in decoder.decode(JitterFrame(bytes(packet), (i + 1) * 3000)):
                decoded.to_ndarray(format="bgr24")
    return cpu.per_frame(len(frames))


class _CpuClock:
    """The process's CPU seconds per frame over frames `WARM_SKIP`… (every thread: mediapipe's and libvpx's
    own threads too). CPU time, not wall time: another program on the machine does not make a frame dearer."""

    def __init__(self) -> None:
        self._from = time.process_time()

    def frame(self, i: int) -> None:
        if i == WARM_SKIP:
            self._from = time.process_time()

    def per_frame(self, frames: int) -> float:
        return (time.process_time() - self._from) / max(frames - WARM_SKIP, 1)


async def measure_warm_up(session, pool, frames: list[np.ndarray] | None = None) -> WarmUp:
    """Time (in the process's CPU seconds) a started session's face path, the codecs and a recognition pass,
    before any call."""
    frames = frames if frames is not None else await asyncio.to_thread(face_frames)
    cpu = _CpuClock()
    for i, bgr in enumerate(frames):
        cpu.frame(i)
        await session.process_video(bgr, i / FULL_QUALITY.max_fps)
    face_s = cpu.per_frame(len(frames))
    codec_s = await asyncio.to_thread(time_codecs, frames)
    recognizer = await pool.worker("asr").run(lambda: pool.recognizer(streaming=True, live=session.clock.live))
    noise = np.random.default_rng(0).normal(0.0, 0.01, int(16_000 * PASS_AUDIO_S)).astype(np.float32)
    language = session.config.source or "en"
    await pool.worker("asr").run(lambda: recognizer.transcribe(noise, language=language))  # first: lazy set-up
    started = time.process_time()
    await pool.worker("asr").run(lambda: recognizer.transcribe(noise, language=language))
    return WarmUp(face_s, codec_s, time.process_time() - started)
