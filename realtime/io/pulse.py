"""Playback straight into a named PulseAudio/PipeWire sink through libpulse-simple (ctypes).

Why not PortAudio: PortAudio lists its devices once, when it is first loaded; a sound server started later
(or restarted) is invisible to it, and it can only reach a sink through its ALSA `pulse` plugin and the
process-wide PULSE_SINK variable. libpulse connects when asked and names the sink itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util

import numpy as np

from livedub.engines.errors import LivedubError

PA_STREAM_PLAYBACK = 1
PA_SAMPLE_FLOAT32LE = 5
_DEFAULT = 0xFFFFFFFF  # (uint32_t) -1: let the server choose


class PulseError(LivedubError):
    """libpulse is missing or the server refused the stream."""


class _SampleSpec(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("rate", ctypes.c_uint32), ("channels", ctypes.c_uint8)]


class _BufferAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint32) for name in ("maxlength", "tlength", "prebuf", "minreq", "fragsize")]


def _load(name: str) -> ctypes.CDLL:
    path = ctypes.util.find_library(name)
    if path is None:
        raise PulseError(f"lib{name} not found: install libpulse0 (PulseAudio or PipeWire's pulse layer)")
    return ctypes.CDLL(path)


class PulsePlayback:
    """A mono float32 playback stream into `sink`. `write` blocks while the server's buffer (about
    `latency_s` of audio) is full, so a loop that writes block after block runs at the sink's pace."""

    def __init__(self, sink: str, *, rate: int, latency_s: float = 0.06, app: str = "livedub",
                 stream: str = "translated speech"):
        self._lib = _load("pulse-simple")
        self._pulse = _load("pulse")
        self._pulse.pa_strerror.restype = ctypes.c_char_p
        self._lib.pa_simple_new.restype = ctypes.c_void_p
        self._lib.pa_simple_new.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                                            ctypes.c_char_p, ctypes.POINTER(_SampleSpec), ctypes.c_void_p,
                                            ctypes.POINTER(_BufferAttr), ctypes.POINTER(ctypes.c_int)]
        self._lib.pa_simple_write.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                              ctypes.POINTER(ctypes.c_int)]
        self._lib.pa_simple_free.argtypes = [ctypes.c_void_p]
        spec = _SampleSpec(PA_SAMPLE_FLOAT32LE, rate, 1)
        target = int(rate * latency_s) * 4
        attr = _BufferAttr(_DEFAULT, target, _DEFAULT, _DEFAULT, _DEFAULT)
        error = ctypes.c_int(0)
        self._handle = self._lib.pa_simple_new(None, app.encode(), PA_STREAM_PLAYBACK, sink.encode(),
                                               stream.encode(), ctypes.byref(spec), None, ctypes.byref(attr),
                                               ctypes.byref(error))
        if not self._handle:
            raise PulseError(f"PulseAudio sink {sink}: {self._why(error)}")
        self.sink, self.rate = sink, rate

    def _why(self, error: ctypes.c_int) -> str:
        return self._pulse.pa_strerror(error.value).decode(errors="replace")

    def write(self, pcm: np.ndarray) -> None:
        if self._handle is None:
            raise PulseError(f"PulseAudio sink {self.sink}: stream closed")
        data = np.ascontiguousarray(pcm, dtype="<f4")
        error = ctypes.c_int(0)
        if self._lib.pa_simple_write(self._handle, data.ctypes.data, data.nbytes, ctypes.byref(error)) < 0:
            raise PulseError(f"PulseAudio sink {self.sink}: {self._why(error)}")

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            self._lib.pa_simple_free(handle)
