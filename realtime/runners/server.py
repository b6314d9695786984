"""`livedub serve`: an HTTP + WebRTC server, one `DubSession` per browser peer over one shared `ModelPool`.

Routes: `/` (the page, no build step), `/static/NAME` (its script and style, read once at start: nothing a
request names reaches the filesystem), `POST /offer` (aiortc's `{"sdp", "type"}` signalling, plus optional
`"to"`, `"from"`, `"engine"`), `/health` and `/stats` (JSON for operators). Bound to a loopback address it
serves anyone on this machine; on any other address a token is required on the page and on `/offer`
(`?token=` or `Authorization: Bearer`).
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
from ..io.webrtc import PeerSession, offer_loopback_candidates
from ..pool import ModelPool
from ..session import DubSession
from .capacity import DRAINING, Capacity, capacity

log = logging.getLogger("livedub.server")

WEB = Path(__file__).parent.parent / "web"  # realtime/web: the page it serves
STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
MAX_REQUEST = 64 * 1024  # bytes of any request body (an SDP offer is ~5 KB)
MAX_SDP = 32 * 1024
CAMERA_FPS = 30.0  # what browsers send by default; the tracker's smoothing is tuned per frame
# The target languages the page offers (realtime/web/app.js LANGUAGES): their translators load at start.
PAGE_LANGUAGES = ("en", "es", "pt", "de", "fr", "it", "nl", "ca", "gl", "ja", "zh")


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
                 token: str | None = None, max_sessions: int = 4, idle_timeout: float = 15.0):
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
        self.peers: dict[str, PeerSession] = {}
        self._starting = 0  # offers being answered (not yet in `peers`)
        self.draining = False  # stopping: takes no new calls
        self.served = 0
        self._names = itertools.count(1)
        self._files = {name: (WEB / name).read_bytes() for name in ("index.html", *STATIC)}
        self._runner: web.AppRunner | None = None
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

    async def warm(self) -> None:
        """Start and end one session before serving: every model (whisper, the translator, the live voice, the
        face tracker) is loaded and timed then, so the first caller's offer is answered at once."""
        session = DubSession(self.config, self.pool, WallClock(), fps=CAMERA_FPS, video=True, name="warm-up")
        try:
            await session.start()
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
        await asyncio.gather(*(peer.close("server stopping") for peer in list(self.peers.values())),
                             return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

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
        return capacity(len(self.peers) + self._starting, self.max_sessions, draining=self.draining)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "sessions": len(self.peers), "max_sessions": self.max_sessions,
                                  "target": self.config.target, "source": self.config.source,
                                  "engine": self.config.lip_engine_name(video=True), "engines": list(LIP_ENGINES),
                                  "token_required": self.token is not None,
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
        try:
            answer = await peer.answer(sdp, "offer")
        except LivedubError as exc:
            await peer.close("could not start")
            return _error(500, str(exc))
        except Exception as exc:  # aiortc's SDP parser raises whatever the bad line triggers
            await peer.close("bad offer")
            log.info("%s: bad offer: %r", name, exc)
            return _error(400, f"malformed SDP offer ({type(exc).__name__}: {exc})")
        self.served += 1
        log.info("%s: connected (%s → %s, %s)", name, config.source or "auto", config.target,
                 config.lip_engine_name(video=True))
        return web.json_response(answer)

    def _forget(self, peer: PeerSession) -> None:
        self.peers.pop(peer.name, None)


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
