"""Is the dub heard as its language? Each voice that speaks a target language (Kokoro with the bundled
voices, espeak-ng, Piper where one is installed) says the same sentences; whisper-base, told nothing, names
the language it hears, and transcribes them again told the language (round-trip WER). A voice that whisper
takes for another language (Kokoro's bundled voices are Japanese speakers: their French can come back as
Japanese) is not a default for that language, however intelligible it is once the language is known.

Usage: python benchmarks/voice_language.py [--sentences N] [--language xx ...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results  # noqa: E402
from voices import SENTENCES, measure, round_trip_wer, voices_of  # noqa: E402

from livedub.engines import models  # noqa: E402
from livedub.engines.asr.whisper import WhisperRecognizer  # noqa: E402
from livedub.engines.audio import SAMPLE_RATE, resample  # noqa: E402


def heard_as(asr: WhisperRecognizer, clips: list) -> tuple[list[str], list[float]]:
    """The language whisper names for each clip when told nothing, and its probability."""
    names, probabilities = [], []
    for pcm, rate in clips:
        transcript = asr.transcribe(resample(pcm, rate, SAMPLE_RATE))
        names.append(transcript.language)
        probabilities.append(transcript.language_probability if transcript.language else 0.0)
    return names, probabilities


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=5, help="sentences per language (5)")
    parser.add_argument("--language", action="append", default=[], help="only this language (repeatable)")
    args = parser.parse_args()
    started = time.perf_counter()
    asr = WhisperRecognizer(models.whisper_base_dir())
    rows: list[dict] = []
    for language, sentences in SENTENCES.items():
        if args.language and language not in args.language:
            continue
        sentences = sentences[: args.sentences]
        for engine, voice in voices_of(language, kokoro_threads=2).items():
            _, _, clips = measure(voice, sentences)
            names, probabilities = heard_as(asr, clips)
            error, worst = round_trip_wer(asr, language, sentences, clips)
            others = Counter(n for n in names if n != language).most_common(2)
            rows.append({"language": language, "voice": engine, "sentences": len(sentences),
                         "heard_as_language": sum(n == language for n in names) / len(names),
                         "probability_p50": statistics.median(p for n, p in zip(names, probabilities, strict=True)
                                                               if n == language) if language in names else 0.0,
                         "heard_instead": ", ".join(f"{n}×{k}" for n, k in others), "wer": error, "worst": worst})
            print(f"{language} {engine}: heard as {language} {rows[-1]['heard_as_language']:.0%} "
                  f"(instead: {rows[-1]['heard_instead'] or '-'}), WER {error:.1%}  "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    print(table(rows, ["language", "voice", "sentences", "heard_as_language", "probability_p50", "heard_instead", "wer"]))
    verdict = {}
    for language in {r["language"] for r in rows}:
        mine = [r for r in rows if r["language"] == language]
        best = max(mine, key=lambda r: (r["heard_as_language"], -r["wer"]))
        verdict[language] = best["voice"]
        print(f"{language}: default voice → {best['voice']} (heard as {language} {best['heard_as_language']:.0%}, "
              f"WER {best['wer']:.1%})")
    path = write_results("voice_language", rows, {
        "note": "heard_as_language = share of clips whisper-base (beam 5, no language given) names as the target "
                "language; WER = the same model told the language, corpus-level over the sentences",
        "default_by_language_then_wer": verdict,
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
