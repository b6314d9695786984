"""Devices: camera, microphone, a video file played as both, the virtual camera, the virtual microphone.

Each only moves media in or out of a session. Sources call `on_frame(frame, pts)` / `on_audio(pcm, pts,
rate)` with session times; sinks take frames as they are produced (the virtual camera, paced by the source) or
pull translated audio by the session clock (the virtual microphone). Where a device cannot be had, the
class raises `DeviceError` with one line saying why and how to get it; the live runner carries on without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from livedub.engines.errors import LivedubError

log = logging.getLogger("livedub.devices")

MIC_RATE = 48_000
SINK_NAME = "livedub"  # the PulseAudio/PipeWire null sink; its monitor is the microphone call apps pick
MIC_NAME = "livedub_mic"  # the same monitor as a plain source (apps that hide monitors still list it)
V4L2_HINT = "sudo modprobe v4l2loopback exclusive_caps=1 card_label=livedub (Linux) or start OBS's virtual camera"

FrameFn = Callable[[np.ndarray, float], Awaitable[None]]
AudioFn = Callable[[np.ndarray, float, int], None]


class DeviceError(LivedubError):
    """A device that cannot be opened here (one line: what and how to get it)."""


# -- sources ---------------------------------------------------------------------------------------------


class FileSource:
    """A video file played in real time as camera + microphone (demos, tests, benchmarks).

    Frames are delivered at their pts on the session clock; a frame whose time has already passed by more
    than a frame interval when it is due is dropped (counted), as a camera would drop it.
    """

    def __init__(self, path: str | os.PathLike, *, audio_chunk_s: float = 0.02):
        from livedub.engines.audio import decode_audio

        from .files import FaceVideo

        self.path = Path(path)
        self.video = FaceVideo(self.path)
        if self.video.info.is_image:
            raise LivedubError(f"{self.path}: --source needs a video with speech, not a photo")
        self.fps = self.video.info.fps
        self.width, self.height = self.video.info.width, self.video.info.height
        self.audio = decode_audio(self.path, MIC_RATE) if self.video.info.has_audio else np.zeros(0, np.float32)
        self.duration = max(self.video.info.duration, len(self.audio) / MIC_RATE)
        self.audio_chunk = max(int(audio_chunk_s * MIC_RATE), 1)
        self.dropped = 0
        self.delivered = 0

    async def run(self, now: Callable[[], float], on_frame: FrameFn, on_audio: AudioFn) -> None:
        """Play the whole file from session time `now()`; returns when both tracks have been delivered."""
        t0 = now()
        await asyncio.gather(self._video(t0, now, on_frame), self._audio(t0, now, on_audio))

    async def _video(self, t0: float, now: Callable[[], float], on_frame: FrameFn) -> None:
        from .files import prefetch

        interval = 1.0 / self.fps
        frames = prefetch(self.video.frames(self.video.info.frames), size=4)
        loop = asyncio.get_running_loop()
        i = 0
        while True:
            frame = await loop.run_in_executor(None, next, frames, None)
            if frame is None:
                return
            pts = t0 + i / self.fps
            i += 1
            wait = pts - now()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -interval:
                self.dropped += 1
                continue
            self.delivered += 1
            await on_frame(frame, pts)

    async def _audio(self, t0: float, now: Callable[[], float], on_audio: AudioFn) -> None:
        pos = 0
        while pos < len(self.audio):
            due = t0 + pos / MIC_RATE
            wait = due - now()
            if wait > 0:
                await asyncio.sleep(wait)
            n = self.audio_chunk
            on_audio(self.audio[pos : pos + n], due, MIC_RATE)
            pos += n


class CameraSource:
    """A camera by index or device path (OpenCV). Reads on its own thread and keeps only the latest frame, so
    a slow consumer never builds a queue; when the camera stops answering the last frame is repeated and the
    camera is reopened every second."""

    def __init__(self, device: str | int = 0, *, width: int | None = None, height: int | None = None,
                 fps: float | None = None):
        import cv2

        self.device = int(device) if str(device).isdigit() else str(device)
        self._cv2 = cv2
        self._want = (width, height, fps)
        self._cap = self._open()
        ok, frame = self._cap.read()
        if not ok or frame is None:
            self._cap.release()
            raise DeviceError(f"camera {device}: opened but gives no picture (busy in another app?)")
        self.height, self.width = frame.shape[:2]
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or (fps or 30.0)
        self._latest: tuple[np.ndarray, float] | None = None
        self._stop = threading.Event()
        self._fresh = threading.Event()
        self._thread = threading.Thread(target=self._read, name="livedub-camera", daemon=True)
        self.dropped = 0
        self.delivered = 0

    def _open(self):
        cap = self._cv2.VideoCapture(self.device)
        if not cap.isOpened():
            raise DeviceError(f"camera {self.device}: cannot be opened (none there, or busy in another app); "
                              "`livedub devices` lists cameras")
        w, h, fps = self._want
        if w and h:
            cap.set(self._cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(self._cv2.CAP_PROP_FRAME_HEIGHT, h)
        if fps:
            cap.set(self._cv2.CAP_PROP_FPS, fps)
        return cap

    def _read(self) -> None:
        last_warn = 0.0
        while not self._stop.is_set():
            ok, frame = self._cap.read()
            if ok and frame is not None:
                if self._fresh.is_set():
                    self.dropped += 1  # the consumer had not taken the previous one
                self._latest = (frame, time.monotonic())
                self._fresh.set()
                continue
            if time.monotonic() - last_warn > 10:
                log.warning("camera %s stopped answering; sending the last frame and retrying", self.device)
                last_warn = time.monotonic()
            self._cap.release()
            time.sleep(1.0)
            with contextlib.suppress(DeviceError):
                self._cap = self._open()

    async def run(self, now: Callable[[], float], on_frame: FrameFn, on_audio: AudioFn,
                  stop: asyncio.Event | None = None) -> None:
        """Deliver frames until `stop`; a dead camera repeats its last frame at the camera's rate."""
        self._thread.start()
        loop = asyncio.get_running_loop()
        offset = now() - time.monotonic()  # camera stamps (monotonic) → session time
        interval = 1.0 / self.fps
        try:
            while stop is None or not stop.is_set():
                got = await loop.run_in_executor(None, self._fresh.wait, 2 * interval)
                if got:
                    self._fresh.clear()
                frame, stamp = self._latest if self._latest else (None, 0.0)
                if frame is None:
                    continue
                self.delivered += 1
                await on_frame(frame, stamp + offset if got else now())
        finally:
            self._stop.set()
            self._thread.join(timeout=2)
            self._cap.release()


