"""`FaceTracker` backed by mediapipe 0.10.21: face detection picks the target, face mesh follows it.

Per frame the tracker runs only the face mesh, on a square crop around the target (so another face in
the frame cannot steal the mesh and a small face fills the model's input). Face detection (short range,
then full range for small faces in 720p and up) runs on the first frame, every `redetect_every` frames to
re-anchor the target, and whenever the mesh loses it. Landmarks are smoothed causally (One Euro filter).
While the face has not moved since its landmarks were measured (`stillness`: a 48×48 grey patch compared
with the measured frame's), those landmarks are reused for up to a few frames instead of running the mesh.
Every failure inside mediapipe or on an odd frame ends as None or an unusable `Face`, never an exception.
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np

from . import Face
from . import landmarks as lmk
from .smoothing import OneEuroFilter
from .stillness import StillFace

log = logging.getLogger("livedub.face")

CROP_FROM_DETECTION = 2.2  # crop side / detection box side (detection boxes stop at the mouth)
CROP_FROM_MESH = 1.7  # crop side / landmark box side (forehead to chin)
DETECT_PX = 640  # whole-frame detection runs on a copy at most this wide (see `_detect`)
MAX_CROP_PX = 384  # larger crops are scaled down: the mesh model sees 192×192 / 256×256 anyway
TILE_PX, TILE_OVERLAP = 480, 128  # tiled full-range search for small faces in large frames
FORGET_AFTER = 30  # frames without a face before the old target's position stops biasing the choice
_YAW_PAIRS = ((234, 454), (127, 356), (93, 323), (33, 263))  # image-left / image-right symmetric points


def as_bgr_uint8(frame: object) -> np.ndarray | None:
    """A contiguous BGR uint8 image from what callers pass (gray, BGRA, float, uint16), or None."""
    try:
        img = np.asarray(frame)
    except Exception:
        return None
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or img.shape[0] < 16 or img.shape[1] < 16:
        return None
    if img.ndim == 3 and img.shape[2] not in (3, 4):
        return None
    if img.dtype != np.uint8:
        if img.dtype == np.bool_:
            img = img.astype(np.uint8) * 255
        elif np.issubdtype(img.dtype, np.floating):
            img = np.nan_to_num(img.astype(np.float32))
            peak = float(img.max()) if img.size else 0.0
            img = np.clip(img * (255.0 if peak <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        elif img.dtype == np.uint16:
            img = (img >> 8).astype(np.uint8)
        elif np.issubdtype(img.dtype, np.integer):
            img = np.clip(img, 0, 255).astype(np.uint8)
        else:
            return None
    import cv2

    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / max(union, 1e-6))


def estimate_yaw(points3d: np.ndarray) -> float:
    """Head yaw in degrees from mesh depth: >0 when the face turns towards the image's right.

    The mesh gives each point a depth on the same scale as x; across symmetric pairs (cheeks, temples,
    eye corners) the angle of the left→right vector in the x–z plane is the head's rotation.
    """
    left = points3d[[a for a, _ in _YAW_PAIRS]]
    right = points3d[[b for _, b in _YAW_PAIRS]]
    d = (right - left).mean(axis=0)
    return float(math.degrees(math.atan2(d[2], d[0])))


def estimate_pitch(points3d: np.ndarray) -> float:
    """Head pitch in degrees from mesh depth: >0 when the face tilts down (chin towards the chest).

    The forehead-to-nose-base line (skull points: speech does not move them) leans in the y–z plane when
    the head nods; 0 is where that line stands upright in the mesh, which sits within a few degrees of
    looking straight ahead. Consumers compare pitches of one speaker, so that offset cancels.
    """
    top, base = points3d[lmk.FOREHEAD], points3d[lmk.NOSE_BOTTOM]
    d = base - top
    return float(math.degrees(math.atan2(d[2], d[1])))


class MediapipeFaceTracker:
    """Tracks one target face; see the module docstring for the per-frame plan.

    `smoothing` is 0 (raw landmarks) to 1 (heavy); 0.5 suits 25–30 fps webcams. `redetect_every` is in
    frames. Faces narrower than `min_face_px` or turned further than `max_yaw_deg` come back unusable.
    `reuse_still` lets a still face keep its measured landmarks (see `stillness`).
    """

    def __init__(
        self, *, min_face_px: int = 48, max_yaw_deg: float = 45.0, smoothing: float = 0.5,
        redetect_every: int = 15, min_confidence: float = 0.5, fps: float = 30.0,
        fixed_box: tuple[int, int, int, int] | None = None, reuse_still: bool = True,
    ):
        import mediapipe as mp  # ~1 s import; deferred so `livedub.engines.face` stays light

        self.min_face_px = int(min_face_px)
        self.max_yaw_deg = float(max_yaw_deg)
        self.redetect_every = max(1, int(redetect_every))
        self.fps = float(fps)
        # a user-given box (x1, y1, x2, y2) replaces detection: the mesh runs inside it every frame
        self.fixed_box = None if fixed_box is None else np.asarray(fixed_box, dtype=np.float64)
        s = min(max(float(smoothing), 0.0), 1.0)
        self._filter = OneEuroFilter(10 ** (1.0 - 2.0 * s), beta=6.0, d_cutoff=2.0) if s > 0 else None
        self.still = StillFace() if reuse_still else None
        fd = mp.solutions.face_detection
        self._detectors = [
            fd.FaceDetection(model_selection=0, min_detection_confidence=min_confidence),
            fd.FaceDetection(model_selection=1, min_detection_confidence=min_confidence),
        ]
        # static_image_mode: each crop is a fresh image; our own tracker moves the crop, so mediapipe's
        # internal tracking (which assumes a fixed camera frame) would only fight it.
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=1, refine_landmarks=True,
            min_detection_confidence=min_confidence,
        )
        self.reset()

    def reset(self) -> None:
        """Forget the target, the smoothing state and the frame count (e.g. a new video)."""
        self._box: np.ndarray | None = None  # target box, float x1 y1 x2 y2 (frame px)
        self._score = 0.0
        self._since_detect = 0
        self._since_tiles = 1 << 30  # the first face-less frame may search tiles at once
        self._lost = 0
        self._index = 0
        self._last_t: float | None = None
        if self._filter is not None:
            self._filter.reset()
        if self.still is not None:
            self.still.forget()

    def close(self) -> None:
        """Release mediapipe graphs now rather than at garbage collection."""
        for graph in (*self._detectors, self._mesh):
            with contextlib.suppress(Exception):
                graph.close()

    def track(self, frame_bgr: np.ndarray, timestamp: float | None = None) -> Face | None:
        """The target face in this frame, or None when there is none. `timestamp` (s) defaults to
        frame count / fps and only tunes the smoothing. Never raises."""
        t = timestamp if timestamp is not None else self._index / self.fps
        self._index += 1
        if self._last_t is not None and t <= self._last_t:
            t = self._last_t + 1.0 / self.fps
        self._last_t = t
        try:
            img = as_bgr_uint8(frame_bgr)
            if img is None:
                return None
            return self._track(img, t)
        except Exception as exc:  # mediapipe can fail on odd inputs; a frame must never stop a stream
            log.warning("face tracking failed on a frame (%s); passing it through", exc)
            self._forget_motion()
            return None

    # -- per-frame plan ---------------------------------------------------------------------------

    def _track(self, img: np.ndarray, t: float) -> Face | None:
        if self.still is None:
            return self._measure(img, t)
        if self._since_detect < self.redetect_every or self.fixed_box is not None:  # no re-anchoring due
            face = self.still.reuse(img)
            if face is not None:
                self._since_detect += 1
                return face
        face = self._measure(img, t)
        self.still.remember(img, face)
        return face

    def _measure(self, img: np.ndarray, t: float) -> Face | None:
        if self.fixed_box is not None:
            self._box, self._score, self._lost, self._since_detect = self.fixed_box.copy(), 1.0, 0, 0
        detected = False
        if self.fixed_box is None and (self._box is None or self._lost or self._since_detect >= self.redetect_every):
            if not self._redetect(img):
                return None
            detected = True
        points = self._mesh_points(img, self._box, CROP_FROM_DETECTION if detected else CROP_FROM_MESH)
        if points is None and not detected and self.fixed_box is None:  # mesh lost the face: look again
            if not self._redetect(img):
                return None
            detected = True
            points = self._mesh_points(img, self._box, CROP_FROM_DETECTION)
        self._since_detect += 1
        if points is None:  # a detector sees a face but the mesh cannot fit it (profile, occlusion)
            self._forget_motion()
            box = self._box.round().astype(int)
            return Face(tuple(int(v) for v in box), np.zeros((lmk.N_LANDMARKS, 2), np.float32), 0.0,
                        self._score, False, "no landmarks (profile or occluded face)")
        self._lost = 0
        raw_box = _points_box(points[:, :2])
        if not detected and self._box is not None and _iou(raw_box, self._box) < 0.3:
            self._filter_reset()  # the mesh jumped (another face, a cut): trust it but do not blend
        self._box = raw_box
        return self._face(img, points, t)

    def _face(self, img: np.ndarray, points: np.ndarray, t: float) -> Face:
        xy = points[:, :2]
        size = float(max(self._box[2] - self._box[0], self._box[3] - self._box[1]))
        if self._filter is not None:
            xy = self._filter(xy, t, scale=size)
        xy = xy.astype(np.float32)
        h, w = img.shape[:2]
        x1, y1 = np.floor(xy.min(axis=0)).astype(int)
        x2, y2 = np.ceil(xy.max(axis=0)).astype(int)
        box = (max(int(x1), 0), max(int(y1), 0), min(int(x2), w), min(int(y2), h))
        yaw, pitch = estimate_yaw(points), estimate_pitch(points)
        usable, reason = True, ""
        width = min(x2 - x1, y2 - y1)
        inside = (box[2] - box[0]) * (box[3] - box[1]) / max((x2 - x1) * (y2 - y1), 1)
        if width < self.min_face_px:
            usable, reason = False, f"face too small ({width} px < {self.min_face_px} px)"
        elif abs(yaw) > self.max_yaw_deg:
            usable, reason = False, f"face turned too far (yaw {yaw:.0f}°, limit {self.max_yaw_deg:.0f}°)"
        elif inside < 0.7:
            usable, reason = False, "face mostly outside the frame"
        return Face(box, xy, yaw, self._score, usable, reason, pitch)

    # -- detection and target choice --------------------------------------------------------------

    def _redetect(self, img: np.ndarray) -> bool:
        """Run detection and move the target box; False (and count a lost frame) when there is no face."""
        self._since_detect = 0
        found = self._detect(img)
        if not found:
            self._lost += 1
            self._forget_motion()
            if self._lost > FORGET_AFTER:
                self._box = None
            return False
        box, score = self._pick(found, img.shape)
        if self._box is not None and _iou(box, self._box) < 0.1:
            self._filter_reset()  # a different face (or the same one far away): start smoothing afresh
        self._box, self._score = box, score
        return True

    def _detect(self, img: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Faces as (box, score): short range, then full range, then (throttled) full range on tiles.

        The whole-frame passes run on a copy at most `DETECT_PX` wide: the models see 128 / 192 px of the
        frame anyway, and handing mediapipe a whole 1280×720 frame cost 20–30 ms (a freeze every re-detect)
        against ~4 ms for the reduced copy. On a whole 1280×720 frame the full-range model misses faces
        under ~100 px; on a full-resolution 480 px tile it finds them down to ~30 px. Tiles cost ~2 ms each,
        so they run only when the cheap passes find nothing, at most once every `redetect_every` frames
        while no face is tracked.
        """
        import cv2

        h, w = img.shape[:2]
        scale = min(1.0, DETECT_PX / max(h, w))
        small = img if scale == 1.0 else cv2.resize(img, (max(round(w * scale), 1), max(round(h * scale), 1)),
                                                    interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        for detector in self._detectors:
            found = _detections(detector, rgb, 0, 0, scale=scale)
            if found:
                return found
        if max(h, w) <= TILE_PX * 1.25 or self._since_tiles < self.redetect_every:
            self._since_tiles += 1
            return []
        self._since_tiles = 0
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        found = []
        for y0 in _tile_starts(h):
            for x0 in _tile_starts(w):
                tile = np.ascontiguousarray(rgb[y0 : y0 + TILE_PX, x0 : x0 + TILE_PX])
                found += _detections(self._detectors[1], tile, x0, y0)
        return _suppress(found)

    def _pick(self, found: list[tuple[np.ndarray, float]], shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
        """Keep the current target when a detection overlaps it; otherwise the largest, most central face."""
        if self._box is not None:
            overlaps = [_iou(box, self._box) for box, _ in found]
            best = int(np.argmax(overlaps))
            if overlaps[best] > 0.1:
                return found[best]
        h, w = shape[:2]
        centre, half_diag = np.array([w / 2, h / 2]), math.hypot(w, h) / 2

        def merit(item: tuple[np.ndarray, float]) -> float:
            box = item[0]
            area = (box[2] - box[0]) * (box[3] - box[1])
            off = np.linalg.norm((box[:2] + box[2:]) / 2 - centre) / half_diag
            return float(area * (1.0 - 0.5 * off))

        return max(found, key=merit)

    # -- mesh on a crop ---------------------------------------------------------------------------

    def _mesh_points(self, img: np.ndarray, box: np.ndarray, factor: float) -> np.ndarray | None:
        """478 (x, y, z) points in frame pixels from the mesh on a square crop around `box`, or None."""
        import cv2

        h, w = img.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = max(int(round(max(box[2] - box[0], box[3] - box[1]) * factor)), 16)
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        crop = img[max(y0, 0) : min(y0 + side, h), max(x0, 0) : min(x0 + side, w)]
        if crop.size == 0:
            return None
        pads = (max(-y0, 0), max(y0 + side - h, 0), max(-x0, 0), max(x0 + side - w, 0))
        if any(pads):
            crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        if side > MAX_CROP_PX:  # linear: INTER_AREA cost ~2.5 ms a frame and moved the landmarks ~0.3 px
            crop = cv2.resize(crop, (MAX_CROP_PX, MAX_CROP_PX), interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        result = self._mesh.process(rgb)
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        pts = np.array([(p.x, p.y, p.z) for p in marks], dtype=np.float64)
        if pts.shape[0] != lmk.N_LANDMARKS or not np.all(np.isfinite(pts)):
            return None
        pts *= side  # normalised crop units → frame pixels (z shares x's scale)
        pts[:, 0] += x0
        pts[:, 1] += y0
        return pts

    def _forget_motion(self) -> None:
        self._filter_reset()
        if self.still is not None:
            self.still.forget()

    def _filter_reset(self) -> None:
        if self._filter is not None:
            self._filter.reset()


def _detections(detector: object, rgb: np.ndarray, x0: int, y0: int, *,
                scale: float = 1.0) -> list[tuple[np.ndarray, float]]:
    """One detector pass on `rgb` (a frame or a tile at x0, y0, reduced by `scale`) as frame-pixel (box, score)."""
    h, w = rgb.shape[:2]
    found = []
    for det in detector.process(rgb).detections or ():
        bb = det.location_data.relative_bounding_box
        if bb.width > 0 and bb.height > 0:
            box = np.array([bb.xmin * w, bb.ymin * h, (bb.xmin + bb.width) * w, (bb.ymin + bb.height) * h]) / scale
            found.append((box + (x0, y0, x0, y0), float(det.score[0]) if det.score else 0.0))
    return found


def _tile_starts(length: int) -> list[int]:
    """Starts of TILE_PX windows covering `length` with at least TILE_OVERLAP px of overlap."""
    if length <= TILE_PX:
        return [0]
    n = math.ceil((length - TILE_PX) / (TILE_PX - TILE_OVERLAP)) + 1
    return [int(round(v)) for v in np.linspace(0, length - TILE_PX, n)]


def _suppress(found: list[tuple[np.ndarray, float]]) -> list[tuple[np.ndarray, float]]:
    """Drop duplicate detections of one face from overlapping tiles (keep the best score)."""
    kept: list[tuple[np.ndarray, float]] = []
    for box, score in sorted(found, key=lambda item: -item[1]):
        if all(_iou(box, other) < 0.3 for other, _ in kept):
            kept.append((box, score))
    return kept


def _points_box(xy: np.ndarray) -> np.ndarray:
    return np.concatenate([xy.min(axis=0), xy.max(axis=0)])
