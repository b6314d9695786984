"""`livedub serve` in a real browser: Debian chromium (Playwright, fake camera and microphone made here) calls
the server, and gets its face back speaking Spanish, with captions, a language switch mid-call, a second
caller beside it, a clear "server full", and every session freed when its tab goes."""

from __future__ import annotations

import base64
import gc
import threading
import time
import weakref

import numpy as np
import pytest
from speech_metrics import two_phrases, words_of
from webrtc_helpers import ServerThread, http, launch_chromium, shared_pool, talking_face_y4m, write_wav16

CAPTURE_JS = """() => {
  const v = document.getElementById("translated");
  const c = document.createElement("canvas"); c.width = 320; c.height = 240;
  const g = c.getContext("2d");
  const cap = window.__capture = { frames: [], chunks: [], t0: performance.now() };
  cap.timer = setInterval(() => {
    if (v.videoWidth) { g.drawImage(v, 0, 0, 320, 240); cap.frames.push([performance.now(), c.toDataURL("image/jpeg", 0.9)]); }
  }, 100);
  cap.rec = new MediaRecorder(new MediaStream(livedub.translatedStream.getAudioTracks()), { mimeType: "audio/webm;codecs=opus" });
  cap.rec.ondataavailable = (e) => cap.chunks.push(e.data);
  cap.rec.start(); cap.t0 = performance.now();
}"""

STOP_CAPTURE_JS = """async () => {
  const cap = window.__capture;
  clearInterval(cap.timer);
  await new Promise((resolve) => { cap.rec.onstop = resolve; cap.rec.stop(); });
  const url = await new Promise((resolve) => { const r = new FileReader(); r.onload = () => resolve(r.result);
                                               r.readAsDataURL(new Blob(cap.chunks)); });
  return { t0: cap.t0, frames: cap.frames, audio: url.split(",")[1] };
}"""

# page time (ms) by which every translated sentence received so far has been played out
HEARD_BY_JS = """() => Math.max(0, ...livedub.sentences.map((s) => s.received + 1000 * (s.end - s.now)
                                   + (livedub.stats ? livedub.stats.video_delay_ms : 0) + 700))"""


def _wait(what: str, timeout: float, predicate) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.25)


def _decode_webm(data: bytes, tmp_path) -> np.ndarray:
    from livedub.engines.audio import decode_audio

    path = tmp_path / "heard.webm"
    path.write_bytes(data)
    return decode_audio(str(path))  # 16 kHz mono


def _openings(tracker, frames: list) -> list[float]:
    import cv2

    from livedub.engines.face import landmarks as lmk

    tracker.reset()
    out = []
    for _, url in frames:
        img = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",")[1]), np.uint8), cv2.IMREAD_COLOR)
        face = tracker.track(img)
        out.append(lmk.mouth_opening(face.landmarks) if face is not None and face.usable else np.nan)
    return out


@pytest.fixture(scope="module")
def media(tmp_path_factory, english_speech):
    root = tmp_path_factory.mktemp("fake-media")
    face = talking_face_y4m(root / "face.y4m")
    speech = write_wav16(root / "speech.wav", two_phrases(lambda text: english_speech(text, 48_000), 48_000), 48_000)
    return face, speech


