"""Per-stage latency of the speech half on generated clips: VAD, ASR (offline RTF and streaming commit lag),
MT per sentence, TTS time to first audio and real-time factor.

Streaming is fed in real time (20 ms chunks paced by the wall clock; when a pass runs long, the audio that
arrived meanwhile is fed at once), so commit lag = wall time of the commit − the word's end in the audio,
compute included. Usage: python benchmarks/speech_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results  # noqa: E402

from livedub.engines import registry  # noqa: E402
from livedub.engines.asr.streaming import StreamingRecognizer  # noqa: E402
from livedub.engines.asr.vad import speech_spans  # noqa: E402
from livedub.engines.audio import SAMPLE_RATE, resample  # noqa: E402
from livedub.engines.settings import Settings  # noqa: E402

CLIPS = {
    "short (2 sentences)": ["Good morning everyone.", "Thank you for joining this call today."],
    "medium (4 sentences)": [
        "I would like to talk about our plans for next year.",
        "The new office opens in March.",
        "Everyone will have a desk near the window.",
        "Please send me your questions by Friday.",
    ],
    "long (6 sentences)": [
        "Yesterday we visited the museum in the center of the city.",
        "The paintings were beautiful and the rooms were very quiet.",
        "After that we walked along the river for an hour.",
        "My sister bought a small book about the history of the bridge.",
        "In the evening we ate dinner at a restaurant near the station.",
        "It was a long day, but everybody was happy.",
    ],
}


def speak(synth, sentences: list[str]) -> np.ndarray:
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    parts = [gap]
    for s in sentences:
        sp = synth.synthesize(s)
        parts += [resample(sp.pcm, sp.sample_rate, SAMPLE_RATE), gap]
    return np.concatenate(parts)


def stream_in_real_time(recognizer, pcm: np.ndarray) -> tuple[list[float], float, list[str]]:
    """Commit lags (s), the first commit's time, and words committed over 5 s late, feeding audio at
    wall-clock pace."""
    stream = StreamingRecognizer(recognizer, language="en")
    chunk = int(0.02 * SAMPLE_RATE)
    t0 = time.monotonic()
    fed = 0
    while fed < len(pcm):
        arrived = min(int((time.monotonic() - t0) * SAMPLE_RATE), len(pcm))
        if arrived - fed < chunk and arrived < len(pcm):
            time.sleep((fed + chunk - arrived) / SAMPLE_RATE)
            continue
        stream.feed(pcm[fed:arrived])
        fed = arrived
    stream.flush()
    lags = [(c.wall_time - t0) - c.word.end for c in stream.commits]
    first = (stream.commits[0].wall_time - t0) if stream.commits else float("nan")
    late = [f"{c.word.text}@{c.word.end:.1f}s+{lag:.1f}s{' (flush)' if c.by_flush else ''}"
            for c, lag in zip(stream.commits, lags, strict=True) if lag > 5.0]
    return lags, first, late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one clip only")
    args = parser.parse_args()
    settings = Settings()
    piper = registry.synthesizer("en", settings)
    espeak = registry.synthesizer("es", settings)
    asr = registry.recognizer(settings)
    streaming_asr = registry.recognizer(settings, streaming=True)
    mt = registry.translator("en", "es", settings)
    for model in (asr, streaming_asr):  # load the models outside the timings
        model.transcribe(np.zeros(SAMPLE_RATE, np.float32))
    rows: list[dict] = []
    all_lags: list[float] = []
    clips = list(CLIPS.items())[: 1 if args.quick else None]
    for name, sentences in clips:
        pcm = speak(piper, sentences)
        dur = len(pcm) / SAMPLE_RATE
        t = time.perf_counter()
        spans = speech_spans(pcm)
        vad_s = time.perf_counter() - t
        t = time.perf_counter()
        transcript = asr.transcribe(pcm, language="en")
        asr_s = time.perf_counter() - t
        lags, first, late = stream_in_real_time(streaming_asr, pcm)
        all_lags += lags
        first_utt_end = spans[0].end if spans else float("nan")
        mt_times = []
        for s in sentences:
            t = time.perf_counter()
            mt.translate(s)
            mt_times.append(time.perf_counter() - t)
        tts = {}
        for label, synth, text in (("piper-en", piper, " ".join(sentences)),
                                   ("espeak-es", espeak, mt.translate(" ".join(sentences)))):
            t = time.perf_counter()
            first_chunk = None
            total = 0.0
            for part in synth.stream(text):
                first_chunk = first_chunk or time.perf_counter() - t
                total += part.duration
            tts[label] = (first_chunk, (time.perf_counter() - t) / max(total, 1e-6))
        rows.append({
            "clip": name, "audio_s": dur, "words": len(transcript.text.split()),
            "vad_ms": vad_s * 1000, "asr_rtf": asr_s / dur,
            "commit_lag_median_s": statistics.median(lags) if lags else None,
            "commit_lag_p90_s": float(np.percentile(lags, 90)) if lags else None,
            "first_commit_s": first, "first_utterance_end_s": first_utt_end,
            "mt_ms_per_sentence": 1000 * statistics.mean(mt_times),
            "piper_first_audio_s": tts["piper-en"][0], "piper_rtf": tts["piper-en"][1],
            "espeak_first_audio_s": tts["espeak-es"][0], "espeak_rtf": tts["espeak-es"][1],
            "late_words": late,
        })
        if late:
            print(f"{name}: words committed over 5 s late: {' '.join(late)}")
    cols = ["clip", "audio_s", "words", "vad_ms", "asr_rtf", "commit_lag_median_s", "commit_lag_p90_s",
            "first_commit_s", "first_utterance_end_s", "mt_ms_per_sentence", "piper_first_audio_s", "piper_rtf",
            "espeak_first_audio_s", "espeak_rtf"]
    print(table(rows, cols))
    summary = {"commit_lag_median_all_s": statistics.median(all_lags) if all_lags else None,
               "asr_model": "whisper-base int8 (CPU); streaming greedy", "mt": "apertium en-es", "target_commit_lag_s": 1.0}
    print(f"\nstreaming commit lag, all words: median {summary['commit_lag_median_all_s']:.2f} s (target <= 1.0 s)")
    path = write_results("speech_latency", rows, {"summary": summary})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
