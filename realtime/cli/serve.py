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
               "  livedub serve --to pt --host 0.0.0.0 --max-sessions 2",
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
    config = config_from(args)
    pool = ModelPool(config.settings)
    server = DubServer(config, pool, host=args.host, port=args.port, token=args.token,
                       max_sessions=args.max_sessions, idle_timeout=args.idle_timeout)
    try:
        asyncio.run(_serve(server, args))
    finally:
        pool.close()
    return 0


async def _serve(server, args: argparse.Namespace) -> None:
    """Serve until Ctrl-C or SIGTERM, which the event loop turns into a clean stop (peers hung up, exit 0)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = []
    heap = contextlib.ExitStack()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            pass
    try:
        if not args.quiet:
            print("livedub: loading models…", file=sys.stderr)
        warming = asyncio.ensure_future(server.warm())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({warming, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (warming, stopping):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        if stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await warming
            return
        warming.result()  # a model that cannot load: its one-line error
        heap.enter_context(frozen_heap())  # the warm models: out of the collector's full passes
        await server.start()
        print(f"livedub: open {server.url}  (Ctrl-C to stop; {server.max_sessions} sessions at most)", file=sys.stderr)
        with contextlib.suppress(asyncio.CancelledError):
            await stop.wait()
        if not args.quiet:
            print("livedub: stopping", file=sys.stderr)
    finally:
        await server.stop()
        heap.close()
        for sig in handled:
            loop.remove_signal_handler(sig)
