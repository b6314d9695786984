"""Lip-sync throughput: ms per frame and frames per second, per engine, runtime, precision and batch size.

Wav2Lip rows use random weights (speed does not depend on the weights' values) exported through the product
path (`export_model`, `quantize_int8`) and run through ONNX Runtime the way the engine opens it; the
`-convtranspose` variants keep the reference's transposed convs instead of the sub-pixel rewrite. int8 is
calibrated on real face crops (scikit-image's astronaut photo, jittered) with speech-like mel windows.
Results go to benchmarks/results/lipsync_throughput-<hostname>.json with the machine named.

    python benchmarks/lipsync_throughput.py [--batches 1 4 8 16] [--threads 2] [--seconds 3]

Other engines add rows: append dicts with the same keys to the list `main()` builds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_results  # noqa: E402


def time_batches(run: Callable[[int], object], batch: int, seconds: float, warmup: int = 2) -> dict:
    """Median ms per frame of `run(batch)` over at least 3 calls and about `seconds` of work."""
    for _ in range(warmup):
        run(batch)
    samples: list[float] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    while len(samples) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run(batch)
        samples.append(time.perf_counter() - t0)
    per_frame = float(np.median(samples)) / batch
    cpu_per_frame = (time.process_time() - cpu_start) / (len(samples) * batch)  # all threads, spin included
    return {"batch": batch, "ms_per_frame": round(1000 * per_frame, 2), "fps": round(1.0 / per_frame, 1),
            "best_ms_per_frame": round(1000 * min(samples) / batch, 2),
            "cpu_ms_per_frame": round(1000 * cpu_per_frame, 2), "calls": len(samples)}


# -- Wav2Lip -------------------------------------------------------------------------------------------


def _calibration(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Real face crops (astronaut photo, jittered) and mel windows of a speech-like harmonic signal."""
    import cv2
    from skimage import data

    from livedub.engines.audio import SAMPLE_RATE
    from livedub.engines.lipsync.mel import mel_window
    from livedub.engines.lipsync.wav2lip import IMG, face_input

    frame = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    x1, y1, x2, y2 = 179, 69, 272, 188  # the face box the mediapipe tracker finds, with reference pads
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE * 3) / SAMPLE_RATE
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    voice = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / SAMPLE_RATE) / k for k in range(1, 20))
    pcm = (0.1 * voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)).astype(np.float32)
    faces, mels = [], []
    for i in range(n):
        dx, dy, g = rng.integers(-6, 7, size=3)
        crop = frame[y1 + dy - g : y2 + dy + g, x1 + dx - g : x2 + dx + g]
        faces.append(face_input(cv2.resize(crop, (IMG, IMG), interpolation=cv2.INTER_AREA)))
        mels.append(mel_window(pcm, i, 25.0)[None])
    return np.stack(faces), np.stack(mels)


def wav2lip_rows(batches: list[int], threads: int | None, seconds: float, variants: list[str]) -> list[dict]:
    """fp32 and int8 variants of the Wav2Lip generator on ONNX Runtime's CPU provider."""
    from livedub.engines.lipsync.wav2lip import open_session
    from livedub.engines.lipsync.wav2lip_model import random_generator
    from livedub.export.onnx_export import export_model, int8_error, quantize_int8

    faces, mels = _calibration()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {True: export_model(random_generator(0), Path(tmp) / "subpixel.onnx"),
                  False: export_model(random_generator(0), Path(tmp) / "convtranspose.onnx", subpixel=False)}
        models: dict[str, tuple[Path, dict]] = {}
        for name in variants:
            subpixel, quant = VARIANTS[name]
            fp32 = graphs[subpixel]
            if quant is None:
                models[name] = (fp32, {})
                continue
            path = Path(tmp) / f"{name}.onnx"
            t0 = time.perf_counter()
            quantize_int8(fp32, path, faces[:16], mels[:16], **quant)
            err = int8_error(fp32, path, faces[16:], mels[16:])
            models[name] = (path, {"quantize_s": round(time.perf_counter() - t0, 1), "error_vs_fp32": err})
        for name, (path, extra) in models.items():
            session = open_session(path, ["CPUExecutionProvider"], threads)
            for batch in batches:
                f = np.ascontiguousarray(np.resize(faces, (batch, *faces.shape[1:])))
                m = np.ascontiguousarray(np.resize(mels, (batch, *mels.shape[1:])))

                def run(_: int, f=f, m=m, session=session) -> object:
                    return session.run(["out"], {"mel": m, "face": f})

                row = {"engine": "wav2lip", "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
                       "precision": name, "threads": threads or os.cpu_count(), "weights": "random"}
                row.update(time_batches(run, batch, seconds))
                row.update(extra)
                rows.append(row)
                print(_format(row), flush=True)
    return rows


