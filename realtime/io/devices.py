"""Devices as tracks: the camera and the microphone are sources, the virtual camera and the virtual microphone
(and any output device) are sinks that pull from a track.

Everything that can block (opening a device, `pactl`, PortAudio, a device write) runs on a thread: build these
objects with `asyncio.to_thread`, close them the same way, and each sink writes on its own thread. Where a
device cannot be had, the class raises `DeviceError` with one line saying why and how to get it; the live
runner carries on without it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from livedub.engines.audio import OUTPUT_RATE  # devices run at the rate of the translated output
from livedub.engines.errors import LivedubError

from .tracks import PTIME, REANCHOR_S, TrackPump, audio_frame, mono_float, video_frame

log = logging.getLogger("livedub.devices")

SINK_NAME = "livedub"  # the PulseAudio/PipeWire null sink; its monitor is the microphone call apps pick
MIC_NAME = "livedub_mic"  # the same monitor as a plain source (apps that hide monitors still list it)
V4L2_HINT = "sudo modprobe v4l2loopback exclusive_caps=1 card_label=livedub (Linux) or start OBS's virtual camera"
MIC_BUFFER_S = 2.0  # microphone audio kept while the loop is busy; older blocks are dropped (counted)
OUT_BUFFER_S = 0.12  # output audio waiting for a device; a device this far behind skips ahead


class DeviceError(LivedubError):
    """A device that cannot be opened here (one line: what and how to get it)."""


# -- sources ---------------------------------------------------------------------------------------------


class CameraTrack(MediaStreamTrack):
    """A camera by index or device path (OpenCV) as a video track, each frame stamped with its capture time on
    the session clock `now`. A thread reads the camera and keeps only the newest frame (`dropped` counts the
    ones never taken); when the camera stops answering the last frame repeats at the camera's rate and the
    camera is reopened every second. Opening blocks: build it off the event loop; `close()` likewise."""

    kind = "video"

    def __init__(self, device: str | int, now: Callable[[], float], *, width: int | None = None,
                 height: int | None = None, fps: float | None = None):
        super().__init__()
        import cv2

        self.device = int(device) if str(device).isdigit() else str(device)
        self.now = now
        self._cv2 = cv2
        self._want = (width, height, fps)
        self._cap = self._open()
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise DeviceError(f"camera {device}: opened but gives no picture (busy in another app?)")
        self.height, self.width = first.shape[:2]
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0) or (fps or 30.0)
        self._last: np.ndarray = first
        self._latest: av.VideoFrame | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._fresh = asyncio.Event()
        self._stop = threading.Event()
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
            ok, bgr = self._cap.read()
            if ok and bgr is not None:
                frame = video_frame(bgr, self.now())
                with self._lock:
                    if self._latest is not None:
                        self.dropped += 1  # the reader had not taken the previous one
                    self._latest, self._last = frame, bgr
                with contextlib.suppress(RuntimeError):  # the loop closed under us
                    self._loop.call_soon_threadsafe(self._fresh.set)
                continue
            if time.monotonic() - last_warn > 10:
                log.warning("camera %s stopped answering; sending the last frame and retrying", self.device)
                last_warn = time.monotonic()
            self._cap.release()
            self._stop.wait(1.0)
            with contextlib.suppress(DeviceError):
                self._cap = self._open()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._thread.start()
        while True:
            with self._lock:
                frame, self._latest = self._latest, None
            if frame is not None:
                self.delivered += 1
                return frame
            self._fresh.clear()
            try:
                await asyncio.wait_for(self._fresh.wait(), 2.0 / self.fps)
            except asyncio.TimeoutError:  # a camera that stopped answering: the last picture, now
                self.delivered += 1
                return video_frame(self._last, self.now())

    def close(self) -> None:
        """Stop reading and release the camera (blocks up to a couple of seconds: call it off the loop)."""
        self.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._cap.release()

    def stop(self) -> None:
        self._stop.set()
        super().stop()


class MicrophoneTrack(MediaStreamTrack):
    """A microphone (sounddevice: PortAudio; on Linux PulseAudio/PipeWire's `pulse` device) as an audio track
    of 20 ms blocks stamped on the session clock `now`. PortAudio's thread hands blocks over; nothing is
    dropped unless the loop falls `MIC_BUFFER_S` behind. Opening blocks: build it off the event loop."""

    kind = "audio"

    def __init__(self, device: str | int | None, now: Callable[[], float], *, rate: int = OUTPUT_RATE):
        super().__init__()
        try:
            import sounddevice as sd
        except OSError as exc:  # PortAudio missing
            raise DeviceError(f"no audio system: {exc}") from None
        self.device, self.now, self.rate = device, now, rate
        self._blocks: collections.deque = collections.deque(maxlen=int(MIC_BUFFER_S / PTIME))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = asyncio.Event()
        self._next: float | None = None  # session time of the next block
        self.dropped = 0
        try:
            self._stream = self._open(sd)
        except sd.PortAudioError:
            # PortAudio lists devices once, when first loaded: a sound server started since (PulseAudio
            # restarted, or started by a test after another test loaded sounddevice) is unseen until it
            # lists them again. Only the device list is refreshed; no other PortAudio stream is ours.
            try:
                sd._terminate()
                sd._initialize()
                self._stream = self._open(sd)
            except Exception as exc:
                raise DeviceError(f"microphone {device or '(default)'}: cannot be opened ({exc}); "
                                  "`livedub devices` lists microphones") from None
        except Exception as exc:
            raise DeviceError(f"microphone {device or '(default)'}: cannot be opened ({exc}); "
                              "`livedub devices` lists microphones") from None

    def _open(self, sd):
        stream = sd.InputStream(device=self.device, channels=1, samplerate=self.rate,
                                blocksize=int(self.rate * PTIME), dtype="float32", callback=self._callback)
        stream.start()
        return stream

    def _callback(self, indata, frames, _time, _status) -> None:  # PortAudio's thread
        """Blocks are stamped one after the other (sample-accurate), re-anchored on the clock if callbacks
        drift from it (an overrun, a device that paused)."""
        spoken = self.now() - frames / self.rate
        if self._next is None or abs(spoken - self._next) > REANCHOR_S:
            self._next = spoken
        if len(self._blocks) == self._blocks.maxlen:
            self.dropped += 1
        self._blocks.append((indata[:, 0].copy(), self._next))
        self._next += frames / self.rate
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._ready.set)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        self._loop = asyncio.get_running_loop()
        while not self._blocks:
            self._ready.clear()
            if self._blocks:
                break
            await self._ready.wait()
            if self.readyState != "live":
                raise MediaStreamError
        pcm, t = self._blocks.popleft()
        return audio_frame(pcm, self.rate, t)

    def close(self) -> None:
        """Stop the stream (PortAudio may block: call it off the loop)."""
        self.stop()
        with contextlib.suppress(Exception):
            self._stream.stop()
            self._stream.close()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


# -- sinks -----------------------------------------------------------------------------------------------


class PumpedSink:
    """A device fed from a track by a `TrackPump` on its own thread; closing stops the pump, then the device
    (off the event loop: closing a device can block)."""

    _pump: TrackPump | None = None

    def _pump_from(self, track: MediaStreamTrack, write, *, name: str, keep: int | None = None) -> None:
        self._pump = TrackPump(track, write, name=name, **({} if keep is None else {"keep": keep}))
        self._pump.start()

    @property
    def written(self) -> int:
        """Frames handed to the device so far."""
        return self._pump.written if self._pump is not None else 0

    async def aclose(self) -> None:
        if self._pump is not None:
            await self._pump.aclose()
        await asyncio.to_thread(self._close_device)

    def _close_device(self) -> None:
        raise NotImplementedError


class VirtualCamera(PumpedSink):
    """The outgoing video as a camera call apps can pick (pyvirtualcam: v4l2loopback, OBS). Opening blocks:
    build it off the event loop; `play(track)` then sends the newest frame of `track` on its own thread."""

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

    def play(self, track: MediaStreamTrack) -> None:
        self._pump_from(track, self._send, name="virtual-camera")

    def _send(self, frame: av.VideoFrame) -> None:
        self.camera.send(np.ascontiguousarray(frame.to_ndarray(format="bgr24")))

    @property
    def sent(self) -> int:
        return self.written

    def _close_device(self) -> None:
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
    microphone to pick in the call app. Runs `pactl`: build and `close()` it off the event loop."""

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


class AudioOut(PumpedSink):
    """Plays an audio track on an output: a PulseAudio/PipeWire `sink` written to directly (libpulse, paced
    by the server) or a PortAudio `device`. Opening blocks: build it off the event loop; `play(track)` then
    pulls the track (paced by the session clock) and writes on the device's thread. A device that falls
    `OUT_BUFFER_S` behind the clock skips ahead (a sound card clock against the monotonic clock, or a stall)."""

    def __init__(self, *, device: str | None = None, sink: str | None = None, rate: int = OUTPUT_RATE):
        self.rate = rate
        self._playback = None
        self._stream = None
        self._fifo = _SampleFifo(int(OUT_BUFFER_S * rate))
        if sink is not None:
            from .pulse import PulseError, PulsePlayback

            try:
                self._playback = PulsePlayback(sink, rate=rate)
            except PulseError as exc:
                raise DeviceError(str(exc)) from None
        else:
            self._open_portaudio(device)

    def _open_portaudio(self, device: str | None) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:
            raise DeviceError(f"no audio system: {exc}") from None

        def callback(outdata, frames, _time, _status):
            outdata[:, 0] = self._fifo.take(frames)

        try:
            self._stream = sd.OutputStream(device=device, channels=1, samplerate=self.rate,
                                           blocksize=int(self.rate * PTIME), dtype="float32", callback=callback)
            self._stream.start()
        except Exception as exc:
            raise DeviceError(f"audio output {device or '(default)'}: cannot be opened ({exc})") from None

    def play(self, track: MediaStreamTrack) -> None:
        self._pump_from(track, self._write, name="audio-out", keep=max(int(OUT_BUFFER_S / PTIME), 1))

    def _write(self, frame: av.AudioFrame) -> None:
        pcm = mono_float(frame)
        if frame.sample_rate != self.rate:
            from livedub.engines.audio import resample

            pcm = resample(pcm, frame.sample_rate, self.rate)
        if self._playback is not None:
            self._playback.write(pcm)  # blocks while the server's buffer is full: the sink's pace
        else:
            self._fifo.put(pcm)

    @property
    def blocks(self) -> int:
        """Blocks handed to the device so far."""
        return self.written

    def _close_device(self) -> None:
        if self._playback is not None:
            self._playback.close()
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()


class _SampleFifo:
    """Samples between a writer thread and PortAudio's callback; past `keep` samples the oldest go."""

    def __init__(self, keep: int):
        self._buf = np.zeros(0, np.float32)
        self._keep = keep
        self._lock = threading.Lock()

    def put(self, pcm: np.ndarray) -> None:
        with self._lock:
            self._buf = np.concatenate([self._buf, pcm])[-self._keep :]

    def take(self, n: int) -> np.ndarray:
        with self._lock:
            out, self._buf = self._buf[:n], self._buf[n:]
        return np.pad(out, (0, n - len(out)))


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
