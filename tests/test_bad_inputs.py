"""Never lose the user's file, never a traceback: every bad output path, option, config and signal a new user
tried (issue 13), run as the user runs it — `livedub ...` in a folder of their files.

Each refusal promises: exit 1, exactly one `livedub: error:` line naming the problem, no traceback, nothing
new left in the folder (no output, no partial file, no folder made for them), every input byte-identical.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import skimage.data
from media_files import write_av_mp4

from livedub.engines.audio import OUTPUT_RATE, SAMPLE_RATE, resample, write_wav

FPS = 25


@dataclass
class Folder:
    """The user's folder: their files, and what is in it now (every test must leave it exactly so)."""

    root: Path

    def snapshot(self) -> dict[str, str]:
        """Every file and folder below root (symlinks not followed) → sha256 (or 'dir', 'link', 'fifo': a pipe is
        never opened, as reading one blocks)."""
        out = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            for d in dirnames:
                out[os.path.relpath(os.path.join(dirpath, d), self.root)] = "dir"
            for f in filenames:
                p = Path(dirpath, f)
                out[str(p.relative_to(self.root))] = ("link" if p.is_symlink() else "fifo" if p.is_fifo()
                                                      else hashlib.sha256(p.read_bytes()).hexdigest())
        return out


@pytest.fixture(scope="module")
def folder(english_speech):
    """The user's folder of media, configs, a hard link, a symlink and a read-only folder."""
    root = Path(tempfile.mkdtemp(prefix="livedub-bad-inputs-"))
    speech = english_speech("The house is very big. My brother has a red car.")
    face = cv2.resize(skimage.data.astronaut()[0:300, 100:400, ::-1], (320, 320))
    coffee = cv2.resize(skimage.data.coffee()[:, :, ::-1], (320, 320))
    cv2.imwrite(str(root / "face.png"), face)
    write_wav(root / "speech.wav", speech, SAMPLE_RATE)
    write_wav(root / "long.wav", np.tile(speech, 6), SAMPLE_RATE)  # ~19 s: time to be stopped mid-run
    n = int(len(speech) / SAMPLE_RATE * FPS)
    from livedub.realtime.io.files import Mp4Writer

    audio = resample(speech, SAMPLE_RATE, OUTPUT_RATE)
    with Mp4Writer(root / "talk.mp4", 320, 320, FPS, audio, OUTPUT_RATE) as w:
        for _ in range(n):
            w.write(face)
    write_av_mp4(root / "noface.mp4", [coffee] * 50, speech[: 2 * SAMPLE_RATE])
    write_av_mp4(root / "oneframe.mp4", [face], speech[:SAMPLE_RATE])
    write_av_mp4(root / "silent.mp4", [face] * 50, np.zeros(2 * SAMPLE_RATE, np.float32))
    write_av_mp4(root / "whole.mp4", [face] * (2 * n), np.tile(speech, 2), faststart=True)
    whole = (root / "whole.mp4").read_bytes()
    (root / "truncated.mp4").write_bytes(whole[: len(whole) // 2])
    (root / "w.pth").write_bytes(np.random.default_rng(0).bytes(4096))  # refused before it is ever read
    (root / "model.onnx").write_bytes(b"an onnx model the user already has")
    (root / "latin1.toml").write_bytes('[asr]\nmodel = "/modèles/whisper"\n'.encode("latin-1"))
    (root / "asr-string.toml").write_text('asr = "x"\n')
    (root / "mt-number.toml").write_text("mt = 5\n")
    (root / "folder").mkdir()
    os.mkfifo(root / "pipe.wav")  # `mkfifo pipe.wav`, or what a shell's <(...) hands over
    cv2.imwrite(str(root / "wide.png"), np.tile(np.linspace(0, 255, 8192, dtype=np.uint8)[None, :, None], (256, 1, 3)))
    (root / "ro").mkdir()
    os.link(root / "talk.mp4", root / "hardlink.mp4")
    (root / "here").symlink_to(".")
    (root / "ro").chmod(0o555)
    yield Folder(root)
    (root / "ro").chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)


def livedub(folder: Folder, *args: str, prefix: tuple[str, ...] = (), timeout: float = 120) -> subprocess.CompletedProcess:
    """`livedub ARGS` in the user's folder, with no user config in the way."""
    env = {**os.environ, "LIVEDUB_CONFIG": str(folder.root / "no-config.toml"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*prefix, sys.executable, "-m", "livedub.realtime.cli", *args], cwd=folder.root, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("livedub: error:")]


def assert_refused(returncode: int, stderr: str, message: str, folder: Folder, before: dict[str, str]) -> None:
    errors = error_lines(stderr)
    assert returncode == 1, stderr
    assert len(errors) == 1 and message in errors[0], stderr
    assert "Traceback" not in stderr
    assert folder.snapshot() == before  # no output, no partial, no folder made; every input unchanged


REFUSED = {
    # the user's input is never an output (same inode: the same name, a hard link, a path through a symlink)
    "translate -o INPUT": (["translate", "talk.mp4", "--to", "es", "-o", "talk.mp4"], "same file as INPUT talk.mp4"),
    "translate --report INPUT": (["translate", "talk.mp4", "--to", "es", "-o", "out.mp4", "--report", "talk.mp4"],
                                 "--report talk.mp4 is the same file as INPUT"),
    "translate --report = -o": (["translate", "talk.mp4", "--to", "es", "-o", "out.mp4", "--report", "out.mp4"],
                                "same file as -o out.mp4"),
    "translate -o hard link of INPUT": (["translate", "talk.mp4", "--to", "es", "-o", "hardlink.mp4"],
                                        "same file as INPUT"),
    "translate -o INPUT through a symlink": (["translate", "talk.mp4", "--to", "es", "-o", "here/talk.mp4"],
                                             "same file as INPUT"),
    "translate -o the photo": (["translate", "face.png", "--text", "Hello.", "--from", "en", "--to", "es",
                                "-o", "face.png"], "same file as INPUT"),
    "translate -o --audio": (["translate", "face.png", "--audio", "speech.wav", "--to", "es", "-o", "speech.wav"],
                             "same file as --audio"),
    "translate --bank INPUT": (["translate", "talk.mp4", "--to", "es", "-o", "out.mp4", "--bank", "talk.mp4"],
                               "same file as INPUT"),
    "speech -o IN": (["speech", "speech.wav", "--to", "es", "-o", "speech.wav"], "same file as IN"),
    "speech --transcript = -o": (["speech", "speech.wav", "--to", "es", "-o", "out.wav", "--transcript", "out.wav"],
                                 "same file as -o"),
    "lipsync -o --audio": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "speech.wav"],
                           "same file as --audio"),
    "lipsync --bank --face": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "out.mp4",
                               "--bank", "face.png"], "same file as --face"),
    "export --onnx --checkpoint": (["export", "--checkpoint", "w.pth", "--onnx", "w.pth"],
                                   "same file as --checkpoint w.pth"),
    "export default beside itself": (["export", "--checkpoint", "model.onnx"], "same file as --checkpoint"),
    # where the output goes
    "translate -o no extension": (["translate", "talk.mp4", "--to", "es", "-o", "out"],
                                  "has no extension; use one of .mp4, .m4v, .mov, .mkv"),
    "translate -o .wav": (["translate", "talk.mp4", "--to", "es", "-o", "out.wav"], ".wav cannot hold"),
    "translate -o .jpg": (["translate", "talk.mp4", "--to", "es", "-o", "out.jpg"], ".jpg cannot hold"),
    "speech -o .mp3": (["speech", "speech.wav", "--to", "es", "-o", "out.mp3"], "use one of .wav"),
    "translate --report .txt": (["translate", "talk.mp4", "--to", "es", "-o", "out.mp4", "--report", "r.txt"],
                                "use one of .json"),
    "export --onnx .pt": (["export", "--checkpoint", "w.pth", "--onnx", "w.pt"], "use one of .onnx"),
    "translate -o folder": (["translate", "talk.mp4", "--to", "es", "-o", "folder"], "is a folder"),
    "speech -o folder": (["speech", "speech.wav", "--to", "es", "-o", "folder"], "is a folder"),
    "export --onnx folder": (["export", "--checkpoint", "w.pth", "--onnx", "folder"], "is a folder"),
    "translate -o a file as folder": (["translate", "talk.mp4", "--to", "es", "-o", "talk.mp4/out.mp4"],
                                      "a file is in the way"),
    "translate -o new folder, bad input": (["translate", "face.png", "--audio", "nope.wav", "--to", "es",
                                            "-o", "new/deeper/out.mp4"], "no such file"),
    # numbers
    "translate --fps 0": (["translate", "face.png", "--text", "Hi.", "--to", "en", "-o", "o.mp4", "--fps", "0"], "--fps 0"),
    "translate --fps -5": (["translate", "face.png", "--text", "Hi.", "--to", "en", "-o", "o.mp4", "--fps", "-5"],
                           "--fps -5"),
    "translate --fps nan": (["translate", "face.png", "--text", "Hi.", "--to", "en", "-o", "o.mp4", "--fps", "nan"],
                            "--fps nan"),
    "lipsync --fps 0": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4", "--fps", "0"], "--fps 0"),
    "lipsync --fps inf": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4", "--fps", "inf"],
                          "--fps inf"),
    "lipsync --resize-factor 0": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4",
                                   "--resize-factor", "0"], "--resize-factor 0"),
    "lipsync --resize-factor -2": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4",
                                    "--resize-factor", "-2"], "--resize-factor -2"),
    "lipsync --pads -1": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4",
                           "--pads", "-1", "10", "0", "0"], "--pads TOP -1"),
    "translate --min-speed nan": (["translate", "talk.mp4", "--to", "es", "-o", "o.mp4", "--min-speed", "nan"],
                                  "--min-speed"),
    "translate --keep-original 2": (["translate", "talk.mp4", "--to", "es", "-o", "o.mp4", "--keep-original", "2"],
                                    "--keep-original 2"),
    "export --max-batch 0": (["export", "--checkpoint", "w.pth", "--max-batch", "0"], "--max-batch 0"),
    "evaluate --max-offset -5": (["evaluate", "talk.mp4", "--max-offset", "-5"], "--max-offset -5"),
    "evaluate --max-offset 100000": (["evaluate", "talk.mp4", "--max-offset", "100000"], "--max-offset 100000"),
    "evaluate --max-offset past the clip": (["evaluate", "talk.mp4", "--max-offset", "500"], "frames, so at most"),
    # languages, before any model runs
    "translate --to ''": (["translate", "talk.mp4", "--to", "", "-o", "o.mp4"], "--to language ''"),
    "translate --to xx": (["translate", "talk.mp4", "--to", "xx", "-o", "o.mp4"], "--to language 'xx'"),
    "speech --from zz": (["speech", "speech.wav", "--from", "zz", "--to", "es", "-o", "o.wav"], "--from language 'zz'"),
    # config files
    "models --config missing": (["models", "--config", "nonexistent.toml"], "--config nonexistent.toml: no such file"),
    "models --config not UTF-8": (["models", "--config", "latin1.toml"], "latin1.toml: the config file is not UTF-8"),
    "models asr = string": (["models", "--config", "asr-string.toml"], '[asr] must be a table with model = "DIR"'),
    "models mt = 5": (["models", "--config", "mt-number.toml"], "[mt] must be a table of PAIR"),
    "speech --config not UTF-8": (["speech", "speech.wav", "--to", "es", "-o", "o.wav", "--config", "latin1.toml"],
                                  "not UTF-8"),
    "speech asr = string": (["speech", "speech.wav", "--to", "es", "-o", "o.wav", "--config", "asr-string.toml"],
                            "[asr] must be a table"),
    "speech mt = 5": (["speech", "speech.wav", "--to", "es", "-o", "o.wav", "--config", "mt-number.toml"],
                      "[mt] must be a table"),
    # issue 17: nothing to say, folders as checkpoints, model pairs, a box off the picture
    "translate --text emoji only": (["translate", "face.png", "--text", "😀🎉", "--to", "es", "-o", "emoji.mp4"],
                                    "--text '😀🎉': nothing speakable in the text"),
    "translate --text punctuation only": (["translate", "face.png", "--text", " ?! … ", "--to", "es", "-o", "o.mp4"],
                                          "nothing speakable in the text"),
    "translate --checkpoint folder": (["translate", "talk.mp4", "--to", "es", "-o", "o.mp4", "--checkpoint", "folder"],
                                      "--checkpoint folder: is a folder, not a file (pass a Wav2Lip checkpoint"),
    "lipsync --checkpoint folder": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4",
                                     "--checkpoint", "folder"], "--checkpoint folder: is a folder, not a file"),
    "export --checkpoint folder": (["export", "--checkpoint", "folder"], "--checkpoint folder: is a folder, not a file"),
    "evaluate --syncnet folder": (["evaluate", "talk.mp4", "--syncnet", "folder"],
                                  "--syncnet folder: is a folder, not a file (pass a SyncNet checkpoint"),
    "evaluate --syncnet not a checkpoint": (["evaluate", "talk.mp4", "--syncnet", "w.pth"],
                                            "w.pth: cannot be read as a PyTorch checkpoint"),
    "models --mt-model garbage": (["models", "--mt-model", "garbage:::=="], "--mt-model 'garbage:::==': expected "
                                  "PAIR=DIR, PAIR being two language codes (en-de) or any"),
    "translate --mt-model unknown language": (["translate", "talk.mp4", "--to", "es", "-o", "o.mp4", "--mt-model",
                                               "en-xx=folder"], "--mt-model 'en-xx=folder': expected PAIR=DIR"),
    "translate --box outside the photo": (["translate", "face.png", "--text", "Hello.", "--from", "en", "--to", "en",
                                           "-o", "o.mp4", "--box", "500 600 500 600"],
                                          "--box '500 600 500 600': lies outside the 320x320 image face.png"),
    "lipsync --box partly outside": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "o.mp4",
                                      "--box", "100 200 250 330"], "lies outside the 320x320 image face.png"),
}


