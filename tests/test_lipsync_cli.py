"""`livedub lipsync` and `livedub evaluate` end to end on a real face photo and a generated video."""

import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import skimage.data

from livedub.engines.audio import SAMPLE_RATE, write_wav
from livedub.engines.lipsync.sync_metric import evaluate_sync
from livedub.realtime.cli import main


@pytest.fixture(scope="module")
def media(tmp_path_factory, english_speech):
    root = tmp_path_factory.mktemp("lipsync")
    face = root / "astronaut.png"
    cv2.imwrite(str(face), skimage.data.astronaut()[:, :, ::-1])
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    pcm = np.concatenate([gap, english_speech("Hello there. This is a short test of the lip sync engine."), gap])
    speech = root / "speech.wav"
    write_wav(speech, pcm, SAMPLE_RATE)
    # a 1 s video of the face drifting slightly: shorter than the speech, so it must loop back and forth
    video = root / "face.mp4"
    img = skimage.data.astronaut()[:, :, ::-1]
    with av.open(str(video), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 512, 512, "yuv420p"
        for i in range(25):
            shifted = np.roll(img, i // 3, axis=1)
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(shifted), format="bgr24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return root, face, speech, video, len(pcm) / SAMPLE_RATE


def probe(path):
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        frames = sum(1 for _ in c.decode(v))
        return v.codec_context.name, a.codec_context.name, frames, (v.width, v.height), float(v.average_rate)


def test_photo_becomes_a_speaking_video(media):
    root, face, speech, _, duration = media
    out = root / "photo_out.mp4"
    assert main(["lipsync", "--face", str(face), "--audio", str(speech), "-o", str(out), "-q"]) == 0
    vcodec, acodec, frames, size, fps = probe(out)
    assert (vcodec, acodec, size, fps) == ("h264", "aac", (512, 512), 25.0)
    assert frames == int(np.ceil(duration * 25))
    report = evaluate_sync(out)
    assert report.peak_correlation >= 0.5
    assert abs(report.offset_frames) <= 2


def test_short_video_loops_to_cover_the_audio(media):
    root, _, speech, video, duration = media
    out = root / "video_out.mp4"
    assert main(["lipsync", "--face", str(video), "--audio", str(speech), "-o", str(out), "-q", "--nosmooth"]) == 0
    _, _, frames, size, fps = probe(out)
    assert size == (512, 512) and fps == 25.0
    assert frames == int(np.ceil(duration * 25))
    assert evaluate_sync(out).peak_correlation >= 0.5


def test_fixed_box_skips_detection(media):
    root, face, speech, _, _ = media
    out = root / "box_out.mp4"
    # the astronaut's face lies roughly in rows 40..260, columns 140..340
    assert main(["lipsync", "--face", str(face), "--audio", str(speech), "-o", str(out), "-q",
                 "--box", "40 260 140 340"]) == 0
    assert evaluate_sync(out).peak_correlation >= 0.5


def test_evaluate_command_prints_offset_and_correlation(media):
    root, face, speech, _, _ = media
    out = root / "eval.mp4"
    main(["lipsync", "--face", str(face), "--audio", str(speech), "-o", str(out), "-q"])
    proc = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "evaluate", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "AV offset" in proc.stdout and "peak correlation" in proc.stdout
    assert "no SyncNet checkpoint" in proc.stdout


@pytest.mark.parametrize(
    ("case", "message"),
    [("no-face", "no usable face"), ("unreadable-face", "cannot be read"), ("silent-audio", "no speech"),
     ("missing-audio", "no such file"), ("missing-checkpoint", "wav2lip")],
)
def test_bad_inputs_give_one_clear_message_and_no_output(case, message, media, tmp_path):
    _, face, speech, _, _ = media
    args = ["--face", str(face), "--audio", str(speech)]
    if case == "no-face":
        coffee = tmp_path / "coffee.png"
        cv2.imwrite(str(coffee), skimage.data.coffee()[:, :, ::-1])
        args = ["--face", str(coffee), "--audio", str(speech)]
    elif case == "unreadable-face":
        bad = tmp_path / "face.jpg"
        bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
        args = ["--face", str(bad), "--audio", str(speech)]
    elif case == "silent-audio":
        silent = tmp_path / "silent.wav"
        write_wav(silent, np.zeros(2 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
        args = ["--face", str(face), "--audio", str(silent)]
    elif case == "missing-audio":
        args = ["--face", str(face), "--audio", str(tmp_path / "nope.wav")]
    elif case == "missing-checkpoint":
        args += ["--engine", "wav2lip"]
    out = tmp_path / "out.mp4"
    proc = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "lipsync", *args, "-o", str(out), "-q"],
                          capture_output=True, text=True, timeout=300, env={"LIVEDUB_CONFIG": str(tmp_path / "x.toml"),
                                                                             "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_export_and_wav2lip_pipeline_with_a_random_checkpoint(media, tmp_path, tmp_cache):
    """Pipeline behaviour only: random weights prove loading, export, caching and frame flow, not lip-sync."""
    import torch

    from livedub.engines.lipsync.wav2lip_model import random_generator

    _, face, speech, _, duration = media
    ckpt = tmp_path / "wav2lip_gan.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in random_generator(0).state_dict().items()},
                "optimizer": {"state": {}}}, ckpt)
    onnx = tmp_path / "w.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--onnx", str(onnx), "-q"]) == 0
    assert onnx.stat().st_size > 100e6  # 36 M float32 parameters
    out = tmp_path / "w2l.mp4"
    assert main(["lipsync", "--face", str(face), "--audio", str(speech), "--checkpoint", str(ckpt),
                 "-o", str(out), "-q"]) == 0
    assert probe(out)[2] == int(np.ceil(duration * 25))
    assert list((tmp_cache / "wav2lip").glob("*.onnx"))  # converted once, cached by the checkpoint's hash
