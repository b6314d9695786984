"""`livedub serve --to LANG`: the WebRTC peer: open the page, allow camera and microphone, get your face back
speaking another language (one session per browser, engines shared)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from livedub.engines.errors import LivedubError

from ..factory import ModelPool
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
    from ..server import DubServer

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
    if not args.quiet:
        print("livedub: loading models…", file=sys.stderr)
    await server.warm()
    await server.start()
    print(f"livedub: open {server.url}  (Ctrl-C to stop; {server.max_sessions} sessions at most)", file=sys.stderr)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
    finally:
        await server.stop()
