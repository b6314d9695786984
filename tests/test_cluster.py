"""Many `livedub serve` nodes behind a real HAProxy with the shipped deploy/haproxy.cfg: offers go where there
is room, a stopping node drains (its calls go on, then are told to move), a dead node is routed around.

Two nodes run as real `livedub serve` processes on loopback ports (viseme lips, whisper tiny.en: cheap to
start); HAProxy runs the shipped configuration with only its addresses and ports substituted. The callers are
plain aiortc clients (audio + datachannel: the routing is under test, not the lips)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from webrtc_helpers import call, http

from livedub.realtime.io.webrtc import announce_address
from livedub.realtime.runners.agent import agent_line
from livedub.realtime.runners.capacity import Capacity, capacity

SHIPPED = Path(__file__).parent.parent / "deploy" / "haproxy.cfg"
START_TIMEOUT_S = 180  # a node loads whisper tiny.en, the translators and the voice (≈4 s idle; 2 shared cores)
# HAProxy's agent answers every 2 s (agent-inter) and its health check every 1 s (out after 2 failures): a
# state change shows within ~2-3 s; 10 s leaves room for a loaded machine.
ROUTING_S = 10.0
TOKEN = "cluster-s3cret"  # every node has the same token, so it holds whichever node answers
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def _wait(predicate, timeout: float, what: str) -> float:
    """Seconds until `predicate()` held (AssertionError after `timeout`)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - start


class Node:
    """One `livedub serve` process on fixed loopback ports (so HAProxy's configuration names it)."""

    def __init__(self, name: str, logs: Path, max_sessions: int, *flags: str):
        self.name, self.logs, self.max_sessions, self.flags = name, logs, max_sessions, flags
        self.port, self.agent_port = _free_port(), _free_port()
        self.proc: subprocess.Popen | None = None
        self.drain_timeout = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, drain_timeout: float) -> None:
        from livedub.engines.models import whisper_tiny_en_dir

        self.drain_timeout = drain_timeout
        log = open(self.logs / f"{self.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "livedub.realtime.cli", "serve", "--to", "es", "--from", "en",
             "--engine", "viseme", "--asr-model", str(whisper_tiny_en_dir()), "--voice-engine", "espeak-ng",
             # a given call cost: capacity follows the --max-sessions caps alone, not this machine's load
             "--call-cores", "0.1",
             "--port", str(self.port), "--agent-port", str(self.agent_port), "--max-sessions",
             str(self.max_sessions), "--drain-timeout", str(drain_timeout), "--idle-timeout", "30", "-q",
             "--token", TOKEN,
             *self.flags],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "LIVEDUB_LOG": "INFO"})
        log.close()
        _wait(lambda: self._healthy() or not self.running, START_TIMEOUT_S, f"node {self.name} to serve")
        assert self.running, f"node {self.name} exited: {self.log_tail()}"

    def _healthy(self) -> bool:
        try:
            return http(self.base + "health")[0] == 200
        except OSError:
            return False

    def stats(self) -> dict:
        return http(self.base + "stats", headers=AUTH)[1]

    def agent(self) -> str:
        with socket.create_connection(("127.0.0.1", self.agent_port), timeout=5) as s:
            return s.makefile().readline()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def log_tail(self) -> str:
        return (self.logs / f"{self.name}.log").read_text(errors="replace")[-2000:]


