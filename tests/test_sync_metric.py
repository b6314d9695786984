"""The weight-free sync metric finds planted lags, in arrays and in real encoded videos; SyncNet's LSE-D/LSE-C
run from a checkpoint in the public layout and read offsets with the reference's alignment and sign."""

from __future__ import annotations

import re

import av
import cv2
import numpy as np
import pytest
from media_files import write_av_mp4
from skimage import data

from livedub.engines.audio import SAMPLE_RATE
from livedub.engines.errors import BadInputError
from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker
from livedub.engines.lipsync.sync_metric import (
    evaluate_sync,
    lagged_correlations,
    sync_from_arrays,
)

FPS = 25


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
    half = SAMPLE_RATE // (2 * FPS)
    out = np.zeros(n_frames)
    for i in range(n_frames):
        c = i * SAMPLE_RATE // FPS
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
    n = int(len(pcm) / SAMPLE_RATE * FPS)
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
    n = int(len(pcm) / SAMPLE_RATE * FPS)
    path = tmp_path / "still.mp4"
    write_av_mp4(path, [face] * n, pcm)
    report = evaluate_sync(path)
    assert report.face_frames == n
    assert report.mouth_motion < 0.01  # only landmark noise
    assert report.peak_correlation == 0.0 and report.offset_frames == 0


# -- SyncNet: LSE-D / LSE-C from a checkpoint in the public layout -------------------------------------


def _public_layout() -> dict[str, tuple[int, ...]]:
    """Names and shapes of syncnet_v2.model's tensors, written out from the public model definition
    (joonson/syncnet_python, class S; the 2018 file has no BatchNorm num_batches_tracked)."""
    layout: dict[str, tuple[int, ...]] = {}
    audio = [(64, 1, 3, 3), (192, 64, 3, 3), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3), (512, 256, 5, 4)]
    lips = [(96, 3, 5, 7, 7), (256, 96, 1, 5, 5), (256, 256, 1, 3, 3), (256, 256, 1, 3, 3), (256, 256, 1, 3, 3),
            (512, 256, 1, 6, 6)]

    def tower(name: str, shapes: list[tuple[int, ...]]) -> None:
        for index, shape in zip((0, 4, 8, 11, 14, 18), shapes, strict=True):  # conv, then its BatchNorm
            layout[f"{name}.{index}.weight"], layout[f"{name}.{index}.bias"] = shape, shape[:1]
            for part in ("weight", "bias", "running_mean", "running_var"):
                layout[f"{name}.{index + 1}.{part}"] = shape[:1]

    def head(name: str) -> None:
        layout[f"{name}.0.weight"], layout[f"{name}.0.bias"] = (512, 512), (512,)
        for part in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{name}.1.{part}"] = (512,)
        layout[f"{name}.3.weight"], layout[f"{name}.3.bias"] = (1024, 512), (1024,)

    tower("netcnnaud", audio)  # in the order the public model defines them
    head("netfcaud")
    head("netfclip")
    tower("netcnnlip", lips)
    return layout


def _random_checkpoint(path, seed: int = 0, layout: dict | None = None) -> dict:
    """Random weights (He-scaled, BatchNorm statistics near 0 / 1) saved as the 2018 file was: a plain
    ordered dict of tensors in PyTorch's pre-zip format."""
    import collections

    import torch

    g = torch.Generator().manual_seed(seed)
    state = collections.OrderedDict()
    for name, shape in (layout or _public_layout()).items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        value = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5 if len(shape) > 1 else 0.1 * torch.randn(shape, generator=g)
        if name.endswith("running_var"):
            value = 1.0 + value.abs()
        elif name.endswith(".weight") and len(shape) == 1:
            value = 1.0 + value
        state[name] = value
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return state


def test_the_model_has_the_public_checkpoint_layout():
    from livedub.engines.lipsync.syncnet import SyncNetModel

    mine = {k: tuple(v.shape) for k, v in SyncNetModel().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert mine == _public_layout()
    assert list(mine) == list(_public_layout())  # in the same order as well


def test_a_checkpoint_in_the_public_layout_loads_with_its_weights(tmp_path):
    import torch

    from livedub.engines.lipsync.syncnet import load_syncnet

    state = _random_checkpoint(tmp_path / "syncnet_v2.model")
    net = load_syncnet(tmp_path / "syncnet_v2.model")
    loaded = net.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert not net.model.training  # eval: BatchNorm uses the checkpoint's statistics
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}}  # saved from DataParallel
    torch.save(wrapped, tmp_path / "wrapped.pth")
    assert torch.equal(load_syncnet(tmp_path / "wrapped.pth").model.netfclip[3].bias, state["netfclip.3.bias"])


