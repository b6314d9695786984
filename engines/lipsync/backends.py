"""Where the Wav2Lip generator runs: native TensorRT, ONNX Runtime (TensorRT EP, CUDA EP, CPU).

Every runner has one contract, `run(mel (B,1,80,16), face (B,6,96,96)) -> out (B,3,96,96)` float32, and a
`name`. `select_backend` picks one: `auto` takes the fastest this machine can start; an explicit choice that
cannot start here falls back down the list with one warning line, so a missing GPU never stops a dub.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ..errors import LivedubError, MissingModelError
from ..models import cache_dir

log = logging.getLogger("livedub.lipsync")

BACKENDS = ("tensorrt", "ort-trt", "ort-cuda", "ort-cpu")  # fastest first
CHOICES = ("auto", *BACKENDS)
_PROVIDER_OF = {"ort-trt": "TensorrtExecutionProvider", "ort-cuda": "CUDAExecutionProvider",
                "ort-cpu": "CPUExecutionProvider"}
_NAME_OF = {v: k for k, v in _PROVIDER_OF.items()}


@runtime_checkable
class Runner(Protocol):
    """One way to run the generator; `pads_batches`: it wants fixed batch shapes (one engine per shape)."""

    name: str
    pads_batches: bool

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray: ...


def default_providers(cache: Path | None = None) -> list:
    """TensorRT, then CUDA, then CPU: whatever this onnxruntime build offers, fastest first (the TensorRT EP
    keeps its engines in `cache`, the caller's `Settings.cache`)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    names = [n for n in ("ort-trt", "ort-cuda") if _PROVIDER_OF[n] in available]
    return [_provider(n, cache) for n in names] + ["CPUExecutionProvider"]


def _provider(name: str, cache: Path | None):
    """The ORT provider entry for a backend name; the TensorRT EP caches its engines under `cache`."""
    if name == "ort-trt":
        trt_cache = cache_dir(cache) / "wav2lip" / "trt"
        trt_cache.mkdir(parents=True, exist_ok=True)
        return ("TensorrtExecutionProvider", {
            "trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache),
        })
    return _PROVIDER_OF[name]


def open_session(onnx_path: str | os.PathLike, providers: Sequence | None = None, threads: int | None = None):
    """An ORT session with full graph optimisation; `threads` caps intra-op threads (CPU)."""
    import onnxruntime as ort

    if hasattr(ort, "preload_dlls") and any(_name(p) != "ort-cpu" for p in providers or ()):
        try:  # CUDA/cuDNN from the nvidia-* wheels the gpu extra installs (onnxruntime-gpu >= 1.21)
            ort.preload_dlls()
        except Exception as exc:  # a failed preload only means the system's libraries are used
            log.debug("onnxruntime.preload_dlls: %s", exc)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(str(onnx_path), options, providers=list(providers or default_providers()))


def _name(provider) -> str:
    return _NAME_OF.get(provider[0] if isinstance(provider, tuple) else provider, "ort-cpu")


class OrtRunner:
    """The generator in ONNX Runtime; `name` is the provider that actually runs it (ort-trt/-cuda/-cpu)."""

    def __init__(self, onnx_path: str | os.PathLike, providers: Sequence | None = None, threads: int | None = None):
        self.providers = list(providers) if providers is not None else default_providers()
        self.session = open_session(onnx_path, self.providers, threads)
        active = self.session.get_providers()[0]
        self.name = _NAME_OF.get(active, "ort-cpu")
        self.pads_batches = active != "CPUExecutionProvider"  # one TRT engine / CUDA plan, not one per size
        self.fp16 = "float16" in self.session.get_inputs()[0].type  # an fp16 export (GPU)

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        dtype = np.float16 if self.fp16 else np.float32
        feeds = {"mel": np.ascontiguousarray(mel, dtype), "face": np.ascontiguousarray(face, dtype)}
        return self.session.run(["out"], feeds)[0].astype(np.float32, copy=False)


class TensorRTRunner:
    """A serialized TensorRT engine with a dynamic batch profile; buffers live on the GPU via torch (or
    cuda-python when torch has no CUDA). Batches above the profile's maximum run in chunks."""

    name = "tensorrt"
    pads_batches = False

    def __init__(self, plan_path: str | os.PathLike):
        from ..gpu import require_tensorrt

        trt = require_tensorrt()
        self._device = _TorchCuda() if _torch_cuda() else _CudaPython()
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(Path(plan_path).read_bytes())
        if self.engine is None:
            raise MissingModelError(f"{plan_path}: TensorRT cannot load this plan (built for another GPU or "
                                    "TensorRT version?); delete it to rebuild")
        self.context = self.engine.create_execution_context()
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in ("mel", "face", "out")}
        self.max_batch = int(self.engine.get_tensor_profile_shape("mel", 0)[2][0])

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        outs = []
        for a in range(0, len(mel), self.max_batch):
            m = np.ascontiguousarray(mel[a : a + self.max_batch], self.dtypes["mel"])
            f = np.ascontiguousarray(face[a : a + self.max_batch], self.dtypes["face"])
            self.context.set_input_shape("mel", m.shape)
            self.context.set_input_shape("face", f.shape)
            shape = tuple(self.context.get_tensor_shape("out"))
            outs.append(self._device.infer(self.context, {"mel": m, "face": f}, "out", shape, self.dtypes["out"]))
        return np.concatenate(outs).astype(np.float32, copy=False)


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class _TorchCuda:
    """Device buffers as torch CUDA tensors on one private stream."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.stream = torch.cuda.Stream()

    def infer(self, context, inputs: dict[str, np.ndarray], out_name: str, shape: tuple, dtype: np.dtype):
        torch = self.torch
        with torch.cuda.stream(self.stream):
            held = {k: torch.from_numpy(v).to("cuda", non_blocking=True) for k, v in inputs.items()}
            out = torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device="cuda")
            for k, t in held.items():
                context.set_tensor_address(k, t.data_ptr())
            context.set_tensor_address(out_name, out.data_ptr())
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise LivedubError("TensorRT failed to run the Wav2Lip engine")
            result = out.cpu().numpy()
        self.stream.synchronize()
        return result


class _CudaPython:
    """Device buffers through cuda-python's runtime API, for installs without CUDA torch."""

    def __init__(self) -> None:
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            try:
                from cuda import cudart
            except ImportError:
                raise MissingModelError("the TensorRT runner needs torch with CUDA or cuda-python for GPU "
                                        "buffers: pip install cuda-python") from None
        self.rt = cudart
        self.stream = self._check(cudart.cudaStreamCreate())

    def _check(self, result):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise LivedubError(f"CUDA runtime error {err}")
        return rest[0] if rest else None

    def infer(self, context, inputs: dict[str, np.ndarray], out_name: str, shape: tuple, dtype: np.dtype):
        rt = self.rt
        out = np.empty(shape, dtype)
        ptrs: dict[str, int] = {}
        try:
            for k, v in {**inputs, out_name: out}.items():
                ptrs[k] = self._check(rt.cudaMalloc(v.nbytes))
                context.set_tensor_address(k, int(ptrs[k]))
            for k, v in inputs.items():
                self._check(rt.cudaMemcpyAsync(ptrs[k], v.ctypes.data, v.nbytes,
                                               rt.cudaMemcpyKind.cudaMemcpyHostToDevice, self.stream))
            if not context.execute_async_v3(int(self.stream)):
                raise LivedubError("TensorRT failed to run the Wav2Lip engine")
            self._check(rt.cudaMemcpyAsync(out.ctypes.data, ptrs[out_name], out.nbytes,
                                           rt.cudaMemcpyKind.cudaMemcpyDeviceToHost, self.stream))
            self._check(rt.cudaStreamSynchronize(self.stream))
        finally:
            for p in ptrs.values():
                rt.cudaFree(p)
        return out


