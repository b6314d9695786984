"""`livedub demo` (what `make demo` runs): a face photo dubbed EN → ES and ES → EN, then a live session."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from livedub.engines.audio import SAMPLE_RATE, write_wav
from livedub.engines.tts.sample_speech import say_english

from ..config import DubConfig
from ..pool import ModelPool
from ..runners.file import TranslateJob, translate_file
from ..session import DubSession
from .common import common_flags, progress_bar, say
from .translate import summary

DEMO_TEXT = (
    "Hello, and welcome to livedub. This message was spoken in English and translated into Spanish. "
    "The weather is nice today, and the house by the river is very big."
)
DEMO_TEXT_ES = "Hola a todos. Hoy hace buen tiempo, y la casa junto al río es muy grande."


def register(sub) -> None:
    p = sub.add_parser(
        "demo", help="dub a face photo both ways, EN → ES and ES → EN, then run a live session on it",
        description="With embedded models only: English speech from the Piper voice is dubbed into Spanish "
                    "(whisper + Apertium + a neural or espeak-ng voice) and Spanish speech into English "
                    "(whisper's translate task + Piper), each lip-synced onto a public-domain face photo; then "
                    "the English sample plays through a live session on the wall clock (no devices needed) "
                    "and its latency table is printed.",
    )
    p.add_argument("--out", default="demo_out", metavar="DIR", help="output folder (demo_out)")
    p.add_argument("--no-live", action="store_true", help="only the two file dubs")
    common_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import cv2
    import skimage.data

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    face = out / "face.png"  # NASA portrait of Eileen Collins, public domain, shipped with scikit-image
    cv2.imwrite(str(face), skimage.data.astronaut()[:, :, ::-1])
    with ModelPool() as pool:
        return _dub_samples(args, out, face, pool)


def _dub_samples(args: argparse.Namespace, out: Path, face: Path, pool: ModelPool) -> int:
    samples = [("en", DEMO_TEXT, 1.0, "es", "auto"), ("es", DEMO_TEXT_ES, 0.85, "en", "whisper")]
    for source, text, speed, target, mt in samples:
        pcm, rate, voice_name = _sample_speech(pool, source, text, speed)
        sample = out / f"sample_{source}.wav"
        write_wav(sample, pcm, rate)
        print(f"\n== {source} → {target}: {sample} ({len(pcm) / rate:.1f} s, {voice_name})", file=sys.stderr)
        video, report = out / f"demo_{target}.mp4", out / f"demo_{target}.json"
        session = DubSession(DubConfig(target=target, source=source, mt=mt), pool)
        job = TranslateJob(input=face, output=video, audio=sample, subs=True, report=report)
        try:
            with progress_bar(args, "dubbing video", "frame") as bar:
                result = translate_file(session, job, progress=bar.update, total=lambda n: setattr(bar, "total", n))
        finally:
            session.close()
        say(args, summary(str(video), result))
        for seg in json.loads(report.read_text())["segments"]:
            print(f"  [{seg['source_start']:5.2f}s] {seg['source_text']}\n"
                  f"  → [{seg['start']:5.2f}s ×{seg['speed']:.2f}] {seg['text']}")
        print(f"wrote {video} (+ subtitles {video.stem}.{source}/.{target}.srt/.vtt, report {report.name})")
    if not args.no_live:
        from .camera import live_demo

        return live_demo(out, face, out / "sample_en.wav", pool, quiet=args.quiet)
    return 0


def _sample_speech(pool: ModelPool, language: str, text: str, speed: float) -> tuple[np.ndarray, int, str]:
    """The demo's input speech (PCM, rate, voice): English from the joe voice with Piper's noise off, so
    every run dubs the same sample; other languages from the pool's voice for them."""
    if language == "en" and speed == 1.0:
        return say_english(text), SAMPLE_RATE, "piper:en_US-joe-medium (noise off)"
    voice = pool.synthesizer(language)
    speech = voice.synthesize(text, speed=speed)
    return speech.pcm, speech.sample_rate, voice.name