# name → (transposed convs rewritten as convs?, quantize_int8 options or None for fp32)
VARIANTS: dict[str, tuple[bool, dict | None]] = {
    "fp32": (True, None),
    "int8": (True, {}),
    "int8-reduce-range": (True, {"reduce_range": True}),
    "int8-per-tensor": (True, {"per_channel": False}),
    "fp32-convtranspose": (False, None),
    "int8-convtranspose": (False, {}),
}


# -- tracking and the viseme engine ----------------------------------------------------------------


def _talking_frame(size: tuple[int, int]) -> np.ndarray:
    """The astronaut portrait filling most of a frame of `size` (w, h), as a webcam would show a face."""
    import cv2
    from skimage import data

    w, h = size
    frame = np.full((h, w, 3), 180, np.uint8)
    side = int(h * 0.9)
    face = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (side, side))
    x, y = (w - side) // 2, (h - side) // 2
    frame[y : y + side, x : x + side] = face
    return frame


def tracking_and_viseme_rows(seconds: float) -> list[dict]:
    """Face tracking (mediapipe detection + mesh, causal smoothing) and the viseme engine per frame."""
    from livedub.engines.audio import SAMPLE_RATE
    from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker
    from livedub.engines.lipsync import PcmTimeline
    from livedub.engines.lipsync.viseme import VisemeEngine

    n = SAMPLE_RATE * 6
    t = np.arange(n) / SAMPLE_RATE
    audio = PcmTimeline((0.2 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)).astype(np.float32))
    rows: list[dict] = []
    for size in ((640, 480), (1280, 720)):
        base = _talking_frame(size)
        frames = [np.roll(base, k % 5, axis=1) for k in range(5)]  # a little motion, as from a camera
        tracker = MediapipeFaceTracker()
        face = tracker.track(frames[0])
        clock = [0]

        def track(batch: int, tracker=tracker, frames=frames, clock=clock) -> object:
            for _ in range(batch):
                clock[0] += 1
                tracker.track(frames[clock[0] % 5])
            return None

        row = {"engine": "tracking", "runtime": "mediapipe", "provider": "CPU",
               "precision": f"uint8-{size[0]}x{size[1]}", "threads": 1, "weights": "bundled"}
        row.update(time_batches(track, 1, seconds))
        rows.append(row)
        print(_format(row), flush=True)
        engine, stamp = VisemeEngine(), [0.0]

        def viseme(batch: int, engine=engine, frame=base, face=face, stamp=stamp) -> object:
            times = [(stamp[0] + i / 25.0) % 5.5 for i in range(batch)]
            stamp[0] += batch / 25.0
            return engine.render([frame] * batch, [face] * batch, times, audio)

        row = {"engine": "viseme", "runtime": "numpy+opencv", "provider": "CPU",
               "precision": f"uint8-{size[0]}x{size[1]}", "threads": 1, "weights": "none"}
        row.update(time_batches(viseme, 1, seconds))
        rows.append(row)
        print(_format(row), flush=True)
        tracker.close()
    return rows


# -- exemplar engine -----------------------------------------------------------------------------------