class Cluster:
    """Two nodes (`a` takes one call, `b` three and announces 127.0.0.1 as its public address) behind HAProxy
    running the shipped configuration."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.a = Node("a", tmp, 1)
        self.b = Node("b", tmp, 3, "--public-address", "127.0.0.1")
        self.front, self.stats_port = _free_port(), _free_port()
        self.haproxy: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.front}/"

    def configuration(self) -> str:
        """The shipped file with this machine's ports: each placeholder must be found exactly where shipped."""
        text = SHIPPED.read_text()
        servers = re.findall(r"^    server node\d+ .*$", text, flags=re.M)
        assert len(servers) == 2, "deploy/haproxy.cfg: expected two example `server nodeN ...` lines"
        for line, node in zip(servers, (self.a, self.b), strict=True):
            assert re.fullmatch(r"    server node\d+ \S+:\d+ agent-port \d+", line), line
            text = text.replace(line, f"    server {node.name} 127.0.0.1:{node.port} agent-port {node.agent_port}")
        for old, new in (("bind :80\n", f"bind 127.0.0.1:{self.front}\n"),
                         ("bind 127.0.0.1:8404\n", f"bind 127.0.0.1:{self.stats_port}\n")):
            assert text.count(old) == 1, f"deploy/haproxy.cfg: expected one `{old.strip()}`"
            text = text.replace(old, new)
        return text

    def start_haproxy(self) -> None:
        binary = shutil.which("haproxy")
        if binary is None:
            pytest.fail("HAProxy is not installed: `apt-get install haproxy` (the Makefile's setup installs it)")
        cfg = self.tmp / "haproxy.cfg"
        cfg.write_text(self.configuration())
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        log = open(self.tmp / "haproxy.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.haproxy = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def servers(self) -> dict[str, dict[str, str]]:
        """HAProxy's view of each node (its stats CSV): status (UP, DRAIN, DOWN), weight, stot, hrsp_5xx."""
        text = _get(f"http://127.0.0.1:{self.stats_port}/;csv").lstrip("# ")
        return {row["svname"]: row for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "livedub_nodes"
                and row["svname"] in ("a", "b")}

    def status(self, name: str) -> str:
        try:
            return self.servers()[name]["status"]  # "UP", "DRAIN" (by the agent: "DRAIN (agent)"), "DOWN", ...
        except OSError:
            return "?"

    def ensure(self, a: float = 60.0, b: float = 60.0) -> None:
        """Both nodes up with these drain timeouts (restarted on the same ports where a test stopped one or
        the timeout differs) and HAProxy seeing them ready."""
        for node, drain_timeout in ((self.a, a), (self.b, b)):
            if node.running and node.drain_timeout != drain_timeout:
                assert node.stop() == 0, node.log_tail()
            if not node.running:
                node.start(drain_timeout)
        if self.haproxy is None or self.haproxy.poll() is not None:
            self.start_haproxy()
        _wait(lambda: self.status("a") == "UP" and self.status("b") == "UP", 30, "HAProxy to see both nodes UP")

    def close(self) -> None:
        for node in (self.a, self.b):
            if node.running:
                node.stop(signal.SIGKILL)
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            self.haproxy.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


async def _connected(base: str, answers: list | None = None) -> tuple:
    """An aiortc caller (microphone + datachannel) through `base`, connected; its datachannel messages (and
    the server's answer appended to `answers`)."""
    pc, channel, status, reply, _ = await call(base, body={"engine": "viseme"}, headers=AUTH, video=False)
    assert status == 200, reply
    if answers is not None:
        answers.append(reply)
    messages: list[dict] = []
    channel.on("message", lambda m: messages.append(json.loads(m)))
    start = time.monotonic()
    while pc.connectionState != "connected":
        assert time.monotonic() - start < 30, f"the call never connected ({pc.connectionState})"
        await asyncio.sleep(0.1)
    return pc, messages


async def _served(base: str) -> None:
    """One call through `base` that connects, then hangs up."""
    pc, _ = await _connected(base)
    await pc.close()


def _ready_line(node: Node) -> str:
    weight = node.stats()["capacity"]["weight"]
    assert 1 <= weight <= 100
    return f"up ready {weight}%\n"


def _served_by(cluster: Cluster) -> dict[str, int]:
    return {node.name: node.stats()["sessions_served"] for node in (cluster.a, cluster.b) if node.running}


# -- the pieces, exactly --------------------------------------------------------------------------------


def test_agent_line_follows_the_capacity():
    assert agent_line(capacity(0, 4)) == "up ready 100%\n"
    assert agent_line(capacity(3, 4)) == "up ready 25%\n"
    assert agent_line(Capacity(1, 4, 1, "ready")) == "up ready 25%\n", "weight = calls that still fit"
    assert agent_line(capacity(4, 4)) == "up drain\n", "a full node takes no new call"
    assert agent_line(capacity(1, 4, draining=True)) == "up drain\n"
    assert agent_line(None).startswith("down#")


def test_public_address_replaces_host_candidates_only():
    sdp = ("v=0\r\nc=IN IP4 192.168.1.5\r\n"
           "a=candidate:1 1 udp 2130706431 192.168.1.5 40000 typ host\r\n"
           "a=candidate:2 1 udp 1694498815 198.51.100.9 40000 typ srflx raddr 192.168.1.5 rport 40000\r\n")
    out = announce_address(sdp, "203.0.113.7")
    assert "a=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\n" in out
    assert "198.51.100.9 40000 typ srflx" in out, "server-reflexive candidates are left as they are"
    assert "c=IN IP4 203.0.113.7\r\n" in out


# -- real HAProxy, real nodes ---------------------------------------------------------------------------


@pytest.mark.slow
def test_tokens_are_checked_behind_the_balancer(cluster):
    cluster.ensure()
    assert http(cluster.base)[0] == 401
    assert http(cluster.base + f"?token={TOKEN}")[0] == 200
    assert http(cluster.base + "stats")[0] == 401
    assert http(cluster.base + "stats", headers=AUTH)[0] == 200
    assert http(cluster.base + "health")[0] == 200, "health stays open for the balancer's checks"

    async def offers():
        statuses = []
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            pc, _, status, _, _ = await call(cluster.base, body={"engine": "viseme"}, headers=headers, video=False)
            statuses.append(status)
            await pc.close()
        await _served(cluster.base)  # with the token: a call connects (then hangs up)
        return statuses

    assert asyncio.run(offers()) == [401, 401]
    _wait(lambda: all(n.stats()["sessions"] == 0 for n in (cluster.a, cluster.b)), 30, "the call to be freed")


def test_offers_spread_over_the_nodes_and_a_full_node_gets_none(cluster):
    cluster.ensure()
    assert cluster.a.agent() == _ready_line(cluster.a)
    wait = asyncio.to_thread  # the blocking checks run beside the callers' event loop

    async def run():
        before = await wait(_served_by, cluster)
        first, _ = await _connected(cluster.base)
        second, _ = await _connected(cluster.base)
        after = await wait(_served_by, cluster)
        assert {n: after[n] - before[n] for n in after} == {"a": 1, "b": 1}, "two offers, one on each node"
        # node a (one call at most) is full now: its agent says so and HAProxy stops sending it offers
        assert await wait(cluster.a.agent) == "up drain\n"
        assert await wait(cluster.b.agent) == await wait(_ready_line, cluster.b)
        await wait(_wait, lambda: cluster.status("a").startswith("DRAIN"), ROUTING_S, "HAProxy to see node a DRAIN")
        offered_a = (await wait(cluster.servers))["a"]
        before = await wait(_served_by, cluster)
        await _served(cluster.base)
        await _served(cluster.base)
        after = await wait(_served_by, cluster)
        assert (after["a"] - before["a"], after["b"] - before["b"]) == (0, 2)
        now_a = (await wait(cluster.servers))["a"]
        assert (now_a["stot"], now_a["hrsp_5xx"]) == (offered_a["stot"], offered_a["hrsp_5xx"]), \
            "HAProxy must not even try the full node"
        await first.close()
        await second.close()
        await wait(_wait, lambda: cluster.status("a") == "UP", ROUTING_S, "node a back in rotation once its call ended")

    asyncio.run(run())


@pytest.mark.slow
def test_sigterm_drains_the_node_its_call_goes_on_and_it_exits_cleanly(cluster):
    cluster.ensure()
    a = cluster.a

    async def run():
        pc, messages = await _connected(a.base)  # a call on node a (direct: where it lands is the point)
        a.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(
            _wait, lambda: a.stats()["capacity"]["state"] == "draining", 10, "node a to say it is draining")
        assert a.agent() == "up drain\n"
        refused, _, status, reply, _ = await call(a.base, headers=AUTH, video=False)
        await refused.close()
        assert status == 503 and "going away" in reply["error"], reply
        before = await asyncio.to_thread(_served_by, cluster)
        await _served(cluster.base)  # a new call through the balancer lands on node b at once
        after = await asyncio.to_thread(_served_by, cluster)
        assert (after["a"] - before["a"], after["b"] - before["b"]) == (0, 1)
        # the call on the draining node goes on: connected, its once-a-second stats still arriving
        stats = sum(m["type"] == "stats" for m in messages)
        await asyncio.sleep(3.0)
        assert pc.connectionState == "connected"
        assert sum(m["type"] == "stats" for m in messages) >= stats + 2
        assert a.running, "node a must wait for its call"
        await pc.close()  # the call ends: the node exits without waiting for the drain timeout
        hung_up = time.monotonic()
        code = await asyncio.to_thread(a.proc.wait, 30)
        return code, time.monotonic() - hung_up, messages

    code, exit_s, messages = asyncio.run(run())
    assert code == 0, a.log_tail()
    assert exit_s < 10, f"exited {exit_s:.1f} s after its last call ended (drain timeout 60 s)"
    assert not [m for m in messages if m["type"] == "going_away"], "a call that ended by itself is not told to move"


@pytest.mark.slow
def test_drain_timeout_tells_the_caller_to_move_then_exits(cluster):
    cluster.ensure(a=3.0)
    a = cluster.a

    async def run():
        pc, messages = await _connected(a.base)
        a.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        while not [m for m in messages if m["type"] == "going_away"]:
            assert time.monotonic() - signalled < 20, "no going_away message"
            await asyncio.sleep(0.1)
        told = time.monotonic() - signalled
        code = await asyncio.to_thread(a.proc.wait, 30)
        await pc.close()
        return told, code, messages

    told, code, messages = asyncio.run(run())
    assert code == 0, a.log_tail()
    assert told >= 3.0, f"told to move after {told:.1f} s: before the 3 s drain timeout"
    (going,) = [m for m in messages if m["type"] == "going_away"]
    assert going["reconnect"] is True and "stopping" in going["reason"]


@pytest.mark.slow
def test_a_killed_node_is_routed_around_within_seconds(cluster):
    cluster.ensure()
    b = cluster.b

    async def run():
        answers: list[dict] = []
        pc, _ = await _connected(b.base, answers)  # a call on node b, which dies mid-call
        hosts = re.findall(r"^a=candidate:\S+ \d+ \S+ \d+ (\S+) \d+ typ host", answers[0]["sdp"], flags=re.M)
        assert hosts and set(hosts) == {"127.0.0.1"}, f"--public-address: every host candidate announces it {hosts}"
        b.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(b.proc.wait, 10)
        killed = time.monotonic()
        before = await asyncio.to_thread(lambda: cluster.a.stats()["sessions_served"])
        await _served(cluster.base)
        first_call_s = time.monotonic() - killed
        after = await asyncio.to_thread(lambda: cluster.a.stats()["sessions_served"])
        await pc.close()
        return first_call_s, after - before

    first_call_s, on_a = asyncio.run(run())
    assert on_a == 1
    # HAProxy retries a refused connection on the other node (retry-on conn-failure): no wait for the check
    assert first_call_s < ROUTING_S, f"the first call after the kill took {first_call_s:.1f} s"
    out_s = _wait(lambda: cluster.status("b").startswith("DOWN"), ROUTING_S, "HAProxy to mark node b DOWN")
    print(f"first call after SIGKILL connected in {first_call_s:.1f} s; node b DOWN {out_s:.1f} s later")


@pytest.mark.slow
def test_the_page_moves_its_call_to_another_node_when_its_node_drains(cluster):
    from playwright.sync_api import sync_playwright

    from livedub.realtime.web.headless import launch_chromium

    cluster.ensure(a=3.0, b=3.0)
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(cluster.base + f"?token={TOKEN}")  # the page, and later its offers, through HAProxy
            page.evaluate("() => { window.__same_page = true; }")
            page.click("#start")
            page.wait_for_function("() => livedub.state === 'connected'", timeout=60_000)
            (first,) = [n for n in (cluster.a, cluster.b) if n.stats()["sessions"] == 1]
            (other,) = [n for n in (cluster.a, cluster.b) if n is not first]
            first.proc.send_signal(signal.SIGTERM)  # drain: 3 s, then "going_away"
            page.wait_for_function("() => livedub.events.some((e) => e.type === 'going_away')", timeout=30_000)
            notice = page.inner_text("#error-text")
            page.wait_for_function("() => livedub.moves === 1 && livedub.state === 'connected'", timeout=60_000)
            assert page.evaluate("() => window.__same_page === true"), "the page must not reload"
            assert first.proc.wait(30) == 0, first.log_tail()
            assert other.stats()["sessions"] == 1, "the call must now be on the other node"
            page.click("#stop")
        finally:
            browser.close()
    assert "shutting down" in notice and "Reconnecting" in notice, notice


@pytest.mark.slow
def test_the_page_moves_its_call_when_its_node_dies(cluster):
    """SIGKILL to the page's node mid-call: no "going_away" comes, but the server's once-a-second messages
    stop, and the page moves the call through HAProxy to the other node within seconds, without reloading."""
    from playwright.sync_api import sync_playwright

    from livedub.realtime.web.headless import launch_chromium

    cluster.ensure()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.goto(cluster.base + f"?token={TOKEN}")
            page.evaluate("() => { window.__same_page = true; }")
            page.click("#start")
            page.wait_for_function("() => livedub.state === 'connected' && livedub.stats !== null", timeout=60_000)
            (first,) = [n for n in (cluster.a, cluster.b) if n.stats()["sessions"] == 1]
            (other,) = [n for n in (cluster.a, cluster.b) if n is not first]
            first.proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            page.wait_for_function("() => livedub.state === 'reconnecting'", timeout=30_000)
            noticed_s = time.monotonic() - killed
            notice = page.inner_text("#error-text")
            page.wait_for_function("() => livedub.moves === 1 && livedub.state === 'connected'", timeout=60_000)
            moved_s = time.monotonic() - killed
            assert page.evaluate("() => window.__same_page === true"), "the page must not reload"
            assert other.stats()["sessions"] == 1, "the call must now be on the other node"
            page.click("#stop")
        finally:
            browser.close()
    print(f"the page noticed its node's death in {noticed_s:.1f} s and was connected again {moved_s:.1f} s after it")
    assert "stopped answering" in notice or "lost" in notice, notice
    # 4 s of silence (SILENT_MS in app.js) + the 1 s check: the browser's own ICE timers take far longer
    assert noticed_s < ROUTING_S, f"the page took {noticed_s:.1f} s to notice"
