"""HAProxy's agent check, answered from the node's capacity: the balancer reads one line per connection and
sends new calls only to nodes that say they can take them, weighted by how much they can still take.

The agent protocol (HAProxy 2.6 `agent-check`): a TCP connection to `agent-port`, one ASCII line back, words
separated by spaces. `N%` sets the server's weight to N% of its configured weight; `ready` and `drain` set its
administrative state (only the agent undoes a `drain`, so every ready answer says `ready`); `up` and
`down#why` its operating state (only an `up` brings back a `down`). Anything HAProxy sends first
(`agent-send`) is ignored: one node, one answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from livedub.engines.errors import LivedubError

from .capacity import READY, Capacity

log = logging.getLogger("livedub.agent")

WRITE_TIMEOUT_S = 2.0  # a checker that does not read its line is dropped


def agent_line(capacity: Capacity | None) -> str:
    """The agent answer for a node's capacity; None: the node cannot serve (stopping, not listening)."""
    if capacity is None:
        return "down#livedub is not serving\n"
    if capacity.state == READY:
        return f"up ready {capacity.weight}%\n"
    return "up drain\n"  # full or draining: alive, finishing its calls, takes no new one


class AgentCheck:
    """A TCP listener answering each connection with `agent_line(report())`."""

    def __init__(self, report: Callable[[], Capacity | None], *, host: str = "127.0.0.1", port: int = 0):
        self.report = report
        self.host = host
        self.port = port
        self.answered = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._answer, self.host, self.port)
        except OSError as exc:
            raise LivedubError(f"cannot listen for the agent check on {self.host}:{self.port}: "
                               f"{exc.strerror or exc}") from None
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        log.info("agent check on %s:%d", self.host, self.port)

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            writer.write(agent_line(self.report()).encode("ascii"))
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
            self.answered += 1
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), WRITE_TIMEOUT_S)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(OSError):
                await self._server.wait_closed()
            self._server = None
