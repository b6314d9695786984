"""Piper (VITS) voices: the embedded English joe voice or any user `.onnx` + `.json` voice.

Piper rounds every phoneme id up to whole 256-sample frames, so `length_scale = default / speed` alone
shortens a clip far less than `speed` asks (speed 1.3 gave only 1.16× here). We therefore also read the
model's unrounded per-phoneme durations and, when the rounding misses the asked duration by more than 3%,
solve for the length scale that hits it and synthesize once more; the solved scales teach the first guess,
so later clips usually need one run. The same durations give phoneme timings.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingModelError
from ..mt.text import split_sentences
from ..types import Phoneme, Speech
from . import check_speed
from .timings import concat_speech, phoneme_spans

_SPEED_TOLERANCE = 0.03


@dataclass
class _Loaded:
    voice: object  # piper.PiperVoice
    outputs: list[str]  # audio, then (when found) unrounded and rounded phoneme-id durations


class PiperSynthesizer:
    """Speaks one Piper voice. Loads on first use; safe to call from several executor threads."""

    def __init__(
        self,
        model_path: str | Path,
        config_path: str | Path | None = None,
        *,
        use_cuda: bool = False,
        register: str | None = None,
    ) -> None:
        self.model_path = Path(model_path)
        self.config_path = Path(config_path) if config_path else Path(f"{self.model_path}.json")
        if not self.model_path.is_file():
            raise MissingModelError(
                f"Piper voice model not found: {self.model_path} (pass the path of a voice .onnx file)"
            )
        if not self.config_path.is_file():
            raise MissingModelError(
                f"Piper voice config not found: {self.config_path} (put the voice's .onnx.json next to "
                "the model or pass config_path)"
            )
        try:
            config = json.loads(self.config_path.read_text("utf-8"))
            self.sample_rate = int(config["audio"]["sample_rate"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MissingModelError(f"{self.config_path}: not a Piper voice config ({exc})") from None
        self.language = _iso_language(config)
        self.name = "piper:" + self.model_path.name.removesuffix(".onnx")
        self.register = register  # "low" / "high" when known; voices.choose_voice measures it otherwise
        self.use_cuda = use_cuda
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._speed_exponent = 1.5  # scale = default · speed^-k; learned from solves so one run usually fits

    @classmethod
    def joe(cls, *, use_cuda: bool = False) -> PiperSynthesizer:
        """The embedded en_US joe-medium voice (a low, male register)."""
        from ..models import joe_voice_paths

        model, config = joe_voice_paths()
        return cls(model, config, use_cuda=use_cuda, register="low")

    @property
    def has_phoneme_timings(self) -> bool:
        """Whether this voice's graph exposes per-phoneme durations (loads the voice)."""
        return len(self._load().outputs) == 3

    def synthesize(self, text: str, *, speed: float = 1.0) -> Speech:
        """The whole text as one clip; `speed` 1.3 makes it ≈1.3× shorter."""
        parts = list(self.stream(text, speed=speed))
        if not parts:
            return Speech(np.zeros(0, np.float32), self.sample_rate, text=text)
        return concat_speech(parts, self.sample_rate, text)

    def stream(self, text: str, *, speed: float = 1.0) -> Iterator[Speech]:
        """One Speech per sentence, each yielded as soon as it is synthesized."""
        check_speed(speed)
        for sentence in split_sentences(text):
            yield self._speak(sentence, speed)

    # --- internals ------------------------------------------------------------------------------------

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = _load_voice(self.model_path, self.config_path, self.use_cuda)
            return self._loaded

    def _speak(self, sentence: str, speed: float) -> Speech:
        loaded = self._load()
        voice = loaded.voice
        pieces: list[np.ndarray] = []
        phonemes: list[Phoneme] = []
        offset = 0
        for sentence_phonemes in voice.phonemize(sentence):
            if not sentence_phonemes:
                continue
            ids, groups = _ids_with_groups(sentence_phonemes, voice)
            audio, rounded = self._run_fitted(loaded, ids, speed)
            pieces.append(audio)
            if rounded is not None and groups is not None:
                phonemes.extend(phoneme_spans(groups, rounded, voice.config.hop_length, offset, self.sample_rate))
            offset += len(audio)
        pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
        return Speech(pcm, self.sample_rate, text=sentence, phonemes=tuple(phonemes))

    def _run_fitted(self, loaded: _Loaded, ids: list[int], speed: float):
        """Audio at `speed`, re-run once with a solved length scale if frame rounding missed it."""
        default = float(loaded.voice.config.length_scale)
        if speed == 1.0:
            audio, _, rounded = _run(loaded, ids, default)
            return audio, rounded
        scale = default * speed ** (-self._speed_exponent)
        audio, durations, rounded = _run(loaded, ids, scale)
        if durations is None:  # a graph without durations: the plain length-scale rule is all we have
            audio, _, rounded = _run(loaded, ids, default / speed)
            return audio, rounded
        per_unit = durations / scale
        target = _frames(per_unit, default) / speed
        solved = _solve_scale(per_unit, target, scale)
        learned = float(np.log(default / solved) / np.log(speed)) if abs(np.log(speed)) > 0.01 else 1.0
        self._speed_exponent = float(np.clip(0.7 * self._speed_exponent + 0.3 * learned, 1.0, 3.0))
        if abs(_frames(per_unit, scale) - target) <= _SPEED_TOLERANCE * target:
            return audio, rounded
        audio, _, rounded = _run(loaded, ids, solved)
        return audio, rounded


