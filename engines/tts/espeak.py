"""espeak-ng: a robotic but intelligible voice for every language Piper has no voice for.

Runs the Debian `espeak-ng` program (one process per sentence, WAV on stdout), so a crash or a hang in
the synthesizer can never take the live process with it. The command line gives no phoneme timings
(`--pho` prints nothing without an mbrola voice), so `Speech.phonemes` stays empty here. Its IPA output
(text → phonemes, for Kokoro and the lip engines) lives in `phonemes.py`, which runs the program through
`run_espeak_ng` and finds voices with `espeak_voice_for`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from functools import cache

import numpy as np

from ..errors import MissingModelError
from ..mt.text import split_sentences
from ..types import Speech
from . import SpokenBySentence, check_speed

DEFAULT_WPM = 175  # espeak-ng's own default rate, words per minute
_MIN_WPM, _MAX_WPM = 80, 450  # the range espeak-ng honours
_REGISTER_VARIANTS = {"low": "m3", "high": "f3"}
_INSTALL = "espeak-ng is not installed; install it with `apt-get install espeak-ng`"
_TIMEOUT_S = 60.0
# Languages espeak-ng has no voice for, spoken with a close one's phonology: Galician text read with Spanish
# rules (its letters and consonants nearly all agree; x is read /ks/, not /ʃ/) came back through whisper-base
# told "gl" at 33% WER with Kokoro, against 39% with Portuguese rules (benchmarks/voice_language.py). Whisper-base
# told nothing hears it as Spanish: it named Galician for none of these clips, whatever the phonology.
BORROWED_VOICES = {"gl": "es"}


class EspeakSynthesizer(SpokenBySentence):
    """Speaks one language through espeak-ng; `voice_variant` ("m3", "f3", …) or `register` sets the voice."""

    def __init__(
        self,
        language: str,
        *,
        voice_variant: str | None = None,
        pitch: int | None = None,
        register: str | None = None,
    ) -> None:
        if register is not None and register not in _REGISTER_VARIANTS:
            raise ValueError(f"register must be 'low' or 'high', got {register!r}")
        if pitch is not None and not 0 <= pitch <= 99:
            raise ValueError(f"espeak-ng pitch must be 0–99, got {pitch!r}")
        self.language = _normalise(language)
        self.voice = espeak_voice_for(self.language)
        variant = voice_variant or (_REGISTER_VARIANTS[register] if register else None)
        self.variant = variant
        self.pitch = pitch
        self.register = register or _register_of_variant(variant)
        self.sample_rate = _probe_sample_rate(self.voice)
        self.name = "espeak-ng:" + self.voice + (f"+{variant}" if variant else "")

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        """One Speech per sentence, each yielded as soon as espeak-ng has spoken it."""
        check_speed(speed)
        for sentence in split_sentences(text):
            pcm, rate = _run_espeak(self._args(speed), sentence)
            yield Speech(pcm, rate, text=sentence)

    def _args(self, speed: float) -> list[str]:
        wpm = int(round(min(max(DEFAULT_WPM * speed, _MIN_WPM), _MAX_WPM)))
        voice = self.voice + (f"+{self.variant}" if self.variant else "")
        args = ["-v", voice, "-s", str(wpm), "-b", "1"]
        if self.pitch is not None:
            args += ["-p", str(int(self.pitch))]
        return args


def espeak_languages() -> list[str]:
    """Language codes (ISO 639-1 / BCP-47, lower case) espeak-ng can speak, aliases and borrowed voices included."""
    return sorted(_voice_table())


def _normalise(language: str) -> str:
    return language.strip().replace("_", "-").lower()


def espeak_voice_for(language: str) -> str:
    """The espeak-ng voice name for `language`, e.g. "en" → "en-gb", "zh" → "cmn", "es-mx" → "es"."""
    table = _voice_table()
    for code in (language, language.split("-")[0]):
        if code in table:
            return table[code]
    raise MissingModelError(
        f"espeak-ng has no voice for language {language!r}; "
        f"`espeak-ng --voices` lists the {len(table)} codes it knows"
    )


@cache
def _voice_table() -> dict[str, str]:
    """code → espeak-ng voice, from `espeak-ng --voices`, preferring each code's best priority; then the
    `BORROWED_VOICES` whose lender is there."""
    out = run_espeak_ng(["--voices"], None).decode("utf-8", "replace")
    best: dict[str, tuple[int, str]] = {}
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or not cols[0].isdigit():
            continue
        voice = cols[1].lower()
        candidates = [(voice, int(cols[0]))]
        candidates += [(c.lower(), int(p)) for c, p in re.findall(r"\(([\w-]+) (\d+)\)", line)]
        for code, priority in candidates:
            if code not in best or priority < best[code][0]:
                best[code] = (priority, voice)
    table = {code: voice for code, (_, voice) in best.items()}
    return table | {code: table[lender] for code, lender in BORROWED_VOICES.items()
                    if lender in table and code not in table}


@cache
def _probe_sample_rate(voice: str) -> int:
    """The rate espeak-ng writes for this voice (22050 Hz for the built-in voices)."""
    return _run_espeak(["-v", voice], "a")[1]


def _run_espeak(args: list[str], text: str) -> tuple[np.ndarray, int]:
    """Speak `text` (fed on stdin, so a leading '-' is never an option) → float32 PCM and its rate."""
    wav = run_espeak_ng([*args, "--stdout"], " ".join(text.split()).encode("utf-8"))
    return parse_wav(wav)


def run_espeak_ng(args: list[str], stdin: bytes | None) -> bytes:
    program = shutil.which("espeak-ng")
    if program is None:
        raise MissingModelError(_INSTALL)
    try:
        done = subprocess.run(
            [program, *args], input=stdin, capture_output=True, timeout=_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MissingModelError(f"espeak-ng failed to run ({exc}); {_INSTALL}") from None
    if done.returncode != 0:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
        raise MissingModelError(
            f"espeak-ng {' '.join(args)} failed: {reason[0] if reason else done.returncode}"
        )
    return done.stdout


def parse_wav(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit mono WAV → float32. espeak-ng streams with a placeholder data size, so read to the end."""
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise MissingModelError("the synthesizer did not write a WAV file")
    rate = int.from_bytes(data[24:28], "little")
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"data":
            body = data[pos + 8 :]
            body = body[: len(body) // 2 * 2]
            return np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0, rate
        pos += 8 + size
    return np.zeros(0, np.float32), rate


def _register_of_variant(variant: str | None) -> str | None:
    """Register implied by espeak-ng's numbered variants (m1–m8 male, f1–f5 female); else unknown."""
    if variant and re.fullmatch(r"[mf]\d", variant):
        return "low" if variant[0] == "m" else "high"
    return None
