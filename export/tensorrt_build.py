"""Wav2Lip ONNX → TensorRT plan (dynamic batch, fp16), cached so only the first start on a GPU pays the build.

A plan only runs on the GPU model and TensorRT version that built it, so the cache key holds both, next to
the checkpoint's sha256, the precision and the largest batch. The timing cache (kernel timings per GPU) is
kept too: a rebuild for another max batch then takes seconds instead of minutes.

`tensorrt` is imported lazily: CPU installs never have it, and everything here then fails with one line.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from livedub.engines.errors import LivedubError
from livedub.engines.files import atomic_write, check_input_file
from livedub.engines.gpu import INSTALL_HINT, driver_version, gpu_name, require_tensorrt  # noqa: F401 (re-exported)
from livedub.engines.models import cache_dir, sha256_file

from .onnx_export import INPUT_NAMES, cached_onnx

log = logging.getLogger("livedub.export")

# per-frame input shapes; the batch dimension is the dynamic one
FRAME_SHAPES = {"mel": (1, 80, 16), "face": (6, 96, 96)}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def _timing_cache_path(trt, cache: Path | None) -> Path:
    return cache_dir(cache) / "tensorrt" / f"timing-{_slug(gpu_name() or 'gpu')}-trt{trt.__version__}.cache"


def build_engine(onnx_path: str | os.PathLike, plan_path: str | os.PathLike, *, fp16: bool = True,
                 max_batch: int = 64, opt_batch: int = 8, workspace_gb: float = 4,
                 timing_cache: str | os.PathLike | None = None, cache: Path | None = None) -> Path:
    """Build a serialized TensorRT engine from the ONNX generator: one profile covering batch 1..max_batch.

    `opt_batch` is the batch TensorRT tunes kernels for (a live batcher's typical batch); `timing_cache`
    defaults to one per GPU and TensorRT version under `cache`/tensorrt/ (`Settings.cache`), loaded and saved
    back.
    """
    trt = require_tensorrt()
    max_batch = max(1, int(max_batch))
    opt_batch = min(max(1, int(opt_batch)), max_batch)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # implicit batch is gone in TensorRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise LivedubError(f"{onnx_path}: TensorRT cannot parse this ONNX model: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for name in INPUT_NAMES:
        frame = FRAME_SHAPES[name]
        profile.set_shape(name, (1, *frame), (opt_batch, *frame), (max_batch, *frame))
    config.add_optimization_profile(profile)

    timing_path = Path(timing_cache) if timing_cache else _timing_cache_path(trt, cache)
    timings = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timings, ignore_mismatch=False)

    started = time.perf_counter()
    log.warning("building the TensorRT engine (%s, batch 1..%d) for %s: minutes, once per GPU and model",
             "fp16" if fp16 else "fp32", max_batch, gpu_name())
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise LivedubError(f"{onnx_path}: TensorRT failed to build an engine (see the messages above)")
    plan_path = Path(plan_path)
    with atomic_write(plan_path) as partial:
        partial.write_bytes(bytes(serialized))
    with atomic_write(timing_path) as partial:
        partial.write_bytes(bytes(config.get_timing_cache().serialize()))
    log.info("TensorRT engine %s built in %.0f s", plan_path.name, time.perf_counter() - started)
    return plan_path


def plan_key(model_sha256: str, *, fp16: bool, max_batch: int) -> str:
    """The cache file name: what a plan depends on (weights, GPU model, TensorRT version, precision, batch)."""
    trt = require_tensorrt()
    return (f"{model_sha256}-{_slug(gpu_name() or 'gpu')}-trt{trt.__version__}-"
            f"{'fp16' if fp16 else 'fp32'}-b{int(max_batch)}.plan")


def cached_plan(checkpoint_path: str | os.PathLike, *, fp16: bool = True, max_batch: int = 64,
                cache: Path | None = None) -> Path:
    """The TensorRT plan of a checkpoint (or of an .onnx file) in `cache`/tensorrt/, built on first use.

    A checkpoint goes through the cached fp32 ONNX first; TensorRT picks fp16 kernels itself (`fp16`).
    """
    require_tensorrt()  # fail in a moment on CPU machines, before hashing or exporting anything
    source = Path(checkpoint_path)
    check_input_file(source, what="wav2lip_gan.pth or an exported .onnx")
    target = cache_dir(cache) / "tensorrt" / plan_key(sha256_file(source), fp16=fp16, max_batch=max_batch)
    if target.is_file():
        return target
    onnx_path = source if source.suffix.lower() == ".onnx" else cached_onnx(source, cache)
    return build_engine(onnx_path, target, fp16=fp16, max_batch=max_batch, cache=cache)
