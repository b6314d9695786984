"""Browser → `livedub serve` → browser: frame round trip and translated-speech onset, in Debian chromium.

The page's camera is replaced by a canvas showing a face with a frame counter drawn as a 16-bit barcode in
its top rows (away from the mouth the lip engine redraws); the translated video is read back on every
frame it presents (requestVideoFrameCallback), the counter decoded, and the round trip is the time since
that frame was drawn. Rows: 640×480 VP8 and H.264, one and two peers, 1280×720 VP8 (whose outgoing stream
the server scales down when the encoder cannot keep up). Onset: the server's utterance end → translated
clip start, plus the audio hold-back (the browser hears it that much later, plus its jitter buffer).
Usage: python benchmarks/webrtc_roundtrip.py [--seconds 20] [--engine viseme]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import table, write_results  # noqa: E402

from livedub.engines.metrics import percentile  # noqa: E402
from livedub.realtime.web.headless import launch_chromium  # noqa: E402

# the camera: the face image with a counter; the microphone: Chromium's fake one (the speech file)
CAMERA_JS = """
(() => {
  const W = %(w)d, H = %(h)d, CODEC = "%(codec)s";
  const img = new Image(); img.src = "data:image/jpeg;base64,%(face)s";
  const canvas = document.createElement("canvas"); canvas.width = W; canvas.height = H;
  const g = canvas.getContext("2d");
  const sent = window.__sent = new Map(); let n = 0;
  const B = Math.floor(W / 16);
  function draw() {
    if (img.complete) g.drawImage(img, 0, 0, W, H);
    n = (n + 1) & 0xffff;
    for (let i = 0; i < 16; i++) { g.fillStyle = (n >> i) & 1 ? "#fff" : "#000"; g.fillRect(i * B, 0, B, B); }
    sent.set(n, performance.now());
    if (sent.size > 4000) sent.delete(sent.keys().next().value);
  }
  setInterval(draw, 1000 / 30);
  const real = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async () => {
    const mic = await real({ audio: true });
    return new MediaStream([...canvas.captureStream(30).getVideoTracks(), ...mic.getAudioTracks()]);
  };
  const offer = RTCPeerConnection.prototype.createOffer;
  RTCPeerConnection.prototype.createOffer = function (...args) {
    for (const t of this.getTransceivers()) {
      if (t.sender.track && t.sender.track.kind === "video" && t.setCodecPreferences) {
        const codecs = RTCRtpSender.getCapabilities("video").codecs;
        t.setCodecPreferences([...codecs.filter((c) => c.mimeType === "video/" + CODEC),
                               ...codecs.filter((c) => c.mimeType !== "video/" + CODEC)]);
      }
    }
    return offer.apply(this, args);
  };
  window.__rtt = []; window.__sizes = [];
  window.__watch = () => {
    const v = document.getElementById("translated");
    const c = document.createElement("canvas"); const cg = c.getContext("2d", { willReadFrequently: true });
    const tick = () => {
      if (v.videoWidth) {
        c.width = v.videoWidth; c.height = v.videoHeight;
        cg.drawImage(v, 0, 0);
        const b = Math.floor(v.videoWidth / 16);
        let m = 0;
        for (let i = 0; i < 16; i++) {
          const px = cg.getImageData(i * b + b / 2, b / 2, 1, 1).data;
          if (px[0] + px[1] + px[2] > 384) m |= 1 << i;
        }
        const t = sent.get(m);
        if (t !== undefined) { window.__rtt.push(performance.now() - t); sent.delete(m); }
        window.__sizes.push(v.videoWidth);
      }
      v.requestVideoFrameCallback(tick);
    };
    v.requestVideoFrameCallback(tick);
  };
})();
"""


def stats(base: str) -> dict:
    with urllib.request.urlopen(base + "stats", timeout=30) as r:
        return json.load(r)


def run_case(p, base: str, face_b64: str, w: int, h: int, codec: str, peers: int, seconds: float,
             flags: list[str]) -> dict:
    browser = launch_chromium(p, *flags)
    pages = []
    try:
        for _ in range(peers):
            page = browser.new_page()
            page.add_init_script(CAMERA_JS % {"w": w, "h": h, "codec": codec, "face": face_b64})
            page.goto(base)
            page.click("#start")
            page.wait_for_function("() => livedub.state === 'connected' && livedub.translatedStream.getTracks().length",
                                   timeout=90_000)
            page.evaluate("() => window.__watch()")
            pages.append(page)
        time.sleep(3.0)  # warm: encoder, jitter buffers
        for page in pages:
            page.evaluate("() => { window.__rtt = []; window.__sizes = []; }")
        time.sleep(seconds)
        rtts = [x for page in pages for x in page.evaluate("() => window.__rtt")]
        sizes = [x for page in pages for x in page.evaluate("() => window.__sizes")]
        now = stats(base)
    finally:
        browser.close()
    _wait_sessions(base, 0)
    frames_per_s = len(rtts) / seconds / peers
    onset = now["stages"].get("onset", {})
    delay = max((pe["audio_delay_ms"] for pe in now["peers"]), default=0.0)
    return {
        "input": f"{w}x{h}", "codec": codec, "peers": peers,
        "rtt_p50_ms": percentile(rtts, 50), "rtt_p95_ms": percentile(rtts, 95), "rtt_max_ms": max(rtts, default=None),
        "fps_back": round(frames_per_s, 1), "width_back": int(np.median(sizes)) if sizes else None,
        "server_frame_p95_ms": now["stages"].get("video", {}).get("p95_ms"),
        "dropped": now["dropped_frames"],
        "onset_p50_s": (onset["p50_ms"] + delay) / 1000 if onset else None,
        "onset_p95_s": (onset["p95_ms"] + delay) / 1000 if onset else None,
    }


def _wait_sessions(base: str, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while stats(base)["sessions"] != n and time.monotonic() < deadline:
        time.sleep(0.5)


def serve(engine: str, max_sessions: int, log: Path) -> tuple[subprocess.Popen, str]:
    """`livedub serve` in its own process, as users run it (its output in `log`); returns once it says its
    models are warm."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "livedub.realtime.cli", "serve", "--port", str(port), "--to", "es", "--from", "en",
           "--engine", engine, "--max-sessions", str(max_sessions)]
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if "livedub: open " in log.read_text(errors="replace"):
            return proc, f"http://127.0.0.1:{port}/"
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"livedub serve did not start; see {log}")


