"""Live mode end to end: a talking-face clip played in real time through `livedub camera --source`, out to a
virtual camera (pyvirtualcam with an in-memory backend: no v4l2 here) and the real PulseAudio `livedub` sink,
whose monitor is recorded and transcribed back. Real whisper, Apertium, voices, mediapipe, PulseAudio."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import threading
import time

import av
import numpy as np
import pytest
import pyvirtualcam
import skimage.data
from loop_steps import LoopSteps
from webrtc_helpers import speech_track

from livedub.engines.audio import OUTPUT_RATE, SAMPLE_RATE, resample
from livedub.engines.face.landmarks import mouth_opening
from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker
from livedub.realtime.cli.camera import run_live
from livedub.realtime.config import DubConfig
from livedub.realtime.io.files import Mp4Writer
from livedub.realtime.pool import ModelPool
from livedub.realtime.runners.live import LiveOptions

FPS = 25
BACKEND = "livedub-test-memory"


class MemoryCamera:
    """A pyvirtualcam backend that keeps what a call app would receive: frame count, times and size."""

    opened: list[MemoryCamera] = []

    def __init__(self, *, width, height, fps, fourcc, device, **kw):
        self.width, self.height, self.fps = width, height, fps
        self.times: list[float] = []
        self.closed = False
        MemoryCamera.opened.append(self)

    def send(self, frame):
        assert frame.size == self.width * self.height * 3
        self.times.append(time.monotonic())

    def close(self):
        self.closed = True

    def device(self):
        return "memory://livedub"

    def native_fourcc(self):
        return None


pyvirtualcam.register_backend(BACKEND, MemoryCamera)


def face_frame(i: int, face: bool = True) -> np.ndarray:
    """The astronaut portrait in a 640×480 frame, drifting a little; without `face` an empty grey room."""
    frame = np.full((480, 640, 3), 200, np.uint8)
    if face:
        img = skimage.data.astronaut()[:, :, ::-1]
        dx = int(2 * np.sin(i / 10))
        frame[:, 64 + dx : 64 + dx + 512] = img[16:496]
    return frame


def make_clip(path, pcm16k: np.ndarray, no_face: tuple[float, float] | None = None) -> int:
    audio = resample(pcm16k, SAMPLE_RATE, OUTPUT_RATE)
    n = int(np.ceil(len(pcm16k) / SAMPLE_RATE * FPS))
    with Mp4Writer(path, 640, 480, FPS, audio, OUTPUT_RATE) as w:
        for i in range(n):
            t = i / FPS
            w.write(face_frame(i, face=not (no_face and no_face[0] <= t < no_face[1])))
    return n


class MonitorRecorder:
    """Records the `livedub` sink's monitor (what a call app hears as the microphone) once the sink exists."""

    def __init__(self, pulse, path):
        self.pulse, self.path = pulse, path
        self.proc: subprocess.Popen | None = None
        self.saw_sink = False
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self._stop.is_set():
            if "livedub\t" in self.pulse("list", "short", "sinks") or "\tlivedub\t" in self.pulse("list", "short", "sinks"):
                self.saw_sink = True
                with open(self.path, "wb") as out:
                    self.proc = subprocess.Popen(
                        ["parec", "-d", "livedub.monitor", "--format=float32le", f"--rate={SAMPLE_RATE}",
                         "--channels=1", "--raw", "--latency-msec=50"], stdout=out, stderr=subprocess.DEVNULL)
                    self._stop.wait()
                return
            time.sleep(0.05)

    def stop(self) -> np.ndarray:
        self._stop.set()
        self.thread.join(timeout=5)
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        return np.fromfile(self.path, np.float32) if self.path.exists() else np.zeros(0, np.float32)


@pytest.fixture(scope="module")
def live_run(tmp_path_factory, english_speech, pulse):
    """One real-time run of a 9 s clip (two sentences, the face leaving the picture for a second in between),
    its event-loop steps timed from before the session starts (models load, devices open) to after it closes
    (devices released, the recording written)."""
    import gc

    earlier = set(threading.enumerate())  # other tests' threads are theirs to release
    root = tmp_path_factory.mktemp("live")
    gap = np.zeros(int(0.9 * SAMPLE_RATE), np.float32)
    pcm = np.concatenate([gap, english_speech("The house is very big."), gap, gap,
                          english_speech("My brother has a red car."), gap, gap])
    clip = root / "talk_en.mp4"
    n_frames = make_clip(clip, pcm, no_face=(3.4, 4.4))
    config = DubConfig(target="es", source="en", engine="viseme")
    options = LiveOptions(source=clip, record=root / "live_es.mp4", virtual_camera_backend=BACKEND)
    pool = ModelPool(config.settings)
    monitor = MonitorRecorder(pulse, root / "monitor.f32")
    asyncio_log = AsyncioLog()
    MemoryCamera.opened.clear()
    try:
        with LoopSteps() as steps, asyncio_log:
            report = asyncio.run(run_live(config, pool, options, quiet=True))
            gc.collect()  # a task left pending is reported when it is collected
    finally:
        heard = monitor.stop()
        pool.close()
    threads = [t.name for t in threading.enumerate() if t.name.startswith("livedub-") and t not in earlier]
    return {"report": report, "camera": MemoryCamera.opened[0], "heard": heard, "steps": steps, "root": root,
            "frames": n_frames, "threads": threads, "sink_seen": monitor.saw_sink, "pulse": pulse,
            "asyncio_errors": asyncio_log.errors}


