"""The weight-free sync metric finds planted lags, in arrays and in real encoded videos."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
from media_files import write_av_mp4
from skimage import data

from livedub.engines.errors import BadInputError
from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker
from livedub.engines.lipsync.sync_metric import (
    SyncNetUnavailable,
    evaluate_sync,
    lagged_correlations,
    sync_from_arrays,
)

FPS = 25
SR = 16_000


def _smooth_noise(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.convolve(rng.standard_normal(n + 8), np.hanning(7), mode="valid")[:n]


@pytest.mark.parametrize("lag", [4, -5, 0])
def test_finds_a_known_lag(lag):
    env = _smooth_noise(300, 1)
    mouth = np.roll(env, lag) + 0.3 * _smooth_noise(300, 2)  # mouth[i + lag] = env[i]
    report = sync_from_arrays(mouth, env, max_offset=10)
    assert report.offset_frames == lag
    assert report.peak_correlation > 0.8 and report.confidence > 0.5
    assert len(report.correlations) == 21 and report.max_offset == 10


def test_ignores_frames_without_a_face():
    env = _smooth_noise(300, 3)
    mouth = np.roll(env, 2)
    mouth[40:100] = np.nan  # the face left the frame for a while
    report = sync_from_arrays(mouth, env, max_offset=8, fps=30)
    assert report.offset_frames == 2 and report.peak_correlation > 0.95
    assert report.face_frames == 240 and report.frames == 300
    assert report.offset_seconds == pytest.approx(2 / 30)


def test_still_mouth_has_no_sync():
    report = sync_from_arrays(np.full(100, 0.2), _smooth_noise(100, 4), max_offset=5)
    assert report.offset_frames == 0 and report.peak_correlation == 0.0
    env = _smooth_noise(100, 4)
    jitter_only = sync_from_arrays(0.2 + 0.001 * env, env, max_offset=5)  # tiny, even if it correlates
    assert jitter_only.peak_correlation == 0.0 and jitter_only.mouth_motion < 0.01
    nothing = sync_from_arrays(np.full(100, np.nan), _smooth_noise(100, 4))
    assert np.isnan(nothing.peak_correlation) and nothing.face_frames == 0


def test_lagged_correlation_matches_pearson():
    a, b = _smooth_noise(200, 5), _smooth_noise(200, 6)
    r = lagged_correlations(a, b, 3)
    assert r[3] == pytest.approx(np.corrcoef(a, b)[0, 1])
    assert r[5] == pytest.approx(np.corrcoef(a[2:], b[:-2])[0, 1])  # k = +2: a[i + 2] with b[i]


# -- real videos --------------------------------------------------------------------------------------


def _frame_rms(pcm: np.ndarray, n_frames: int) -> np.ndarray:
    """Plain RMS in a one-frame window centred on each frame's time (full band, linear)."""
    half = SR // (2 * FPS)
    out = np.zeros(n_frames)
    for i in range(n_frames):
        c = i * SR // FPS
        seg = pcm[max(c - half, 0) : c + half]
        out[i] = np.sqrt(np.mean(seg**2)) if len(seg) else 0.0
    return out / max(out.max(), 1e-9)


def _jaw_drop(img: np.ndarray, lm: np.ndarray, amount: float) -> np.ndarray:
    """Open the astronaut's mouth by `amount` px: pull the lower lip, chin and jaw down smoothly."""
    h, w = img.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    y_top = (lm[13, 1] + lm[[61, 291], 1].mean()) / 2
    ramp = np.clip((ys - y_top) / max(lm[14, 1] - y_top, 1.0), 0, 1)
    fade = np.clip(1 - (ys - lm[152, 1]) / 30, 0, 1)
    half = abs(lm[291, 0] - lm[61, 0]) * 1.4
    cols = np.sqrt(np.clip(1 - np.abs(xs - lm[[61, 291], 0].mean()) / half, 0, 1))
    return cv2.remap(img, xs, ys - amount * ramp * fade * cols, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture(scope="module")
def talking(english_speech):
    """Speech, the astronaut photo and its landmarks: the pieces of a synthetic talking-head video."""
    pcm = english_speech("Good morning. Please open the window, it is quite warm in here today.")
    face = np.ascontiguousarray(data.astronaut()[:, :, ::-1])[:320, 96:416]  # head and shoulders
    lm = MediapipeFaceTracker(smoothing=0).track(face).landmarks
    return pcm, face, lm


@pytest.mark.parametrize("mouth_late", [0, 3])
def test_video_whose_mouth_follows_the_speech(tmp_path, talking, mouth_late):
    pcm, face, lm = talking
    n = int(len(pcm) / SR * FPS)
    drive = _frame_rms(pcm, n)
    frames = [_jaw_drop(face, lm, 14.0 * drive[max(i - mouth_late, 0)]) for i in range(n)]
    path = tmp_path / "talking.mp4"
    write_av_mp4(path, frames, pcm)
    report = evaluate_sync(path, max_offset=8)
    assert report.frames == n and report.face_frames == n
    assert report.offset_frames == mouth_late  # the sound comes first: audio leads by `mouth_late` frames
    assert report.peak_correlation > 0.6, report.correlations
    assert report.mouth_motion > 0.03
    assert report.lse_d is None and "no SyncNet checkpoint" in report.lse_note


def test_still_face_with_speech_is_not_in_sync(tmp_path, talking):
    pcm, face, _ = talking
    n = int(len(pcm) / SR * FPS)
    path = tmp_path / "still.mp4"
    write_av_mp4(path, [face] * n, pcm)
    report = evaluate_sync(path)
    assert report.face_frames == n
    assert report.mouth_motion < 0.01  # only landmark noise
    assert report.peak_correlation == 0.0 and report.offset_frames == 0


def test_syncnet_checkpoint_cannot_be_faked(tmp_path, talking):
    pcm, face, _ = talking
    path = tmp_path / "clip.mp4"
    write_av_mp4(path, [face] * 10, pcm[: SR // 2])
    with pytest.raises(SyncNetUnavailable, match="not found"):
        evaluate_sync(path, syncnet_checkpoint=tmp_path / "missing.model")
    fake = tmp_path / "syncnet_v2.model"
    fake.write_bytes(b"\0" * 16)
    with pytest.raises(SyncNetUnavailable, match="LSE"):
        evaluate_sync(path, syncnet_checkpoint=fake)


def test_video_without_audio_is_a_clear_error(tmp_path):
    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        for _ in range(5):
            for packet in video.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    with pytest.raises(BadInputError, match="no audio"):
        evaluate_sync(path)
