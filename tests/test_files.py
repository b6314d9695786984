"""The one atomic writer: a reader sees the old file or the whole new one, a failed write leaves nothing
behind, a full disk is one clear error, and a run's `OutputPlan` holds the writes of its outputs (an
engine's own atomic write included) until the whole run succeeds."""

from __future__ import annotations

import errno

import pytest

from livedub.engines.errors import LivedubError, WriteError
from livedub.engines.files import atomic_write
from livedub.realtime.outputs import BANK, OutputPlan


def test_the_new_file_appears_whole_and_only_at_the_end(tmp_path):
    target = tmp_path / "deep" / "er" / "model.onnx"
    with atomic_write(target) as partial:
        assert partial.parent == target.parent and partial.suffix == ".onnx" and partial.name.startswith(".")
        partial.write_bytes(b"first half ")
        assert not target.exists()
        with open(partial, "ab") as f:
            f.write(b"second half")
    assert target.read_bytes() == b"first half second half"
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial(tmp_path):
    target = tmp_path / "voice_pitch.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as partial:
        partial.write_text("half of the new")
        raise RuntimeError("the writer crashed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["voice_pitch.json"]


def test_a_full_disk_is_one_clear_error_naming_the_file(tmp_path):
    target = tmp_path / "bank.npz"
    with pytest.raises(WriteError) as info, atomic_write(target) as partial:
        partial.write_bytes(b"PK")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert isinstance(info.value, LivedubError) and isinstance(info.value, OSError)
    assert str(info.value) == f"{target}: cannot be written (No space left on device)"
    assert info.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_two_writes_of_one_file_in_one_process_do_not_share_a_partial(tmp_path):
    target = tmp_path / "stamp"
    with atomic_write(target) as first, atomic_write(target) as second:
        assert first != second
        first.write_text("a")
        second.write_text("b")
    assert target.read_text() == "a"  # the outer write finished last
    assert [p.name for p in tmp_path.iterdir()] == ["stamp"]


def test_a_plan_holds_an_engine_write_of_its_output_until_the_run_succeeds(tmp_path):
    """The mouth bank saves itself with `atomic_write`; inside a plan that names it, the bank appears with
    the run's other outputs, or not at all. A model cache written during the run is not held."""
    bank, cache = tmp_path / "me.npz", tmp_path / "cache" / "model.onnx"
    bank.write_text("yesterday's bank")

    def run(fail: bool) -> None:
        plan = OutputPlan()
        plan.add("--bank", bank, BANK)
        with plan:
            with atomic_write(bank) as partial:
                partial.write_text("today's bank")
            assert bank.read_text() == "yesterday's bank"  # held until the end of the run
            with atomic_write(cache) as partial:
                partial.write_text("model")
            assert cache.read_text() == "model"  # not an output: in place at once
            if fail:
                raise LivedubError("a later step failed")

    with pytest.raises(LivedubError):
        run(fail=True)
    assert bank.read_text() == "yesterday's bank"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "me.npz"]
    run(fail=False)
    assert bank.read_text() == "today's bank"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "me.npz"]


def test_a_plan_keeps_the_last_of_two_writes_of_one_output(tmp_path):
    bank = tmp_path / "me.npz"
    plan = OutputPlan()
    plan.add("--bank", bank, BANK)
    with plan:
        for text in ("first", "second"):
            with atomic_write(bank) as partial:
                partial.write_text(text)
    assert bank.read_text() == "second" and [p.name for p in tmp_path.iterdir()] == ["me.npz"]
