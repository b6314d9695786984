"""Is the dub heard as its language? The voices the product would pick for a target language (`registry.
voices_for`: the Kokoro voice for a high and for a low speaker, Festival where a voice is installed, espeak-ng;
Piper where one is installed) say the same sentences; whisper-base, told nothing, names the language it hears,
and transcribes them again told the language (round-trip WER). A voice that whisper takes for another language
(Kokoro's bundled voices are Japanese speakers: their French can come back as Japanese) is not a default for
that language, however intelligible it is once the language is known. Galician has no voice of its own: it is
spoken with Spanish phonemes (tts/espeak.py BORROWED_VOICES), and whisper-base is asked what it hears.

Usage: python benchmarks/voice_language.py [--sentences N] [--language xx ...]
  With --language, the rows of the other languages already in the results file are kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, table, write_results  # noqa: E402
from voices import SENTENCES, measure, round_trip_wer  # noqa: E402

from livedub.engines import models, registry  # noqa: E402
from livedub.engines.asr.whisper import WhisperRecognizer  # noqa: E402
from livedub.engines.audio import SAMPLE_RATE, resample  # noqa: E402
from livedub.engines.settings import Settings  # noqa: E402

SPEAKER_HZ = (110.0, 220.0)  # typical male and female speaking pitches: the product picks a register by them
GALICIAN = [
    "Mañá pola mañá imos visitar o museo da cidade.",
    "A miña irmá traballa nun hospital preto da estación.",
    "Podes enviarme o informe antes do venres, por favor?",
    "O tren chegou tarde porque había moita neve nas montañas.",
    "Gustaríame reservar unha mesa para catro persoas esta noite.",
]
LANGUAGES = {**SENTENCES, "gl": GALICIAN}


def voices_of(language: str) -> dict[str, object]:
    """The product's voices for `language`, by name: first its choice for a speaker of unknown pitch (the
    default), then the Kokoro voices it picks for a low- and a high-pitched speaker, where they differ."""
    settings = Settings()
    found = {v.name: v for v in registry.voices_for(language, settings)}
    for pitch in SPEAKER_HZ:
        for voice in registry.voices_for(language, settings, pitch_hz=pitch):
            if voice.name.startswith("kokoro:"):
                found.setdefault(voice.name, voice)
    return found


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
    defaults = {}
    for language, sentences in LANGUAGES.items():
        if args.language and language not in args.language:
            continue
        sentences = sentences[: args.sentences]
        candidates = voices_of(language)
        defaults[language] = next(iter(candidates))
        for engine, voice in candidates.items():
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
    path = RESULTS / f"voice_language-{machine()['host']}.json"
    kept, measured_at = {}, {}
    if args.language and path.exists():  # a partial run keeps the other languages' rows, defaults and dates
        earlier = json.loads(path.read_text("utf-8"))
        rows = [r for r in earlier["rows"] if r["language"] not in defaults] + rows
        kept = {k: v for k, v in earlier.get("product_default", {}).items() if k not in defaults}
        measured_at = {k: v for k, v in earlier.get("measured_at", {}).items() if k not in defaults}
    now = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(table(rows, ["language", "voice", "sentences", "heard_as_language", "probability_p50", "heard_instead", "wer"]))
    verdict = {}
    for language in sorted({r["language"] for r in rows}):
        mine = [r for r in rows if r["language"] == language]
        best = max(mine, key=lambda r: (r["heard_as_language"], -r["wer"]))
        verdict[language] = best["voice"]
        print(f"{language}: default voice → {best['voice']} (heard as {language} {best['heard_as_language']:.0%}, "
              f"WER {best['wer']:.1%})")
    path = write_results("voice_language", rows, {
        "note": "heard_as_language = share of clips whisper-base (beam 5, no language given) names as the target "
                "language; WER = the same model told the language, corpus-level over the sentences",
        "default_by_language_then_wer": verdict,
        "product_default": kept | defaults,
        "measured_at": measured_at | dict.fromkeys(defaults, now),
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
