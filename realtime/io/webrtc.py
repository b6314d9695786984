"""WebRTC transport: one browser (or any WebRTC peer) ↔ one `DubSession`, wired as aiortc tracks.

The peer's camera track goes through `DubVideoTrack` (the session's lip-sync, latest-frame hand-overs, the
inbound timestamps kept) back to the peer; its microphone track feeds the session's recognizer (`AudioFeed`);
`DubAudioTrack` sends the translated speech at 48 kHz, held back by `AvSync` so sound never leads the mouth.
Remote timestamps are mapped onto the session clock by `StreamClock`. A datachannel carries captions out
and control in, as versioned JSON (`PROTOCOL`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from livedub.engines.errors import LivedubError

from ..config import LIP_ENGINES
from ..media.avsync import UPDATE_EVERY_S, AvSync
from ..session import DubSession
from .dub import AudioFeed, DubAudioTrack, DubVideoTrack
from .tracks import StreamClock

log = logging.getLogger("livedub.webrtc")

# The datachannel protocol, for any client (the page is one): UTF-8 JSON objects, each with "v": PROTOCOL and
# a "type". Server → peer: "hello" (session, target, source, engine, protocol), "word", "partial", "sentence",
# "language" (captions; `DubSession` events, with "now" on the session clock), "stats" (once a second: a
# client that hears nothing for a few seconds, and was not told "slow", can take the node as gone and connect again),
# "ack" (of a control message), "pong", "error" (text), and "going_away" (reason, reconnect: true): the node
# is shutting down and ends this call right after; connect again through the same address (the balancer
# sends you to another node). Peer → server: "set_target" (language), "mute" (muted), "set_engine"
# (engine), "ping". Fields are only ever added; a client ignores types and fields it does not know.
# Load and backpressure, server → peer: "send_less" (max_fps, max_width: null or pixels) — the node is at its
# measured capacity and takes one more call only if its callers send less: cap the camera's sending frame
# rate and width (the page: RTCRtpSender.setParameters, maxFramerate / scaleResolutionDownBy); "send_full"
# (max_fps, max_width) — there is room again, send as the camera gives; "slow" (behind: true, buffered_bytes,
# shed) — this peer's connection is not taking messages: captions, stats and replies are skipped (counted in
# "shed") until it catches up, then "slow" (behind: false, shed) once.
PROTOCOL = 1  # "v" of every datachannel message
GOING_AWAY_FLUSH_S = 0.5  # time for a "going_away" message to leave before the connection closes
CHANNEL = "livedub"  # the datachannel label the page opens
MAX_MESSAGE = 4096  # bytes of one control message
SCALE_DOWN_DROP = 0.3  # outgoing frames the encoder could not take, above which a big stream is scaled down
SCALED_WIDTH = 640  # ... to this width
MAX_BUFFERED = 64 * 1024  # bytes waiting on a peer's datachannel past which captions, stats and replies are shed
# sent even past it: said by the server once per change, so a peer cannot make them pile up
KEPT_WHEN_SLOW = frozenset({"hello", "going_away", "send_less", "send_full"})


def message(type_: str, **fields: object) -> str:
    """One datachannel message: versioned JSON with a type."""
    return json.dumps({"v": PROTOCOL, "type": type_, **fields}, ensure_ascii=False)


class PeerSession:
    """One remote peer: its RTCPeerConnection, its DubSession, and the tracks that move media between them.

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
        self.sync = AvSync(session)
        self.video = DubVideoTrack(session, to_session=StreamClock(session.clock.now), reshape=self._scaled,
                                   on_error=lambda exc: self.send("error", text=str(exc)))
        self.video_out = self.video.subscribe()  # what the encoder pulls
        self.audio_out = DubAudioTrack(session, delay=lambda: self.sync.delay)
        self.audio_in = AudioFeed(session, to_session=StreamClock(session.clock.now))
        self.channel = None
        self.started = time.monotonic()
        self.closed = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._scale_width: int | None = None
        self.max_buffered = MAX_BUFFERED
        self.messages_shed = 0  # messages not sent because the peer's connection was not taking them
        self.behind = False  # shedding now ("slow" said)
        self._asked: tuple[str, dict] | None = None  # the sending quality asked for (said when the channel opens)
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
        # send our tracks on the transceivers the offer opened (one each)
        for kind, track in (("video", self.video_out), ("audio", self.audio_out)):
            transceiver = next((t for t in self.pc.getTransceivers() if t.kind == kind and t.sender.track is None),
                               None)
            if transceiver is not None:
                transceiver.sender.replaceTrack(track)
                if transceiver.direction == "recvonly":
                    transceiver.direction = "sendrecv"
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._watch(), "watch")
        self._spawn(self._forward_events(), "events")
        return {"sdp": self.pc.localDescription.sdp, "type": self.pc.localDescription.type}

    def _spawn(self, coro, what: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=f"{self.name}-{what}"))

    def _on_track(self, track) -> None:
        """The peer's first camera and first microphone are dubbed; further tracks are not read."""
        if track.kind == "video" and not self.video.started:
            self.video.start(track)
        elif track.kind == "audio" and not self.audio_in.started:
            self.audio_in.start(track)

    def _on_datachannel(self, channel) -> None:
        self.channel = channel
        channel.on("message", self._on_message)
        session = self.session
        self.send("hello", session=self.name, target=session.config.target, source=session.config.source,
                  engine=session.config.lip_engine_name(video=True), protocol=PROTOCOL)
        if self._asked is not None:
            self.send(self._asked[0], **self._asked[1])

    def ask_to_send(self, type_: str, *, max_fps: int, max_width: int | None) -> None:
        """Ask the peer to cap what it sends ("send_less") or lift the cap ("send_full"): now if its datachannel
        is open, else when it opens."""
        self._asked = (type_, {"max_fps": max_fps, "max_width": max_width})
        self.send(type_, max_fps=max_fps, max_width=max_width)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        log.info("%s: connection %s", self.name, state)
        if state in ("failed", "closed"):
            await self.close(f"connection {state}")

    def _scaled(self, bgr: np.ndarray) -> np.ndarray:
        """On the video thread: a big stream the encoder cannot keep up with goes out at `SCALED_WIDTH`."""
        slot = self.video_out.frames
        h, w = bgr.shape[:2]
        seen = slot.delivered + slot.dropped
        if self._scale_width is None and w > SCALED_WIDTH and seen > 50 and slot.dropped > SCALE_DOWN_DROP * seen:
            self._scale_width = SCALED_WIDTH
            log.info("%s: the encoder cannot keep up with %dx%d; sending %d px wide", self.name, w, h, SCALED_WIDTH)
        if self._scale_width is None or w <= self._scale_width:
            return bgr
        import cv2

        height = int(round(h * self._scale_width / w / 2)) * 2
        return cv2.resize(bgr, (self._scale_width, height), interpolation=cv2.INTER_AREA)

    # -- captions and control -----------------------------------------------------------------------

    def send(self, type_: str, **fields: object) -> None:
        """One message to the peer. A peer whose connection stalls cannot grow the server's memory: past
        `max_buffered` bytes waiting, captions, stats and replies are shed (counted) and the peer is told
        ("slow")."""
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return
        waiting = channel.bufferedAmount
        out: list[str] = []
        if waiting > self.max_buffered and type_ not in KEPT_WHEN_SLOW:
            self.messages_shed += 1
            if not self.behind:
                self.behind = True
                log.info("%s: the connection is not taking messages (%d bytes waiting): shedding captions, "
                         "stats and replies", self.name, waiting)
                out.append(message("slow", behind=True, buffered_bytes=waiting, shed=self.messages_shed))
        else:
            if self.behind and waiting <= self.max_buffered // 2:
                self.behind = False
                out.append(message("slow", behind=False, shed=self.messages_shed))
            out.append(message(type_, **fields))
        with contextlib.suppress(Exception):  # the transport closed under us: the watcher ends the peer
            for text in out:
                channel.send(text)

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
        delay = self.sync.stats()
        stats.update(
            name=self.name,
            connection=self.pc.connectionState,
            seconds=round(time.monotonic() - self.started, 1),
            video_delay_ms=delay["audio_delay_ms"],  # the old name of audio_delay_ms, kept for operators
            dropped_frames={"before_lipsync": self.video.inbound.dropped,
                            "before_encoder": self.video_out.frames.dropped},
            frames_out=self.video_out.frames.delivered,
            messages_shed=self.messages_shed,
            **delay,
        )
        return stats

    @property
    def last_media(self) -> float:
        """When media last came in from the peer (monotonic)."""
        return max(self.video.last_input, self.audio_in.last_input)

    async def _watch(self) -> None:
        """Once a second: the audio delay follows the video latency, the peer gets a latency readout, and a
        peer that never connects or stops sending media is ended."""
        while True:
            await asyncio.sleep(UPDATE_EVERY_S)
            self.sync.update()
            stats = self.stats()
            self.send("stats", stages=stats["stages"], audio_delay_ms=stats["audio_delay_ms"],
                      video_delay_ms=stats["audio_delay_ms"], dropped_frames=stats["dropped_frames"],
                      lag_s=stats["lag_s"])
            connected = self.pc.connectionState == "connected"
            if not connected and time.monotonic() - self.started > self.connect_timeout:
                await self.close("never connected")
                return
            if connected and time.monotonic() - self.last_media > self.idle_timeout:
                await self.close(f"no media for {self.idle_timeout:g} s")
                return

    # -- tear-down ----------------------------------------------------------------------------------

    async def going_away(self, reason: str) -> None:
        """Tell the peer this node is shutting down (it may reconnect elsewhere), then end the call."""
        self.send("going_away", reason=reason, reconnect=True)
        await asyncio.sleep(GOING_AWAY_FLUSH_S)  # the SCTP send is queued: let it go out before closing
        await self.close(f"going away: {reason}")

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
        await self.video.aclose()
        await self.audio_in.aclose()
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


def announce_address(sdp: str, address: str) -> str:
    """An answer's SDP with every host ICE candidate (and connection line) carrying `address` instead of the
    local one: a node behind 1:1 NAT (a cloud VM, a container with published UDP ports) announces its public
    address; the ports stay those the node listens on. Other candidate types are left as they are."""
    version = "IP6" if ":" in address else "IP4"
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            words = line.split(" ")
            if len(words) > 7 and words[6] == "typ" and words[7] == "host":
                words[4] = address
                line = " ".join(words)
        elif line.startswith("c=IN "):
            line = f"c=IN {version} {address}"
        lines.append(line)
    return "\r\n".join(lines)
