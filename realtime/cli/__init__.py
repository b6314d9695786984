"""The `livedub` command line: one entry point, one module per subcommand (each only imports downward)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from livedub.engines.errors import LivedubError

from . import camera, demo, devices, evaluate, export, lipsync, models, serve, speech, translate
from .common import EPILOG
from .native_logs import quiet_native_logs

SUBCOMMANDS = (translate, lipsync, speech, camera, serve, devices, evaluate, export, models, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="livedub",
        description="Translate a talking face: speech in one language in, the same face speaking another out — "
                    "in a file, or live as a virtual camera and microphone for your video calls.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(sub)
    return parser


def _configure_logging(verbose: int) -> None:
    level = os.environ.get("LIVEDUB_LOG", "").upper() or ("DEBUG" if verbose > 1 else "INFO" if verbose else "WARNING")
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("faster_whisper", "absl", "PIL", "matplotlib", "aioice", "aiortc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


class Terminated(BaseException):
    """SIGTERM/SIGHUP: unwinds like Ctrl-C so every cleanup (partial files, devices) runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame) -> None:
    for sig in _TERMINATING:  # a second signal must not cut the cleanup (deleting partial files) short
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


_TERMINATING = tuple(s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


def main(argv: Sequence[str] | None = None, *, quiet_native: bool = False) -> int:
    """Run one command; `quiet_native` (the program itself, not callers in-process) filters mediapipe/TFLite
    info and warning lines off fd 2 unless -vv asks for everything."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    func: Callable[[argparse.Namespace], int] = args.func
    previous = {}
    for sig in _TERMINATING:
        with contextlib.suppress(ValueError):  # not the main thread (main() called from a test thread)
            previous[sig] = signal.signal(sig, _on_signal)
    quiet = quiet_native_logs() if quiet_native and args.verbose < 2 else contextlib.nullcontext()
    try:
        with quiet:
            return func(args)
    except LivedubError as exc:
        print(f"livedub: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("livedub: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"livedub: stopped by signal {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run() -> None:
    """The `livedub` program (console script and `python -m`): `main` on sys.argv, native chatter filtered."""
    sys.exit(main(quiet_native=True))


if __name__ == "__main__":  # pragma: no cover
    run()
