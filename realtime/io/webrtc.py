"""WebRTC transport: one browser (or any WebRTC peer) ↔ one `DubSession`, as aiortc tracks.

In: the peer's camera frames go through the session's lip-sync (on its own worker thread) and its microphone
into the session's recogniser. Out: `DubVideoTrack` (the redrawn frames, with the inbound timestamps) and
`DubAudioTrack` (the translated speech at 48 kHz, held back by the measured video latency so sound never leads
the mouth). Nothing here queues media without bound: aiortc's own receive queue is drained as frames arrive
and every hand-over keeps only the latest frame, so a slow stage lowers the frame rate instead of adding lag.
A datachannel carries captions out and control in, as versioned JSON (`PROTOCOL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livedub.engines.errors import LivedubError

from ..config import LIP_ENGINES, OUTPUT_RATE
from ..session import DubSession

log = logging.getLogger("livedub.webrtc")

PROTOCOL = 1  # "v" of every datachannel message
CHANNEL = "livedub"  # the datachannel label the page opens
MAX_MESSAGE = 4096  # bytes of one control message
PTIME = 0.02  # seconds of audio per outgoing frame (one opus packet)
MAX_VIDEO_DELAY = 1.0  # the audio is never held back more than this, whatever the video costs
MAX_AUDIO_GAP = 2.0  # seconds of silence filled in when inbound audio stops and resumes
REANCHOR_S = 0.5  # a remote timestamp this far from the clock re-anchors the mapping (a jump, a wrap)
SCALE_DOWN_DROP = 0.3  # outgoing frames the encoder could not take, above which a big stream is scaled down
SCALED_WIDTH = 640  # ... to this width

T = TypeVar("T")


class LatestFrame(Generic[T]):
    """A one-slot hand-over: `put` replaces what the reader has not taken yet (counted in `dropped`)."""

    def __init__(self) -> None:
        self._item: T | None = None
        self._ready = asyncio.Event()
        self._closed = False
        self.dropped = 0
        self.passed = 0

    def put(self, item: T) -> None:
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._ready.set()

    async def get(self) -> T:
        """The newest item once there is one; raises `EOFError` once closed."""
        while self._item is None:
            if self._closed:
                raise EOFError
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        self.passed += 1
        return item

    def close(self) -> None:
        self._closed = True
        self._ready.set()


class StreamClock:
    """Remote media seconds → session time: anchored on the first frame, re-anchored when they jump."""

    def __init__(self, now: Callable[[], float]):
        self._now = now
        self._offset: float | None = None

    def session_time(self, media_t: float) -> float:
        now = self._now()
        if self._offset is None or abs(media_t + self._offset - now) > REANCHOR_S:
            self._offset = now - media_t
        return media_t + self._offset


def _media_seconds(frame) -> float:
    if frame.pts is None or frame.time_base is None:
        return time.monotonic()
    return float(frame.pts * frame.time_base)


class DubVideoTrack(MediaStreamTrack):
    """The translated face: the latest redrawn frame, never a backlog (a slow encoder gets fewer frames)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.frames: LatestFrame[av.VideoFrame] = LatestFrame()

    def offer(self, frame: av.VideoFrame) -> None:
        self.frames.put(frame)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        try:
            return await self.frames.get()
        except EOFError:
            self.stop()
            raise MediaStreamError from None

    def stop(self) -> None:
        self.frames.close()
        super().stop()


