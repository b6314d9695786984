"""Festival: a natural voice for a language where Kokoro and espeak-ng are not heard as that language.

Catalan is the case: the Debian voice `festvox-ca-ona-hts` (UPC's "ona", an HTS statistical voice) was heard
as Catalan by whisper-base in 4 of 5 sentences at 5% round-trip WER, where espeak-ng and every bundled Kokoro
voice were heard as Catalan in none (67% and 78% WER; benchmarks/voice_language.py). Runs Debian's `text2wave`
once per sentence, like espeak-ng, so the synthesizer can never take the live process with it. Festival reads
8-bit text: the Catalan voice wants Latin-1 (UTF-8 bytes lost the accents: 24% WER instead of 5%). No phoneme
timings come out of the command line, so `Speech.phonemes` stays empty.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio import resample
from ..errors import MissingModelError
from ..mt.text import split_sentences
from ..types import Speech
from . import SpokenBySentence, check_speed
from .espeak import parse_wav

# language → (Festival voice, the Debian package that has it, the text encoding it reads, register)
VOICES: dict[str, tuple[str, str, str, str]] = {
    "ca": ("upc_ca_ona_hts", "festvox-ca-ona-hts", "latin-1", "high"),
}
SAMPLE_RATE = 16_000  # what the HTS voices write
_SPEED_RANGE = (0.5, 2.0)
_TIMEOUT_S = 60.0


def festival_languages() -> list[str]:
    """The languages a Festival voice is installed for here."""
    return sorted(lang for lang, (voice, *_) in VOICES.items() if _installed(voice))


class FestivalSynthesizer(SpokenBySentence):
    """Speaks one language through Festival's `text2wave`."""

    sample_rate = SAMPLE_RATE

    def __init__(self, language: str) -> None:
        self.language = language.strip().replace("_", "-").lower()
        entry = VOICES.get(self.language.split("-")[0])
        if entry is None:
            raise MissingModelError(f"no Festival voice for language {language!r}")
        self.voice, package, self.encoding, self.register = entry
        if not _installed(self.voice):
            raise MissingModelError(f"the Festival voice {self.voice} is not installed; "
                                    f"install it with `apt-get install {package}`")
        self.name = f"festival:{self.voice}"

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        """One Speech per sentence, each yielded as soon as Festival has spoken it."""
        check_speed(speed)
        rate = float(np.clip(speed, *_SPEED_RANGE))
        for sentence in split_sentences(text):
            pcm, sample_rate = parse_wav(self._run(sentence, rate))
            if sample_rate != self.sample_rate:
                pcm = resample(pcm, sample_rate, self.sample_rate)
            yield Speech(pcm, self.sample_rate, text=sentence)

    def _run(self, sentence: str, rate: float) -> bytes:
        program = shutil.which("text2wave")
        if program is None:
            raise MissingModelError("Festival is not installed; install it with `apt-get install festival`")
        # HTS voices take the speaking rate as the engine's -r option
        args = [program, "-eval", f"(voice_{self.voice})", "-eval",
                f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {rate:.3f}))))', "-", "-o", "-"]
        text = " ".join(sentence.split()).encode(self.encoding, "replace")
        try:
            done = subprocess.run(args, input=text, capture_output=True, timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MissingModelError(f"Festival failed to run ({exc})") from None
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise MissingModelError(f"Festival ({self.voice}) failed: {reason[0] if reason else done.returncode}")
        return done.stdout


def _installed(voice: str) -> bool:
    if shutil.which("text2wave") is None:
        return False
    return any(Path("/usr/share/festival/voices").glob(f"*/{voice}"))