def test_wrong_syncnet_files_are_refused_clearly(tmp_path):
    import torch

    from livedub.engines.lipsync.syncnet import SyncNetUnavailable, load_syncnet

    (tmp_path / "zeros.model").write_bytes(b"\0" * 16)
    torch.save({"face_encoder_blocks.0.0.conv_block.0.weight": torch.zeros(32, 15, 7, 7)}, tmp_path / "other.pth")
    layout = _public_layout()
    layout["netcnnaud.0.weight"] = (64, 1, 5, 5)
    _random_checkpoint(tmp_path / "shape.model", layout=layout)
    state = _random_checkpoint(tmp_path / "nan.model")
    state["netfcaud.3.bias"][7] = float("nan")
    torch.save(state, tmp_path / "nan.model")
    (tmp_path / "folder").mkdir()
    cases = {"missing.model": "no such file", "folder": "is a folder",
             "zeros.model": "cannot be read as a PyTorch checkpoint",
             "other.pth": "not a SyncNet checkpoint (0 of SyncNet's 88 weights and 1 unknown",
             "shape.model": "netcnnaud.0.weight has shape (64, 1, 5, 5), SyncNet's is (64, 1, 3, 3)",
             "nan.model": "netfcaud.3.bias holds NaN"}
    for name, message in cases.items():
        with pytest.raises(SyncNetUnavailable, match=re.escape(message)):
            load_syncnet(tmp_path / name)


def test_mfcc_matches_python_speech_features():
    """Values from python_speech_features 0.6 `mfcc(int16 audio, 16000)` (the reference's call) on this signal,
    computed once outside the test suite (the package is not a dependency)."""
    from livedub.engines.lipsync.syncnet import mfcc

    t = np.arange(8000) / SAMPLE_RATE
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * (500 + 3000 * t) * t)).astype(np.float32)
    x[:1000] = 0  # digital silence first: log of the floor energy, zero cepstrum
    coefficients = mfcc(x)
    assert coefficients.shape == (13, 1 + int(np.ceil((8000 - 400) / 160)))
    np.testing.assert_allclose(coefficients[:, 2], [-36.0437] + [0.0] * 12, atol=1e-4)
    np.testing.assert_allclose(coefficients[:, 20], [20.1533, 12.3178, -18.3239, 13.1899, 38.8509, -4.3674, -43.0431,
                                                     -15.6392, 8.8921, -23.9153, -47.6467, -19.5576, 3.7219], atol=1e-3)
    np.testing.assert_allclose(coefficients[:, 45], [21.1778, 0.928, -7.8581, 46.7879, -28.4992, -3.2548, 16.1845,
                                                     -45.8714, -14.9801, -1.6647, -49.6256, -6.9942, -5.5422], atol=1e-3)


def test_face_crop_reaches_below_the_chin_and_fills_outside_grey():
    from livedub.engines.lipsync.syncnet import CROP_FILL, face_crop

    frame = np.zeros((400, 400, 3), np.uint8)
    frame[150:290, 130:270] = 255  # exactly the crop of a face centred at (200, 200), half-size 50
    crop = face_crop(frame, 200, 200, 50)
    assert crop.shape == (224, 224, 3)
    assert crop[2:-2, 2:-2].min() == 255  # 1 half-size above the centre, 1.8 below, 1.4 either side
    corner = face_crop(frame, 10, 10, 50)  # a face at the picture's corner: the rest is grey
    assert (corner[:50, :50] == CROP_FILL).all()


def test_video_is_taken_at_25_fps_as_the_reference_converts_it():
    from livedub.engines.lipsync.syncnet import frames_at_25fps, pick

    assert frames_at_25fps(np.arange(50) / 25).tolist() == list(range(50))
    at_30 = frames_at_25fps(np.arange(30) / 30)  # 1 s at 30 fps: 25 frames, every sixth one dropped
    assert len(at_30) == 25 and np.all(np.abs(at_30 / 30 - np.arange(25) / 25) <= 1 / 60 + 1e-9)
    at_10 = frames_at_25fps(0.5 + np.arange(10) / 10)  # 10 fps: frames repeated, the clock's start kept
    assert len(at_10) == 23 and at_10[:6].tolist() == [0, 0, 1, 1, 2, 2]
    assert list(pick(iter("abcdef"), [0, 0, 2, 5])) == ["a", "a", "c", "f"]


