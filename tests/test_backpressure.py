"""Backpressure seen from a real server: a caller whose process (and so its network) stalls cannot make the
server queue without bound for it, is told it fell behind once its connection comes back, and does not slow
another caller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import time

from webrtc_helpers import ServerThread, call, shared_pool

from livedub.realtime.runners.capacity import SessionCost
from livedub.realtime.runners.headroom import Headroom

STALL_S = 12.0  # SCTP's first retransmission timeout is 3 s; after it only one packet is in flight
BUFFERED_LIMIT = 1024  # bytes: this peer's datachannel limit for the test (the default is 64 KB)


def stalled_caller(base: str, conn) -> None:
    """An aiortc caller in its own process: says "connected" once its datachannel is open, plays the dubbed
    video it gets, and when told "done" sends back the "slow" messages it received."""

    async def run():
        pc, channel, status, reply, tracks = await call(base, body={"engine": "viseme"})
        assert status == 200, reply
        got: list[dict] = []
        channel.on("message", lambda m: got.append(json.loads(m)))
        while not any(m["type"] == "hello" for m in got):
            await asyncio.sleep(0.05)
        conn.send("connected")
        while not conn.poll():
            if "video" in tracks:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(tracks["video"].recv(), 0.1)
            else:
                await asyncio.sleep(0.1)
        conn.recv()
        conn.send([m for m in got if m["type"] == "slow"])
        await pc.close()

    asyncio.run(run())


async def _frames_for(track, seconds: float) -> int:
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            await asyncio.wait_for(track.recv(), max(end - time.monotonic(), 0.01))
            n += 1
        except asyncio.TimeoutError:
            break
    return n


def test_a_stalled_caller_is_bounded_told_and_does_not_slow_another():
    """The other caller's frame rate during the stall is compared with its own rate just before, in the same
    run: a server that waited on the stalled peer would drop it towards zero; the bound (half) leaves room for
    the shared machine's noise, not for a stall."""
    config, pool = shared_pool()
    srv = ServerThread(config, pool, max_sessions=2, idle_timeout=60.0,
                       headroom=Headroom(cores=2, cost=SessionCost(0.001, source="given")))
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    stalled = ctx.Process(target=stalled_caller, args=(srv.base, theirs), daemon=True)
    stalled.start()
    try:
        assert ours.poll(90) and ours.recv() == "connected"
        peer = next(iter(srv.server.peers.values()))
        srv.loop.call_soon_threadsafe(setattr, peer, "max_buffered", BUFFERED_LIMIT)

        async def other_caller():
            pc, channel, status, reply, tracks = await call(srv.base, body={"engine": "viseme"})
            assert status == 200, reply
            deadline = time.monotonic() + 30
            while "video" not in tracks and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await _frames_for(tracks["video"], 2.0)  # settle
            before = await _frames_for(tracks["video"], 4.0)
            os.kill(stalled.pid, signal.SIGSTOP)
            most_waiting = 0
            during = 0
            end = time.monotonic() + STALL_S
            while time.monotonic() < end:
                during += await _frames_for(tracks["video"], 1.0)
                most_waiting = max(most_waiting, peer.channel.bufferedAmount)
            os.kill(stalled.pid, signal.SIGCONT)
            await pc.close()
            return before / 4.0, during / STALL_S, most_waiting

        before_fps, during_fps, most_waiting = asyncio.run(other_caller())
        shed = peer.messages_shed
        deadline = time.monotonic() + 45
        while peer.behind and time.monotonic() < deadline:  # it catches up once its connection is back
            time.sleep(0.5)
        time.sleep(1.5)  # the next message says so
        ours.send("done")
        assert ours.poll(30)
        told = ours.recv()
    finally:
        if stalled.is_alive():
            os.kill(stalled.pid, signal.SIGCONT)
        stalled.join(30)
        if stalled.is_alive():
            stalled.kill()
        srv.close()

    print(f"\nother caller {before_fps:.1f} fps before, {during_fps:.1f} fps during the stall; stalled peer: "
          f"at most {most_waiting} bytes waiting, {shed} messages shed; told: {told}")
    assert shed > 0, "the stalled peer's captions and stats were shed, not queued"
    assert most_waiting <= BUFFERED_LIMIT + 2048, f"{most_waiting} bytes queued for a stalled peer"
    assert during_fps >= 0.5 * before_fps, f"the other caller slowed from {before_fps:.1f} to {during_fps:.1f} fps"
    behind = [m for m in told if m["behind"]]
    assert behind and behind[0]["shed"] >= 1, f"the stalled peer was not told it fell behind: {told}"
    assert any(not m["behind"] for m in told), f"the peer was not told it caught up: {told}"