class MicSource:
    """A microphone through sounddevice (PortAudio; on Linux PulseAudio/PipeWire's `pulse` device)."""

    def __init__(self, device: str | int | None = None, *, rate: int = MIC_RATE, block_s: float = 0.02):
        try:
            import sounddevice as sd
        except OSError as exc:  # PortAudio missing
            raise DeviceError(f"no audio system: {exc}") from None
        self._sd = sd
        self.device = device
        self.rate = rate
        self.block = int(rate * block_s)
        self._stream = None

    def start(self, now: Callable[[], float], on_audio: AudioFn) -> None:
        def callback(indata, frames, _time, status):
            on_audio(indata[:, 0].copy(), now() - frames / self.rate, self.rate)

        try:
            self._stream = self._sd.InputStream(device=self.device, channels=1, samplerate=self.rate,
                                                blocksize=self.block, dtype="float32", callback=callback)
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"microphone {self.device or '(default)'}: cannot be opened ({exc}); "
                              "`livedub devices` lists microphones") from None

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()
            self._stream = None


# -- sinks -----------------------------------------------------------------------------------------------


class VirtualCamera:
    """The outgoing video as a camera call apps can pick (pyvirtualcam: v4l2loopback, OBS)."""

    def __init__(self, width: int, height: int, fps: float, *, backend: str | None = None,
                 device: str | None = None):
        import pyvirtualcam

        try:
            self.camera = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.BGR,
                                              backend=backend, device=device)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DeviceError(f"no virtual camera ({first}): {V4L2_HINT}") from None
        self.name = self.camera.device
        self.sent = 0

    def send(self, frame: np.ndarray, pts: float) -> None:
        self.camera.send(np.ascontiguousarray(frame))
        self.sent += 1

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.camera.close()


def _pactl(*args: str, check: bool = True) -> str:
    exe = shutil.which("pactl")
    if exe is None:
        raise DeviceError("no PulseAudio/PipeWire tools (pactl): install pulseaudio-utils or pipewire-pulse")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=10)
    if check and proc.returncode != 0:
        raise DeviceError(f"pactl {' '.join(args)}: {proc.stderr.strip() or 'failed'} (is PulseAudio running?)")
    return proc.stdout


