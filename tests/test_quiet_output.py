"""What a newcomer sees: a `livedub` run prints its own progress and summary, not mediapipe's, TFLite's or
absl's log lines (they come from native threads straight to fd 2; `-vv` still shows them)."""

import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import skimage.data

from livedub.engines.audio import write_wav
from livedub.realtime.cli.native_logs import quiet_native_logs

# the lines mediapipe 0.10.21 prints when its face graphs start and first find a face
NOISE = re.compile(r"inference_feedback_manager|landmark_projection_calculator|TensorFlow Lite|absl::|^[IW]\d{4} ",
                   re.MULTILINE)


@pytest.fixture(scope="module")
def photo_and_speech(tmp_path_factory, english_speech):
    root = tmp_path_factory.mktemp("quiet")
    cv2.imwrite(str(root / "face.png"), skimage.data.astronaut()[:, :, ::-1])
    write_wav(root / "speech.wav", np.concatenate([english_speech("Hello there."), np.zeros(4000, np.float32)]),
              16_000)
    return root


def lipsync(root, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "lipsync", "--face", "face.png",
                           "--audio", "speech.wav", "-o", "out.mp4", *extra],
                          cwd=root, capture_output=True, text=True, timeout=300)


def test_lipsync_prints_no_native_log_lines(photo_and_speech):
    proc = lipsync(photo_and_speech)
    assert proc.returncode == 0, proc.stderr
    assert not NOISE.search(proc.stderr), proc.stderr
    # livedub's own output still comes through: the progress bar and the stage table
    assert "lip-sync" in proc.stderr and "track" in proc.stdout + proc.stderr
    assert (photo_and_speech / "out.mp4").stat().st_size > 0


def test_debug_verbosity_still_shows_them(photo_and_speech):
    """The same run at -vv: the native lines are there to be hidden (so the test above can fail)."""
    proc = lipsync(photo_and_speech, "-vv", "-q")
    assert proc.returncode == 0, proc.stderr
    assert NOISE.search(proc.stderr), proc.stderr


def test_filter_drops_native_lines_and_keeps_the_rest(capfd):
    with quiet_native_logs():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"W0000 00:00:1796181617.439431   11598 inference_feedback_manager.cc:114] Feedback manager\n")
        os.write(2, b"E0000 00:00:1796181617.439431   11598 graph.cc:1] a native error stays")
        os.write(2, b" visible\nsomething a child process said\n")
        print("python's own stderr", file=sys.stderr)
    err = capfd.readouterr().err
    assert "TensorFlow Lite" not in err and "absl" not in err and "inference_feedback_manager" not in err
    assert "graph.cc:1] a native error stays visible\n" in err  # split writes arrive as one line
    assert "something a child process said\n" in err and "python's own stderr\n" in err
