"""Wav2Lip on an NVIDIA GPU: frames/s and latency per runtime and batch, accuracy vs fp32, live sessions served.

Runtimes: torch fp32 and fp16 (CUDA), ONNX Runtime CUDA EP (and TensorRT EP when present), native TensorRT
fp16. Every call goes numpy in → numpy out, as the engine sees it (host↔device copies included). Accuracy is
the max/mean absolute error against torch fp32 on the CPU (no TF32). Then N simulated live sessions, each a
30 fps camera on its own thread with its own client of one shared LipBatcher (as a server's sessions run the
model), send frames on the fastest runtime; the largest N whose p95 frame latency (scheduled capture → model
output) stays within --budget-ms is reported. Frames/s per batch size through the shared runner (B sessions
posting back to back) sit beside the same runner called directly. Random weights: speed and
numerics only. Targets (issue 5, H100): TensorRT fp16 ≥ 5000 frames/s at batch 64, ≤ 1.5 ms at batch 1, ≥ 30
sessions.

    python benchmarks/gpu_lipsync.py [--batches 1 8 32 64] [--seconds 3] [--sessions 8 16 24 32 48 64]

Without a CUDA GPU it says so in one line, runs the shared runner per batch size and the session simulation on
the CPU runner at small N (labelled CPU, to exercise the code path) and exits 0. Results: benchmarks/results/gpu_lipsync-<host>.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import gpu_info, table, write_results  # noqa: E402

from livedub.engines.metrics import percentile  # noqa: E402

FPS = 30.0


MAX_DROPPED = 0.01  # share of a camera's frames a session may drop and still count as keeping up

def _inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-4, 4, (n, 1, 80, 16)).astype(np.float32),
            rng.uniform(0, 1, (n, 6, 96, 96)).astype(np.float32))


class TorchRunner:
    """The torch generator on CUDA, numpy in and out (the benchmark's baseline, not a product backend)."""

    def __init__(self, model, half: bool):
        import torch

        self.torch, self.half = torch, half
        self.model = (copy.deepcopy(model).half() if half else copy.deepcopy(model)).cuda().eval()
        self.name = f"torch-{'fp16' if half else 'fp32'}"

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        torch = self.torch
        dtype = torch.float16 if self.half else torch.float32
        with torch.inference_mode():
            m = torch.from_numpy(mel).to("cuda", dtype, non_blocking=True)
            f = torch.from_numpy(face).to("cuda", dtype, non_blocking=True)
            return self.model(m, f).float().cpu().numpy()


def time_calls(run: Callable[[], object], seconds: float, warmup: int = 3) -> dict:
    """Median and p95 ms per call over about `seconds` (at least 5 calls)."""
    for _ in range(warmup):
        run()
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < 5 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    ms = 1000 * np.asarray(samples)
    return {"ms_p50": round(float(np.median(ms)), 3), "ms_p95": round(percentile(ms, 95), 3),
            "calls": len(samples)}


def runners(onnx_path: Path, max_batch: int, ort_trt: bool) -> list:
    """Every GPU runtime that starts here; one line for each that does not. torch fp32 is true fp32 (TF32
    off); the ORT TensorRT EP builds an engine per new batch shape (minutes each), so it is opt-in."""
    import torch

    from livedub.engines.lipsync.backends import OrtRunner, TensorRTRunner
    from livedub.engines.lipsync.wav2lip_model import random_generator
    from livedub.export.tensorrt_build import cached_plan

    model = random_generator(0).eval()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    found: list = [TorchRunner(model, half=False), TorchRunner(model, half=True)]
    ort_runs = [("ort-cuda", ["CUDAExecutionProvider"])]
    if ort_trt:
        ort_runs.append(("ort-trt", [("TensorrtExecutionProvider", {"trt_fp16_enable": True}),
                                     "CUDAExecutionProvider"]))
    for name, providers in ort_runs:
        try:
            runner = OrtRunner(onnx_path, providers)
            if runner.name != name:
                raise RuntimeError(f"onnxruntime fell back to {runner.name}")
            found.append(runner)
        except Exception as exc:  # a missing provider or library: report and go on
            print(f"skip {name}: {exc}".splitlines()[0])
    try:
        t0 = time.perf_counter()
        plan = cached_plan(onnx_path, fp16=True, max_batch=max_batch)
        print(f"TensorRT plan ready in {time.perf_counter() - t0:.0f} s: {plan}")
        found.append(TensorRTRunner(plan))
    except Exception as exc:
        print(f"skip tensorrt: {exc}".splitlines()[0])
    return found


def throughput_rows(found: list, batches: list[int], seconds: float) -> list[dict]:
    import torch

    from livedub.engines.lipsync.wav2lip_model import random_generator

    mel, face = _inputs(max(batches))
    check_mel, check_face = _inputs(8, seed=1)
    with torch.no_grad():  # the reference: fp32 on the CPU, no TF32
        want = random_generator(0).eval()(torch.from_numpy(check_mel), torch.from_numpy(check_face)).numpy()
    rows = []
    for runner in found:
        err = np.abs(runner.run(check_mel, check_face) - want)
        for b in batches:
            m, f = np.ascontiguousarray(mel[:b]), np.ascontiguousarray(face[:b])
            row = {"runtime": runner.name, "batch": b, **time_calls(lambda m=m, f=f, r=runner: r.run(m, f), seconds)}
            row["frames_per_s"] = round(1000 * b / row["ms_p50"], 1)
            row["max_abs_err"], row["mean_abs_err"] = float(f"{err.max():.2e}"), float(f"{err.mean():.2e}")
            rows.append(row)
            print(f"{runner.name:<10} B={b:<3} {row['ms_p50']:8.3f} ms p50 {row['ms_p95']:8.3f} ms p95 "
                  f"{row['frames_per_s']:9.1f} frames/s  err max {row['max_abs_err']:.1e}", flush=True)
    return rows


# -- the shared runner: sessions as the server runs them ---------------------------------------------------


def _through_batcher(runner, b: int, mel: np.ndarray, face: np.ndarray, seconds: float) -> tuple[float, list[int]]:
    """Frames/s of b sessions (threads) posting back to back into one shared batcher, and its batch sizes."""
    from concurrent.futures import ThreadPoolExecutor

    from livedub.realtime.face.batcher import LipBatcher

    batcher = LipBatcher(runner, max_batch=b, deadline_ms=50.0)
    clients = [batcher.client() for _ in range(b)]
    stop = [0.0]

    def session(k: int) -> int:
        done = 0
        while True:
            clients[k].run(mel[k], face[k])
            done += 1
            if time.perf_counter() >= stop[0]:
                return done

    try:
        with ThreadPoolExecutor(b) as pool:
            list(pool.map(session, range(b)))  # warm: one frame each (a new batch shape's first call is slow)
            warm = batcher.stats.batches
            t0 = time.perf_counter()
            stop[0] = t0 + seconds
            frames = sum(pool.map(session, range(b)))
            elapsed = time.perf_counter() - t0
    finally:
        batcher.close()
    return frames / elapsed, list(batcher.stats.sizes)[warm:]


def shared_rows(runner, batches: list[int], seconds: float, label: str) -> list[dict]:
    """Frames/s per batch size through one shared `LipBatcher`: B sessions, each on its own thread (as video
    workers are) posting one frame after another, so every batch holds one frame of each of the B sessions.
    Beside it, the same runner called directly at batch B (what the batcher costs on top)."""
    mel, face = _inputs(max(batches), seed=3)
    rows = []
    for b in batches:
        direct = time_calls(lambda b=b: runner.run(mel[:b], face[:b]), seconds, warmup=1)
        fps, sizes = _through_batcher(runner, b, mel, face, seconds)
        row = {"device": label, "runtime": runner.name, "batch": b, "sessions": b, "shared_fps": round(fps, 1),
               "mean_batch": round(float(np.mean(sizes)), 2) if sizes else 0.0,
               "direct_fps": round(1000 * b / direct["ms_p50"], 1), "direct_ms_p50": direct["ms_p50"]}
        rows.append(row)
        print(f"[{label}] B={b:<3} shared runner {row['shared_fps']:8.1f} frames/s (mean batch {row['mean_batch']}), "
              f"direct {row['direct_fps']:8.1f} frames/s", flush=True)
    return rows


def _simulate(runner, n_sessions: int, seconds: float, max_batch: int, deadline_ms: float) -> dict:
    """n 30 fps cameras with random phases, each session on its own thread with its own client of one shared
    batcher (as a server's video workers are); latency = scheduled capture → model output."""
    from concurrent.futures import ThreadPoolExecutor

    from livedub.realtime.face.batcher import LipBatcher

    mel, face = _inputs(64, seed=2)
    rng = np.random.default_rng(n_sessions)
    phases = rng.uniform(0, 1 / FPS, n_sessions)
    batcher = LipBatcher(runner, max_batch=max_batch, deadline_ms=deadline_ms)
    clients = [batcher.client() for _ in range(n_sessions)]
    clients[0].run(mel[0], face[0])  # warm
    warm = batcher.stats.batches
    start = time.perf_counter() + 0.05

    def session(s: int) -> tuple[list[float], int]:
        """A camera's frames through the session's client; a session still busy when later frames came
        takes the newest (as a video worker does) and the ones in between are dropped."""
        latencies, dropped, i, n = [], 0, 0, int(seconds * FPS)
        while i < n:
            now = time.perf_counter()
            newest = min(n - 1, int((now - start - phases[s]) * FPS))
            if newest > i:
                dropped += newest - i
                i = newest
            due = start + phases[s] + i / FPS
            time.sleep(max(0.0, due - time.perf_counter()))
            clients[s].run(mel[(s * 7 + i) % 64], face[(s * 7 + i) % 64])
            latencies.append(1000 * (time.perf_counter() - due))
            i += 1
        return latencies, dropped

    with ThreadPoolExecutor(n_sessions) as pool:
        results = list(pool.map(session, range(n_sessions)))
    lat = np.concatenate([np.asarray(x) for x, _ in results])
    dropped = sum(d for _, d in results)
    batcher.close()
    sizes = list(batcher.stats.sizes)[warm:]
    return {"sessions": n_sessions, "runtime": runner.name, "frames": len(lat),
            "dropped_share": round(dropped / max(dropped + len(lat), 1), 3),
            "p50_ms": round(float(np.median(lat)), 2), "p95_ms": round(percentile(lat, 95), 2),
            "max_ms": round(float(lat.max()), 2), "mean_batch": round(float(np.mean(sizes)), 1) if sizes else 0.0}


def session_rows(runner, counts: list[int], seconds: float, max_batch: int, deadline_ms: float,
                 budget_ms: float, label: str, stop_on_miss: bool = True) -> tuple[list[dict], int]:
    """Rows per session count and the largest count whose p95 latency is within budget with at most
    `MAX_DROPPED` of the camera's frames dropped."""
    rows, best = [], 0
    for n in counts:
        row = {"device": label, **_simulate(runner, n, seconds, max_batch, deadline_ms)}
        row["within_budget"] = row["p95_ms"] <= budget_ms and row["dropped_share"] <= MAX_DROPPED
        rows.append(row)
        print(f"[{label}] {n:>3} sessions × {FPS:g} fps on {runner.name}: p50 {row['p50_ms']:.1f} ms, p95 "
              f"{row['p95_ms']:.1f} ms, {row['dropped_share']:.0%} dropped, mean batch {row['mean_batch']}", flush=True)
        if row["within_budget"]:
            best = n
        elif stop_on_miss:
            break
    return rows, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed work per row")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 16, 24, 32, 40, 48, 64, 80, 96])
    parser.add_argument("--session-seconds", type=float, default=5.0, help="simulated time per session count")
    parser.add_argument("--deadline-ms", type=float, default=4.0, help="batcher deadline")
    parser.add_argument("--budget-ms", type=float, default=40.0, help="p95 frame latency to hold")
    parser.add_argument("--ort-trt", action="store_true", help="also time ONNX Runtime's TensorRT EP (slow to build)")
    parser.add_argument("--cpu-sessions", type=int, nargs="+", default=[1, 2],
                        help="session counts for the CPU code-path check when no GPU is present")
    parser.add_argument("--cpu-batches", type=int, nargs="+", default=[1, 2, 4, 8],
                        help="batch sizes (= sessions) through the shared runner when no GPU is present")
    args = parser.parse_args(argv)

    from livedub.engines.lipsync.wav2lip_model import random_generator
    from livedub.export.onnx_export import export_model

    gpu = gpu_info()
    try:
        import torch

        cuda = torch.cuda.is_available()
    except ImportError:
        cuda = False
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_model(random_generator(0), Path(tmp) / "wav2lip_random.onnx")
        if not cuda:
            from livedub.engines.lipsync.backends import OrtRunner

            print("GPU figures need a CUDA machine (torch sees no CUDA GPU here); running the shared runner "
                  "on the CPU only (labelled CPU; GPU figures pending)")
            cpu = OrtRunner(onnx_path, ["CPUExecutionProvider"])
            shared = shared_rows(cpu, args.cpu_batches, args.seconds, "CPU")
            rows, best = session_rows(cpu, args.cpu_sessions, 1.0, 8, args.deadline_ms, args.budget_ms, "CPU",
                                      stop_on_miss=False)
            print(table(shared, ["device", "runtime", "batch", "shared_fps", "mean_batch", "direct_fps"]))
            print(table(rows, ["device", "sessions", "runtime", "frames", "p50_ms", "p95_ms", "mean_batch"]))
            path = write_results("gpu_lipsync", [], {
                "mode": "cpu (no CUDA GPU: code path check only, not a GPU figure)", "shared_runner": shared,
                "sessions": rows, "max_sessions_within_budget": best, "budget_ms": args.budget_ms})
            print(f"written to {path}")
            return 0

        max_batch = max(args.batches)
        found = runners(onnx_path, max_batch, args.ort_trt)
        rows = throughput_rows(found, args.batches, args.seconds)
        fastest = max(found, key=lambda r: max(x["frames_per_s"] for x in rows if x["runtime"] == r.name))
        shared = shared_rows(fastest, args.batches, args.seconds, gpu.get("gpu", "GPU"))
        sessions, best = session_rows(fastest, args.sessions, args.session_seconds, max_batch, args.deadline_ms,
                                      args.budget_ms, gpu.get("gpu", "GPU"))
    print()
    print(table(rows, ["runtime", "batch", "ms_p50", "ms_p95", "frames_per_s", "max_abs_err", "mean_abs_err"]))
    print(table(shared, ["device", "runtime", "batch", "shared_fps", "mean_batch", "direct_fps"]))
    print(table(sessions, ["sessions", "runtime", "frames", "p50_ms", "p95_ms", "max_ms", "mean_batch"]))
    print(f"largest N holding p95 <= {args.budget_ms:g} ms: {best} sessions on {fastest.name} ({gpu.get('gpu')}, "
          f"driver {gpu.get('driver')}, TensorRT {gpu.get('tensorrt')})")
    path = write_results("gpu_lipsync", rows, {"mode": "gpu", "shared_runner": shared, "sessions": sessions,
                                                "max_sessions_within_budget": best, "budget_ms": args.budget_ms,
                                                "deadline_ms": args.deadline_ms})
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