# -- selection ---------------------------------------------------------------------------------------------


PlanBuilder = Callable[[Path, int], Path]  # (checkpoint or ONNX, max batch) → a TensorRT plan (export/ builds it)


def _start(name: str, onnx_path: Path, *, source: Path | None, plan_path: Path | None, threads: int | None,
           max_batch: int, plan_builder: PlanBuilder | None, cache: Path | None) -> Runner:
    """Start one backend or raise LivedubError saying why it cannot run here."""
    if name == "tensorrt":
        if plan_path is None:
            from ..gpu import require_tensorrt

            require_tensorrt()  # one clear line on a CPU machine, before anything else is asked
            if plan_builder is None:
                raise MissingModelError("no TensorRT plan given and no builder to make one")
            plan_path = plan_builder(source or onnx_path, max_batch)
        return TensorRTRunner(plan_path)
    provider = _PROVIDER_OF[name]
    if name != "ort-cpu":
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            raise MissingModelError(f"this onnxruntime has no {provider}: pip install 'livedub[gpu]'")
    providers = [_provider(name, cache)] + (["CPUExecutionProvider"] if name != "ort-cpu" else [])
    runner = OrtRunner(onnx_path, providers, threads)
    if runner.name != name:  # ORT starts anyway and silently runs on the CPU when the GPU libraries fail
        raise MissingModelError(f"onnxruntime could not start {provider} (CUDA/cuDNN/TensorRT libraries or GPU "
                                "missing)")
    return runner


def select_backend(choice: str = "auto", *, onnx_path: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                   plan_path: str | os.PathLike | None = None, threads: int | None = None,
                   max_batch: int = 64, plan_builder: PlanBuilder | None = None,
                   cache: Path | None = None) -> Runner:
    """A runner for `choice` ("auto" or one of BACKENDS), falling back down BACKENDS when it cannot start.

    auto logs its pick in one info line; an explicit choice that falls back logs one warning naming why.
    `checkpoint` keys the TensorRT plan cache (else the ONNX file does); `plan_path` skips the build, else
    `plan_builder` makes the plan (the ModelPool passes export's cached builder). `cache` (`Settings.cache`)
    holds the engines the TensorRT EP builds.
    """
    if choice not in CHOICES:
        raise LivedubError(f"engine backend {choice!r}: choose one of {', '.join(CHOICES)}")
    onnx_path = Path(onnx_path)
    start = 0 if choice == "auto" else BACKENDS.index(choice)
    why: dict[str, str] = {}
    for name in BACKENDS[start:]:
        try:
            runner = _start(name, onnx_path, source=Path(checkpoint) if checkpoint else None,
                            plan_path=Path(plan_path) if plan_path else None, threads=threads, max_batch=max_batch,
                            plan_builder=plan_builder, cache=cache)
        except Exception as exc:  # a GPU stack can fail in many ways; each only means "not here"
            if name == "ort-cpu":
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            why[name] = text if isinstance(exc, LivedubError) else f"{type(exc).__name__}: {text}"
            log.debug("backend %s unavailable", name, exc_info=True)
            continue
        if choice == "auto":
            skipped = "; ".join(f"{k}: {v}" for k, v in why.items())
            log.info("Wav2Lip backend: %s (auto%s)", name, f"; skipped {skipped}" if skipped else "")
        elif name != choice:
            log.warning("Wav2Lip backend %s unavailable (%s); using %s", choice, why[choice], name)
        return runner
    raise AssertionError("ort-cpu either starts or raises")  # pragma: no cover