class DubAudioTrack(MediaStreamTrack):
    """The translated speech, paced by the session clock, `session.video_delay` behind the video."""

    kind = "audio"

    def __init__(self, session: DubSession) -> None:
        super().__init__()
        self.session = session
        self.rate = session.config.output_rate or OUTPUT_RATE
        self.samples = int(self.rate * PTIME)
        self._start: float | None = None
        self._n = 0
        self.late = 0  # frames skipped because the sender fell behind

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        clock = self.session.clock
        if self._start is None:
            self._start = clock.now()
        t = self._start + self._n * PTIME
        wait = t + PTIME - clock.now()
        if wait > 0:
            await asyncio.sleep(wait)
        elif wait < -0.2:  # the loop stalled: skip ahead rather than send old audio in a burst
            skipped = int(-wait / PTIME)
            self.late += skipped
            self._n += skipped
            t = self._start + self._n * PTIME
        delay = min(max(self.session.video_delay, 0.0), MAX_VIDEO_DELAY)
        pcm = self.session.audio_out(t - delay, t - delay + PTIME)
        pcm = np.pad(pcm, (0, max(self.samples - len(pcm), 0)))[: self.samples]
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.samples)
        frame.planes[0].update((pcm * 32767.0).astype(np.int16).tobytes())
        frame.sample_rate = self.rate
        frame.pts = self._n * self.samples
        frame.time_base = fractions.Fraction(1, self.rate)
        self._n += 1
        return frame


def message(type_: str, **fields: object) -> str:
    """One datachannel message: versioned JSON with a type."""
    return json.dumps({"v": PROTOCOL, "type": type_, **fields}, ensure_ascii=False)


