"""Admission from measured headroom, seen by plain aiortc callers of a real server: a node whose budget fits
one call at full quality and two at a lower frame rate takes the first call, asks it to send less before it
takes the second, refuses the third with "server full", and lifts the request when a call ends."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from webrtc_helpers import ServerThread, _until, call, http, shared_pool, talking_face_y4m

from livedub.realtime.runners.capacity import REDUCED, SessionCost
from livedub.realtime.runners.headroom import Headroom
from livedub.realtime.web.headless import launch_chromium

# The cost of one call, given rather than measured so the test does not rest on this machine's speed (the
# measured figure is tested in test_capacity.py): on 2 cores less the 15% reserve (1.7 cores), a call at
# 30 fps costs 30 ms × 30 + 0.3 = 1.2 cores (one fits), at 15 fps 0.75 cores (two fit).
GIVEN = SessionCost(frame_s=0.030, model_duty=0.3, source="given")




def _listen(channel) -> list[dict]:
    got: list[dict] = []
    channel.on("message", lambda m: got.append({**json.loads(m), "at": time.monotonic()}))
    return got


def _of(messages: list[dict], kind: str) -> list[dict]:
    return [m for m in messages if m["type"] == kind]


def test_a_full_node_asks_its_callers_to_send_less_before_it_refuses_one():
    config, pool = shared_pool()
    srv = ServerThread(config, pool, max_sessions=4, idle_timeout=10.0, headroom=Headroom(cores=2, cost=GIVEN))

    async def health() -> dict:
        return (await asyncio.to_thread(http, srv.base + "health"))[1]["capacity"]

    async def run():
        seen = [await health()]
        first = await call(srv.base, body={"engine": "viseme"})
        assert first[2] == 200, first[3]
        to_first = _listen(first[1])
        await _until(lambda: _of(to_first, "hello"), 30, "the first caller's datachannel")
        seen.append(await health())
        second = await call(srv.base, body={"engine": "viseme"})
        assert second[2] == 200, second[3]
        to_second = _listen(second[1])
        await _until(lambda: _of(to_first, "send_less"), 30, "the first caller to be asked to send less")
        await _until(lambda: _of(to_second, "send_less"), 30, "the second caller to be asked to send less")
        seen.append(await health())
        third = await call(srv.base, body={"engine": "viseme"})
        refused_at = time.monotonic()
        await third[0].close()
        await second[0].close()
        await _until(lambda: _of(to_first, "send_full"), 30, "the first caller to be told there is room again")
        await _until(lambda: srv.server.capacity().sessions == 1, 20, "the second call to be freed")
        seen.append(await health())
        await first[0].close()
        return seen, third[2], third[3], refused_at, to_first, to_second

    try:
        seen, status, reply, refused_at, to_first, to_second = asyncio.run(run())
    finally:
        srv.close()

    idle, one, two, after = seen
    assert (idle["sessions_more"], idle["sessions_more_full"], idle["quality"]) == (2, 1, "full")
    assert (one["sessions"], one["sessions_more"], one["sessions_more_full"], one["quality"]) == (1, 1, 0, "reduced")
    assert (one["max_fps"], one["max_width"]) == (REDUCED.max_fps, REDUCED.max_width), "at what quality"
    assert (two["sessions"], two["sessions_more"], two["state"], two["weight"]) == (2, 0, "full", 0)
    assert idle["cost_source"] == "given" and idle["per_call_cores"] == 1.2

    assert status == 503 and "server full" in reply["error"], reply
    less = _of(to_first, "send_less")[0]
    assert (less["max_fps"], less["max_width"]) == (REDUCED.max_fps, REDUCED.max_width)
    assert less["at"] < refused_at, "the running caller was asked to send less before anyone was refused"
    assert _of(to_second, "send_less")[0]["max_fps"] == REDUCED.max_fps, "a caller joining a busy node too"
    assert not _of(to_first, "slow"), "a caller on loopback is never behind"

    full = _of(to_first, "send_full")[0]
    assert full["max_fps"] == 30 and full["max_width"] is None
    assert (after["sessions"], after["sessions_more"]) == (1, 1), "the freed call's room is back"


def test_running_calls_over_the_budget_are_asked_to_send_less_then_full_again():
    """No newcomer: the node's figure for a call changes under a running call (as a measured one does when the
    machine gets busier) and the call is asked to send less within a check; when the figure falls back with
    room to spare, to send in full again."""
    from livedub.realtime.runners.server import LOAD_CHECK_S

    config, pool = shared_pool()
    cheap = SessionCost(frame_s=0.005, source="given")  # 0.15 cores a call
    dear = SessionCost(frame_s=0.030, model_duty=0.9, source="given")  # 1.8 cores at 30 fps: over 1.7
    srv = ServerThread(config, pool, max_sessions=4, idle_timeout=10.0, headroom=Headroom(cores=2, cost=cheap))

    def cost(given: SessionCost) -> None:
        srv.loop.call_soon_threadsafe(setattr, srv.server.headroom, "given", given)

    async def run():
        pc, channel, status, reply, _ = await call(srv.base, body={"engine": "viseme"})
        assert status == 200, reply
        got = _listen(channel)
        await _until(lambda: _of(got, "hello"), 30, "the datachannel")
        await asyncio.sleep(2 * LOAD_CHECK_S)
        untouched = [m["type"] for m in got if m["type"].startswith("send_")]
        cost(dear)
        await _until(lambda: _of(got, "send_less"), 4 * LOAD_CHECK_S, "the call to be asked to send less")
        cost(cheap)
        await _until(lambda: _of(got, "send_full"), 4 * LOAD_CHECK_S, "the call to be told to send in full")
        await pc.close()
        return untouched, got

    try:
        untouched, got = asyncio.run(run())
    finally:
        srv.close()
    assert untouched == [], "a call within the budget is left alone"
    assert _of(got, "send_less")[0]["max_fps"] == REDUCED.max_fps
    kinds = [m["type"] for m in got if m["type"].startswith("send_")]
    assert kinds == ["send_less", "send_full"], kinds


def _inbound_frames(peer) -> int:
    """Camera frames the server received from a peer (drawn or superseded before the video thread took them)."""
    return peer.video.inbound.delivered + peer.video.inbound.dropped


@pytest.mark.slow
def test_the_page_sends_less_when_asked_and_full_again_when_there_is_room(tmp_path):
    """Debian chromium's fake camera (talking face, 640×480 at 30 fps) calls the page; a second caller makes
    the server ask it to send less: the page caps its video sender (RTCRtpSender parameters) and the server
    receives at most the asked rate; when the second caller hangs up the cap is lifted."""
    from playwright.sync_api import sync_playwright

    config, pool = shared_pool()
    srv = ServerThread(config, pool, max_sessions=4, idle_timeout=10.0, headroom=Headroom(cores=2, cost=GIVEN))
    face = talking_face_y4m(tmp_path / "face.y4m", size=(640, 480), fps=30)
    params_js = """async () => {
        const s = livedub.pc.getSenders().find((x) => x.track && x.track.kind === 'video');
        const e = s.getParameters().encodings[0] || {};
        return { sending: livedub.sending, maxFramerate: e.maxFramerate ?? null,
                 scale: e.scaleResolutionDownBy ?? null, width: s.track.getSettings().width };
    }"""

    def rate(peer, seconds: float) -> float:
        start, t0 = _inbound_frames(peer), time.monotonic()
        time.sleep(seconds)
        return (_inbound_frames(peer) - start) / (time.monotonic() - t0)

    try:
        with sync_playwright() as p:
            browser = launch_chromium(p, f"--use-file-for-fake-video-capture={face}")
            page = browser.new_page()
            page.goto(srv.base)
            page.click("#start")
            page.wait_for_function("() => livedub.state === 'connected'", timeout=60_000)
            peer = next(iter(srv.server.peers.values()))
            time.sleep(2.0)
            before = rate(peer, 4.0)
            second = srv.call(call(srv.base, body={"engine": "viseme"}))
            assert second[2] == 200, second[3]
            page.wait_for_function("() => livedub.sending && livedub.sending.max_fps", timeout=30_000)
            asked = page.evaluate(params_js)
            time.sleep(2.0)  # the encoder settles on the new rate
            during = rate(peer, 4.0)
            srv.call(second[0].close())
            page.wait_for_function("() => livedub.sending && livedub.sending.max_fps === null", timeout=30_000)
            lifted = page.evaluate(params_js)
            page.click("#stop")
            browser.close()
    finally:
        srv.close()

    print(f"\nthe page's camera reached the server at {before:.1f} fps, {during:.1f} fps once asked to send less")
    assert asked["sending"] == {"max_fps": REDUCED.max_fps, "max_width": REDUCED.max_width}, asked
    assert asked["maxFramerate"] == REDUCED.max_fps and asked["scale"] == 1, asked  # 640 wide: no scaling
    assert during <= REDUCED.max_fps * 1.1, f"the server still got {during:.1f} fps from the page"
    assert lifted["maxFramerate"] is None and lifted["scale"] == 1, lifted
