"""What the WebRTC tests share: a server on its own event-loop thread, fake camera/microphone files for
Chromium, the Chromium flags from DESIGN.md, and a loaded model pool (loaded once per test process)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import numpy as np

FACE_SIZE = (320, 240)  # small camera frames: the tests check behaviour, the benchmark measures 640x480 and 720p


@cache
def shared_pool():
    """One model pool for every WebRTC test in the process: tiny.en hears the English caller (fast), Apertium
    and Kokoro speak Spanish, Bergamot Portuguese; warmed once."""
    from livedub.engines.models import whisper_tiny_en_dir
    from livedub.engines.settings import Settings
    from livedub.realtime.config import DubConfig
    from livedub.realtime.pool import ModelPool
    from livedub.realtime.runners.server import DubServer

    settings = Settings(asr_model=whisper_tiny_en_dir())
    config = DubConfig(target="es", source="en", engine="viseme", settings=settings)
    pool = ModelPool(settings)
    loop = asyncio.new_event_loop()
    try:
        for target in ("es", "pt"):
            loop.run_until_complete(DubServer(config.replace(target=target), pool).warm())
    finally:
        loop.close()
    return config, pool


class ServerThread:
    """A `DubServer` running on its own event loop in a thread, so a blocking client (Playwright's sync API,
    urllib) can drive it from the test's thread."""

    def __init__(self, config, pool, **kwargs):
        from livedub.realtime.runners.heap import frozen_heap
        from livedub.realtime.runners.server import DubServer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-server", daemon=True)
        self.thread.start()

        async def make():
            server = DubServer(config, pool, port=0, **kwargs)
            await server.start()
            return server

        self.server = self.call(make())
        self._heap = frozen_heap()  # as `livedub serve` does once its models are warm
        self._heap.__enter__()

    def call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/"

    def close(self) -> None:
        self._heap.__exit__(None, None, None)
        self.call(self.server.stop())
        self.call(_cancel_the_rest())  # as asyncio.run does: no task is left pending on a closed loop
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


async def _cancel_the_rest() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def http(url: str, body: bytes | str | None = None, headers: dict | None = None) -> tuple[int, dict | str]:
    """(status, JSON or text) of a GET, or a POST when `body` is given."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            status, raw, kind = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, kind = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in kind else raw.decode("utf-8", "replace"))


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    """BGR frames → a YUV4MPEG2 file (4:2:0), Chromium's fake camera format (it loops the file)."""
    import cv2

    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def write_wav16(path: Path, pcm: np.ndarray, rate: int) -> Path:
    """Mono float32 → 16-bit PCM WAV (Chromium's fake microphone format; it loops the file)."""
    from livedub.engines.audio import write_wav

    write_wav(path, pcm, rate)
    return path


def face_frame(size: tuple[int, int] = FACE_SIZE) -> np.ndarray:
    """The astronaut's head and shoulders (her mouth open in a smile) at camera size."""
    import cv2
    from skimage.data import astronaut

    bgr = cv2.cvtColor(astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(bgr[0:240, 100:420], size, interpolation=cv2.INTER_AREA)


def talking_face_y4m(path: Path, size: tuple[int, int] = FACE_SIZE, seconds: float = 1.0, fps: int = 25) -> Path:
    """A second of a face that nods slightly (so the tracker follows a moving head), looped by Chromium."""
    import cv2

    base = face_frame(size)
    frames = []
    for i in range(int(seconds * fps)):
        dy = 2.0 * np.sin(2 * np.pi * i / (seconds * fps))
        m = np.float32([[1, 0, 0], [0, 1, dy]])
        frames.append(cv2.warpAffine(base, m, size, borderMode=cv2.BORDER_REPLICATE))
    return write_y4m(path, frames, fps)


def face_track():
    """An aiortc camera track showing the face at 30 fps (aiortc's own timestamps: 90 kHz, 3000 per frame)."""
    import av
    from aiortc.mediastreams import VideoStreamTrack

    picture = face_frame()

    class FaceTrack(VideoStreamTrack):
        async def recv(self):
            pts, time_base = await self.next_timestamp()
            frame = av.VideoFrame.from_ndarray(picture, format="bgr24")
            frame.pts, frame.time_base = pts, time_base
            return frame

    return FaceTrack()


def speech_track(pcm: np.ndarray, rate: int = 48_000):
    """An aiortc microphone track saying `pcm` (mono float) over and over, in 20 ms frames on its own clock."""
    import fractions
    import time

    import av
    from aiortc.mediastreams import MediaStreamTrack

    samples = rate // 50
    looped = np.concatenate([pcm, pcm[: samples - len(pcm) % samples]])
    data = (np.clip(looped, -1, 1) * 32767).astype(np.int16)

    class SpeechTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self):
            super().__init__()
            self.start: float | None = None
            self.n = 0

        async def recv(self):
            if self.start is None:
                self.start = time.monotonic()
            await asyncio.sleep(max(self.start + self.n * samples / rate - time.monotonic(), 0.0))
            at = (self.n * samples) % len(data)
            frame = av.AudioFrame(format="s16", layout="mono", samples=samples)
            frame.planes[0].update(data[at : at + samples].tobytes())
            frame.sample_rate, frame.pts, frame.time_base = rate, self.n * samples, fractions.Fraction(1, rate)
            self.n += 1
            return frame

    return SpeechTrack()


