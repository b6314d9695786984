"""The viseme engine on a real face with real speech: it visibly speaks, stays shut in silence, and only
touches the lower face, blended in without a box. Mouth opening is measured on the OUTPUT frames by the
real mediapipe face mesh, not taken from the engine."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from speech_metrics import PAUSE_S, two_phrases

from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.face import Face
from livedub.engines.face import landmarks as lmk
from livedub.engines.lipsync import LipEngine, PcmTimeline
from livedub.engines.lipsync.composite import lower_face_mask, lower_face_polygon, polygon_mask
from livedub.engines.lipsync.mouth_shape import CLOSED, MouthShape, MouthShapeEstimator, viseme_for
from livedub.engines.lipsync.sync_metric import sync_from_arrays
from livedub.engines.lipsync.viseme import VisemeEngine
from livedub.engines.types import Phoneme

FPS = 25.0


@pytest.fixture(scope="module")
def speech(english_speech) -> np.ndarray:
    return two_phrases(english_speech)


def measure_openings(tracker, frames: list[np.ndarray]) -> np.ndarray:
    """Inner-lip gap / eye distance per frame from a fresh face-mesh pass (nan where no face)."""
    tracker.reset()
    out = []
    for i, f in enumerate(frames):
        face = tracker.track(f, timestamp=i / FPS)
        out.append(lmk.mouth_opening(face.landmarks) if face is not None and face.usable else np.nan)
    return np.asarray(out)


def rms_envelope(pcm: np.ndarray, times: np.ndarray) -> np.ndarray:
    half = int(SAMPLE_RATE / FPS / 2)
    centres = (int(t * SAMPLE_RATE) for t in times)
    return np.asarray([np.sqrt(np.mean(np.square(pcm[max(c - half, 0) : c + half]))) for c in centres])


@pytest.fixture(scope="module")
def dubbed(portrait, speech, tracker):
    """Render the whole clip once; shared by the sync and silence checks."""
    frame, face = portrait
    times = np.arange(0.0, len(speech) / SAMPLE_RATE, 1.0 / FPS)
    engine = VisemeEngine()
    audio = PcmTimeline(speech)
    engine.render([frame], [face], [0.0], audio)  # warm-up (triangulation, first calls)
    wall, cpu = time.perf_counter(), time.process_time()
    outs = engine.render([frame] * len(times), [face] * len(times), times, audio)
    wall = (time.perf_counter() - wall) / len(times) * 1000
    cpu = (time.process_time() - cpu) / len(times) * 1000
    print(f"\nviseme render, 640x480, face {face.box[2] - face.box[0]} px: {wall:.2f} ms/frame wall, {cpu:.2f} ms cpu")
    opening = measure_openings(tracker, outs)
    return times, outs, opening, rms_envelope(speech, times), wall


def test_is_a_lip_engine():
    assert isinstance(VisemeEngine(), LipEngine)


def test_mouth_follows_speech(dubbed):
    times, _, opening, envelope, _ = dubbed
    assert np.isfinite(opening).mean() > 0.95, "the face mesh lost the face on the rendered frames"
    report = sync_from_arrays(opening, envelope, max_offset=2, fps=FPS)
    print(f"\ncorrelation with the speech RMS envelope: {report.peak_correlation:.3f} at lag {report.offset_frames}")
    assert report.peak_correlation >= 0.5
    assert np.nanmax(opening) > 0.15, "the mouth never opens visibly"


def test_mouth_closed_in_silence(dubbed, portrait):
    times, _, opening, envelope, _ = dubbed
    loud = envelope > 0.01
    # frames at least 0.3 s away from any speech
    near = np.convolve(loud.astype(float), np.ones(int(0.3 * FPS) * 2 + 1), mode="same") > 0
    silent = ~near
    assert silent.sum() >= 15
    source_gap = lmk.mouth_opening(portrait[1].landmarks)
    assert source_gap > 0.1  # the photo's own mouth is open: the engine must close it
    assert np.nanmax(opening[silent]) < 0.04
    assert np.nanstd(opening[silent]) < 0.005


def test_silent_frames_identical(dubbed):
    """Silence gives the very same picture every frame: a still mouth, not a twitching one."""
    times, outs, _, envelope, _ = dubbed
    quiet = [i for i in range(len(times)) if times[i] < PAUSE_S - 0.3]
    assert len(quiet) > 5
    for i in quiet[1:]:
        assert np.array_equal(outs[i], outs[quiet[0]])


def test_no_face_passes_through(portrait, speech):
    frame, face = portrait
    audio = PcmTimeline(speech)
    unusable = Face(face.box, face.landmarks, usable=False, reason="turned away")
    before = frame.copy()
    outs = VisemeEngine().render([frame, frame], [None, unusable], [1.0, 1.2], audio)
    assert all(np.array_equal(o, before) for o in outs)
    assert np.array_equal(frame, before)  # the input is never written to


def test_changes_stay_in_lower_face(portrait):
    frame, face = portrait
    lm = face.landmarks
    width = float(np.linalg.norm(lm[291] - lm[61]))
    out = VisemeEngine().render_shape(frame, face, MouthShape(1.0, 0.3, 0.0))
    diff = np.abs(out.astype(int) - frame.astype(int)).max(axis=2)
    allowed = polygon_mask(frame.shape, lower_face_polygon(lm, grow_px=0.7 * width), feather_px=0) > 0
    assert diff[~allowed].max() == 0, "pixels changed outside the lower face"
    assert (diff > 20).sum() > 500, "the mouth did not visibly change"
    eyes_and_above = int(lm[list(lmk.LEFT_EYE + lmk.RIGHT_EYE), 1].max()) + 2
    assert diff[:eyes_and_above].max() == 0
    # no box: along the outline of the edited area the change is faint; it grows only further in
    changed = (diff > 0).astype(np.uint8)
    outline = np.zeros_like(changed)
    cv2.fillConvexPoly(outline, cv2.convexHull(cv2.findNonZero(changed)), 1)
    rim = outline & cv2.dilate(1 - outline, np.ones((7, 7), np.uint8)) & changed
    assert rim.sum() > 100
    assert np.median(diff[rim > 0]) <= 2 and np.percentile(diff[rim > 0], 99) <= 8


def test_mask_is_feathered(portrait):
    frame, face = portrait
    roi = (100, 150, 500, 480)
    mask = lower_face_mask(frame.shape, face.landmarks, feather_px=12, roi=roi)
    assert mask.shape == (roi[3] - roi[1], roi[2] - roi[0]) and mask.dtype == np.float32
    assert mask.min() == 0.0 and mask.max() == 1.0
    step = max(np.abs(np.diff(mask, axis=0)).max(), np.abs(np.diff(mask, axis=1)).max())
    assert step < 0.2, "the mask has a hard edge"


def test_render_is_fast_enough(dubbed):
    *_, wall = dubbed
    assert wall < 60.0  # loose: speed is measured in benchmarks/, this only catches a gross slowdown


# -- mouth shape from audio ------------------------------------------------------------------------


def test_silence_is_closed():
    audio = PcmTimeline(np.zeros(SAMPLE_RATE, np.float32))
    assert MouthShapeEstimator().at(audio, 0.5) == CLOSED


def test_loud_vowel_opens_and_bilabial_closes(english_speech):
    pcm = english_speech("Aah.")
    audio = PcmTimeline(pcm)
    est = MouthShapeEstimator()
    times = np.arange(0.0, len(pcm) / SAMPLE_RATE, 0.02)
    peak_t = times[int(np.argmax([est.at(audio, t).opening for t in times]))]
    assert est.at(audio, peak_t).opening > 0.6
    # the same audio, but the synthesizer says it was an /m/ then: the lips stay together
    hum = PcmTimeline(pcm, phonemes=[Phoneme("m", 0.0, len(pcm) / SAMPLE_RATE)])
    assert est.at(hum, peak_t).opening < 0.05
    vowel = PcmTimeline(pcm, phonemes=[Phoneme("ɑː", 0.0, len(pcm) / SAMPLE_RATE)])
    assert est.at(vowel, peak_t).opening > 0.6


def test_viseme_table():
    assert viseme_for("m")[0] == 0.0 and viseme_for("ˈa")[0] == 1.0
    assert viseme_for("uː")[2] > 0.8 and viseme_for("iː")[1] > 0.7
    assert viseme_for("tʃ") == viseme_for("ʃ")
    assert viseme_for("?") is None