def pulse_running() -> bool:
    try:
        _pactl("info")
        return True
    except DeviceError:
        return False


class VirtualMicrophone:
    """A PulseAudio/PipeWire null sink named `livedub` (made if absent, removed on close if we made it).
    Translated audio is written into it; its monitor (`livedub.monitor`, also offered as `livedub_mic`) is the
    microphone to pick in the call app."""

    def __init__(self, name: str = SINK_NAME):
        self.name = name
        self._modules: list[str] = []
        sinks = _pactl("list", "short", "sinks")
        if not any(line.split("\t")[1:2] == [name] for line in sinks.splitlines()):
            self._modules.append(_pactl("load-module", "module-null-sink", f"sink_name={name}",
                                        f"sink_properties=device.description={name}").strip())
            sources = _pactl("list", "short", "sources")
            if not any(line.split("\t")[1:2] == [MIC_NAME] for line in sources.splitlines()):
                with contextlib.suppress(DeviceError):
                    self._modules.append(_pactl(
                        "load-module", "module-remap-source", f"master={name}.monitor", f"source_name={MIC_NAME}",
                        "source_properties=device.description=livedub-microphone").strip())
        self.made = bool(self._modules)

    @property
    def monitor(self) -> str:
        return f"{self.name}.monitor"

    def close(self) -> None:
        for module in reversed(self._modules):
            with contextlib.suppress(DeviceError):
                _pactl("unload-module", module)
        self._modules = []


class AudioOut:
    """Plays session audio on an output device, pulled by the session clock (never ahead of the mouth).

    `render(t0, t1)` gives the PCM for session time [t0, t1); each block asked for follows the last one, and
    the cursor is re-aligned to `now() - delay()` when the two drift apart by more than `slack_s` (a sound
    card clock against the monotonic clock, or a stall). A PulseAudio/PipeWire `sink` is written to directly
    (libpulse, paced by the server); a `device` is opened through PortAudio.
    """

    def __init__(self, render: Callable[[float, float], np.ndarray], now: Callable[[], float],
                 delay: Callable[[], float], *, device: str | None = None, sink: str | None = None,
                 rate: int = MIC_RATE, block_s: float = 0.02, slack_s: float = 0.12):
        self.render, self.now, self.delay = render, now, delay
        self.rate, self.slack_s = rate, slack_s
        self.block = int(rate * block_s)
        self._cursor: float | None = None
        self.blocks = 0
        self._stream = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        if sink is not None:
            self._start_pulse(sink)
        else:
            self._start_portaudio(device)

    def next_block(self, frames: int) -> np.ndarray:
        """The next `frames` samples of session audio, on the cursor kept beside the session clock."""
        target = self.now() - self.delay()
        if self._cursor is None or abs(self._cursor - target) > self.slack_s:
            self._cursor = target
        t0 = self._cursor
        self._cursor = t0 + frames / self.rate
        pcm = self.render(t0, self._cursor)
        out = np.zeros(frames, np.float32)
        out[: min(frames, len(pcm))] = pcm[:frames]
        self.blocks += 1
        return out

    def _start_pulse(self, sink: str) -> None:
        from .pulse import PulseError, PulsePlayback

        try:
            playback = PulsePlayback(sink, rate=self.rate)
        except PulseError as exc:
            raise DeviceError(str(exc)) from None

        def play():
            try:
                while not self._stop.is_set():
                    playback.write(self.next_block(self.block))
            except PulseError as exc:
                log.warning("virtual microphone stopped: %s", exc)
            finally:
                playback.close()

        self._thread = threading.Thread(target=play, name="livedub-audio-out", daemon=True)
        self._thread.start()

    def _start_portaudio(self, device: str | None) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:
            raise DeviceError(f"no audio system: {exc}") from None

        def callback(outdata, frames, _time, status):
            outdata[:, 0] = self.next_block(frames)

        try:
            self._stream = sd.OutputStream(device=device, channels=1, samplerate=self.rate, blocksize=self.block,
                                           dtype="float32", callback=callback)
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"audio output {device or '(default)'}: cannot be opened ({exc})") from None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()


