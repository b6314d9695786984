"""Is the face still where its landmarks were measured? A cheap test that lets a tracker skip the mesh.

The face's box in grey, reduced to 48×48 by area averaging (sensor noise averages out), is compared with the
same box in the frame the landmarks came from; the lower half (mouth and jaw) is also judged on its own, so
lips moving in a still head count as motion. Measured on the carphone clip at 1280×720: a still face under
σ = 2 sensor noise differs by at most 0.28 grey levels (the mesh run again on it moves its points 0.7 px on
average: its own jitter, not motion); consecutive frames of the talking man differ by at least 1.1 (his
landmarks move 1 px or more). `STILL_GREY` sits between the two.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import Face

PATCH_PX = 48
STILL_GREY = 0.6  # mean |Δ grey| on the patch (or its lower half) under which the face has not moved
MAX_REUSE = 5  # frames in a row that may reuse one measurement before the mesh runs again


def face_patch(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The box's pixels in grey at PATCH_PX × PATCH_PX (float32), or None for a box too small to judge."""
    x1, y1, x2, y2 = box
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    grey = cv2.cvtColor(frame[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (PATCH_PX, PATCH_PX), interpolation=cv2.INTER_AREA).astype(np.float32)


def motion(patch: np.ndarray, reference: np.ndarray) -> float:
    """Mean grey change over the whole patch or over its lower half, whichever is larger."""
    diff = np.abs(patch - reference)
    return float(max(diff.mean(), diff[PATCH_PX // 2 :].mean()))


class StillFace:
    """The last measured face and its patch: `reuse(frame)` gives that face back while the frame shows it
    unmoved (at most `max_reuse` frames in a row, always judged against the measured frame, so slow drift
    adds up and ends the reuse)."""

    def __init__(self, threshold: float = STILL_GREY, max_reuse: int = MAX_REUSE):
        self.threshold = float(threshold)
        self.max_reuse = int(max_reuse)
        self.last_motion: float | None = None  # of the last frame judged (tests, diagnostics)
        self.reused = 0  # frames given the remembered face, since construction
        self.forget()

    def forget(self) -> None:
        self._face: Face | None = None
        self._reference: np.ndarray | None = None
        self._run = 0

    def remember(self, frame: np.ndarray, face: Face | None) -> None:
        """A freshly measured face (unusable or None: nothing to reuse)."""
        self.forget()
        if face is not None and face.usable:
            self._reference = face_patch(frame, face.box)
            self._face = face if self._reference is not None else None

    def reuse(self, frame: np.ndarray) -> Face | None:
        """The remembered face when `frame` shows it unmoved, else None (measure it again)."""
        self.last_motion = None
        if self._face is None or self._reference is None or self._run >= self.max_reuse:
            return None
        patch = face_patch(frame, self._face.box)
        if patch is None:
            return None
        self.last_motion = motion(patch, self._reference)
        if self.last_motion >= self.threshold:
            return None
        self._run += 1
        self.reused += 1
        return self._face