def test_scores_read_the_offset_and_its_sign_from_embeddings():
    from livedub.engines.lipsync.syncnet import score_embeddings

    audio = np.random.default_rng(3).standard_normal((120, 1024))
    in_sync = score_embeddings(audio + 0.1, audio)
    assert in_sync.offset_frames == 0 and in_sync.lse_c > 10 and len(in_sync.mean_distances) == 31
    assert in_sync.lse_d == pytest.approx(np.sqrt(1024) * 0.1, rel=1e-4)  # every pair 0.1 apart per dimension
    late_audio = score_embeddings(audio[4:], audio[:-4])  # what video window i shows, audio window i + 4 says
    assert late_audio.offset_frames == -4  # < 0: the mouth leads the audio
    early_audio = score_embeddings(audio[:-4], audio[4:])  # ... audio window i - 4 says: the audio leads
    assert early_audio.offset_frames == 4 and early_audio.lse_c > 10


@pytest.fixture(scope="module")
def syncnet_clip(tmp_path_factory, talking):
    """A random-weight SyncNet in the public layout, and a 2 s clip of the astronaut speaking (mouth driven by
    the speech's loudness) with the crops SyncNet sees."""
    from livedub.engines.lipsync.syncnet import crop_track, face_crop, load_syncnet

    root = tmp_path_factory.mktemp("syncnet")
    _random_checkpoint(root / "syncnet_v2.model")
    pcm, face, lm = talking
    pcm = pcm[: 2 * SAMPLE_RATE]
    n = len(pcm) * FPS // SAMPLE_RATE
    drive = _frame_rms(pcm, n)
    frames = [_jaw_drop(face, lm, 14.0 * drive[i]) for i in range(n)]
    box = np.r_[lm.min(axis=0), lm.max(axis=0)]
    track = crop_track(np.tile(box, (n, 1)))
    crops = [face_crop(f, *track[i]) for i, f in enumerate(frames)]
    return load_syncnet(root / "syncnet_v2.model"), root, pcm, frames, crops


def test_a_delay_moves_the_embeddings_by_whole_frames(syncnet_clip):
    """Random weights carry no notion of sync, but the alignment does not depend on them: audio delayed by
    3 frames (1920 samples) gives audio window i + 3 exactly what window i was, frames delayed by 2 give lip
    window i + 2 what lip window i was; and against the undelayed audio's own embeddings (a lip tower in
    perfect agreement) the offset read is exactly -3 frames."""
    from livedub.engines.lipsync.syncnet import mfcc, score_embeddings

    net, _, pcm, _, crops = syncnet_clip
    windows = len(crops) - 8
    heard = net.audio_embeddings(mfcc(pcm), windows)
    late = net.audio_embeddings(mfcc(np.concatenate([np.zeros(1920, np.float32), pcm])), windows)
    np.testing.assert_allclose(late[3:], heard[:-3], rtol=1e-5, atol=1e-5)
    assert not np.allclose(late[:3], heard[:3])  # silence, where speech was: the towers see what they get
    assert score_embeddings(heard, heard).offset_frames == 0
    assert score_embeddings(heard, late).offset_frames == -3
    lips = net.lip_embeddings(crops[:18])  # 14 windows: the lip tower is the slow one
    lips_late = net.lip_embeddings([crops[0]] * 2 + crops[:16])
    np.testing.assert_allclose(lips_late[2:], lips[:-2], rtol=1e-4, atol=1e-4)
    assert np.isfinite(lips).all() and lips.shape == (14, 1024)
    assert np.array_equal(net.lip_embeddings(crops[:18]), lips)  # deterministic


def test_evaluate_prints_lse_with_a_syncnet_checkpoint(syncnet_clip, capsys, monkeypatch):
    from livedub.realtime.cli import main

    _, root, pcm, frames, _ = syncnet_clip
    write_av_mp4(root / "talking.mp4", frames, pcm)
    monkeypatch.setenv("LIVEDUB_CONFIG", str(root / "none.toml"))
    assert main(["evaluate", str(root / "talking.mp4"), "--syncnet", str(root / "syncnet_v2.model")]) == 0
    out = capsys.readouterr().out
    lse_d = float(re.search(r"LSE-D +([-\d.]+)", out).group(1))
    lse_c = float(re.search(r"LSE-C +([-\d.]+)", out).group(1))
    offset = int(re.search(r"SyncNet offset +([-+\d]+) frames", out).group(1))
    windows = int(re.search(r"over (\d+) windows", out).group(1))
    assert np.isfinite(lse_d) and lse_d > 0 and np.isfinite(lse_c) and lse_c >= 0  # median - min >= 0
    assert -15 <= offset <= 15 and windows == len(frames) - 5


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