@pytest.mark.slow
def test_browser_call_dubs_face_and_voice(media, tracker, tmp_path):
    from playwright.sync_api import sync_playwright

    from livedub.engines import registry
    from livedub.engines.settings import Settings

    config, pool = shared_pool()
    srv = ServerThread(config, pool, max_sessions=2, idle_timeout=10.0)
    face, speech = media
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p, f"--use-file-for-fake-video-capture={face}",
                                      f"--use-file-for-fake-audio-capture={speech}")
            page = browser.new_page()
            page.goto(srv.base)
            page.click("#start")
            page.wait_for_function("() => livedub.state === 'connected' && livedub.translatedStream.getTracks().length === 2",
                                   timeout=60_000)
            page.evaluate(CAPTURE_JS)
            # two Spanish sentences, then until they have been heard
            page.wait_for_function("() => livedub.sentences.length >= 2", timeout=90_000)
            heard_by = page.evaluate(HEARD_BY_JS)
            page.wait_for_function(f"() => performance.now() > {heard_by}", timeout=30_000)
            captured = page.evaluate(STOP_CAPTURE_JS)
            spanish = page.evaluate("() => livedub.sentences.map((s) => [s.text, s.translation, s.language])")
            words = page.evaluate("() => livedub.words")
            caption = page.inner_text("#target-caption")

            # a language change mid-call takes effect on the next sentence
            page.select_option("#to", "pt")
            page.wait_for_function("() => livedub.sentences.some((s) => s.language === 'pt')", timeout=90_000)
            portuguese = page.evaluate("() => livedub.sentences.filter((s) => s.language === 'pt')[0]")

            # a second caller at the same time; a third is told the server is full
            second = browser.new_page()
            second.goto(srv.base)
            second.click("#start")
            second.wait_for_function("() => livedub.state === 'connected' && "
                                     "document.getElementById('translated').getVideoPlaybackQuality().totalVideoFrames > 10",
                                     timeout=60_000)
            assert http(srv.base + "stats")[1]["sessions"] == 2
            third = browser.new_page()
            third.goto(srv.base)
            third.click("#start")
            third.wait_for_function("() => livedub.state === 'full'", timeout=30_000)
            full_message = third.inner_text("#error")
            third.close()

            # closing the second tab (no hang-up) frees its session: count, objects, threads
            peer = srv.server.peers["peer-2"]
            session_ref = weakref.ref(peer.session)
            worker_thread = f"livedub-video-{peer.session.name}"
            del peer
            second.close()
            _wait("the closed tab's session to end", 40, lambda: http(srv.base + "stats")[1]["sessions"] == 1)
            assert page.evaluate("() => livedub.state") == "connected", "the first call goes on"
            page.click("#stop")
            _wait("the stopped call's session to end", 40, lambda: http(srv.base + "stats")[1]["sessions"] == 0)
            browser.close()
        gc.collect()
        assert session_ref() is None, "the closed tab's DubSession is still referenced"
        assert not [t for t in threading.enumerate() if t.name.startswith(worker_thread)], "its video thread lives on"
    finally:
        srv.close()

    # captions in both languages came over the datachannel
    assert len(words) >= 5 and any(w.strip(".,?!").lower() in ("hello", "fine", "thank") for w in words), words
    assert all(lang == "es" and text and translation for text, translation, lang in spanish), spanish
    assert caption.strip(), "the page shows the translation"
    assert portuguese["translation"] and portuguese["translation"] not in [t for _, t, _ in spanish], portuguese
    assert "full" in full_message.lower()

    # the translated voice is Spanish speech with the words of the translation
    heard = _decode_webm(base64.b64decode(captured["audio"]), tmp_path)
    assert len(heard) > 16_000 * 3
    rms = np.sqrt(np.mean(heard**2))
    assert rms > 0.005, "no translated speech came back"
    whisper = registry.recognizer(Settings())
    detected = whisper.transcribe(heard)
    # the words of the translation are audible as Spanish (whisper told the language: espeak-ng's Spanish
    # voice, the live voice on a 2-core machine, is detected unreliably when the CPU is overloaded)
    transcript = whisper.transcribe(heard, language="es")
    said = {w for w in words_of(transcript.text) if len(w) >= 4}
    meant = {w for _, t, _ in spanish for w in words_of(t) if len(w) >= 4}
    print(f"\nheard (detected {detected.language}): {transcript.text!r}\nsent: {[t for _, t, _ in spanish]}")
    assert said & meant, f"none of {sorted(meant)} heard in {transcript.text!r}"

    # translated frames came back, the mouth open while translated speech plays and closed in silence
    frames = captured["frames"]
    assert len(frames) >= 20, f"only {len(frames)} translated frames came back"
    opening = np.array(_openings(tracker, frames))
    assert np.isfinite(opening).mean() > 0.8, "the face was lost on the translated frames"

    def split_by_loudness(lag_ms: float):
        loud = []
        for t_ms, _ in frames:
            at = int((t_ms - captured["t0"] + lag_ms) / 1000 * 16_000)
            window = heard[max(at - 1600, 0): at + 1600]
            loud.append(np.sqrt(np.mean(window**2)) if len(window) else 0.0)
        loud = np.array(loud)
        return opening[loud > 0.02], opening[loud < 0.002]

    def margin(lag_ms: float) -> float:
        speaking, silent = split_by_loudness(lag_ms)
        return np.nanmean(speaking) - np.nanmean(silent) if len(speaking) >= 3 and len(silent) >= 3 else -1.0

    # the page's two recordings (frames every 100 ms, MediaRecorder audio) start apart, more so on a loaded
    # machine (0 ms quiet; -400 ms seen in a full run on 2 cores, where Chromium falls behind): the mouth must
    # follow the speech at some lag within ±0.8 s of their clocks. This test checks that the mouth follows the
    # voice, not the browser's A/V offset (the live tests and `livedub evaluate` measure offsets)
    lag = max(range(-800, 801, 100), key=margin)
    speaking, silent = split_by_loudness(lag)
    print(f"mouth opening: speaking {np.nanmean(speaking):.3f} (n={len(speaking)}), "
          f"silent {np.nanmean(silent):.3f} (n={len(silent)}), recordings {lag} ms apart")
    assert len(speaking) >= 3 and len(silent) >= 3
    assert np.nanmean(speaking) > np.nanmean(silent) + 0.04, "the mouth does not follow the translated speech"
