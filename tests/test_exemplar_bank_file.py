"""Mouth bank files: saved atomically (a crash mid-write keeps the old bank), into folders that do not exist
yet, and banks written by the previous format still load. The bank is a real one: the astronaut portrait
made to talk by the viseme engine, tracked by mediapipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_exemplar import head_motion

from livedub.engines.lipsync.exemplar import SOURCES, ExemplarEngine
from livedub.engines.lipsync.exemplar_bank import MouthBank
from livedub.engines.lipsync.mouth_shape import MouthShape
from livedub.engines.lipsync.viseme import VisemeEngine


@pytest.fixture(scope="module")
def small_bank(portrait, tracker) -> MouthBank:
    frame, face = portrait
    viseme = VisemeEngine()
    shapes = [MouthShape()] * 3 + [MouthShape(o, 0.3, 0.0) for o in (0.2, 0.5, 0.8, 1.0)] + [MouthShape()] * 2
    frames = [head_motion(viseme.render_shape(frame, face, s), i) for i, s in enumerate(shapes)]
    tracker.reset()
    bank = MouthBank(min_exemplars=4)
    for i, f in enumerate(frames):
        bank.add(f, tracker.track(f, timestamp=i / 25))
    assert len(bank) >= 4
    return bank


def test_save_creates_folders_and_leaves_no_temporary(small_bank, tmp_path):
    path = small_bank.save(tmp_path / "banks" / "alice" / "me.npz")
    assert path.exists() and sorted(p.name for p in path.parent.iterdir()) == ["me.npz"]
    again = MouthBank.load(path)
    assert len(again) == len(small_bank) and again.usual_pose() == pytest.approx(small_bank.usual_pose())
    assert [e.pitch for e in again.exemplars] == pytest.approx([e.pitch for e in small_bank.exemplars])


def test_failed_save_keeps_the_old_bank(small_bank, tmp_path, monkeypatch):
    """The disk fills up half-way through writing (injected): the bank saved before is still there and
    loads, and no partial file is left beside it."""
    path = small_bank.save(tmp_path / "me.npz")
    before = path.read_bytes()

    def disk_full(self, fh, *args):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(MouthBank, "_write", disk_full)
    with pytest.raises(OSError, match="No space"):
        small_bank.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["me.npz"]
    assert len(MouthBank.load(path)) == len(small_bank)


def test_format_1_bank_still_loads(small_bank, tmp_path):
    """Banks saved before pitch was modelled: no pitch, no pose history, the old absolute limits in the
    config. They load (pitch 0), and the old 15° yaw limit does not come back with them."""
    path = small_bank.save(tmp_path / "new.npz")
    with np.load(path) as z:
        data = {k: z[k] for k in z.files if k not in ("pitch", "poses", "sharpness")}
    config = json.loads(str(data["config"]))
    config = {k: v for k, v in config.items() if k not in ("yaw_band", "pitch_band", "max_turn")}
    config.update(max_yaw=15.0, min_sharpness=8.0)
    data.update(format_version=np.int32(1), config=np.array(json.dumps(config)))
    np.savez_compressed(tmp_path / "old.npz", **data)
    old = MouthBank.load(tmp_path / "old.npz")
    assert len(old) == len(small_bank) and all(e.pitch == 0.0 for e in old.exemplars)
    assert old.max_turn == MouthBank().max_turn and not hasattr(old, "max_yaw")


def test_counts_start_at_zero_with_every_key():
    assert ExemplarEngine().source_counts() == dict.fromkeys(SOURCES, 0)
    assert SOURCES == ("exemplar", "fallback_bank_not_ready", "fallback_pose_uncovered", "passthrough")