class PeerSession:
    """One remote peer: its RTCPeerConnection, its DubSession, and the tasks that move media between them.

    Ends (and frees everything, once) on hang-up, ICE failure or consent timeout (aiortc reports "failed"),
    `idle_timeout` seconds without inbound media (a tab closed without hang-up), or `close()`.
    """

    def __init__(self, pc, session: DubSession, *, name: str, idle_timeout: float = 15.0,
                 connect_timeout: float = 30.0, on_closed: Callable[[PeerSession], Awaitable[None] | None] | None = None):
        self.pc = pc
        self.session = session
        self.name = name
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.on_closed = on_closed
        self.video_out = DubVideoTrack()
        self.audio_out = DubAudioTrack(session)
        self.channel = None
        self.started = time.monotonic()
        self.closed = asyncio.Event()
        self._inbound = LatestFrame()
        self._tasks: list[asyncio.Task] = []
        self._last_media = time.monotonic()
        self._audio_next: float | None = None  # session time the next inbound audio sample belongs to
        self._scale_width: int | None = None
        self._closing = False
        self.reason = ""
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    # -- set-up --------------------------------------------------------------------------------------

    async def answer(self, sdp: str, type_: str) -> dict:
        """Take the remote offer, start the session, return the answer (ICE candidates gathered in it)."""
        from aiortc import RTCSessionDescription

        await self.session.start()
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
        # send our tracks on the transceivers the offer opened (one each); none asked for: add them anyway
        for kind, track in (("video", self.video_out), ("audio", self.audio_out)):
            transceiver = next((t for t in self.pc.getTransceivers() if t.kind == kind and t.sender.track is None),
                               None)
            if transceiver is not None:
                transceiver.sender.replaceTrack(track)
                if transceiver.direction == "recvonly":
                    transceiver.direction = "sendrecv"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._process_video(), "video")
        self._spawn(self._watch(), "watch")
        self._spawn(self._forward_events(), "events")
        return {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}

    def _spawn(self, coro, what: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"{self.name}-{what}"))

    def _on_track(self, track) -> None:
        if track.kind == "video":
            self._spawn(self._read_video(track), "video-in")
        elif track.kind == "audio":
            self._spawn(self._read_audio(track), "audio-in")

    def _on_datachannel(self, channel) -> None:
        self.channel = channel
        channel.on("message", self._on_message)
        session = self.session
        self.send("hello", session=self.name, target=session.config.target, source=session.config.source,
                  engine=session.config.lip_engine_name(video=True), protocol=PROTOCOL)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("%s: connection %s", self.name, state)
        if state in ("failed", "closed"):
            await self.close(f"connection {state}")

    # -- media in → session → media out -------------------------------------------------------------

    async def _read_video(self, track) -> None:
        """Drain aiortc's receive queue at once; the processor takes the newest frame when it is free."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self._last_media = time.monotonic()
                self._inbound.put(frame)
        self._inbound.close()

    async def _process_video(self) -> None:
        clock = StreamClock(self.session.clock.now)
        latency = self.session.latency
        while True:
            try:
                frame = await self._inbound.get()
            except EOFError:
                return
            arrived = time.perf_counter()
            bgr = frame.to_ndarray(format="bgr24")
            pts = clock.session_time(_media_seconds(frame))
            made: list[av.VideoFrame] = []

            def to_video(out: np.ndarray, _pts: float, made=made) -> None:  # on the video worker, off the loop
                made.append(av.VideoFrame.from_ndarray(np.ascontiguousarray(self._scaled(out)), format="bgr24"))

            try:
                await self.session.process_video(bgr, pts, then=to_video)
            except LivedubError as exc:  # e.g. an engine that cannot load: the face goes out unchanged
                self.send("error", text=str(exc))
            video = made[0] if made else av.VideoFrame.from_ndarray(bgr, format="bgr24")
            video.pts, video.time_base = frame.pts, frame.time_base
            self.video_out.offer(video)
            latency.add("frame", time.perf_counter() - arrived)

    def _scaled(self, bgr: np.ndarray) -> np.ndarray:
        """A big stream the encoder cannot keep up with goes out at `SCALED_WIDTH` instead of stalling."""
        slot = self.video_out.frames
        h, w = bgr.shape[:2]
        if (self._scale_width is None and w > SCALED_WIDTH and slot.passed + slot.dropped > 50
                and slot.dropped > SCALE_DOWN_DROP * (slot.passed + slot.dropped)):
            self._scale_width = SCALED_WIDTH
            log.info("%s: the encoder cannot keep up with %dx%d; sending %d px wide", self.name, w, h, SCALED_WIDTH)
        if self._scale_width is None or w <= self._scale_width:
            return bgr
        import cv2

        height = int(round(h * self._scale_width / w / 2)) * 2
        return cv2.resize(bgr, (self._scale_width, height), interpolation=cv2.INTER_AREA)

    async def _read_audio(self, track) -> None:
        """The microphone into the session, on one continuous timeline (gaps become silence)."""
        clock = StreamClock(self.session.clock.now)
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self._last_media = time.monotonic()
                pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1)
                if frame.format.name.startswith("s16"):
                    pcm = pcm / 32768.0
                pcm = pcm.astype(np.float32)
                t = clock.session_time(_media_seconds(frame))
                if self._audio_next is None:
                    self._audio_next = t
                gap = t - self._audio_next
                if gap > 5 * PTIME:  # lost packets or a paused track: keep the recogniser on the clock
                    silence = np.zeros(int(min(gap, MAX_AUDIO_GAP) * frame.sample_rate), np.float32)
                    self.session.push_audio(silence, self._audio_next, frame.sample_rate)
                    self._audio_next += len(silence) / frame.sample_rate
                self.session.push_audio(pcm, self._audio_next, frame.sample_rate)
                self._audio_next += len(pcm) / frame.sample_rate

    # -- captions and control -----------------------------------------------------------------------

    def send(self, type_: str, **fields: object) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            with contextlib.suppress(Exception):  # the transport closed under us: the watcher ends the peer
                channel.send(message(type_, **fields))

    async def _forward_events(self) -> None:
        async for event in self.session.events():
            fields = event.as_dict()
            fields.pop("type")
            self.send(event.type, now=round(self.session.clock.now(), 3), **fields)

    def _on_message(self, data) -> None:
        reply = self.control(data)
        if reply is not None:
            self.send(*reply[:1], **reply[1])

    def control(self, data: str | bytes) -> tuple[str, dict]:
        """A control message from the peer → the reply to send (ack or error)."""
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        if len(data) > MAX_MESSAGE:
            return "error", {"text": f"control message over {MAX_MESSAGE} bytes"}
        try:
            msg = json.loads(data)
        except ValueError:
            return "error", {"text": "control messages are JSON"}
        if not isinstance(msg, dict) or msg.get("v") != PROTOCOL or not isinstance(msg.get("type"), str):
            return "error", {"text": f'expected {{"v": {PROTOCOL}, "type": ...}}'}
        kind = msg["type"]
        try:
            if kind == "set_target":
                self.session.set_target(str(msg.get("language", "")))
                return "ack", {"of": kind, "target": self.session.config.target}
            if kind == "mute":
                self.session.muted = bool(msg.get("muted", True))
                return "ack", {"of": kind, "muted": self.session.muted}
            if kind == "set_engine":
                engine = str(msg.get("engine", ""))
                if engine not in LIP_ENGINES:
                    return "error", {"text": f"unknown lip engine {engine!r} (one of {', '.join(LIP_ENGINES)})"}
                if engine == "wav2lip" and not self.session.config.checkpoint:
                    return "error", {"text": "the wav2lip engine needs a checkpoint on the server"}
                self.session.set_engine(engine)
                return "ack", {"of": kind, "engine": engine}
            if kind == "ping":
                return "pong", {"now": round(self.session.clock.now(), 3)}
        except LivedubError as exc:
            return "error", {"text": str(exc)}
        return "error", {"text": f"unknown message type {kind!r}"}

    def stats(self) -> dict:
        stats = self.session.stats()
        stats.update(
            name=self.name,
            connection=self.pc.connectionState,
            seconds=round(time.monotonic() - self.started, 1),
            video_delay_ms=round(1000 * self.session.video_delay, 1),
            dropped_frames={"before_lipsync": self._inbound.dropped, "before_encoder": self.video_out.frames.dropped},
            frames_out=self.video_out.frames.passed,
        )
        return stats

    async def _watch(self) -> None:
        """Once a second: the audio delay follows the video latency, the peer gets a latency readout, and a
        peer that never connects or stops sending media is ended."""
        while True:
            await asyncio.sleep(1.0)
            p95 = self.session.latency.percentile("frame", 95)
            if p95 is not None:
                self.session.video_delay = round(min(p95, MAX_VIDEO_DELAY), 2)
            stats = self.stats()
            self.send("stats", stages=stats["stages"], video_delay_ms=stats["video_delay_ms"],
                      dropped_frames=stats["dropped_frames"], lag_s=stats["lag_s"])
            connected = self.pc.connectionState == "connected"
            if not connected and time.monotonic() - self.started > self.connect_timeout:
                await self.close("never connected")
                return
            if connected and time.monotonic() - self._last_media > self.idle_timeout:
                await self.close(f"no media for {self.idle_timeout:g} s")
                return

    # -- tear-down ----------------------------------------------------------------------------------

    async def close(self, reason: str = "closed") -> None:
        """End the call and free the session (idempotent)."""
        if self._closing:
            return
        self._closing = True
        self.reason = reason
        log.info("%s: ending (%s)", self.name, reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks = []
        self._inbound.close()
        self.video_out.stop()
        self.audio_out.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
        await self.session.aclose()
        self.closed.set()
        if self.on_closed is not None:
            result = self.on_closed(self)
            if asyncio.iscoroutine(result):
                await result


_loopback_installed = False


def offer_loopback_candidates() -> None:
    """Make aioice gather 127.0.0.1 as a host candidate too (it skips loopback by default), so a client on this
    machine connects to a loopback-bound server without any network. Process-wide and additive: the other
    addresses are still offered."""
    global _loopback_installed
    if _loopback_installed:
        return
    import aioice.ice

    original = aioice.ice.get_host_addresses

    def with_loopback(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        addresses = original(use_ipv4=use_ipv4, use_ipv6=use_ipv6)
        return (["127.0.0.1"] if use_ipv4 and "127.0.0.1" not in addresses else []) + addresses

    aioice.ice.get_host_addresses = with_loopback
    _loopback_installed = True