def main() -> None:
    import base64

    import cv2
    from playwright.sync_api import sync_playwright

    from livedub.engines.audio import OUTPUT_RATE, write_wav
    from livedub.engines.tts.sample_speech import two_phrases
    from livedub.realtime.runners.headroom import face_frames

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="measured seconds per row")
    ap.add_argument("--engine", default="viseme", choices=("viseme", "exemplar"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="livedub-webrtc-bench-"))
    speech = tmp / "speech.wav"
    write_wav(speech, two_phrases(OUTPUT_RATE), OUTPUT_RATE)
    flags = [f"--use-file-for-fake-audio-capture={speech}"]
    server, base = serve(args.engine, max_sessions=2, log=tmp / "serve.log")
    rows = []
    try:
        with sync_playwright() as p:
            for w, h, codec, peers in ((640, 480, "VP8", 1), (640, 480, "H264", 1), (640, 480, "VP8", 2),
                                       (1280, 720, "VP8", 1)):
                ok, jpg = cv2.imencode(".jpg", face_frames((w, h), 1)[0])
                row = run_case(p, base, base64.b64encode(jpg.tobytes()).decode(), w, h, codec, peers,
                               args.seconds, flags)
                print(row, flush=True)
                rows.append(row)
    finally:
        server.terminate()  # SIGTERM: the node drains (no calls left) and exits
        server.wait(60)
    columns = ["input", "codec", "peers", "rtt_p50_ms", "rtt_p95_ms", "rtt_max_ms", "fps_back", "width_back",
               "server_frame_p95_ms", "dropped", "onset_p50_s", "onset_p95_s"]
    print(table(rows, columns))
    print("onset: server utterance end → clip start + audio hold-back (the browser's jitter buffer adds ~tens of ms)")
    path = write_results("webrtc_roundtrip", rows, {"engine": args.engine, "seconds": args.seconds,
                                                    "asr": "whisper-base (live)", "camera_fps": 30})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
