"""Live latency: clips replayed through `livedub camera --source` on the wall clock, beside a sequential
baseline (VAD end of utterance → whole-utterance ASR → MT → TTS) on the same clips and models.

Per clip: utterance end → translated speech onset (median, p95); each source word → the moment its
translation starts to be heard (median, p95); frame in → frame out (p50, p95) at the clip's size; A/V
offset of the recorded output (`livedub evaluate`); dropped frames and the largest frame gap; CPU seconds per
model worker. Clips: English from the embedded Piper voice (short sentences with pauses; one long sentence
without a pause) and a real human reading (moonshine-voice's beckett.wav), on a moving face at 640×480,
and the short clip again at 1280×720. Models are loaded and warmed before anything is timed (the session's
own warm-up, then one untimed run).

Usage: python benchmarks/live_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import table, write_results  # noqa: E402

from livedub.engines.audio import OUTPUT_RATE, SAMPLE_RATE, decode_audio, resample  # noqa: E402
from livedub.engines.metrics import percentile  # noqa: E402
from livedub.engines.tts.sample_speech import say_english  # noqa: E402
from livedub.realtime.config import DubConfig  # noqa: E402
from livedub.realtime.io.files import Mp4Writer  # noqa: E402
from livedub.realtime.pool import ModelPool  # noqa: E402
from livedub.realtime.runners.live import LiveOptions, LiveRun  # noqa: E402

FPS = 25


def _face(i: int, size: tuple[int, int]) -> np.ndarray:
    import cv2
    import skimage.data

    w, h = size
    img = skimage.data.astronaut()[:, :, ::-1]
    frame = np.full((480, 640, 3), 200, np.uint8)
    dx = int(2 * np.sin(i / 10))
    frame[:, 64 + dx : 64 + dx + 512] = img[16:496]
    return frame if (w, h) == (640, 480) else cv2.resize(frame, (w, h), interpolation=cv2.INTER_CUBIC)


def make_clip(path: Path, pcm16k: np.ndarray, size: tuple[int, int]) -> Path:
    audio = resample(pcm16k, SAMPLE_RATE, OUTPUT_RATE)
    n = int(np.ceil(len(pcm16k) / SAMPLE_RATE * FPS))
    with Mp4Writer(path, size[0], size[1], FPS, audio, OUTPUT_RATE) as w:
        for i in range(n):
            w.write(_face(i, size))
    return path


def clips(root: Path, quick: bool) -> list[tuple[str, Path, tuple[int, int]]]:
    gap = np.zeros(int(0.9 * SAMPLE_RATE), np.float32)
    short = np.concatenate([gap, say_english("The house is very big."), gap, gap,
                            say_english("My brother has a red car."), gap, gap])
    long = np.concatenate([gap, say_english(
        "Yesterday afternoon my brother and I walked along the river to the old bridge and talked about the "
        "summer we spent in the mountains with our grandparents."), gap, gap])
    out = [("short-640x480", make_clip(root / "short.mp4", short, (640, 480)), (640, 480)),
           ("long-sentence-640x480", make_clip(root / "long.mp4", long, (640, 480)), (640, 480))]
    real = _real_speech()
    if real is not None:
        out.append(("real-beckett-640x480", make_clip(root / "real.mp4", np.concatenate([gap, real, gap, gap]),
                                                       (640, 480)), (640, 480)))
    if not quick:
        out.append(("short-1280x720", make_clip(root / "short720.mp4", short, (1280, 720)), (1280, 720)))
    return out


def _real_speech() -> np.ndarray | None:
    import importlib.util

    spec = importlib.util.find_spec("moonshine_voice")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "beckett.wav"
    return decode_audio(path) if path.exists() else None


def run_clip(pool: ModelPool, config: DubConfig, clip: Path, record: Path) -> dict:
    words: list[tuple[float, float]] = []  # (word end, session time when committed)
    live = LiveRun(config, pool, LiveOptions(source=clip, record=record, virtual_camera=False, virtual_mic=False),
                   on_event=lambda e: words.append((e.end, e.at)) if e.type == "word" else None)
    report = asyncio.run(live.run())
    clips = report.clips
    onsets = [start - src_end for start, _e, _t, _s, _ss, src_end in clips]
    heard = []  # a word's translation starts to be heard when its clip starts (audio delayed: + the delay)
    delay = report.stats.get("audio_delay_ms", 0.0) / 1000
    for end, _at in words:
        clip = next((c for c in clips if c[4] - 0.05 <= end <= c[5] + 0.05), None)
        if clip is not None:
            heard.append(clip[0] + delay - end)
    video = report.stats["stages"].get("video", {})
    row = {
        "onset_p50_s": statistics.median(onsets) if onsets else None,
        "onset_p95_s": percentile(onsets, 95),
        "word_heard_p50_s": statistics.median(heard) if heard else None,
        "word_heard_p95_s": percentile(heard, 95),
        "frame_p50_ms": video.get("p50_ms"),
        "frame_p95_ms": video.get("p95_ms"),
        "max_gap_ms": round(1000 * report.max_frame_gap_s, 1),
        "dropped": report.dropped,
        "phrases": len(clips),
        "cpu_s": {k.split("-")[0]: round(v, 1) for k, v in report.stats.get("cpu_s", {}).items()},
        "seconds": round(report.seconds, 1),
    }
    if report.recorded is not None:
        from livedub.engines.lipsync.sync_metric import evaluate_sync

        try:
            row["av_offset_frames"] = evaluate_sync(report.recorded).offset_frames
        except Exception as exc:  # a clip the metric refuses (too few speaking frames)
            row["av_offset_frames"] = f"n/a ({exc})"
    return row


def sequential_baseline(pool: ModelPool, config: DubConfig, clip: Path) -> dict:
    """Onset if each utterance waited for the VAD's end, then whole-utterance ASR → MT → TTS in turn."""
    from livedub.engines.asr.vad import speech_spans

    pcm = decode_audio(clip)
    rec = pool.recognizer()
    translator = pool.translator(config.source or "en", config.target)
    voice, _ = pool.live_synthesizer(config.target)
    hangover = 0.5  # silence the streaming VAD waits for before it calls the utterance over
    onsets = []
    for span in speech_spans(pcm):
        started = time.perf_counter()
        text = rec.transcribe(pcm[int(span.start * SAMPLE_RATE) : int(span.end * SAMPLE_RATE)], language="en").text
        said = translator.translate(text) if translator is not None else text
        voice.synthesize(said)
        onsets.append(hangover + time.perf_counter() - started)
    return {"onset_p50_s": statistics.median(onsets) if onsets else None, "onset_p95_s": percentile(onsets, 95),
            "phrases": len(onsets)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the 720p run")
    args = parser.parse_args()
    config = DubConfig(target="es", source="en", engine="viseme")
    pool = ModelPool(config.settings)
    rows = []
    with tempfile.TemporaryDirectory(prefix="livedub-bench-") as tmp:
        root = Path(tmp)
        todo = clips(root, args.quick)
        print("warming up (one untimed run)...", file=sys.stderr)
        run_clip(pool, config, todo[0][1], root / "warm.mp4")
        for name, clip, _size in todo:
            print(f"{name}...", file=sys.stderr)
            row = {"clip": name, "mode": "streaming", **run_clip(pool, config, clip, root / f"{name}.mp4")}
            rows.append(row)
            rows.append({"clip": name, "mode": "sequential", **sequential_baseline(pool, config, clip)})
    pool.close()
    columns = ["clip", "mode", "onset_p50_s", "onset_p95_s", "word_heard_p50_s", "word_heard_p95_s",
               "frame_p50_ms", "frame_p95_ms", "max_gap_ms", "dropped", "av_offset_frames", "phrases"]
    print(table(rows, columns))
    for row in rows:
        if "cpu_s" in row:
            print(f"{row['clip']}: CPU seconds per worker {row['cpu_s']} over {row['seconds']} s")
    path = write_results("live_latency", rows, {"engine": "viseme", "voice": "live choice (fastest that keeps up)"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
