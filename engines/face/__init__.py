"""Face tracking: the `Face` result, the `FaceTracker` interface, and backends (mediapipe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, eq=False)
class Face:
    """The tracked target face in one frame, in that frame's pixel coordinates.

    `landmarks` is the mediapipe face mesh, (478, 2) float32 x/y pixels (refined: 468 + irises).
    `usable` is False when the frame has no face good enough to edit (none, too small, strong profile);
    engines then pass the frame through untouched and `reason` says why.
    """

    box: tuple[int, int, int, int]  # x1, y1, x2, y2
    landmarks: np.ndarray
    yaw: float = 0.0  # degrees, 0 = frontal, sign = turning towards the image's right
    score: float = 1.0
    usable: bool = True
    reason: str = ""
    pitch: float = 0.0  # degrees, 0 ≈ level (mesh-relative, a few degrees of offset), sign = chin down


@runtime_checkable
class FaceTracker(Protocol):
    """Follows one target face through a stream of BGR uint8 frames (causal: no look-ahead)."""

    def track(self, frame_bgr: np.ndarray) -> Face | None:
        """The target face in this frame, or None when there is no face at all. Never raises on a frame."""
        ...

    def reset(self) -> None:
        """Forget the target (e.g. a new video)."""
        ...
