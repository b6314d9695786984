"""`livedub speech` end to end on generated English, and its answers to bad inputs."""

import json
import subprocess
import sys

import av
import numpy as np
import pytest

from livedub.engines.audio import SAMPLE_RATE, decode_audio, write_wav
from livedub.realtime.cli import main

SENTENCES = ["The house is very big.", "My brother has a red car."]


@pytest.fixture(scope="module")
def english_clip(tmp_path_factory, english_speech):
    """Two English sentences with a pause between them, starting after a short silence."""
    rate = SAMPLE_RATE
    gap = np.zeros(int(0.8 * rate), np.float32)
    pcm = np.concatenate([gap, english_speech(SENTENCES[0]), gap, gap, english_speech(SENTENCES[1]), gap])
    path = tmp_path_factory.mktemp("speech") / "talk_en.wav"
    write_wav(path, pcm, rate)
    return path, len(pcm) / rate


@pytest.fixture(scope="module")
def dubbed(english_clip, tmp_path_factory):
    src, duration = english_clip
    out = tmp_path_factory.mktemp("out")
    wav, transcript = out / "talk_es.wav", out / "talk_es.json"
    code = main(["speech", str(src), "--to", "es", "-o", str(wav), "--transcript", str(transcript), "-q"])
    return code, wav, json.loads(transcript.read_text()), duration


def test_speech_translates_english_to_spanish(dubbed):
    code, wav, doc, _ = dubbed
    assert code == 0
    assert doc["source_language"] == "en" and doc["target_language"] == "es"
    spanish = " ".join(s["text"] for s in doc["segments"]).lower()
    for word in ("casa", "grande", "hermano", "coche", "rojo"):
        assert word in spanish, (word, spanish)
    english = " ".join(s["source_text"] for s in doc["segments"]).lower()
    assert "house" in english and "brother" in english


def test_clips_start_at_their_source_and_never_overlap(dubbed):
    _, _, doc, _ = dubbed
    segs = doc["segments"]
    assert len(segs) == 2
    for s in segs:
        assert 0.8 <= s["speed"] <= 1.3
        assert s["start"] >= s["source_start"] - 1e-3
        assert s["end"] > s["start"]
    assert segs[0]["start"] == pytest.approx(segs[0]["source_start"], abs=1e-3)
    assert segs[1]["start"] >= segs[0]["end"]


def test_output_audio_holds_speech_where_the_transcript_says(dubbed):
    _, wav, doc, duration = dubbed
    pcm = decode_audio(wav)
    assert len(pcm) / SAMPLE_RATE >= duration - 0.05
    for s in doc["segments"]:
        inside = pcm[int(s["start"] * SAMPLE_RATE) : int(s["end"] * SAMPLE_RATE)]
        assert np.sqrt(np.mean(inside**2)) > 0.01
    before = pcm[: int(doc["segments"][0]["start"] * SAMPLE_RATE) - 800]
    assert np.max(np.abs(before), initial=0) < 1e-3


def _run(args, tmp_path):
    out = tmp_path / "out.wav"
    proc = subprocess.run([sys.executable, "-m", "livedub.realtime.cli", "speech", *map(str, args), "--to", "es",
                           "-o", str(out), "-q"], capture_output=True, text=True, timeout=300)
    return proc, out


def _video_without_audio(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for _ in range(10):
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "no such file"),
        ("empty", "empty"),
        ("corrupt", "cannot be read"),
        ("silent", "no speech"),
        ("noise", "no speech"),
        ("video-without-audio", "no audio track"),
    ],
)
def test_bad_inputs_give_one_clear_message_and_no_output(kind, message, tmp_path):
    src = tmp_path / f"in-{kind}.wav"
    rng = np.random.default_rng(0)
    if kind == "empty":
        src.write_bytes(b"")
    elif kind == "corrupt":
        src = tmp_path / "in.mp4"
        src.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif kind == "silent":
        write_wav(src, np.zeros(SAMPLE_RATE * 3, np.float32), SAMPLE_RATE)
    elif kind == "noise":
        write_wav(src, (0.05 * rng.standard_normal(SAMPLE_RATE * 3)).astype(np.float32), SAMPLE_RATE)
    elif kind == "video-without-audio":
        src = tmp_path / "in.mp4"
        _video_without_audio(src)
    proc, out = _run([src], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr.lower(), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".*partial*"))