def _load_voice(model_path: Path, config_path: Path, use_cuda: bool) -> _Loaded:
    """PiperVoice with the duration tensors exposed as extra outputs (in memory; the file is untouched)."""
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(config_path.read_text("utf-8")))
    model_bytes, extra = _with_duration_outputs(model_path)
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
    try:
        options = onnxruntime.SessionOptions()
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads free the cores
        session = onnxruntime.InferenceSession(model_bytes or str(model_path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise MissingModelError(f"{model_path}: cannot be loaded as a Piper voice ({exc})") from None
    outputs = [session.get_outputs()[0].name] + extra
    return _Loaded(voice=PiperVoice(session=session, config=config), outputs=outputs)


def _with_duration_outputs(model_path: Path) -> tuple[bytes | None, list[str]]:
    """Mark the input and output of the graph's one Ceil (VITS durations) as outputs, if present."""
    try:
        import onnx
    except ImportError:
        return None, []
    model = onnx.load(str(model_path))
    ceils = [node for node in model.graph.node if node.op_type == "Ceil"]
    if len(ceils) != 1:
        return None, []
    names = [ceils[0].input[0], ceils[0].output[0]]
    present = {out.name for out in model.graph.output}
    for name in names:
        if name not in present:
            info = onnx.ValueInfoProto()
            info.name = name
            model.graph.output.append(info)
    return model.SerializeToString(), names


def _run(loaded: _Loaded, ids: list[int], length_scale: float):
    """(float32 audio, unrounded durations or None, rounded durations or None) per phoneme id."""
    config = loaded.voice.config
    feeds = {
        "input": np.asarray([ids], dtype=np.int64),
        "input_lengths": np.asarray([len(ids)], dtype=np.int64),
        "scales": np.asarray([config.noise_scale, length_scale, config.noise_w_scale], dtype=np.float32),
    }
    if config.num_speakers > 1:
        feeds["sid"] = np.asarray([config.default_speaker_id], dtype=np.int64)
    results = loaded.voice.session.run(loaded.outputs, feeds)
    audio = np.clip(np.nan_to_num(results[0].reshape(-1)), -1.0, 1.0).astype(np.float32)
    if len(results) < 3:
        return audio, None, None
    durations = results[1].reshape(-1).astype(np.float64)
    rounded = results[2].reshape(-1).astype(np.int64)
    if len(durations) != len(ids) or len(rounded) != len(ids):
        return audio, None, None
    return audio, durations, rounded


def _frames(per_unit: np.ndarray, scale: float) -> float:
    return float(np.ceil(per_unit * scale).sum())


def _solve_scale(per_unit: np.ndarray, target: float, guess: float) -> float:
    """Length scale whose rounded frame total is nearest `target` (the total is monotone in the scale)."""
    lo, hi = guess * 0.1, guess * 10.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _frames(per_unit, mid) < target:
            lo = mid
        else:
            hi = mid
    return min((lo, hi), key=lambda s: abs(_frames(per_unit, s) - target))


def _ids_with_groups(phonemes: list[str], voice) -> tuple[list[int], list[tuple[str, int]] | None]:
    """Phoneme ids as Piper builds them, and (symbol, id count) per phoneme when the layout is known."""
    from piper.const import BOS, EOS, PAD

    ids = voice.phonemes_to_ids(phonemes)
    id_map = voice.config.phoneme_id_map
    if BOS not in id_map or EOS not in id_map:
        return ids, None
    pad = list(id_map.get(PAD, []))
    groups = [(BOS, len(id_map[BOS]) + len(pad))]
    ours = list(id_map[BOS]) + pad
    for phoneme in phonemes:
        if phoneme in id_map:
            groups.append((phoneme, len(id_map[phoneme]) + len(pad)))
            ours += list(id_map[phoneme]) + pad
    groups.append((EOS, len(id_map[EOS])))
    ours += list(id_map[EOS])
    return ids, (groups if ours == ids else None)


def _iso_language(config: dict) -> str:
    """ISO 639-1 code ("en") from the voice config's language code or its espeak voice."""
    code = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice") or ""
    return str(code).replace("_", "-").split("-")[0].lower()
