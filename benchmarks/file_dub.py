"""Wall time and memory of `livedub translate` on a generated talking-face clip (viseme engine).

Default: a 15 s 1280×720 30 fps clip, EN → ES, per-stage breakdown as a ratio to the clip's duration
(target on a 2-core CPU: ≤ 1.0× real time). `--long 600` also dubs a 10-minute clip and samples the
process's resident memory while it runs, to show it stays flat (frames are streamed, not held).
Usage: python benchmarks/file_dub.py [--seconds 15] [--long 600] [--long-size 640x360]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results  # noqa: E402

from livedub.engines import registry  # noqa: E402
from livedub.engines.audio import OUTPUT_RATE, resample  # noqa: E402
from livedub.engines.settings import Settings  # noqa: E402
from livedub.realtime.cli import main as livedub  # noqa: E402
from livedub.realtime.io.files import Mp4Writer  # noqa: E402

LINES = [
    "Good morning and welcome to the weekly meeting.", "The house by the river is very big.",
    "My brother has a red car.", "We eat bread and cheese in the morning.",
    "The children play in the garden.", "Thank you all for listening.",
]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


class MemorySampler(threading.Thread):
    """Samples resident memory every `every` seconds while the job runs."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.samples, self._halt = every, [], threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.is_set():
            self.samples.append((time.monotonic() - t0, rss_mb()))
            self._halt.wait(self.every)

    def stop(self) -> list[tuple[float, float]]:
        self._halt.set()
        self.join()
        return self.samples


def make_clip(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> None:
    """A face (public-domain astronaut photo) swaying slightly, with English speech and pauses."""
    import cv2
    import skimage.data

    voice = registry.synthesizer("en", Settings())
    pcm, i = [], 0
    total = 0.0
    while total < seconds - 1.0:
        sp = voice.synthesize(LINES[i % len(LINES)])
        part = resample(sp.pcm, sp.sample_rate, OUTPUT_RATE)
        gap = np.zeros(int(0.7 * OUTPUT_RATE), np.float32)
        pcm += [part, gap]
        total += (len(part) + len(gap)) / OUTPUT_RATE
        i += 1
    audio = np.concatenate(pcm)[: int(seconds * OUTPUT_RATE)]
    face = skimage.data.astronaut()[:, :, ::-1]
    side = int(height * 0.9)
    face = cv2.resize(face, (side, side))
    with Mp4Writer(path, width, height, fps, audio, OUTPUT_RATE) as w:
        for k in range(int(seconds * fps)):
            frame = np.full((height, width, 3), 180, np.uint8)
            x = (width - side) // 2 + int(6 * np.sin(k / 20))
            y = (height - side) // 2
            frame[y : y + side, x : x + side] = face
            w.write(frame)


def dub(src: Path, out: Path) -> tuple[dict, float, list[tuple[float, float]]]:
    sampler = MemorySampler()
    sampler.start()
    t = time.perf_counter()
    code = livedub(["translate", str(src), "--to", "es", "--engine", "viseme", "-o", str(out), "--report", str(out.with_suffix(".json")),
                    "-q"])
    wall = time.perf_counter() - t
    samples = sampler.stop()
    if code:
        raise SystemExit(f"translate failed with exit code {code}")
    return json.loads(out.with_suffix(".json").read_text()), wall, samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--long", type=float, default=0.0, help="also dub a clip this long (s) and sample memory")
    ap.add_argument("--long-size", default="640x360")
    args = ap.parse_args()
    rows, extra = [], {}
    with tempfile.TemporaryDirectory(prefix="livedub-bench-") as tmp:
        w, h = (int(v) for v in args.size.split("x"))
        src = Path(tmp) / "clip.mp4"
        make_clip(src, args.seconds, w, h)
        report, wall, samples = dub(src, Path(tmp) / "clip_es.mp4")
        dur = report["duration"]
        for stage, v in report["stage_seconds"].items():
            rows.append({"stage": stage, "calls": v["calls"], "seconds": v["seconds"], "x_realtime": v["seconds"] / dur})
        rows.append({"stage": "TOTAL (wall)", "calls": 1, "seconds": wall, "x_realtime": wall / dur})
        print(f"{args.seconds:g} s {args.size} 30 fps clip, EN → ES, viseme engine "
              f"(peak RSS {max(m for _, m in samples):.0f} MB)")
        print(table(rows, ["stage", "calls", "seconds", "x_realtime"]))
        extra["clip"] = {"seconds": dur, "size": args.size, "fps": 30, "wall_s": wall, "realtime_factor": wall / dur,
                         "peak_rss_mb": max(m for _, m in samples), "target_realtime_factor": 1.0}
        if args.long:
            w, h = (int(v) for v in args.long_size.split("x"))
            src = Path(tmp) / "long.mp4"
            make_clip(src, args.long, w, h)
            src_short = Path(tmp) / "long_head.mp4"
            make_clip(src_short, min(60.0, args.long / 10), w, h)
            _, wall_short, mem_short = dub(src_short, Path(tmp) / "long_head_es.mp4")
            report, wall, samples = dub(src, Path(tmp) / "long_es.mp4")
            quarters = [samples[int(q * (len(samples) - 1))][1] for q in (0.25, 0.5, 0.75, 1.0)]
            extra["long"] = {"seconds": report["duration"], "size": args.long_size, "wall_s": wall,
                             "realtime_factor": wall / report["duration"],
                             "rss_mb_at_25_50_75_100_percent": quarters, "peak_rss_mb": max(m for _, m in samples),
                             "peak_rss_mb_short_clip": max(m for _, m in mem_short),
                             "short_clip_seconds": min(60.0, args.long / 10)}
            print(f"\n{args.long:g} s {args.long_size} clip: {wall:.0f} s wall ({wall / report['duration']:.2f}× real "
                  f"time); RSS at 25/50/75/100 % of the run: " + " / ".join(f"{q:.0f}" for q in quarters)
                  + f" MB; peak {extra['long']['peak_rss_mb']:.0f} MB vs {extra['long']['peak_rss_mb_short_clip']:.0f}"
                  f" MB for a {extra['long']['short_clip_seconds']:g} s clip")
    path = write_results("file_dub", rows, extra)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