class Recorder:
    """`--record OUT.mp4`: exactly what the other side gets — each outgoing frame at its source pts, and the
    translated audio on the same timeline. Video is encoded as it comes; audio is kept in a WAV beside it and
    muxed in when the session ends; the mp4 appears only then (atomically)."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, *, rate: int = 48_000):
        from ..outputs import partial_path
        from .files import Mp4Writer

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fps, self.rate = float(fps), rate
        self._video_tmp = partial_path(self.path.with_name(f"{self.path.stem}.video.mp4"))
        self._audio_tmp = partial_path(self.path.with_name(f"{self.path.stem}.audio.wav"))
        self._writer = Mp4Writer(self._video_tmp, width, height, fps, None)
        self._wav = wave.open(str(self._audio_tmp), "wb")  # noqa: SIM115 (closed in close())
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)
        self._t0: float | None = None
        self._next_frame = 0
        self._last: np.ndarray | None = None
        self._audio_until = 0.0
        self.frames = 0

    @property
    def origin(self) -> float | None:
        """Session time of the first frame (time 0 of the file)."""
        return self._t0

    def send(self, frame: np.ndarray, pts: float) -> None:
        """Frame at session time `pts`; gaps repeat the last frame so the file keeps its rate and timeline."""
        if self._t0 is None:
            self._t0 = pts
        index = int(round((pts - self._t0) * self.fps))
        while self._last is not None and self._next_frame < index:
            self._writer.write(self._last)
            self._next_frame += 1
        if index < self._next_frame:
            return  # two frames for one slot: keep the first
        self._writer.write(frame)
        self._next_frame += 1
        self._last = frame
        self.frames += 1

    def add_audio(self, render: Callable[[float, float], np.ndarray], until: float) -> None:
        """Append the session's output audio up to session time `until` (call as time goes by)."""
        if self._t0 is None or until <= self._t0 + self._audio_until:
            return
        t0 = self._t0 + self._audio_until
        pcm = render(t0, until)
        self._wav.writeframes((np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes())
        self._audio_until = until - self._t0

    def close(self, render: Callable[[float, float], np.ndarray] | None = None, *, keep: bool = True) -> Path | None:
        """Finish the file (`keep=False`: discard it, nothing left behind)."""
        try:
            if render is not None and self._t0 is not None:
                self.add_audio(render, self._t0 + self._next_frame / self.fps)
            self._writer.close()
            self._wav.close()
            if keep and self.frames:
                from livedub.engines.audio import decode_audio

                from ..outputs import atomic_output
                from .files import remux_with_audio

                audio = decode_audio(self._audio_tmp, self.rate)
                with atomic_output(self.path) as tmp:
                    remux_with_audio(self._video_tmp, audio, self.rate, tmp)
                return self.path
            return None
        finally:
            self._video_tmp.unlink(missing_ok=True)
            self._audio_tmp.unlink(missing_ok=True)


# -- listing ---------------------------------------------------------------------------------------------


def list_devices() -> dict:
    """Cameras, microphones, outputs, and whether a virtual camera and microphone can be had."""
    out: dict = {"cameras": [], "microphones": [], "outputs": [], "virtual_camera": None, "virtual_microphone": None}
    for dev in sorted(Path("/sys/class/video4linux").glob("video*")) if Path("/sys/class/video4linux").exists() else []:
        name = (dev / "name").read_text().strip() if (dev / "name").exists() else "?"
        out["cameras"].append({"device": f"/dev/{dev.name}", "name": name, "loopback": "loopback" in name.lower()
                               or "livedub" in name.lower() or "dummy" in name.lower()})
    try:
        import sounddevice as sd

        for i, dev in enumerate(sd.query_devices()):
            if dev["max_input_channels"] > 0:
                out["microphones"].append({"index": i, "name": dev["name"]})
            if dev["max_output_channels"] > 0:
                out["outputs"].append({"index": i, "name": dev["name"]})
    except Exception as exc:  # no PortAudio, no sound server
        out["audio_error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    loopbacks = [c["device"] for c in out["cameras"] if c["loopback"]]
    out["virtual_camera"] = (f"yes: {loopbacks[0]}" if loopbacks else f"no v4l2loopback device: {V4L2_HINT}")
    out["virtual_microphone"] = ("yes: PulseAudio/PipeWire (a null sink 'livedub' is made while livedub runs)"
                                 if pulse_running() else "no PulseAudio/PipeWire server running")
    return out
