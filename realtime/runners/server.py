"""`livedub serve`: an HTTP + WebRTC server, one `DubSession` per browser peer over one shared `ModelPool`.

Routes: `/` (the page, no build step), `/static/NAME` (its script and style, read once at start: nothing a
request names reaches the filesystem), `POST /offer` (aiortc's `{"sdp", "type"}` signalling, plus optional
`"to"`, `"from"`, `"engine"`), `/health` and `/stats` (JSON for operators). Bound to a loopback address it
serves anyone on this machine; on any other address a token is required on the page and on `/offer`
(`?token=` or `Authorization: Bearer`). Behind a load balancer: `agent_port` answers HAProxy's agent check
from `capacity()` (agent.py), `drain()` stops it taking calls before it stops, `public_address` is the address
its ICE candidates announce.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import itertools
import logging
import os
import secrets
import time
from pathlib import Path

from aiohttp import web

from livedub.engines.errors import LivedubError

from ..clock import WallClock
from ..config import LIP_ENGINES, DubConfig
from ..io.webrtc import PeerSession, announce_address, offer_loopback_candidates
from ..pool import ModelPool
from ..session import DubSession
from .agent import AgentCheck
from .capacity import (
    DRAINING,
    FULL_QUALITY,
    REDUCED,
    RESTORE_RESERVE,
    Capacity,
    Quality,
    all_fit_at_full,
    capacity,
)
from .headroom import MIN_FRAMES, Headroom, Reading, measure_warm_up, model_busy_seconds

log = logging.getLogger("livedub.server")

WEB = Path(__file__).parent.parent / "web"  # realtime/web: the page it serves
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
DRAIN_POLL_S = 0.2  # how often a draining server looks whether its last call has ended
MAX_REQUEST = 64 * 1024  # bytes of any request body (an SDP offer is ~5 KB)
MAX_SDP = 32 * 1024
LOAD_CHECK_S = 2.0  # how often the running calls' measured load is checked against the budget
CAMERA_FPS = 30.0  # what browsers send by default; the tracker's smoothing is tuned per frame
# The languages the page offers (it reads them from /health): their translators load at start.
PAGE_LANGUAGES = {"en": "English", "es": "Spanish", "pt": "Portuguese", "de": "German", "fr": "French",
                  "it": "Italian", "nl": "Dutch", "ca": "Catalan", "gl": "Galician", "ja": "Japanese", "zh": "Chinese"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"error": text}, status=status)


class DubServer:
    """The aiohttp application and the peers it serves."""

    def __init__(self, config: DubConfig, pool: ModelPool, *, host: str = "127.0.0.1", port: int = 8080,
                 token: str | None = None, max_sessions: int = 4, idle_timeout: float = 15.0,
                 agent_port: int | None = None, agent_host: str = "127.0.0.1", public_address: str | None = None,
                 headroom: Headroom | None = None):
        if max_sessions < 1:
            raise LivedubError("--max-sessions must be at least 1")
        self.config = config
        self.pool = pool
        self.host = host
        self.port = port
        self.loopback = is_loopback(host)
        # a loopback server may still be given a token; any other address always has one
        self.token = token if token else (None if self.loopback else secrets.token_urlsafe(18))
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        # what one call costs here (measured at warm-up, then from the calls; or given) and the quality the
        # callers are asked to send at: reduced while one more call fits only that way
        self.headroom = headroom or Headroom()
        self.quality: Quality = FULL_QUALITY
        self._load_task: asyncio.Task | None = None
        self.peers: dict[str, PeerSession] = {}
        self._starting = 0  # offers being answered (not yet in `peers`)
        self.draining = False  # stopping: takes no new calls
        self.served = 0
        self._names = itertools.count(1)
        self._files = {name: (WEB / name).read_bytes() for name in ("index.html", *STATIC)}
        self._runner: web.AppRunner | None = None
        # HAProxy's agent check (None: not answered); `public_address`: the ICE address peers are given
        self.agent = AgentCheck(self._agent_report, host=agent_host, port=agent_port) if agent_port is not None else None
        self.public_address = public_address
        self._stopping = False
        self.app = web.Application(client_max_size=MAX_REQUEST)
        self.app.router.add_get("/", self.page)
        self.app.router.add_get("/static/{name}", self.static)
        self.app.router.add_post("/offer", self.offer)
        self.app.router.add_get("/health", self.health)
        self.app.router.add_get("/stats", self.stats)
        if self.loopback:
            offer_loopback_candidates()

    # -- life ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise LivedubError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}") from None
        if self.port == 0:  # an ephemeral port (tests): say which one we got
            self.port = self._runner.addresses[0][1]
        if self.agent is not None:
            try:
                await self.agent.start()
            except LivedubError:
                await self._runner.cleanup()
                self._runner = None
                raise
        self._load_task = asyncio.create_task(self._follow_load(), name="server-load")

    async def warm(self) -> None:
        """Start and end one session before serving: every model (whisper, the translator, the live voice, the
        face tracker) is loaded and timed then, so the first caller's offer is answered at once."""
        session = DubSession(self.config, self.pool, WallClock(), fps=CAMERA_FPS, video=True, name="warm-up")
        try:
            await session.start()
            self.headroom.warmed(await measure_warm_up(session, self.pool))
        finally:
            await session.aclose()
        for note in session.notes:
            log.info("%s", note)
        # A caller may switch to any language of the page mid-call: load those translators now, because a
        # native model load holds the GIL (Bergamot's ~0.2 s) and would stall every call's frames then.
        source = self.config.source or "en"  # detected speech is most often English
        started = time.perf_counter()
        routes = await self.pool.worker("mt").run(self.pool.preload_routes, source, PAGE_LANGUAGES)
        log.info("translators for %d languages of the page ready in %.1f s: %s", len(routes),
                 time.perf_counter() - started, "; ".join(routes))

    async def stop(self) -> None:
        self._stopping = True  # the agent says "down" from here on
        if self._load_task is not None:
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._load_task
            self._load_task = None
        await asyncio.gather(*(peer.close("server stopping") for peer in list(self.peers.values())),
                             return_exceptions=True)
        if self.agent is not None:
            await self.agent.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def drain(self, timeout: float) -> int:
        """Stop taking calls (`/offer` answers 503, the agent check says `drain`), let the running calls end on
        their own for up to `timeout` seconds, then tell the peers still here that the node is going away and
        end their calls. Returns how many calls were ended that way."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (self.peers or self._starting) and loop.time() < deadline:
            await asyncio.sleep(min(DRAIN_POLL_S, max(deadline - loop.time(), 0.0)))
        remaining = list(self.peers.values())
        await asyncio.gather(*(peer.going_away(f"the server is stopping (drain timeout, {timeout:g} s)")
                               for peer in remaining), return_exceptions=True)
        return len(remaining)

    def _agent_report(self) -> Capacity | None:
        """What the agent check answers from: the capacity, or None once the node cannot serve."""
        if self._stopping or self._runner is None:
            return None
        return self.capacity()

    # -- access -------------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        given = request.query.get("token", "")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    # -- routes -------------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401, content_type="text/plain",
                                text="livedub: this server needs its token: open the URL `livedub serve` printed "
                                     "(…/?token=…)\n")
        return web.Response(body=self._files["index.html"], content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-store"})

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            return _error(404, "no such file")
        return web.Response(body=self._files[name], content_type=STATIC[name], charset="utf-8")

    def capacity(self) -> Capacity:
        """What this node can still take (offers being answered count as sessions)."""
        peers = list(self.peers.values())
        stages = [s.latency.summary().get("video") for s in (p.session for p in peers)]
        self.headroom.observe(Reading(time.monotonic(), model_busy_seconds(self.pool.busy_seconds()), len(peers)),
                              [s["p50_ms"] / 1000 for s in stages if s and s["n"] >= MIN_FRAMES])
        return capacity(len(peers) + self._starting, self.max_sessions, draining=self.draining,
                        cost=self.headroom.cost(), cores=self.headroom.cores)

    def _ask_quality(self, quality: Quality) -> None:
        """Ask every caller to send at `quality` (`send_less` / `send_full` on their datachannels); callers
        who join meanwhile are asked when their datachannel opens."""
        if quality == self.quality:
            return
        self.quality = quality
        log.info("asking %d caller(s) to send at %s quality (%d fps, width ≤ %s)", len(self.peers), quality.name,
                 quality.max_fps, quality.max_width or "any")
        for peer in list(self.peers.values()):
            self._ask(peer)

    def _ask(self, peer: PeerSession) -> None:
        kind = "send_full" if self.quality == FULL_QUALITY else "send_less"
        peer.ask_to_send(kind, max_fps=self.quality.max_fps, max_width=self.quality.max_width)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "sessions": len(self.peers), "max_sessions": self.max_sessions,
                                  "target": self.config.target, "source": self.config.source,
                                  "engine": self.config.lip_engine_name(video=True), "engines": list(LIP_ENGINES),
                                  "token_required": self.token is not None, "languages": PAGE_LANGUAGES,
                                  "capacity": self.capacity().as_json()})

    async def stats(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong token")
        peers = [peer.stats() for peer in list(self.peers.values())]
        worst: dict[str, dict[str, float]] = {}
        for p in peers:
            for stage, s in p["stages"].items():
                w = worst.setdefault(stage, {"p50_ms": 0.0, "p95_ms": 0.0})
                w["p50_ms"], w["p95_ms"] = max(w["p50_ms"], s["p50_ms"]), max(w["p95_ms"], s["p95_ms"])
        if "video" in worst:
            worst["frame"] = dict(worst["video"])  # the per-frame latency's old name here, kept for operators
        dropped = sum(sum(p["dropped_frames"].values()) for p in peers)
        return web.json_response({"sessions": len(peers), "max_sessions": self.max_sessions,
                                  "sessions_served": self.served, "stages": worst, "dropped_frames": dropped,
                                  "rss_mb": _rss_mb(), "capacity": self.capacity().as_json(), "peers": peers})

    async def offer(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _error(401, "missing or wrong token (?token= or Authorization: Bearer)")
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return _error(413, f"request over {MAX_REQUEST} bytes")
        except ValueError:
            return _error(400, 'the offer must be JSON: {"sdp": ..., "type": "offer"}')
        if not isinstance(body, dict):
            return _error(400, 'the offer must be a JSON object: {"sdp": ..., "type": "offer"}')
        sdp, kind = body.get("sdp"), body.get("type")
        if kind != "offer" or not isinstance(sdp, str) or not sdp.strip():
            return _error(400, 'expected {"sdp": "<the SDP offer>", "type": "offer"}')
        if len(sdp) > MAX_SDP:
            return _error(413, f"SDP over {MAX_SDP} bytes")
        try:
            config = self._config_for(body)
        except LivedubError as exc:
            return _error(400, str(exc))
        problem = _sdp_problem(sdp)
        if problem:
            return _error(400, f"malformed SDP offer: {problem}")
        room = self.capacity()
        if room.state == DRAINING:
            return _error(503, "server going away: it takes no new calls; connect again (another node will answer)")
        if not room.sessions_more:
            return _error(503, f"server full: {room.sessions} session{'s' if room.sessions > 1 else ''} "
                               "already running; try again when one ends")
        if room.reduced:  # one more fits only if the running callers send less: ask them first
            self._ask_quality(REDUCED)
        self._starting += 1  # counted at once: concurrent offers cannot overshoot the cap
        try:
            problem = await self._translation_problem(config)
        finally:
            self._starting -= 1
        if problem:
            return _error(400, problem)
        return await self._answer(config, sdp)  # takes its place in `peers` before it awaits anything

    async def _translation_problem(self, config: DubConfig) -> str:
        """Why the peer's language pair cannot be translated, or "": a missing pair is the caller's 400, not a
        silent call. Loading the translator blocks, so it runs off the loop."""
        if not config.source or config.source == config.target:
            return ""
        try:
            await asyncio.to_thread(self.pool.speech_route, config.source, config.target)
        except LivedubError as exc:
            return str(exc)
        return ""

    def _config_for(self, body: dict) -> DubConfig:
        """The server's config with this peer's choices (`to`, `from`, `engine`), checked."""
        from aiortc import RTCPeerConnection  # noqa: F401  (fail here, not mid-call, if aiortc is broken)

        from livedub.engines.mt.languages import check_language

        changes: dict[str, object] = {}
        for key, field in (("to", "target"), ("from", "source")):
            value = body.get(key)
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                raise LivedubError(f'"{key}" must be a language code')
            changes[field] = check_language(value, f'"{key}"')
        engine = body.get("engine")
        if engine not in (None, ""):
            if engine not in LIP_ENGINES:
                raise LivedubError(f'"engine" must be one of {", ".join(LIP_ENGINES)}')
            if engine == "wav2lip" and not self.config.checkpoint:
                raise LivedubError("the wav2lip engine needs a checkpoint on the server (livedub serve --checkpoint)")
            changes["engine"] = engine
        return self.config.replace(**changes)

    async def _answer(self, config: DubConfig, sdp: str) -> web.Response:
        from aiortc import RTCConfiguration, RTCPeerConnection

        name = f"peer-{next(self._names)}"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = DubSession(config, self.pool, WallClock(), fps=CAMERA_FPS, video=True, name=name)
        peer = PeerSession(pc, session, name=name, idle_timeout=self.idle_timeout, on_closed=self._forget)
        self.peers[name] = peer
        if self.quality != FULL_QUALITY:
            self._ask(peer)
        try:
            answer = await peer.answer(sdp, "offer")
        except LivedubError as exc:
            await peer.close("could not start")
            return _error(500, str(exc))
        except Exception as exc:  # aiortc's SDP parser raises whatever the bad line triggers
            await peer.close("bad offer")
            log.info("%s: bad offer: %r", name, exc)
            return _error(400, f"malformed SDP offer ({type(exc).__name__}: {exc})")
        if self.public_address:
            answer["sdp"] = announce_address(answer["sdp"], self.public_address)
        self.served += 1
        log.info("%s: connected (%s → %s, %s)", name, config.source or "auto", config.target,
                 config.lip_engine_name(video=True))
        return web.json_response(answer)

    def _forget(self, peer: PeerSession) -> None:
        self.peers.pop(peer.name, None)
        self._settle_quality()

    async def _follow_load(self) -> None:
        while True:
            await asyncio.sleep(LOAD_CHECK_S)
            self._settle_quality()

    def _settle_quality(self) -> None:
        """Calls over the measured budget at full quality are asked to send less (every call at a stated lower
        frame rate, rather than every call's frames late); once they fit at full quality with room to spare
        (`RESTORE_RESERVE`: at 15 fps a frame measures cheaper, the cores being less contended), they are told
        to send as their cameras give again."""
        room = self.capacity()  # takes the calls' readings
        cost, cores = self.headroom.cost(), self.headroom.cores
        if self.draining or not room.sessions or cost is None:
            return
        if self.quality == FULL_QUALITY and not all_fit_at_full(room.sessions, cost, cores):
            self._ask_quality(REDUCED)
        elif self.quality != FULL_QUALITY and all_fit_at_full(room.sessions, cost, cores, reserve=RESTORE_RESERVE):
            self._ask_quality(FULL_QUALITY)


def _sdp_problem(sdp: str) -> str:
    """Why an offer's SDP cannot be used, or "" (checked before any session is made for it)."""
    from aiortc.sdp import SessionDescription

    if not sdp.lstrip().startswith("v=0"):
        return "it must start with v=0"
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser fails with whatever the bad line triggers
        return f"cannot parse it ({type(exc).__name__}{': ' + str(exc) if str(exc) else ''})"
    if not parsed.media:
        return "it offers no media (camera, microphone or datachannel)"
    return ""


def _rss_mb() -> float | None:
    """Resident memory of this process (Linux), for `/stats`."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)
    return None