@pytest.mark.parametrize(("argv", "message"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_with_one_message_and_nothing_touched(folder, argv, message, capsys, monkeypatch):
    """In-process (fast): an exception escaping main() would be the user's traceback and fail the test."""
    from livedub.realtime.cli import main

    monkeypatch.chdir(folder.root)
    monkeypatch.setenv("LIVEDUB_CONFIG", str(folder.root / "no-config.toml"))
    before = folder.snapshot()
    code = main([*argv, "-q"])
    assert_refused(code, capsys.readouterr().err, message, folder, before)


ENVIRONMENT_REFUSED = {
    "LIVEDUB_MT_MODELS garbage": ({"LIVEDUB_MT_MODELS": "garbage:::=="}, ["models"],
                                  "LIVEDUB_MT_MODELS 'garbage': expected PAIR=DIR"),
    "LIVEDUB_WAV2LIP folder": ({"LIVEDUB_WAV2LIP": "folder"}, ["lipsync", "--face", "face.png", "--audio", "speech.wav",
                                                              "-o", "o.mp4"],
                               "LIVEDUB_WAV2LIP folder: is a folder, not a file (pass a Wav2Lip checkpoint"),
    "LIVEDUB_SYNCNET folder": ({"LIVEDUB_SYNCNET": "folder"}, ["evaluate", "talk.mp4"],
                               "LIVEDUB_SYNCNET folder: is a folder, not a file (pass a SyncNet checkpoint"),
}


@pytest.mark.parametrize(("env", "argv", "message"), list(ENVIRONMENT_REFUSED.values()), ids=list(ENVIRONMENT_REFUSED))
def test_environment_is_checked_as_the_flags_are(folder, env, argv, message, capsys, monkeypatch):
    """A model path from the environment gets the flag's check and the flag's words, not a pass or another
    message (LIVEDUB_MT_MODELS="garbage:::==" was accepted by `models` while --mt-model refused it)."""
    from livedub.realtime.cli import main

    monkeypatch.chdir(folder.root)
    monkeypatch.setenv("LIVEDUB_CONFIG", str(folder.root / "no-config.toml"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    before = folder.snapshot()
    code = main([*argv, "-q"])
    err = capsys.readouterr().err
    assert_refused(code, err, message, folder, before)
    if "LIVEDUB_MT_MODELS" in env:  # the same rule as the flag: the same words after the source
        assert main(["models", "--mt-model", "garbage", "-q"]) == 1
        flag_line = error_lines(capsys.readouterr().err)[0]
        assert flag_line.split("': ", 1)[1] == error_lines(err)[0].split("': ", 1)[1]


PIPE_REFUSED = {
    "translate --audio pipe": ["translate", "face.png", "--audio", "pipe.wav", "--to", "es", "-o", "o.mp4"],
    "lipsync --audio pipe": ["lipsync", "--face", "face.png", "--audio", "pipe.wav", "-o", "o.mp4"],
    "translate INPUT pipe": ["translate", "pipe.wav", "--to", "es", "-o", "o.mp4"],
    "translate --text-file pipe": ["translate", "face.png", "--text-file", "pipe.wav", "--to", "es", "-o", "o.mp4"],
    "models --config pipe": ["models", "--config", "pipe.wav"],
}


@pytest.mark.parametrize("argv", list(PIPE_REFUSED.values()), ids=list(PIPE_REFUSED))
def test_a_named_pipe_is_refused_without_reading_it(folder, argv):
    """A FIFO was called "empty" (and a pipe as --text-file or --config blocked the read): it is named as a
    pipe, and never opened. A subprocess with a timeout, so a read that blocks fails the test."""
    before = folder.snapshot()
    proc = livedub(folder, *argv, "-q", timeout=60)
    assert_refused(proc.returncode, proc.stderr, "pipe.wav: is a named pipe (FIFO), not a regular file", folder,
                   before)


def test_a_photo_larger_than_4096_is_scaled_down_with_a_note(folder):
    """An 8192x256 photo is worked on at 4096x128, and one line says so (it used to happen silently)."""
    out = folder.root / "wide.mp4"
    proc = livedub(folder, "translate", "wide.png", "--text", "Hello.", "--from", "en", "--to", "en", "-o", "wide.mp4",
                   "-q")
    try:
        assert proc.returncode == 0, proc.stderr
        notes = [line for line in proc.stderr.splitlines() if line.startswith("livedub: note:")]
        assert notes == ["livedub: note: wide.png is 8192x256: livedub works at most 4096 pixels a side, so it is "
                         "scaled down to 4096x128 (the output too)"], proc.stderr
        with av.open(str(out)) as c:
            assert (c.streams.video[0].width, c.streams.video[0].height) == (4096, 128)
    finally:
        out.unlink(missing_ok=True)


def test_a_box_on_a_scaled_down_photo_is_scaled_with_it(folder, capsys):
    """--box is in the user's pixels; the frames are worked at half size, so the box is halved."""
    import argparse

    from livedub.realtime.cli.common import face_box

    args = argparse.Namespace(face=str(folder.root / "wide.png"), box="10 100 5000 5400", resize_factor=None)
    assert face_box(args) == (2500, 5, 2700, 50)
    assert "--box is scaled with it" in capsys.readouterr().err


EVALUATE_REFUSED = {
    "no usable face": ("noface.mp4", "a usable face in 0 of 50 frames"),
    "one frame": ("oneframe.mp4", "a usable face in 1 of 1 frames"),
    "digital silence": ("silent.mp4", "no speech in the audio track"),
}


@pytest.mark.parametrize(("video", "message"), list(EVALUATE_REFUSED.values()), ids=list(EVALUATE_REFUSED))
def test_evaluate_refuses_what_it_cannot_measure(folder, video, message):
    """Not "+0 frames (in sync)" with a nan correlation: a clip with nothing to compare is no verdict."""
    before = folder.snapshot()
    proc = livedub(folder, "evaluate", video)
    assert_refused(proc.returncode, proc.stderr, message, folder, before)
    assert "in sync" not in proc.stdout


def test_evaluate_measures_what_decodes_of_a_truncated_file(folder):
    proc = livedub(folder, "evaluate", "truncated.mp4")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and not error_lines(proc.stderr)
    warning = [line for line in proc.stderr.splitlines() if line.startswith("livedub: warning:")]
    assert len(warning) == 1 and "damaged or truncated at" in warning[0], proc.stderr  # and where
    decoded = int(proc.stdout.split(":")[1].split("frames")[0])
    with av.open(str(folder.root / "whole.mp4")) as c:
        whole = c.streams.video[0].frames
    assert 0 < decoded < whole  # what decodes, not the header's count
    assert "the mouth does not move" in proc.stdout  # a still photo's mouth: no offset is claimed


def _without_root_override() -> tuple[str, ...]:
    """A command prefix under which a read-only folder is read-only even when the tests run as root: in a new
    user namespace root keeps its files (owner permissions) but loses the override of permission bits."""
    if os.geteuid() != 0:
        return ()
    probe = subprocess.run(["unshare", "-U", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("running as root without user namespaces: a read-only folder cannot be made here")
    return ("unshare", "-U")


READ_ONLY = {
    "translate -o": (["translate", "talk.mp4", "--to", "es", "-o", "ro/out.mp4"], "-o ro/out.mp4: cannot write in"),
    "translate --report": (["translate", "talk.mp4", "--to", "es", "-o", "out.mp4", "--report", "ro/r.json"],
                           "--report ro/r.json: cannot write in"),
    "translate --subs": (["translate", "face.png", "--text", "Hi.", "--from", "en", "--to", "en", "-o", "ro/hi.mp4",
                          "--subs"], "cannot write in"),
    "speech -o": (["speech", "speech.wav", "--to", "es", "-o", "ro/out.wav"], "cannot write in"),
    "speech --transcript": (["speech", "speech.wav", "--to", "es", "-o", "out.wav", "--transcript", "ro/t.json"],
                            "--transcript ro/t.json: cannot write in"),
    "lipsync --bank": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "out.mp4",
                        "--bank", "ro/b.npz"], "--bank ro/b.npz: cannot write in"),
    "lipsync --bank in a new folder": (["lipsync", "--face", "face.png", "--audio", "speech.wav", "-o", "out.mp4",
                                        "--bank", "ro/new/b.npz"], "cannot create the folder ro/new"),
    "export --onnx": (["export", "--checkpoint", "w.pth", "--onnx", "ro/w.onnx"], "cannot write in"),
}


@pytest.mark.parametrize(("argv", "message"), list(READ_ONLY.values()), ids=list(READ_ONLY))
def test_read_only_folder_is_refused_before_any_work(folder, argv, message):
    before = folder.snapshot()
    started = time.perf_counter()
    proc = livedub(folder, *argv, "-q", prefix=_without_root_override())
    assert_refused(proc.returncode, proc.stderr, message, folder, before)
    assert time.perf_counter() - started < 30  # up front: no recognition, translation or encoding ran first


@pytest.mark.parametrize(("sig", "code", "said"), [(signal.SIGTERM, 143, "stopped by signal SIGTERM"),
                                                   (signal.SIGHUP, 129, "stopped by signal SIGHUP"),
                                                   (signal.SIGINT, 130, "interrupted")],
                         ids=["SIGTERM", "SIGHUP", "SIGINT"])
def test_stopped_mid_run_leaves_nothing_half_written(folder, sig, code, said):
    """`timeout 14 livedub ...`, a closed terminal, Ctrl-C: the same cleanup, no hidden .partial files."""
    before = folder.snapshot()
    env = {**os.environ, "LIVEDUB_CONFIG": str(folder.root / "no-config.toml"), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "livedub.realtime.cli", "lipsync", "--face", "face.png",
                             "--audio", "long.wav", "-o", "stopped/out.mp4", "--bank", "stopped/b.npz", "-q"],
                            cwd=folder.root, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while not list((folder.root / "stopped").glob(".out.partial-*.mp4")):  # the encoder is writing
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it could be stopped"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert said in stderr and "Traceback" not in stderr and not error_lines(stderr)
    assert folder.snapshot() == before


def test_missing_folders_are_made_and_all_outputs_land_together(folder):
    """The bank, report and subtitles in folders that do not exist yet: made, and every file whole."""
    import json

    from livedub.engines.lipsync.exemplar_bank import MouthBank

    proc = livedub(folder, "translate", "face.png", "--text", "Hello everyone.", "--from", "en", "--to", "en",
                   "-o", "made/a/hello.mp4", "--report", "made/b/r.json", "--subs", "--bank", "made/c/me.npz", "-q")
    try:
        assert proc.returncode == 0, proc.stderr
        made = folder.root / "made"
        report = json.loads((made / "b" / "r.json").read_text())
        assert report["output"] == "made/a/hello.mp4" and report["segments"]
        assert "Hello everyone" in (made / "a" / "hello.en.srt").read_text()
        assert (made / "a" / "hello.en.vtt").read_text().startswith("WEBVTT")
        MouthBank.load(made / "c" / "me.npz")  # raises unless it is a whole bank
        with av.open(str(made / "a" / "hello.mp4")) as c:
            assert sum(1 for _ in c.decode(c.streams.video[0])) >= FPS * report["segments"][-1]["end"]
        assert not list(made.rglob(".*partial*"))
    finally:
        shutil.rmtree(folder.root / "made", ignore_errors=True)


def test_a_run_leaves_all_its_outputs_or_none(tmp_path):
    """The policy itself: outputs written in a plan appear only when the whole run succeeds."""
    from livedub.engines.errors import LivedubError
    from livedub.realtime.outputs import JSON, WAV, OutputPlan, atomic_output

    speech, report = tmp_path / "out.wav", tmp_path / "side" / "r.json"
    speech.write_text("yesterday's good result")

    def run(fail: bool) -> None:
        plan = OutputPlan()
        plan.add("-o", speech, WAV)
        plan.add("--report", report, JSON)
        with plan:
            with atomic_output(speech) as tmp:
                tmp.write_text("new speech")
            with atomic_output(report) as tmp:
                tmp.write_text("{}")
            if fail:
                raise LivedubError("the last step failed")

    with pytest.raises(LivedubError):
        run(fail=True)
    assert speech.read_text() == "yesterday's good result" and not (tmp_path / "side").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    run(fail=False)
    assert speech.read_text() == "new speech" and report.read_text() == "{}"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out.wav", "r.json", "side"]
