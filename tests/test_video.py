"""Face video input: exact frame counts, back-and-forth looping, and memory that does not grow with length."""

import tracemalloc

import numpy as np
import pytest

from livedub.engines.errors import BadInputError
from livedub.realtime.io.files import FaceVideo, Mp4Writer


def levels_video_of(path, count: int, size=(320, 240)):
    """`count` (≤ 25) frames, frame k filled with grey level 10k: the order reads back through the codec's
    limited-range conversion (a few levels of error)."""
    w_, h_ = size
    with Mp4Writer(path, w_, h_, 25, None, crf=0) as w:
        for k in range(count):
            w.write(np.full((h_, w_, 3), (10 * k) % 250, np.uint8))
    return path


@pytest.fixture(scope="module")
def levels_video(tmp_path_factory):
    return levels_video_of(tmp_path_factory.mktemp("video") / "levels.mp4", 200)


def order(frames):
    return [int(round(float(f[f.shape[0] // 2, f.shape[1] // 2].mean()) / 10)) for f in frames]


def test_plays_forward_then_back_and_forth(tmp_path):
    video = FaceVideo(levels_video_of(tmp_path / "v.mp4", 24))
    assert video.info.frames == 24 and (video.info.width, video.info.height) == (320, 240)
    got = order(video.frames(29))
    assert got[:24] == list(range(24))
    assert got[24:] == [22, 21, 20, 19, 18]
    assert order(video.frames(10)) == list(range(10))


def test_long_audio_over_a_short_clip_ping_pongs_the_whole_clip(tmp_path):
    video = FaceVideo(levels_video_of(tmp_path / "short.mp4", 5, size=(64, 64)))
    assert order(video.frames(14)) == [0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3]


def test_a_dub_slightly_longer_than_the_video_keeps_only_the_replayed_frames(levels_video):
    video = FaceVideo(levels_video)
    frame_bytes = 320 * 240 * 3
    tracemalloc.start()
    try:
        for _ in video.frames(203):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * frame_bytes  # the whole video would be 200 frames


def test_photo_is_a_still_video(tmp_path):
    import cv2

    path = tmp_path / "face.png"
    cv2.imwrite(str(path), np.full((100, 120, 3), 77, np.uint8))
    video = FaceVideo(path, fps=30)
    assert video.info.is_image and video.info.fps == 30
    frames = list(video.frames(7))
    assert len(frames) == 7 and all(f.shape == (100, 120, 3) for f in frames)


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 50])
def test_unreadable_input_is_a_clear_error(tmp_path, content):
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(BadInputError):
        FaceVideo(path)
