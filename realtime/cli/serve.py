"""`livedub serve --to LANG`: the WebRTC peer: open the page, allow camera and microphone, get your face back
speaking another language (one session per browser, engines shared)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from livedub.engines.errors import LivedubError

from ..pool import ModelPool
from ..runners.heap import frozen_heap
from .common import common_flags, config_from, dub_flags, lip_flags, model_flags


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="serve a web page that dubs your camera and microphone live (WebRTC)",
        description="An HTTP + WebRTC server. Open the page it prints, allow camera and microphone, and your "
                    "face comes back speaking --to, lips in sync, about a second behind; captions in both "
                    "languages arrive beside it. Any WebRTC client can connect: POST /offer takes aiortc's "
                    '{"sdp", "type"} JSON (plus optional "to", "from", "engine"). On a non-loopback --host a '
                    "token is required (generated and printed unless given).",
        epilog="examples:\n"
               "  livedub serve --to es                    # http://127.0.0.1:8080/\n"
               "  livedub serve --to pt --host 0.0.0.0 --max-sessions 2\n"
               "  livedub serve --to es --host 10.0.0.11 --token $TOKEN --agent-port 8081   # one node behind HAProxy\n"
               "\n"
               "many nodes: put them behind HAProxy (deploy/haproxy.cfg). Each node answers HAProxy's agent check on\n"
               "--agent-port with its capacity left ('up ready 50%', 'up drain' when full); SIGTERM drains it: no\n"
               "new calls, running calls go on for up to --drain-timeout seconds, then their pages are told the\n"
               "node is going away (they reconnect through the balancer) and it exits with 0. A second SIGTERM or\n"
               "Ctrl-C stops at once.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080, help="TCP port (8080; 0 picks a free one)")
    p.add_argument("--to", required=True, metavar="LANG", help="default language to speak (the page can pick another)")
    p.add_argument("--from", dest="source", metavar="LANG", help="language callers speak (default: detect)")
    p.add_argument("--max-sessions", type=int, default=4, metavar="N",
                   help="browser peers at once; beyond it the page says the server is full (4)")
    p.add_argument("--token", help="access token (default: none on loopback; generated on any other --host)")
    p.add_argument("--idle-timeout", type=float, default=15.0, metavar="S",
                   help="end a session after this many seconds without media from the peer (15)")
    g = p.add_argument_group("behind a load balancer (many nodes)")
    g.add_argument("--agent-port", type=int, metavar="N",
                   help="answer HAProxy's agent check on this TCP port: a weight from the capacity left, 'drain' "
                        "when full or stopping, 'down' when not serving (default: no agent check)")
    g.add_argument("--agent-host", default="127.0.0.1", metavar="ADDR",
                   help="address the agent check listens on (127.0.0.1; give the address HAProxy reaches this "
                        "node on when HAProxy runs on another machine)")
    g.add_argument("--drain-timeout", type=float, default=600.0, metavar="S",
                   help="on SIGTERM, how long running calls may go on before they are told to move and ended "
                        "(600: a call's length; keep the service manager's stop timeout above it)")
    g.add_argument("--public-address", metavar="ADDR",
                   help="the address browsers reach this node's media on, announced in its ICE candidates in "
                        "place of the local ones (behind 1:1 NAT: the public IP; the UDP ports stay the node's)")
    g.add_argument("--call-cores", type=float, metavar="C",
                   help="what one call costs this node, in CPU cores, as you measured it (e.g. with "
                        "benchmarks/webrtc_roundtrip.py): the capacity the agent check and admission report "
                        "then rests on it instead of a measurement at start-up, so identical nodes report "
                        "alike (default: measured at start, then from the calls)")
    lip_flags(p, fps=False)
    dub_flags(p)
    model_flags(p)
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..runners.server import DubServer

    if not 0 <= args.port <= 65535:
        raise LivedubError(f"--port {args.port}: must be between 0 and 65535")
    if not args.idle_timeout > 0:
        raise LivedubError("--idle-timeout must be above 0 seconds")
    if args.agent_port is not None and not 0 <= args.agent_port <= 65535:
        raise LivedubError(f"--agent-port {args.agent_port}: must be between 0 and 65535")
    if not args.drain_timeout >= 0:
        raise LivedubError("--drain-timeout must be 0 seconds or more")
    if args.public_address is not None:
        _check_address(args.public_address)
    if args.call_cores is not None and not args.call_cores > 0:
        raise LivedubError("--call-cores must be above 0")
    config = config_from(args)
    pool = ModelPool(config.settings)
    server = DubServer(config, pool, host=args.host, port=args.port, token=args.token,
                       max_sessions=args.max_sessions, idle_timeout=args.idle_timeout,
                       agent_port=args.agent_port, agent_host=args.agent_host, public_address=args.public_address,
                       headroom=_given_headroom(args.call_cores))
    try:
        asyncio.run(_serve(server, args))
    finally:
        pool.close()
    return 0


def _given_headroom(call_cores: float | None):
    """`--call-cores`: one call's cost as given (all of it counted per camera frame at full quality)."""
    if call_cores is None:
        return None
    from ..runners.capacity import FULL_QUALITY, SessionCost
    from ..runners.headroom import Headroom

    return Headroom(cost=SessionCost(call_cores / FULL_QUALITY.max_fps, source="given"))


