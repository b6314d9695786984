"""`FacePath`: a frame in → its face tracked → the mouth redrawn from the timeline's audio at the frame's time.

It owns the session's face tracker and lip engine (built from the pool on first use, rebuilt when the engine
is switched mid-call) and the video worker that live frames run on (one thread per session: the engine's
per-speaker state needs no lock). A tracker or engine failure on a frame sends the frame out unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from livedub.engines.errors import LivedubError
from livedub.engines.face import Face, FaceTracker
from livedub.engines.lipsync import AudioTimeline, LipEngine
from livedub.engines.metrics import RollingStats, StageTimes

from ..config import DubConfig
from ..dubtrack import DubTrack
from ..pool import ModelPool
from ..workers import ModelWorker

log = logging.getLogger("livedub.face")

ErrorFn = Callable[[str, BaseException], None]
FrameSink = Callable[[np.ndarray, float], None]


class FacePath:
    def __init__(self, config: DubConfig, pool: ModelPool, timeline: AudioTimeline, *, fps: float, moving: bool,
                 times: StageTimes, latency: RollingStats, on_error: ErrorFn):
        self.config, self.pool, self.timeline = config, pool, timeline
        self.fps = float(fps)
        self.moving = moving  # faces come from moving video (the exemplar engine can learn mouths)
        self.times, self.latency, self.on_error = times, latency, on_error
        self.captions: DubTrack | None = None  # the track whose sentences are drawn (--captions)
        self.frames_in = 0
        self.frames_unchanged = 0  # frames sent as they came because tracking or the engine failed
        self._engine: LipEngine | None = None
        self._tracker: FaceTracker | None = None
        self.worker: ModelWorker | None = None

    # -- engines ------------------------------------------------------------------------------------

    @property
    def engine(self) -> LipEngine:
        if self._engine is None:
            self._engine = self.pool.lip_engine(self.config, video=self.moving)
        return self._engine

    @engine.setter
    def engine(self, engine: LipEngine) -> None:
        self._engine = engine

    @property
    def engine_built(self) -> LipEngine | None:
        """The engine if one was built (the bank to save), without building one."""
        return self._engine

    @property
    def tracker(self) -> FaceTracker:
        if self._tracker is None:
            self._tracker = self.pool.face_tracker(self.config, self.fps)
        return self._tracker

    def face_from(self, *, moving: bool) -> None:
        if moving != self.moving:
            self.moving = moving
            self._engine = None

    def set_engine(self, config: DubConfig) -> None:
        """Draw with the engine `config` names from the next frame on."""
        self.config = config
        self._engine = None

    def prefill_bank(self, frames: Sequence[np.ndarray], stamps: Sequence[float]) -> None:
        """Offer frames to the exemplar engine's bank before dubbing (the speaker's mouths from frame one)."""
        learn = getattr(self.engine, "learn", None)
        if learn is None:
            return
        tracker = self.pool.face_tracker(self.config, self.fps)  # its own: the session's starts at frame 0
        try:
            for frame, t in zip(frames, stamps, strict=True):
                learn([frame], [tracker.track(frame, timestamp=t)])
        finally:
            closer = getattr(tracker, "close", None)
            if closer is not None:
                closer()

    def warm_up(self) -> None:
        """Load the tracker and the engine on a blank frame (on the video worker, before media flows)."""
        blank = np.full((480, 640, 3), 128, np.uint8)
        face = self.tracker.track(blank, timestamp=-1.0)
        self.engine.render([blank], [face], [0.0], self.timeline)
        reset = getattr(self.tracker, "reset", None)
        if reset is not None:
            reset()

    # -- frames -------------------------------------------------------------------------------------

    def track_face(self, frame: np.ndarray, pts: float) -> Face | None:
        with self.times.stage("track"):
            try:
                return self.tracker.track(frame, timestamp=pts)
            except Exception as exc:  # a tracker failure is one frame without a face, never a stop
                self.on_error("track", exc)
                return None

    def render(self, frames: Sequence[np.ndarray], faces: Sequence[Face | None],
               stamps: Sequence[float]) -> list[np.ndarray]:
        """Redraw the mouths of a batch of frames for the timeline audio at their times."""
        with self.times.stage("lipsync", log):
            try:
                out = self.engine.render(frames, faces, stamps, self.timeline)
            except LivedubError:
                raise
            except Exception as exc:  # an engine error on a frame: the frame goes out unchanged
                self.on_error("lipsync", exc)
                self.frames_unchanged += len(frames)
                return [np.asarray(f) for f in frames]
        if self.captions is not None:
            out = [self._caption(f, t) for f, t in zip(out, stamps, strict=True)]
        return out

    def _caption(self, frame: np.ndarray, t: float) -> np.ndarray:
        from ..media.captions import draw_caption

        assert self.captions is not None
        clip = next((c for c in self.captions.clips[-3:] if c.start <= t < c.end + 1.0), None)
        return draw_caption(frame, clip.text) if clip is not None else frame

    def step(self, frame: np.ndarray, pts: float, then: FrameSink | None = None) -> np.ndarray:
        """One live frame (on the video worker): tracked, redrawn, then handed to `then` on the same thread."""
        started = time.perf_counter()
        self.frames_in += 1
        face = self.track_face(frame, pts)
        tracked = time.perf_counter()
        out = self.render([frame], [face], [pts])[0]
        self.latency.add("track", tracked - started)
        self.latency.add("lipsync", time.perf_counter() - tracked)
        if then is not None:
            then(out, pts)
        self.latency.add("video", time.perf_counter() - started)  # frame in → drawn frame handed over
        return out

    # -- lifecycle ----------------------------------------------------------------------------------

    def open_worker(self, name: str) -> ModelWorker:
        self.worker = ModelWorker(f"video-{name}", nice=0)
        return self.worker

    def close(self) -> None:
        """Stop the video worker (waits for the frame in flight), close the tracker, and release the engine's
        share of a model shared by sessions (the engine object stays: its mouth bank may still be saved)."""
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        for part in (self._tracker, self._engine):
            closer = getattr(part, "close", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()
        self._tracker = None
