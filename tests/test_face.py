"""Face tracking promises, on real photographs shipped with scikit-image (no downloads)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from livedub.engines.face import Face, FaceTracker
from livedub.engines.face import landmarks as lmk
from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker, as_bgr_uint8


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


@pytest.fixture(scope="module")
def reference(astronaut) -> np.ndarray:
    """Unsmoothed landmarks of the astronaut photo on its own (512×512)."""
    face = MediapipeFaceTracker(smoothing=0).track(astronaut)
    assert face is not None and face.usable
    return face.landmarks


def _canvas(w: int, h: int, value: int = 90) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def test_tracker_is_a_face_tracker():
    assert isinstance(MediapipeFaceTracker(), FaceTracker)


def test_finds_the_astronaut_face(astronaut):
    face = MediapipeFaceTracker().track(astronaut)
    assert isinstance(face, Face) and face.usable, face and face.reason
    x1, y1, x2, y2 = face.box
    # Her face spans roughly x 180–270, y 70–180 in the 512×512 photo.
    assert 160 < x1 < 200 and 250 < x2 < 290 and 50 < y1 < 95 and 160 < y2 < 200
    assert face.landmarks.shape == (478, 2) and face.landmarks.dtype == np.float32
    assert np.all(face.landmarks >= 0) and np.all(face.landmarks < 512)
    assert abs(face.yaw) < 15
    # The named sets land where they should: eyes above the nose, nose above the mouth, mouth above chin.
    pts = face.landmarks
    eyes_y = pts[list(lmk.LEFT_EYE + lmk.RIGHT_EYE), 1].mean()
    assert eyes_y < pts[lmk.NOSE_TIP, 1] < pts[list(lmk.OUTER_LIPS), 1].mean() < pts[lmk.CHIN, 1]
    assert pts[lmk.LEFT_IRIS[0], 0] < pts[lmk.RIGHT_IRIS[0], 0]


def test_follows_a_shifted_face(astronaut, reference):
    canvas = _canvas(1000, 800)
    canvas[230:742, 410:922] = astronaut
    face = MediapipeFaceTracker().track(canvas)
    assert face is not None and face.usable
    err = np.abs(face.landmarks - (reference + [410, 230])).mean()
    assert err < 2.0, err


def test_finds_a_small_face_in_720p(astronaut, reference):
    scale = 0.6  # a ~57 px face: the whole-frame detectors miss it, the tiled full-range pass finds it
    small = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = _canvas(1280, 720)
    canvas[300 : 300 + small.shape[0], 900 : 900 + small.shape[1]] = small
    face = MediapipeFaceTracker().track(canvas)
    assert face is not None and face.usable, face and face.reason
    expected = reference * scale + [900, 300]
    face_size = face.box[2] - face.box[0]
    assert np.abs(face.landmarks - expected).mean() < 0.05 * face_size


def test_too_small_face_is_unusable(astronaut):
    small = cv2.resize(astronaut, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)  # ~38 px face
    canvas = _canvas(1280, 720)
    canvas[300 : 300 + small.shape[0], 300 : 300 + small.shape[1]] = small
    face = MediapipeFaceTracker(min_face_px=48).track(canvas)
    assert face is not None and not face.usable and "small" in face.reason


@pytest.mark.parametrize("name", ["noise", "gray", "coffee", "black"])
def test_no_face_passes_through(name):
    rng = np.random.default_rng(1)
    frame = {
        "noise": rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8),
        "gray": _canvas(640, 480, 128),
        "coffee": np.ascontiguousarray(data.coffee()[:, :, ::-1]),
        "black": _canvas(640, 480, 0),
    }[name]
    tracker = MediapipeFaceTracker()
    for _ in range(20):  # also covers the throttled tiled search on later frames
        face = tracker.track(frame)
        assert face is None or not face.usable


def test_turned_face_is_unusable_and_yaw_has_a_sign():
    # The cameraman photo: a real face turned well towards the image's right (looking into his camera).
    cameraman = cv2.cvtColor(data.camera(), cv2.COLOR_GRAY2BGR)
    face = MediapipeFaceTracker(max_yaw_deg=45).track(cameraman)
    assert face is not None and not face.usable and "turned" in face.reason
    assert face.yaw > 35
    mirrored = MediapipeFaceTracker(max_yaw_deg=45).track(cv2.flip(cameraman, 1))
    assert mirrored is not None and mirrored.yaw < -35
    # A lenient limit accepts the same face.
    assert MediapipeFaceTracker(max_yaw_deg=80).track(cameraman).usable


def test_two_faces_keeps_one_target(astronaut):
    head = astronaut[30:300, 120:360]  # her head and some helmet
    big = cv2.resize(head, None, fx=1.2, fy=1.2)
    tracker = MediapipeFaceTracker(redetect_every=2)
    targets = []
    for k in range(12):
        canvas = _canvas(1280, 720)
        canvas[200 : 200 + big.shape[0], 820 : 820 + big.shape[1]] = big  # larger, off-centre
        s = 0.6 + 0.06 * k  # the other face grows to ~1.3× the target's size over the clip
        other = cv2.resize(head, None, fx=s, fy=s)
        canvas[120 : 120 + other.shape[0], 150 : 150 + other.shape[1]] = other
        face = tracker.track(canvas)
        assert face is not None and face.usable
        targets.append(face.box)
    centres = np.array([((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in targets])
    assert np.all(centres[:, 0] > 820), centres  # always the right-hand face
    assert np.ptp(centres, axis=0).max() < 6


def test_new_tracker_prefers_the_larger_face(astronaut):
    head = astronaut[30:300, 120:360]
    canvas = _canvas(1280, 720)
    canvas[150:420, 900:1140] = head
    small = cv2.resize(head, None, fx=0.6, fy=0.6)
    canvas[300 : 300 + small.shape[0], 560 : 560 + small.shape[1]] = small  # smaller but central
    face = MediapipeFaceTracker().track(canvas)
    assert face is not None and face.box[0] > 900


def test_smoothing_reduces_jitter(astronaut):
    rng = np.random.default_rng(7)
    shifts = rng.normal(0.0, 1.5, (40, 2))
    canvas = _canvas(800, 600)
    canvas[40:552, 140:652] = astronaut
    frames = [cv2.warpAffine(canvas, np.float32([[1, 0, dx], [0, 1, dy]]), (800, 600)) for dx, dy in shifts]

    def jitter(tracker: MediapipeFaceTracker) -> float:
        out = np.array([tracker.track(f).landmarks[list(lmk.STABLE)].mean(axis=0) for f in frames])
        return float(np.std(out[5:] - out[5:].mean(axis=0), axis=0).mean())

    raw, smooth = jitter(MediapipeFaceTracker(smoothing=0)), jitter(MediapipeFaceTracker(smoothing=0.5))
    input_jitter = float(np.std(shifts[5:], axis=0).mean())
    assert raw > 0.5 * input_jitter  # the unsmoothed tracker does follow the shaking image
    assert smooth < 0.6 * input_jitter and smooth < 0.6 * raw, (input_jitter, raw, smooth)


def test_smoothing_catches_up_after_a_move(astronaut):
    canvas = _canvas(900, 700)
    canvas[40:552, 40:552] = astronaut
    moved = np.roll(canvas, (30, 60), axis=(0, 1))
    tracker = MediapipeFaceTracker(smoothing=0.5)
    for _ in range(5):
        tracker.track(canvas)
    for _ in range(10):
        face = tracker.track(moved)
    settled = MediapipeFaceTracker(smoothing=0).track(moved)
    assert np.abs(face.landmarks - settled.landmarks).mean() < 1.5


@pytest.mark.parametrize(
    "frame",
    [None, "frame", np.zeros((0, 0, 3), np.uint8), np.zeros((480,), np.uint8), np.zeros((8, 8, 3), np.uint8),
     np.zeros((64, 64, 5), np.uint8), np.zeros((64, 64, 3), np.complex64), np.full((64, 64, 3), np.nan)],
    ids=["none", "str", "empty", "1d", "tiny", "5ch", "complex", "nan"],
)
def test_odd_frames_never_raise(frame):
    assert MediapipeFaceTracker().track(frame) is None


def test_gray_bgra_and_float_frames_are_tracked(astronaut):
    tracker = MediapipeFaceTracker()
    gray = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    for frame in (gray, gray[:, :, None], cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA),
                  astronaut.astype(np.float32) / 255.0, astronaut.astype(np.uint16) * 257):
        tracker.reset()
        face = tracker.track(frame)
        assert face is not None and face.usable
    assert as_bgr_uint8(gray).shape == (512, 512, 3)


def test_mouth_measures(reference):
    pts = reference.copy()
    base = lmk.mouth_opening(pts)
    assert 0 <= base < 0.4 and 0.6 < lmk.mouth_width(pts) < 1.6
    iod = lmk.inter_ocular(pts)
    opened = pts.copy()
    opened[[14, 87, 317], 1] += 0.2 * iod  # drop the lower inner lip by a fifth of the eye distance
    assert lmk.mouth_opening(opened) == pytest.approx(base + 0.2, abs=0.03)
    # Face size does not matter.
    assert lmk.mouth_opening(pts * 2.5 + 100) == pytest.approx(base, rel=1e-4)
    assert lmk.mouth_width(pts * 0.5) == pytest.approx(lmk.mouth_width(pts), rel=1e-4)


def test_landmark_sets_are_valid():
    for name in ("OUTER_LIPS", "INNER_LIPS", "FACE_OVAL", "JAW_LINE", "LOWER_FACE", "NOSE", "LEFT_EYE",
                 "RIGHT_EYE", "LEFT_IRIS", "RIGHT_IRIS", "STABLE"):
        idx = getattr(lmk, name)
        assert len(set(idx)) == len(idx) and all(0 <= i < lmk.N_LANDMARKS for i in idx), name