def _check_address(address: str) -> None:
    import ipaddress

    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise LivedubError(f"--public-address {address}: must be an IP address (ICE candidates carry no names)") from None


async def _serve(server, args: argparse.Namespace) -> None:
    """Serve until Ctrl-C (a clean stop: peers hung up, exit 0) or SIGTERM (a drain first, then the same stop);
    a signal during the drain stops at once."""
    stop = asyncio.Event()
    term = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    heap = contextlib.ExitStack()

    def on_term() -> None:
        (stop if term.is_set() else term).set()

    for sig, handler in ((signal.SIGINT, stop.set), (signal.SIGTERM, on_term)):
        try:
            loop.add_signal_handler(sig, handler)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    try:
        if not args.quiet:
            print("livedub: loading models…", file=sys.stderr)
        warming = asyncio.ensure_future(server.warm())
        stopping = asyncio.ensure_future(_first(stop, term))
        await asyncio.wait({warming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (warming, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        if stop.is_set() or term.is_set():  # no call yet: nothing to drain
            with contextlib.suppress(asyncio.CancelledError):
                await warming
            return
        warming.result()  # a model that cannot load: its one-line error
        heap.enter_context(frozen_heap())  # the warm models: out of the collector's full passes
        await server.start()
        print(f"livedub: open {server.url}  (Ctrl-C to stop; {server.max_sessions} sessions at most)", file=sys.stderr)
        if server.agent is not None:
            print(f"livedub: agent check on {server.agent.host}:{server.agent.port}", file=sys.stderr)
        with contextlib.suppress(asyncio.CancelledError):
            await _first(stop, term)
        if term.is_set() and not stop.is_set():
            await _drain(server, stop, args)
        if not args.quiet:
            print("livedub: stopping", file=sys.stderr)
    finally:
        await server.stop()
        heap.close()
        for sig in handled:
            loop.remove_signal_handler(sig)


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _drain(server, stop: asyncio.Event, args: argparse.Namespace) -> None:
    """SIGTERM: no new calls, the running ones go on for up to --drain-timeout; a second signal cuts it short."""
    calls = len(server.peers)
    print(f"livedub: draining: no new calls; {calls} running call{'s' if calls != 1 else ''} may go on for up to "
          f"{args.drain_timeout:g} s (signal again to stop now)", file=sys.stderr)
    draining = asyncio.ensure_future(server.drain(args.drain_timeout))
    await _first_done(draining, stop)
    if draining.done():
        moved = draining.result()
        if moved and not args.quiet:
            print(f"livedub: drain timeout: {moved} call{'s' if moved != 1 else ''} told to move and ended",
                  file=sys.stderr)
    else:
        draining.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await draining


async def _first_done(task: asyncio.Future, event: asyncio.Event) -> None:
    waiting = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
