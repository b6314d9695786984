"""The GPU path: fp16 ONNX, backend choice and fallback, TensorRT export, cross-session batching.

What runs on a CPU runs here for real (ONNX Runtime CPU, the batcher with the real model). TensorRT and CUDA
cannot run on CI: their absence is tested as users meet it, and the `gpu` tests run where a GPU is present.
Weights are random: these check numerics and plumbing, not lip-sync quality.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from livedub.engines.lipsync.backends import OrtRunner, select_backend
from livedub.engines.lipsync.wav2lip_model import random_generator
from livedub.realtime.face.batcher import LipBatcher


def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def _inputs(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-4, 4, (n, 1, 80, 16)).astype(np.float32),
            rng.uniform(0, 1, (n, 6, 96, 96)).astype(np.float32))


@pytest.fixture(scope="module")
def generator():
    return random_generator(0)


@pytest.fixture(scope="module")
def models(generator, tmp_path_factory) -> dict[str, Path]:
    """The random generator exported once per module, fp32 and fp16 (a few seconds each on 2 cores)."""
    from livedub.export.onnx_export import export_model

    root = tmp_path_factory.mktemp("onnx")
    return {"fp32": export_model(generator, root / "g32.onnx"),
            "fp16": export_model(generator, root / "g16.onnx", fp16=True)}


@pytest.fixture(scope="module")
def cpu_runner(models) -> OrtRunner:
    return OrtRunner(models["fp32"], ["CPUExecutionProvider"], threads=2)


@pytest.fixture(scope="module")
def checkpoint(generator, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "wav2lip_random.pth"
    torch.save(generator.state_dict(), path)  # a bare state dict loads like an official file
    return path


# -- fp16 ONNX -------------------------------------------------------------------------------------------


def test_fp16_onnx_is_valid_and_close_to_fp32(models):
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(models["fp16"]), full_check=True)
    mel, face = _inputs(2)
    s32 = ort.InferenceSession(str(models["fp32"]), providers=["CPUExecutionProvider"])
    s16 = ort.InferenceSession(str(models["fp16"]), providers=["CPUExecutionProvider"])
    assert [i.type for i in s16.get_inputs()] == ["tensor(float16)"] * 2
    want = s32.run(["out"], {"mel": mel, "face": face})[0]
    got = s16.run(["out"], {"mel": mel.astype(np.float16), "face": face.astype(np.float16)})[0]
    err = np.abs(got.astype(np.float32) - want)
    print(f"fp16 vs fp32 ONNX (random weights): max {err.max():.2e} mean {err.mean():.2e}")
    assert got.dtype == np.float16 and got.shape == (2, 3, 96, 96)
    assert err.max() < 1e-2 and err.mean() < 1e-3


def test_runner_feeds_an_fp16_model_float32_and_returns_float32(models, cpu_runner):
    runner = OrtRunner(models["fp16"], ["CPUExecutionProvider"])
    mel, face = _inputs(1, seed=3)
    out = runner.run(mel, face)
    assert runner.fp16 and out.dtype == np.float32 and out.shape == (1, 3, 96, 96)
    assert np.abs(out - cpu_runner.run(mel, face)).max() < 1e-2


# -- backend choice --------------------------------------------------------------------------------------


def _warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.skipif(_has_tensorrt() or _has_cuda_provider(), reason="a GPU stack is installed: see the gpu tests")
def test_auto_picks_cpu_here_and_says_so_in_one_line(models, caplog):
    caplog.set_level(logging.INFO, logger="livedub.lipsync")
    runner = select_backend("auto", onnx_path=models["fp32"])
    assert runner.name == "ort-cpu" and not runner.pads_batches
    infos = [r.getMessage() for r in caplog.records if r.name == "livedub.lipsync" and r.levelno == logging.INFO]
    assert len(infos) == 1 and "ort-cpu" in infos[0] and "auto" in infos[0]
    assert "\n" not in infos[0] and not _warnings(caplog)


@pytest.mark.parametrize(("choice", "why"), [
    ("tensorrt", "TensorRT is not installed: pip install 'livedub[gpu]'"),
    ("ort-trt", "no TensorrtExecutionProvider"),
    ("ort-cuda", "no CUDAExecutionProvider"),
])
def test_unavailable_backend_falls_back_with_one_warning(models, caplog, choice, why):
    if (choice == "tensorrt" and _has_tensorrt()) or (choice != "tensorrt" and _has_cuda_provider()):
        pytest.skip(f"{choice} may start on this machine")
    caplog.set_level(logging.INFO, logger="livedub.lipsync")
    runner = select_backend(choice, onnx_path=models["fp32"])
    assert runner.name == "ort-cpu"
    warnings = _warnings(caplog)
    assert len(warnings) == 1, [w.getMessage() for w in warnings]
    message = warnings[0].getMessage()
    print(message)
    assert choice in message and why in message and "using ort-cpu" in message and "\n" not in message


def test_unknown_backend_is_a_clear_error(models):
    from livedub.engines.errors import LivedubError

    with pytest.raises(LivedubError, match="choose one of auto, tensorrt"):
        select_backend("cuda", onnx_path=models["fp32"])


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_engine_backend_flag_reaches_the_engine(checkpoint, tmp_cache, tmp_path, caplog):
    """--engine-backend tensorrt on a CPU machine: the dub still runs, on ort-cpu, after one warning."""
    from livedub.engines.lipsync.wav2lip import Wav2LipEngine
    from livedub.realtime.cli import build_parser
    from livedub.realtime.cli.common import config_from
    from livedub.realtime.pool import ModelPool

    parser = build_parser()
    face, audio = tmp_path / "f.jpg", tmp_path / "a.wav"
    face.write_bytes(b"x")
    audio.write_bytes(b"x")  # the inputs must exist before flags become a config; nothing reads them here
    args = parser.parse_args(["lipsync", "--face", str(face), "--audio", str(audio), "-o", str(tmp_path / "o.mp4"),
                              "--checkpoint", str(checkpoint), "--engine-backend", "tensorrt"])
    assert parser.parse_args(["translate", "in.mp4", "--to", "es", "-o", "o.mp4"]).engine_backend == "auto"
    caplog.set_level(logging.INFO, logger="livedub.lipsync")
    config = config_from(args, target="en")
    with ModelPool(config.settings) as pool:
        engine = pool.lip_engine(config, video=False)
    assert isinstance(engine, Wav2LipEngine) and engine.backend == "ort-cpu"
    assert len(_warnings(caplog)) == 1
    with pytest.raises(SystemExit):
        parser.parse_args(["lipsync", "--face", "f", "--audio", "a", "-o", "o", "--engine-backend", "gpu"])


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_export_tensorrt_without_tensorrt_is_one_clear_line(checkpoint, tmp_path):
    plan = tmp_path / "w.plan"
    env_cache = tmp_path / "cache"
    proc = subprocess.run(
        [sys.executable, "-m", "livedub.realtime.cli", "export", "--checkpoint", str(checkpoint),
         "--tensorrt", str(plan), "--fp16", "--max-batch", "32"],
        capture_output=True, text=True, timeout=300, env={**_env(), "LIVEDUB_CACHE": str(env_cache)},
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == ["livedub: error: TensorRT is not installed: pip install 'livedub[gpu]'"], proc.stderr
    assert not plan.exists() and not list(tmp_path.glob("*.onnx")) and not checkpoint.with_suffix(".onnx").exists()


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "LIVEDUB_CACHE"}


# -- batcher ---------------------------------------------------------------------------------------------


def test_batcher_returns_each_session_its_own_frames(cpu_runner):
    """Three live sessions submit frames concurrently; each gets the output of its own inputs, in order."""
    mel, face = _inputs(9, seed=5)
    want = np.concatenate([cpu_runner.run(mel[i : i + 3], face[i : i + 3]) for i in range(0, 9, 3)])

    async def session(batcher: LipBatcher, frames: range) -> list[np.ndarray]:
        outs = []
        for i in frames:
            outs.append(await batcher.submit(mel[i], face[i]))
            await asyncio.sleep(0)
        return outs

    async def main() -> tuple[list[list[np.ndarray]], LipBatcher]:
        async with LipBatcher(cpu_runner, max_batch=3, deadline_ms=50) as batcher:
            got = await asyncio.gather(*(session(batcher, range(s, 9, 3)) for s in range(3)))
        return got, batcher

    got, batcher = asyncio.run(main())
    for s in range(3):
        for k, i in enumerate(range(s, 9, 3)):
            assert np.abs(got[s][k] - want[i]).max() < 1e-4, (s, k)
    print(f"batch sizes {list(batcher.stats.sizes)}")
    assert batcher.stats.frames == 9 and max(batcher.stats.sizes) > 1


def test_lone_frame_is_flushed_at_the_deadline(cpu_runner):
    mel, face = _inputs(1, seed=7)

    async def main() -> tuple[float, LipBatcher]:
        async with LipBatcher(cpu_runner, max_batch=64, deadline_ms=20) as batcher:
            t0 = time.perf_counter()
            await batcher.submit(mel[0], face[0])
            return time.perf_counter() - t0, batcher

    seconds, batcher = asyncio.run(main())
    wait = batcher.stats.waits_ms[0]
    print(f"lone frame: waited {wait:.1f} ms for its batch, {1000 * seconds:.0f} ms in all (CPU inference)")
    assert list(batcher.stats.sizes) == [1]
    assert 15 <= wait < 200


def test_errors_reach_every_caller_of_the_batch_and_the_batcher_goes_on(cpu_runner):
    calls = []

    def flaky(mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        calls.append(len(mel))
        if len(calls) == 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return cpu_runner.run(mel, face)

    mel, face = _inputs(3, seed=9)

    async def main():
        async with LipBatcher(flaky, max_batch=2, deadline_ms=30) as batcher:
            first = await asyncio.gather(*(batcher.submit(mel[i], face[i]) for i in range(2)),
                                         return_exceptions=True)
            second = await batcher.submit(mel[2], face[2])
        return first, second

    first, second = asyncio.run(main())
    assert all(isinstance(e, RuntimeError) and "illegal memory access" in str(e) for e in first)
    assert second.shape == (3, 96, 96) and calls == [2, 1]


def test_close_finishes_submitted_frames_then_refuses(cpu_runner):
    mel, face = _inputs(4, seed=11)

    async def main():
        batcher = LipBatcher(cpu_runner, max_batch=64, deadline_ms=10_000)  # only closing flushes them
        tasks = [asyncio.ensure_future(batcher.submit(mel[i], face[i])) for i in range(4)]
        await asyncio.sleep(0.05)
        t0 = time.perf_counter()
        await batcher.aclose()
        took = time.perf_counter() - t0
        results = [t.result() for t in tasks]
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.submit(mel[0], face[0])
        return results, took, batcher

    results, took, batcher = asyncio.run(main())
    assert len(results) == 4 and all(r.shape == (3, 96, 96) for r in results)
    assert list(batcher.stats.sizes) == [4] and took < 5


def test_submit_many_runs_full_batches_for_file_mode(cpu_runner):
    mel, face = _inputs(10, seed=13)
    batcher = LipBatcher(cpu_runner, max_batch=4)
    out = batcher.submit_many(mel, face)
    assert out.shape == (10, 3, 96, 96) and list(batcher.stats.sizes) == [4, 4, 2]
    assert np.abs(out - cpu_runner.run(mel, face)).max() < 1e-4
    asyncio.run(batcher.aclose())


# -- on a GPU --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpu(tmp_path_factory):
    trt = pytest.importorskip("tensorrt")
    if not torch.cuda.is_available():
        pytest.skip("needs torch with CUDA and an NVIDIA GPU")
    return trt


@pytest.fixture(scope="module")
def built_plan(gpu, checkpoint, tmp_path_factory):
    """A TensorRT fp16 plan of the random checkpoint, built once into a fresh cache, with its build time."""
    from livedub.export.tensorrt_build import cached_plan

    cache = tmp_path_factory.mktemp("trt-cache")
    t0 = time.perf_counter()
    plan = cached_plan(checkpoint, fp16=True, max_batch=16, cache=cache)
    return {"plan": plan, "seconds": time.perf_counter() - t0, "cache": cache}


@pytest.mark.gpu
def test_tensorrt_matches_torch_fp32(built_plan, generator):
    from livedub.engines.lipsync.backends import TensorRTRunner

    runner = TensorRTRunner(built_plan["plan"])
    mel, face = _inputs(8, seed=21)
    with torch.no_grad():
        want = generator.eval()(torch.from_numpy(mel), torch.from_numpy(face)).numpy()
    got = runner.run(mel, face)
    err = np.abs(got - want)
    print(f"TensorRT fp16 vs torch fp32 (random weights): max abs {err.max():.2e} mean {err.mean():.2e}; "
          f"build {built_plan['seconds']:.0f} s")
    assert got.shape == (8, 3, 96, 96) and err.max() < 5e-2 and err.mean() < 5e-3
    assert runner.run(*_inputs(20, seed=22)).shape == (20, 3, 96, 96)  # above max batch: run in chunks


@pytest.mark.gpu
def test_tensorrt_plan_is_reused(built_plan, checkpoint):
    from livedub.export.tensorrt_build import cached_plan

    plan = built_plan["plan"]
    mtime = plan.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = cached_plan(checkpoint, fp16=True, max_batch=16, cache=built_plan["cache"])
    assert again == plan and plan.stat().st_mtime_ns == mtime
    assert time.perf_counter() - t0 < max(2.0, built_plan["seconds"] / 5)


@pytest.mark.gpu
def test_auto_picks_tensorrt_on_a_gpu(built_plan, models, checkpoint, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="livedub.lipsync")
    from livedub.realtime.pool import build_plan

    runner = select_backend("auto", onnx_path=models["fp32"], checkpoint=checkpoint, max_batch=16,
                            plan_builder=lambda s, b: build_plan(s, b, built_plan["cache"]))
    assert runner.name == "tensorrt" and not _warnings(caplog)