def exemplar_rows(seconds: float, batches: tuple[int, ...] = (1, 8)) -> list[dict]:
    """The exemplar engine (no weights, one CPU thread) at webcam and 720p sizes, the bank already full.

    The bank is learned from the astronaut photo made to talk by the viseme engine (a sweep of open,
    spread and rounded mouths); rendering then follows a syllable-like tone, so the shown mouth changes and
    cross-fades as in speech. `learn_ms_per_frame` is what filling the bank adds per frame when learning.
    """
    import cv2
    from skimage import data

    from livedub.engines.audio import SAMPLE_RATE
    from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker
    from livedub.engines.lipsync import PcmTimeline
    from livedub.engines.lipsync.exemplar import ExemplarEngine
    from livedub.engines.lipsync.exemplar_bank import MouthBank
    from livedub.engines.lipsync.mouth_shape import MouthShape
    from livedub.engines.lipsync.viseme import VisemeEngine

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    n = SAMPLE_RATE * 6
    t = np.arange(n) / SAMPLE_RATE
    pcm = (0.2 * np.sin(2 * np.pi * 150 * t) * (np.sin(2 * np.pi * 2.5 * t) > 0)).astype(np.float32)
    audio = PcmTimeline(pcm)
    tracker = MediapipeFaceTracker(smoothing=0.0)
    rows: list[dict] = []
    for size, box in (((640, 480), (0, 240, 100, 420)), ((1280, 720), (0, 240, 60, 487))):
        y1, y2, x1, x2 = box
        frame = cv2.resize(photo[y1:y2, x1:x2], size, interpolation=cv2.INTER_CUBIC)
        tracker.reset()
        face = tracker.track(frame)
        bank, viseme, talking = MouthBank(), VisemeEngine(), []
        for o in np.linspace(0.0, 1.0, 8):
            for w, r in ((0.3, 0.0), (1.0, 0.0), (0.0, 1.0)):
                img = viseme.render_shape(frame, face, MouthShape(float(o), w, r))
                tracker.reset()
                talking.append((img, tracker.track(img)))
        start = time.perf_counter()
        for img, f in talking:
            bank.add(img, f)
        learn_ms = 1000 * (time.perf_counter() - start) / len(talking)
        engine = ExemplarEngine(bank, learn=False)
        clock = [0.0]

        def run(batch: int, engine=engine, frame=frame, face=face, clock=clock) -> object:
            stamps = [(clock[0] + i / 25.0) % 5.5 for i in range(batch)]
            clock[0] += batch / 25.0
            return engine.render([frame] * batch, [face] * batch, stamps, audio)

        for batch in batches:
            row = {"engine": "exemplar", "runtime": "numpy+opencv", "provider": "CPU",
                   "precision": f"uint8-{size[0]}x{size[1]}", "threads": 1, "weights": "none",
                   "bank_exemplars": len(bank), "bank_mb": round(bank.nbytes / 1e6, 1),
                   "learn_ms_per_frame": round(learn_ms, 2)}
            row.update(time_batches(run, batch, seconds))
            assert set(engine.last_sources) == {"exemplar"}
            rows.append(row)
            print(_format(row), flush=True)
    tracker.close()
    return rows


# -- report --------------------------------------------------------------------------------------------


def _format(row: dict) -> str:
    return (f"{row['engine']:<9} {row['precision']:<20} B={row['batch']:<3} {row['ms_per_frame']:>8.2f} ms/frame"
            f" {row['fps']:>7.1f} fps  (best {row['best_ms_per_frame']:.2f} ms, cpu {row['cpu_ms_per_frame']:.2f} ms)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: ORT's choice)")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed work per row")
    parser.add_argument("--variants", nargs="+", default=["fp32", "int8", "fp32-convtranspose",
                                                          "int8-convtranspose"], choices=sorted(VARIANTS))
    parser.add_argument("--note", default="", help="e.g. 'other jobs running'")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    rows += tracking_and_viseme_rows(args.seconds)
    rows += wav2lip_rows(args.batches, args.threads, args.seconds, args.variants)
    rows += exemplar_rows(args.seconds)
    print("\n".join(["", *(_format(r) for r in rows)]))
    print(f"\nwritten to {write_results('lipsync_throughput', rows, {'note': args.note})}")


if __name__ == "__main__":
    main()