async def call(base: str, *, body: dict | None = None, headers: dict | None = None, video=True, audio=None):
    """An aiortc client: offer camera (the face) + microphone (`audio`, silence by default) + the datachannel;
    returns (pc, channel, status, reply, tracks) after the server's answer (applied when the status is 200;
    `tracks` fills with the server's tracks as they arrive)."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    pc = RTCPeerConnection()
    if video:
        pc.addTrack(face_track())
    pc.addTrack(audio or AudioStreamTrack())
    channel = pc.createDataChannel("livedub")
    tracks: dict = {}
    pc.on("track", lambda t: tracks.setdefault(t.kind, t))
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, **(body or {})}
    async with aiohttp.ClientSession() as client, client.post(base + "offer", json=offer,
                                                              headers=headers or {}) as r:
        status, reply = r.status, await r.json()
    if status == 200:
        await pc.setRemoteDescription(RTCSessionDescription(**reply))
    return pc, channel, status, reply, tracks


# -- callers in their own process -------------------------------------------------------------------------


def in_another_process(func, *args, timeout: float = 600.0):
    """`func(*args)` (a function of this module) run in a fresh Python process, as a browser would run: its
    CPU time and its GIL are not the server's. Returns what it returns."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply_async(func, args).get(timeout)


def _frame_puller(track, arrivals: list[float]) -> asyncio.Future:
    import contextlib
    import time

    from aiortc.mediastreams import MediaStreamError

    async def pull():
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                arrivals.append(time.monotonic())

    return asyncio.ensure_future(pull())


async def _until(predicate, timeout: float, what: str) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.1)


def callers_then_hang_ups(base: str, callers: int = 3, frames: int = 30) -> list[int]:
    """`callers` aiortc clients call at once, each until it has `frames` dubbed frames back; then they hang up
    one after the other. Returns how many frames each got."""

    async def run():
        calls = [await call(base, body={"engine": "viseme"}) for _ in range(callers)]
        assert all(status == 200 for _, _, status, _, _ in calls), [reply for *_, reply, _ in calls]
        await _until(lambda: all("video" in tracks for *_, tracks in calls), 30, "the dubbed video tracks")
        arrivals: list[list[float]] = [[] for _ in calls]
        pullers = [_frame_puller(tracks["video"], got) for (*_, tracks), got in zip(calls, arrivals, strict=True)]
        await _until(lambda: all(len(got) >= frames for got in arrivals), 90, f"{frames} dubbed frames on every call")
        for (pc, *_), puller in zip(calls, pullers, strict=True):
            await pc.close()
            puller.cancel()
            await asyncio.sleep(0.5)
        return [len(got) for got in arrivals]

    return asyncio.run(run())


def caller_switching_language(base: str, speech: np.ndarray, rate: int, to: str) -> dict:
    """An aiortc client saying `speech` over and over to a server dubbing into Spanish; once a Spanish sentence
    came back it asks for `to` over the datachannel and waits for a sentence in it. Returns the dubbed frames'
    arrival times, when it switched, when the new language came back, and those sentences."""
    import json
    import time

    from livedub.realtime.io.webrtc import PROTOCOL

    async def run():
        pc, channel, status, reply, tracks = await call(base, body={"to": "es", "engine": "viseme"},
                                                        audio=speech_track(speech, rate))
        assert status == 200, reply
        messages: list[dict] = []
        channel.on("message", lambda m: messages.append(json.loads(m)))
        await _until(lambda: "video" in tracks, 30, "the dubbed video track")
        arrivals: list[float] = []
        puller = _frame_puller(tracks["video"], arrivals)

        def sentences(language: str) -> list[dict]:
            return [m for m in messages if m["type"] == "sentence" and m.get("language") == language]

        await _until(lambda: sentences("es"), 90, "a Spanish sentence")
        switched = time.monotonic()
        channel.send(json.dumps({"v": PROTOCOL, "type": "set_target", "language": to}))
        await _until(lambda: sentences(to), 120, f"a sentence in {to}")
        back = time.monotonic()
        await asyncio.sleep(1.0)  # the first clip in the new language starts playing
        puller.cancel()
        await pc.close()
        return {"arrivals": arrivals, "switched": switched, "back": back, "sentences": sentences(to)}

    return asyncio.run(run())
