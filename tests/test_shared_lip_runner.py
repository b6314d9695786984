"""One Wav2Lip model per process, shared by every session through the LipBatcher.

The model is the real generator architecture with random weights, exported to ONNX and run by ONNX Runtime on
the CPU, as sessions on a server run it: each session calls from its own thread (its video worker). Random
weights draw noise: these check sharing, batching, parity and failure handling, not lip-sync quality.
"""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from livedub.engines.lipsync import PcmTimeline
from livedub.engines.lipsync.backends import OrtRunner
from livedub.realtime.face.batcher import FrameDropped, LipBatcher


def _inputs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-4, 4, (n, 1, 80, 16)).astype(np.float32),
            rng.uniform(0, 1, (n, 6, 96, 96)).astype(np.float32))


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    from livedub.engines.lipsync.wav2lip_model import random_generator
    from livedub.export.onnx_export import export_model

    return export_model(random_generator(0), tmp_path_factory.mktemp("onnx") / "wav2lip_random.onnx")


@pytest.fixture(scope="module")
def runner(onnx_model) -> OrtRunner:
    return OrtRunner(onnx_model, ["CPUExecutionProvider"], threads=2)


def _direct(runner: OrtRunner, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
    """Per-frame inference straight on the runner: the reference the batched outputs must match."""
    return np.concatenate([runner.run(mel[i : i + 1], face[i : i + 1]) for i in range(len(mel))])


def _inference_sessions() -> int:
    return sum(type(o) is ort.InferenceSession for o in gc.get_objects())


class Gate:
    """The real runner behind a gate: the first batch holds until `release`, so tests can line frames up
    behind a running batch. `fail_first` makes the first batch a real ONNX Runtime error (a malformed feed)."""

    def __init__(self, runner: OrtRunner, *, fail_first: bool = False):
        self.runner, self.fail_first = runner, fail_first
        self.name, self.pads_batches = runner.name, False
        self.started, self.opened = threading.Event(), threading.Event()
        self.calls: list[int] = []

    def release(self) -> None:
        self.opened.set()

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        self.calls.append(len(mel))
        if len(self.calls) == 1:
            self.started.set()
            assert self.opened.wait(30)
            if self.fail_first:  # three channels where the model takes six: onnxruntime itself refuses
                self.runner.session.run(["out"], {"mel": mel, "face": np.ascontiguousarray(face[:, :3])})
        return self.runner.run(mel, face)


# -- the batcher -----------------------------------------------------------------------------------------


def test_sessions_batched_together_get_what_per_frame_inference_gives(runner):
    """Three sessions post frames from their own threads at the same moments: batches hold frames of several
    sessions, and every session's outputs equal per-frame inference on its own inputs."""
    mel, face = _inputs(12, seed=1)
    want = _direct(runner, mel, face)
    batcher = LipBatcher(runner, deadline_ms=500)  # long: only "every open session is waiting" flushes early
    clients = [batcher.client() for _ in range(3)]
    barrier = threading.Barrier(3)

    def session(s: int) -> list[np.ndarray]:
        outs = []
        for i in range(s, 12, 3):
            barrier.wait(10)
            outs.append(clients[s].run(mel[i], face[i]))
        return outs

    try:
        with ThreadPoolExecutor(3) as pool:
            got = list(pool.map(session, range(3)))
    finally:
        batcher.close()
    for s in range(3):
        for k, i in enumerate(range(s, 12, 3)):
            np.testing.assert_allclose(got[s][k][0], want[i], rtol=0, atol=1e-4, err_msg=f"session {s} frame {i}")
    print(f"batch sizes {list(batcher.stats.sizes)}, sessions per batch {list(batcher.stats.sessions)}, "
          f"waits ms p50 {np.median(batcher.stats.waits_ms):.1f}")
    assert batcher.stats.frames == 12 and max(batcher.stats.sessions) > 1
    assert max(batcher.stats.waits_ms) < 500  # none waited out the deadline: all-waiting flushed them


def test_a_long_run_is_cut_into_batches_and_shares_them_round_robin(runner):
    """File mode posts many frames at once; a live session posting meanwhile gets into the next batch."""
    mel, face = _inputs(10, seed=2)
    gate = Gate(runner)
    batcher = LipBatcher(gate, max_batch=4, deadline_ms=0)
    file_mode, live = batcher.client(), batcher.client()
    try:
        long_run = file_mode.submit(mel[:9], face[:9])
        assert gate.started.wait(30)  # its first 4 frames are running
        one = live.submit(mel[9], face[9])
        gate.release()
        got_long, got_one = long_run.result(30), one.result(30)
    finally:
        batcher.close()
    np.testing.assert_allclose(np.concatenate([got_long, got_one]), _direct(runner, mel, face), rtol=0, atol=1e-4)
    assert list(batcher.stats.sizes) == [4, 4, 2]
    assert list(batcher.stats.sessions) == [1, 2, 1]  # the live frame rode in the very next batch


def test_an_inference_error_reaches_every_caller_of_its_batch_and_serving_goes_on(runner):
    mel, face = _inputs(6, seed=3)
    gate = Gate(runner, fail_first=True)
    batcher = LipBatcher(gate, deadline_ms=10_000)
    clients = [batcher.client() for _ in range(3)]
    try:
        futures = [c.submit(mel[i], face[i]) for i, c in enumerate(clients)]  # all waiting: one batch at once
        gate.release()
        errors = [f.exception(30) for f in futures]
        again = [c.run(mel[3 + i], face[3 + i]) for i, c in enumerate(clients)]
    finally:
        batcher.close()
    print(f"the batch's error, as each caller got it: {type(errors[0]).__name__}: {str(errors[0])[:80]}")
    assert gate.calls[0] == 3 and batcher.stats.failed == 1
    assert all(e is not None and not isinstance(e, FrameDropped) and "face" in str(e) for e in errors)
    np.testing.assert_allclose(np.concatenate(again), _direct(runner, mel[3:], face[3:]), rtol=0, atol=1e-4)


def test_closing_one_session_drops_its_waiting_frames_only(runner):
    mel, face = _inputs(6, seed=4)
    gate = Gate(runner)
    batcher = LipBatcher(gate, deadline_ms=0)
    a, b, c = (batcher.client() for _ in range(3))
    try:
        first = a.submit(mel[0], face[0])
        assert gate.started.wait(30)  # a's frame is running; b's and c's wait behind it
        waiting_b, waiting_c = b.submit(mel[1], face[1]), c.submit(mel[2], face[2])
        c.close()
        assert isinstance(waiting_c.exception(5), FrameDropped)
        gate.release()
        got = [first.result(30), waiting_b.result(30), a.run(mel[3], face[3]), b.run(mel[4], face[4])]
        with pytest.raises(RuntimeError, match="closed"):
            c.run(mel[5], face[5])
    finally:
        batcher.close()
    want = _direct(runner, mel[[0, 1, 3, 4]], face[[0, 1, 3, 4]])
    np.testing.assert_allclose(np.concatenate(got), want, rtol=0, atol=1e-4)
    assert batcher.open_sessions == 2 and batcher.stats.dropped == 1 and batcher.stats.frames == 4


def test_a_session_keeps_only_its_latest_frame_waiting(runner):
    """Backpressure: a session posting faster than the model runs replaces its waiting frame, so the queue
    holds at most one request per session however long the model stalls."""
    mel, face = _inputs(2, seed=5)
    gate = Gate(runner)
    batcher = LipBatcher(gate, deadline_ms=0)
    a, b = batcher.client(), batcher.client()
    try:
        running = a.submit(mel[0], face[0])
        assert gate.started.wait(30)
        stale = [b.submit(mel[1], face[1]) for _ in range(50)]
        latest = b.submit(mel[1], face[1])
        waiting = sum(len(q) for q in batcher._lanes.values())
        gate.release()
        out = latest.result(30)
        running.result(30)
    finally:
        batcher.close()
    assert waiting == 1
    assert all(isinstance(f.exception(5), FrameDropped) for f in stale)
    assert batcher.stats.dropped == 50 and batcher.stats.frames == 2
    np.testing.assert_allclose(out, _direct(runner, mel[1:], face[1:]), rtol=0, atol=1e-4)


def test_a_client_nobody_holds_any_more_leaves_the_batcher(runner):
    batcher = LipBatcher(runner)
    try:
        keep, lost = batcher.client(), batcher.client()
        assert batcher.open_sessions == 2
        del lost
        gc.collect()
        assert batcher.open_sessions == 1 and keep.run(*_inputs(1, seed=6)).shape == (1, 3, 96, 96)
    finally:
        batcher.close()


# -- the pool: one model per process, engines per session -------------------------------------------------


def test_sessions_of_a_pool_share_one_inference_session(onnx_model, astronaut_face, english_speech, tmp_path):
    """Three sessions' Wav2Lip engines: one ONNX Runtime session in the process, frames of several sessions
    in one batch, frames equal to a standalone engine's, and one session closing leaves the others drawing."""
    from livedub.engines.lipsync.wav2lip import Wav2LipEngine
    from livedub.engines.settings import Settings
    from livedub.realtime.config import DubConfig
    from livedub.realtime.pool import ModelPool

    frame, face = astronaut_face
    audio = PcmTimeline(english_speech("Hello there, this sentence keeps the mouth busy for a while."))
    config = DubConfig(target="es", engine="wav2lip", engine_backend="ort-cpu",
                       settings=Settings(wav2lip_checkpoint=onnx_model, cache=tmp_path / "cache"))
    alone = Wav2LipEngine(onnx_model, providers=["CPUExecutionProvider"])
    times = [0.4 + i / 25 for i in range(6)]
    want = [alone.render([frame], [face], [t], audio)[0] for t in times]
    del alone
    gc.collect()
    before = _inference_sessions()
    with ModelPool(config.settings) as pool:
        engines = [pool.lip_engine(config, video=True) for _ in range(3)]
        assert _inference_sessions() == before + 1
        batcher = engines[0]._runner.batcher
        assert all(isinstance(e, Wav2LipEngine) and e._runner.batcher is batcher for e in engines)
        assert len({id(e) for e in engines}) == 3 and engines[0].backend == "ort-cpu"
        barrier = threading.Barrier(3)

        def session(engine: Wav2LipEngine, ts: list[float]) -> list[np.ndarray]:
            outs = []
            for t in ts:
                barrier.wait(30)
                outs.append(engine.render([frame], [face], [t], audio)[0])
            return outs

        with ThreadPoolExecutor(3) as threads:
            got = list(threads.map(session, engines, [times[0:2], times[2:4], times[4:6]]))
        assert max(batcher.stats.sessions) > 1
        engines[2].close()  # its session hangs up
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as threads:
            after = list(threads.map(session, engines[:2], [times[:1], times[1:2]]))
        assert batcher.open_sessions == 2
    print(f"batch sizes {list(batcher.stats.sizes)}, sessions per batch {list(batcher.stats.sessions)}")
    for out, ref in zip([*got[0], *got[1], *got[2], *after[0], *after[1]], [*want, *want[:2]], strict=True):
        assert out.shape == frame.shape and not np.array_equal(out, frame)
        assert np.array_equal(out, ref)  # ORT on the CPU gives the same floats batched and alone (measured here)
