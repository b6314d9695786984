"""`AudioRing`: the last seconds of the speaker's own voice, addressed by session time.

Used for `--keep-original` (the voice ducked under the dub), the speaker's pitch, and whisper's translate
task (a unit's own audio). A fixed circular buffer: pushing 20 ms never copies the whole history.
"""

from __future__ import annotations

import threading

import numpy as np

KEEP_S = 30.0  # seconds of the speaker's voice kept


class AudioRing:
    def __init__(self, rate: int, keep_s: float = KEEP_S):
        self.rate = int(rate)
        self._buf = np.zeros(int(keep_s * rate), np.float32)
        self._written = 0  # samples ever written; sample k of the stream lives at k % len(buf)
        self.start: float | None = None  # session time of stream sample 0
        self._lock = threading.Lock()

    def append(self, pcm: np.ndarray, pts: float) -> None:
        n, size = len(pcm), len(self._buf)
        with self._lock:
            if self.start is None:
                self.start = float(pts)
            if n >= size:
                pcm = pcm[-size:]
                self._written += n - size
                n = size
            at = self._written % size
            first = min(n, size - at)
            self._buf[at : at + first] = pcm[:first]
            self._buf[: n - first] = pcm[first:]
            self._written += n

    def window(self, t0: float, t1: float) -> np.ndarray:
        """Session time [t0, t1); silence where nothing was heard (or it is too old)."""
        n = max(int(round((t1 - t0) * self.rate)), 0)
        out = np.zeros(n, np.float32)
        with self._lock:
            if self.start is None:
                return out
            size = len(self._buf)
            a = int(round((t0 - self.start) * self.rate))
            lo, hi = max(a, self._written - size, 0), min(a + n, self._written)
            if hi > lo:
                out[lo - a : hi - a] = self._buf[np.arange(lo, hi) % size]
        return out

    def recent(self, seconds: float) -> np.ndarray:
        """The last `seconds` heard."""
        with self._lock:
            n = min(int(seconds * self.rate), self._written, len(self._buf))
            end = self._written % len(self._buf)
            if n <= end:
                return self._buf[end - n : end].copy()
            return np.concatenate([self._buf[len(self._buf) - (n - end) :], self._buf[:end]])