class AsyncioLog(logging.Handler):
    """asyncio's own complaints (a task destroyed while pending, an exception never retrieved)."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.errors: list[str] = []

    def emit(self, record):
        self.errors.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("asyncio").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("asyncio").removeHandler(self)


def test_virtual_camera_gets_every_frame_at_the_source_rate(live_run):
    report, cam = live_run["report"], live_run["camera"]
    assert (cam.width, cam.height, cam.fps) == (640, 480, FPS) and cam.closed
    times = np.array(cam.times)
    assert len(times) >= live_run["frames"] * 0.95, (len(times), live_run["frames"], report.dropped)
    during = times[: live_run["frames"]]  # the clip itself (then the last frame holds while the dub ends)
    rate = (len(during) - 1) / (during[-1] - during[0])
    assert rate == pytest.approx(FPS, rel=0.08), rate


def test_frames_keep_flowing_through_whisper_passes_and_a_face_leaving(live_run):
    """No frame gap above 2 frame intervals while speech, silence, whisper passes and a face-less second go
    by (what the call app's camera receives)."""
    report = live_run["report"]
    gaps = np.diff(np.array(live_run["camera"].times))
    assert gaps.max() <= 2.0 / FPS + 0.01, f"max gap {gaps.max() * 1000:.0f} ms ({report.dropped} dropped)"


def test_event_loop_never_blocks_from_start_to_close(live_run):
    """No loop step over 50 ms in the whole run: models loading, devices opening (pactl, the recorder's
    encoder), media flowing, the session finishing, devices closing."""
    steps = live_run["steps"]
    assert steps.steps > 1000  # the instrument saw the run
    assert not steps.slow, [str(s) for s in steps.slow[:8]]


def test_no_task_is_left_pending(live_run):
    assert not live_run["asyncio_errors"], live_run["asyncio_errors"][:3]


def test_the_livedub_microphone_speaks_spanish(live_run):
    assert live_run["sink_seen"]
    assert any(s.startswith("virtual microphone") for s in live_run["report"].sinks), live_run["report"].notices
    heard = live_run["heard"]
    assert len(heard) > SAMPLE_RATE * 3 and np.abs(heard).max() > 0.05
    # the microphone carries the translated clips, as long as they last: the live voice here is espeak-ng,
    # whose Spanish whisper-base hears too unevenly to check words by (DESIGN.md); the words are checked on
    # the clips themselves
    frame = SAMPLE_RATE // 50
    loud = np.sqrt(np.mean(heard[: len(heard) // frame * frame].reshape(-1, frame) ** 2, axis=1)) > 0.01
    spoken = sum(end - start for start, end, *_ in live_run["report"].clips)
    print(f"microphone: {loud.sum() / 50:.2f} s of speech for {spoken:.2f} s of clips")
    assert 0.5 * spoken <= loud.sum() / 50 <= 1.1 * spoken + 0.2, (loud.sum() / 50, spoken)
    said = " ".join(clip[2].lower() for clip in live_run["report"].clips)
    assert "casa" in said and ("hermano" in said or "coche" in said), said


def tone_a4() -> np.ndarray:
    """One second of 440 Hz: a whole number of cycles, so it loops without a click."""
    return (0.3 * np.sin(2 * np.pi * 440 * np.arange(OUTPUT_RATE) / OUTPUT_RATE)).astype(np.float32)


def test_audio_out_plays_into_a_sink_made_after_the_audio_library_loaded(pulse, tmp_path):
    """The sound server can start (or restart) after PortAudio has listed its devices; the virtual microphone
    must still get the audio, on the sink it names. A 440 Hz tone track played by AudioOut, recorded off the
    monitor."""
    import sounddevice  # noqa: F401  (loaded first, as in a long-running process)

    from livedub.realtime.io.devices import AudioOut, VirtualMicrophone

    mic = VirtualMicrophone("livedub_tone")
    path = tmp_path / "tone.f32"

    async def play() -> int:
        out = await asyncio.to_thread(AudioOut, sink=mic.name)
        out.play(speech_track(tone_a4(), OUTPUT_RATE))
        deadline = time.monotonic() + 10  # a fresh null sink may sleep up to 2 s (its idle latency) before it reads
        while out.blocks < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        blocks = out.blocks
        if blocks >= 10:
            with open(path, "wb") as f:
                rec = subprocess.Popen(["parec", "-d", f"{mic.monitor}", "--format=float32le",
                                        f"--rate={SAMPLE_RATE}", "--channels=1", "--raw", "--latency-msec=50"],
                                       stdout=f, stderr=subprocess.DEVNULL)
                await asyncio.sleep(1.2)
                rec.terminate()
                await asyncio.to_thread(rec.wait, 5)
        await out.aclose()
        return blocks

    try:
        assert asyncio.run(play()) >= 10, "the sink never took the stream"
    finally:
        mic.close()
    heard = np.fromfile(path, np.float32)
    assert len(heard) > SAMPLE_RATE * 0.5
    loud = heard[len(heard) // 4:]
    assert np.sqrt(np.mean(loud**2)) > 0.1, "no tone on the sink's monitor"
    spectrum = np.abs(np.fft.rfft(loud))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / len(loud) - 440) < 10
    assert "livedub_tone" not in pulse("list", "short", "sinks")


def test_microphone_is_a_track_of_blocks_on_the_session_clock(pulse):
    """The microphone (PortAudio on the PulseAudio server's default source) as a track: 20 ms frames, stamped
    on the session clock one after the other (sample-accurate), as fast as they are spoken (not faster)."""
    from livedub.realtime.io.devices import MicrophoneTrack

    async def listen():
        origin = time.monotonic()
        mic = await asyncio.to_thread(MicrophoneTrack, None, lambda: time.monotonic() - origin)
        try:
            started = time.monotonic()
            frames = [await mic.recv() for _ in range(50)]
            return frames, time.monotonic() - started, time.monotonic() - origin
        finally:
            await asyncio.to_thread(mic.close)

    frames, took, ended = asyncio.run(listen())
    stamps = np.array([float(f.pts * f.time_base) for f in frames])
    assert all(f.samples == OUTPUT_RATE // 50 and f.sample_rate == OUTPUT_RATE for f in frames)
    assert np.allclose(np.diff(stamps), 0.02, atol=1e-4), np.diff(stamps)
    assert 0 <= ended - stamps[-1] < 0.3, (ended, stamps[-1])  # the last block: just spoken, on the session clock
    assert took > 0.7, f"a second of audio came in {took:.2f} s"


def test_first_translation_starts_soon_after_the_phrase_ends(live_run):
    clips = live_run["report"].clips
    assert len(clips) >= 2
    start, _end, text, source_text, _src_start, src_end = clips[0]
    assert "house" in source_text.lower() and text
    assert start - src_end <= 3.0, f"onset {start - src_end:.2f} s"


def test_recorded_mouth_moves_only_while_translated_speech_plays(live_run):
    report = live_run["report"]
    assert report.recorded is not None and report.recorded.exists()
    tracker = MediapipeFaceTracker(smoothing=0.0)
    openings = []
    with av.open(str(report.recorded)) as c:
        assert c.streams.audio and float(c.streams.video[0].average_rate) == FPS
        for f in c.decode(c.streams.video[0]):
            face = tracker.track(f.to_ndarray(format="bgr24"))
            openings.append(mouth_opening(face.landmarks) if face and face.usable else np.nan)
    tracker.close()
    openings = np.array(openings)
    t = report.record_origin + np.arange(len(openings)) / FPS
    speaking = np.zeros(len(t), bool)
    for start, end, *_ in report.clips:
        speaking |= (t >= start - 0.15) & (t <= end + 0.25)
    silent = openings[~speaking]
    assert np.isfinite(openings).mean() > 0.7  # the face is tracked (it leaves for a second)
    assert np.nanmax(silent) - np.nanmin(silent) < 0.05  # a still mouth outside the dub
    assert np.nanmax(openings[speaking]) > np.nanmax(silent) + 0.1  # that opens when it speaks


def test_everything_is_released_at_the_end(live_run):
    assert not live_run["threads"], live_run["threads"]
    assert "livedub" not in live_run["pulse"]("list", "short", "sinks")  # the sink we made is gone


def test_calls_with_a_mouth_bank_never_block_the_loop(tmp_path, english_speech):
    """`--bank`: the first call learns the speaker's mouths and saves them when it ends; the next call loads
    them when it starts. Neither the load nor the save (nor anything else from start to close) holds the event
    loop over 50 ms."""
    from livedub.engines.lipsync.exemplar_bank import MouthBank

    gap = np.zeros(int(0.5 * SAMPLE_RATE), np.float32)
    clip = tmp_path / "short.mp4"
    make_clip(clip, np.concatenate([gap, english_speech("The house is very big."), gap]))
    bank = tmp_path / "me.npz"
    config = DubConfig(target="es", source="en", engine="exemplar", bank=bank)
    options = LiveOptions(source=clip, virtual_camera=False, virtual_mic=False)
    pool = ModelPool(config.settings)
    learned = []
    try:
        for _call in range(2):
            with LoopSteps() as steps:
                report = asyncio.run(run_live(config, pool, options, quiet=True))
            assert report.frames_out > 50
            assert not steps.slow, [str(s) for s in steps.slow[:8]]
            assert bank.exists(), "the bank was not saved when the call ended"
            learned.append(len(MouthBank.load(bank)))
    finally:
        pool.close()
    assert learned[0] > 0 and learned[1] >= learned[0], learned  # the second call started from the first's


@pytest.mark.slow
def test_a_long_monologue_keeps_lag_memory_and_queues_bounded(tmp_path, english_speech, pulse):
    """30 s without a pause (Spanish runs longer than English): the lag must not drift, nothing may pile up."""
    import psutil

    text = ("Today I want to tell you about the small town where I grew up and the people who lived there "
            "with us, and about the river that ran past our house and the old bridge that crossed it, and "
            "about my grandmother who baked bread every morning for the whole street and sold it at the market "
            "on Saturdays, while my grandfather repaired bicycles in the garage behind the kitchen and listened "
            "to the radio all afternoon.")
    speech = english_speech(text)
    while len(speech) < 30 * SAMPLE_RATE:
        speech = np.concatenate([speech, english_speech(text)])
    half_second = np.zeros(SAMPLE_RATE // 2, np.float32)
    pcm = np.concatenate([half_second, speech[: 32 * SAMPLE_RATE], half_second])
    clip = tmp_path / "monologue.mp4"
    make_clip(clip, pcm)
    samples: list[dict] = []
    config = DubConfig(target="es", source="en", engine="viseme")
    options = LiveOptions(source=clip, virtual_camera=False, virtual_mic=False, stats_every=1.0)
    pool = ModelPool(config.settings)
    proc = psutil.Process()

    async def main():
        from livedub.realtime.runners.live import LiveRun

        live = LiveRun(config, pool, options, on_stats=lambda s: samples.append({**s, "rss": proc.memory_info().rss}))
        return await live.run()

    try:
        report = asyncio.run(main())
    finally:
        pool.close()
    assert len(report.clips) >= 4
    during = [s for s in samples if s["lag_s"] is not None][: 30]
    lags = [s["lag_s"] for s in during]
    assert max(lags) <= 12.0, lags
    third = len(lags) // 3
    assert np.mean(lags[-third:]) <= np.mean(lags[:third]) + 4.0, lags  # no drift over the monologue
    assert max(s["units_waiting"] for s in samples) <= 3
    assert max(s["audio_pending_s"] for s in samples) <= 5.0
    rss = [s["rss"] for s in samples]
    assert rss[-1] - rss[len(rss) // 3] < 200 << 20, [r >> 20 for r in rss]


def _cli(*args, **kw):
    import sys

    return subprocess.Popen([sys.executable, "-m", "livedub.realtime.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_no_camera_is_one_clear_line():
    proc = _cli("camera", "--to", "es", "--camera", "/dev/video99", "--no-virtual-mic")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.startswith("livedub: error:")]
    assert len(lines) == 1 and "camera /dev/video99" in lines[0] and "Traceback" not in err, err


def test_sigterm_stops_cleanly_within_a_second(tmp_path, english_speech, pulse):
    import signal

    pcm = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), english_speech("The house is very big."),
                          np.zeros(SAMPLE_RATE * 20, np.float32)])
    clip = tmp_path / "long_pause.mp4"
    make_clip(clip, pcm)
    proc = _cli("camera", "--to", "es", "--from", "en", "--engine", "viseme", "--source", str(clip),
                "--no-virtual-camera", "-v")
    deadline = time.monotonic() + 180
    while "livedub" not in pulse("list", "short", "sinks"):  # the live part has started
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.2)
    time.sleep(3.0)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    while "livedub" in pulse("list", "short", "sinks") and time.monotonic() - sent < 10:
        time.sleep(0.02)
    released = time.monotonic() - sent
    _out, err = proc.communicate(timeout=30)
    exited = time.monotonic() - sent
    assert proc.returncode == 0 and "Traceback" not in err, err[-2000:]
    assert released < 1.5, f"devices released {released:.2f} s after SIGTERM"
    assert exited < 10, f"exited {exited:.2f} s after SIGTERM"
