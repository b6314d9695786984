"""What the WebRTC tests share: a server on its own event-loop thread, fake camera/microphone files for
Chromium, the Chromium flags from DESIGN.md, and a loaded model pool (loaded once per test process)."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
import wave
from functools import cache
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]
FACE_SIZE = (320, 240)  # small camera frames: the tests check behaviour, the benchmark measures 640x480 and 720p


@cache
def shared_pool():
    """One model pool for every WebRTC test in the process: tiny.en hears the English caller (fast), Apertium
    and Kokoro speak Spanish, Bergamot Portuguese; warmed once."""
    from livedub.engines.models import whisper_tiny_en_dir
    from livedub.engines.settings import Settings
    from livedub.realtime.config import DubConfig
    from livedub.realtime.factory import ModelPool
    from livedub.realtime.server import DubServer

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
        from livedub.realtime.server import DubServer

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-server", daemon=True)
        self.thread.start()

        async def make():
            server = DubServer(config, pool, port=0, **kwargs)
            await server.start()
            return server

        self.server = self.call(make())

    def call(self, coro, timeout: float = 60.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/"

    def close(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


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
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(pcm, -1, 1) * 32767).astype(np.int16).tobytes())
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


def launch_chromium(playwright, *extra: str):
    """Debian's chromium with the fake devices (Playwright gives each launch a fresh profile directory)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_FLAGS, *extra])


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


async def call(base: str, *, body: dict | None = None, headers: dict | None = None, video=True):
    """An aiortc client: offer camera (the face) + microphone (silence) + the datachannel; returns
    (pc, channel, status, reply, tracks) after the server's answer (applied when the status is 200; `tracks`
    fills with the server's tracks as they arrive)."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import AudioStreamTrack

    pc = RTCPeerConnection()
    if video:
        pc.addTrack(face_track())
    pc.addTrack(AudioStreamTrack())
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
