"""Audio -> mouth shape: how open, how spread and how rounded the lips should be at a given time.

Works from the `AudioTimeline` alone (speech-band energy for opening, where the spectrum's weight sits for
spread vs rounded lips) and, when the synthesizer told us its phoneme timings, from an IPA -> viseme table
(which is what closes the lips on p/b/m even though /m/ is loud). The estimate at time t is stateless: it
replays an attack/release filter over the 200 ms before t on a 10 ms grid, so batches, seeks and file mode
all give the same mouth for the same audio. The audio exists before it plays, so the mouth leads the sound
by `lead` seconds, as real lips do.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..types import Phoneme
from . import AudioTimeline


@dataclass(frozen=True)
class MouthShape:
    """Lip targets in [0, 1]: `opening` (jaw + lip gap), `width` (spread, as in "ee"), `rounding` ("oo")."""

    opening: float = 0.0
    width: float = 0.0
    rounding: float = 0.0


CLOSED = MouthShape()

# IPA symbol -> (opening, width, rounding). Facts of articulation, coarse on purpose: a viseme is what the
# lips show, and many phonemes share one.
_VISEMES: dict[str, tuple[float, float, float]] = {
    **dict.fromkeys("pbmɸβ", (0.0, 0.1, 0.0)),  # lips pressed together
    **dict.fromkeys("fvʋ", (0.08, 0.3, 0.0)),  # lower lip under the upper teeth
    **dict.fromkeys("θð", (0.22, 0.3, 0.0)),
    **dict.fromkeys("tdnlɹrɾɫ", (0.22, 0.35, 0.0)),
    **dict.fromkeys("szɕʑ", (0.1, 0.55, 0.0)),
    **dict.fromkeys("ʃʒ", (0.18, 0.1, 0.6)),
    **dict.fromkeys("kgŋhxɣχʁqɡʔ", (0.3, 0.3, 0.0)),
    "w": (0.12, 0.0, 0.95),
    "j": (0.2, 0.6, 0.0),
    **dict.fromkeys("aɑæɐä", (1.0, 0.4, 0.0)),
    **dict.fromkeys("ʌəɜɚɝ", (0.55, 0.3, 0.0)),
    **dict.fromkeys("ɛeœ", (0.6, 0.6, 0.0)),
    **dict.fromkeys("ɪiɨ", (0.35, 0.85, 0.0)),
    "ɒ": (0.85, 0.0, 0.5),
    "ɔ": (0.75, 0.0, 0.6),
    "o": (0.55, 0.0, 0.8),
    **dict.fromkeys("ʊuɯ", (0.35, 0.0, 1.0)),
    **dict.fromkeys("yʏøɵ", (0.3, 0.0, 1.0)),
}
_AFFRICATES = {"tʃ": "ʃ", "dʒ": "ʒ", "ts": "s", "dz": "z"}
_SKIP = set("ˈˌːˑ.|‖ ")

_HOP = 0.010
_WIN = 400  # 25 ms analysis window
_NFFT = 512
_FREQS = np.fft.rfftfreq(_NFFT, 1.0 / SAMPLE_RATE)
_SPEECH = (_FREQS >= 250) & (_FREQS < 4000)
_FRIC = (_FREQS >= 4000) & (_FREQS < 7800)
_LOW = (_FREQS >= 250) & (_FREQS < 1000)  # F1 and the voice's low harmonics
_HIGH = (_FREQS >= 1500) & (_FREQS < 3500)  # a high F2: front, spread vowels (i, e)
_TAPER = np.hanning(_WIN).astype(np.float32)


def viseme_for(symbol: str) -> tuple[float, float, float] | None:
    """Lip targets for one IPA phoneme symbol (stress, length and diacritics ignored); None when unknown."""
    s = "".join(ch for ch in unicodedata.normalize("NFD", symbol) if not unicodedata.combining(ch) and ch not in _SKIP)
    if not s:
        return None
    s = _AFFRICATES.get(s[:2], s)
    return _VISEMES.get(s[0])


class MouthShapeEstimator:
    """Mouth shape at any time on an `AudioTimeline`.

    `silence_db` is the speech-band level (dBFS) under which the mouth is closed whatever else is heard;
    `range_db` is how far below the loudest recent speech the mouth is still open at all.
    """

    def __init__(
        self, *, lead: float = 0.03, silence_db: float = -50.0, range_db: float = 26.0,
        attack: float = 0.02, release: float = 0.045, history: float = 0.2,
    ):
        self.lead = lead
        self.silence_db = silence_db
        self.range_db = range_db
        self.attack = attack
        self.release = release
        self.history = history

    def at(self, audio: AudioTimeline, t: float) -> MouthShape:
        """The smoothed mouth shape to show at time `t` (seconds)."""
        end = t + self.lead
        n = int(round(self.history / _HOP)) + 1
        centres = end - _HOP * np.arange(n - 1, -1, -1)
        targets = self._targets(audio, centres)
        return self._smooth(targets)

    def _targets(self, audio: AudioTimeline, centres: np.ndarray) -> np.ndarray:
        """Raw (opening, width, rounding) per analysis centre, shape (n, 3)."""
        half = _WIN / (2 * SAMPLE_RATE)
        pcm = audio.window(float(centres[0]) - half, float(centres[-1]) + half + 1.0 / SAMPLE_RATE)
        hop = int(round(_HOP * SAMPLE_RATE))
        n = len(centres)
        need = (n - 1) * hop + _WIN
        if len(pcm) < need:
            pcm = np.pad(pcm, (0, need - len(pcm)))
        idx = np.arange(n)[:, None] * hop + np.arange(_WIN)[None, :]
        frames = pcm[idx] * _TAPER
        power = np.abs(np.fft.rfft(frames, _NFFT, axis=1)) ** 2 / (_WIN * _WIN / 4.0)
        speech = power[:, _SPEECH].sum(axis=1)
        fric = power[:, _FRIC].sum(axis=1)
        level = 10.0 * np.log10(speech + 1e-12)
        ref = max(self._reference_db(audio, float(centres[-1])), self.silence_db + self.range_db)
        opening = np.clip((level - (ref - self.range_db)) / (self.range_db * 0.85), 0.0, 1.0)
        opening[level < self.silence_db] = 0.0
        # hiss-like frames (s, f, sh): teeth nearly together even when loud
        hiss = fric / (fric + speech + 1e-12)
        opening *= 1.0 - 0.7 * np.clip((hiss - 0.3) / 0.4, 0.0, 1.0)
        # spectral tilt: a high F2 (energy at 1.5-3.5 kHz) means spread lips, little of it means rounded
        tilt = 10.0 * np.log10((power[:, _HIGH].sum(axis=1) + 1e-12) / (power[:, _LOW].sum(axis=1) + 1e-12))
        voiced = np.clip(opening * 3.0, 0.0, 1.0)
        width = np.clip((tilt + 9.0) / 6.0, 0.0, 1.0) * voiced
        rounding = np.clip((-16.0 - tilt) / 6.0, 0.0, 1.0) * voiced
        out = np.stack([opening, width, rounding], axis=1)
        self._apply_phonemes(audio, centres, out)
        return out

    def _reference_db(self, audio: AudioTimeline, t: float) -> float:
        """Loudness of the loudest recent speech (broadband, 20 ms blocks over ~2 s): an automatic gain."""
        block = 320
        pcm = audio.window(t - 2.0, t + 0.3)
        pcm = pcm[: len(pcm) // block * block].reshape(-1, block)
        if pcm.size == 0:
            return -120.0
        peak = float(np.max(np.mean(pcm * pcm, axis=1)))
        return 10.0 * np.log10(peak + 1e-12) - 1.0

    def _apply_phonemes(self, audio: AudioTimeline, centres: np.ndarray, out: np.ndarray) -> None:
        """Where the synthesizer's phonemes are known, they set the lip shape; audio energy still gates it."""
        phonemes: list[Phoneme] = audio.phonemes(float(centres[0]), float(centres[-1]) + 1e-6)
        if not phonemes:
            return
        for i, c in enumerate(centres):
            active = [p for p in phonemes if p.start <= c < p.end]
            if not active:
                continue
            vis = viseme_for(active[-1].symbol)
            if vis is None:
                continue
            gate = min(1.0, out[i, 0] * 4.0)  # pauses inside a clip still close the mouth
            out[i] = (vis[0] * gate, vis[1] * gate, vis[2] * gate)

    def _smooth(self, targets: np.ndarray) -> MouthShape:
        """Attack/release one-pole over the history, starting closed; tiny residues snap to closed."""
        a_up = 1.0 - np.exp(-_HOP / self.attack)
        a_down = 1.0 - np.exp(-_HOP / self.release)
        state = np.zeros(3)
        for x in targets:
            alpha = np.where(x > state, a_up, a_down)
            state = state + alpha * (x - state)
        state[state < 0.02] = 0.0
        return MouthShape(float(state[0]), float(state[1]), float(state[2]))
