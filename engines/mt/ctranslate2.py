"""Neural MT from a user's CTranslate2 model directory: OPUS-MT (Marian), NLLB or M2M100.

The family is read from the directory itself (sentencepiece files and language tokens in the vocabulary),
so the user only passes a path. Text is split into sentences, cut to the model's token budget, translated
in batches with a small beam (latency matters more than the last BLEU point), and joined back.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import BadInputError, MissingModelError
from .languages import NLLB_SCRIPT, iso3_candidates, to_iso1
from .text import chunk_text, join_sentences

log = logging.getLogger("livedub.mt")

_CONVERT_HINT = (
    "convert a Hugging Face model with `ct2-transformers-converter --model Helsinki-NLP/opus-mt-en-de "
    "--output_dir DIR --copy_files source.spm target.spm` (OPUS-MT) or `... --copy_files sentencepiece.bpe.model` "
    "(NLLB, M2M100) on a machine with internet access, then pass DIR; `livedub models get nllb-600m` fetches a "
    "converted NLLB"
)
_NLLB_TOKEN = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")  # eng_Latn
_M2M_TOKEN = re.compile(r"^__[a-z]{2,3}(?:_[A-Za-z]+)?__$")  # __en__
_MARIAN_TOKEN = re.compile(r"^>>[a-z]{2,3}(?:_[A-Za-z]+)?<<$")  # >>spa<<, >>cmn_Hans<<
_SINGLE_SPM_NAMES = ("sentencepiece.bpe.model", "spm.model", "sentencepiece.model")
_TOKENIZER_JSON = "tokenizer.json"  # a Hugging Face fast tokenizer: what many converted NLLB repositories ship


@dataclass(frozen=True)
class ModelLayout:
    """What a model directory holds: its family, tokenizer files and CTranslate2 vocabularies."""

    family: str  # "marian" | "nllb" | "m2m100"
    source_spm: Path  # a sentencepiece model, or tokenizer.json (NLLB, M2M100 without one)
    target_spm: Path
    source_vocabulary: tuple[str, ...]
    target_vocabulary: tuple[str, ...]
    config: dict

    def language_tokens(self) -> tuple[str, ...]:
        """Tokens that name a language in this family (">>spa<<", "spa_Latn", "__es__")."""
        pattern = {"marian": _MARIAN_TOKEN, "nllb": _NLLB_TOKEN, "m2m100": _M2M_TOKEN}[self.family]
        seen = dict.fromkeys(self.source_vocabulary + self.target_vocabulary)
        return tuple(t for t in seen if pattern.match(t))


def _read_vocabulary(model_dir: Path, name: str) -> tuple[str, ...] | None:
    json_path, txt_path = model_dir / f"{name}.json", model_dir / f"{name}.txt"
    if json_path.is_file():
        return tuple(json.loads(json_path.read_text(encoding="utf-8")))
    if txt_path.is_file():
        return tuple(line.rstrip("\n") for line in txt_path.read_text(encoding="utf-8").splitlines())
    return None


def detect_layout(model_dir: str | Path) -> ModelLayout:
    """Inspect `model_dir` and say which family it is; raise a clear error for anything unusable."""
    model_dir = Path(model_dir).expanduser()
    if not model_dir.is_dir():
        raise MissingModelError(f"CTranslate2 model directory {model_dir} does not exist; {_CONVERT_HINT}.")
    if not (model_dir / "model.bin").is_file():
        raise MissingModelError(f"{model_dir} holds no model.bin, so it is not a CTranslate2 model; {_CONVERT_HINT}.")
    shared = _read_vocabulary(model_dir, "shared_vocabulary")
    source_vocab = shared or _read_vocabulary(model_dir, "source_vocabulary")
    target_vocab = shared or _read_vocabulary(model_dir, "target_vocabulary")
    if not source_vocab or not target_vocab:
        raise BadInputError(
            f"{model_dir} has no vocabulary (shared_vocabulary.json, or source_ and target_vocabulary.json); "
            f"it is not a sequence-to-sequence translation model."
        )
    config_path = model_dir / "config.json"
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}

    if (model_dir / "source.spm").is_file() and (model_dir / "target.spm").is_file():
        return ModelLayout("marian", model_dir / "source.spm", model_dir / "target.spm",
                           source_vocab, target_vocab, config)
    names = (*_SINGLE_SPM_NAMES, _TOKENIZER_JSON)  # sentencepiece first: the tokenizer the model was trained with
    spm = next((model_dir / n for n in names if (model_dir / n).is_file()), None)
    if spm is None:
        found = ", ".join(sorted(p.name for p in model_dir.iterdir())) or "nothing"
        raise MissingModelError(
            f"{model_dir} has no tokenizer: expected source.spm + target.spm (OPUS-MT), or "
            f"sentencepiece.bpe.model or tokenizer.json (NLLB, M2M100); found {found}. Copy them in from the "
            f"original model (`--copy_files` when converting)."
        )
    tokens = set(source_vocab) | set(target_vocab)
    if sum(1 for t in tokens if _NLLB_TOKEN.match(t)) >= 2:
        return ModelLayout("nllb", spm, spm, source_vocab, target_vocab, config)
    if sum(1 for t in tokens if _M2M_TOKEN.match(t)) >= 2:
        return ModelLayout("m2m100", spm, spm, source_vocab, target_vocab, config)
    raise BadInputError(
        f"{model_dir}: unrecognised model layout: {spm.name} is present but the vocabulary has no NLLB "
        f"(eng_Latn) or M2M100 (__en__) language tokens; supported are OPUS-MT/Marian, NLLB and M2M100."
    )


def model_languages(model_dir: str | Path) -> frozenset[str]:
    """ISO 639-1 codes a multilingual model names with its language tokens (NLLB "spa_Latn", M2M100 "__es__",
    OPUS-MT ">>spa<<"); empty for a bilingual model, whose pair only its user knows. Read once per model
    version: NLLB's 256k-token vocabulary took ≈1.1 s to read on 2 cores, and every route search asks."""
    model_dir = Path(model_dir).expanduser()
    try:
        stamp = (model_dir / "model.bin").stat().st_mtime_ns
    except OSError:
        stamp = None  # detect_layout says what is missing
    return _model_languages(model_dir.resolve(), stamp)


@functools.lru_cache(maxsize=8)
def _model_languages(model_dir: Path, _stamp: int | None) -> frozenset[str]:
    layout = detect_layout(model_dir)
    codes = (re.sub(r"[^a-z_]", "", token).strip("_").split("_")[0] for token in layout.language_tokens())
    return frozenset(to_iso1(code) for code in codes if code)


class _TokenizerJson:
    """A Hugging Face `tokenizer.json` behind the few sentencepiece calls the translator makes (pieces in,
    pieces out), so a model shipped without its sentencepiece file translates the same way. Special tokens
    are never added here: the translator places the language tokens and </s> itself, as for sentencepiece."""

    def __init__(self, path: Path) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise MissingModelError(f"{path}: reading tokenizer.json needs the `tokenizers` package "
                                    "(pip install tokenizers)") from None
        try:
            self._tokenizer = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception type for a malformed file
            raise BadInputError(f"{path}: not a readable tokenizer.json ({exc})") from None
        self._unk = self._tokenizer.token_to_id("<unk>")

    def encode(self, text: str, out_type: type = int) -> list:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return list(encoding.tokens) if out_type is str else list(encoding.ids)

    def unk_id(self) -> int:
        return -1 if self._unk is None else self._unk

    def piece_to_id(self, piece: str) -> int:
        found = self._tokenizer.token_to_id(piece)
        return self.unk_id() if found is None else found

    def decode(self, pieces: list[str]) -> str:
        ids = [i for i in (self._tokenizer.token_to_id(p) for p in pieces) if i is not None]
        return self._tokenizer.decode(ids, skip_special_tokens=True)


def _load_tokenizer(path: Path):
    """A sentencepiece processor for a .model/.spm file; the `tokenizer.json` adapter otherwise."""
    if path.name == _TOKENIZER_JSON:
        return _TokenizerJson(path)
    import sentencepiece as spm

    try:
        return spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:  # sentencepiece reports a corrupt file as RuntimeError
        raise BadInputError(f"{path}: not a readable sentencepiece model ({exc})") from None


def _pick_device(device: str) -> str:
    import ctranslate2

    if device == "auto":
        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return device


def _pick_compute_type(device: str) -> str:
    """int8 on CPU (≈2× faster, tiny loss), float16 on CUDA; the best the build supports otherwise."""
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types(device)
    for wanted in (("float16", "int8_float16") if device == "cuda" else ("int8", "int8_float32")):
        if wanted in supported:
            return wanted
    return "default"


class CTranslate2Translator:
    """Translates with a CTranslate2 encoder-decoder model directory (OPUS-MT, NLLB, M2M100). Its `name` says
    which model and direction ("ctranslate2 opus-mt-en-de en-de")."""

    def __init__(
        self,
        model_dir: str | Path,
        source: str,
        target: str,
        device: str = "auto",
        *,
        beam_size: int = 2,
        max_tokens: int = 200,
        max_batch_size: int = 16,
        compute_type: str | None = None,
        threads: int = 0,
    ) -> None:
        import ctranslate2

        self.layout = detect_layout(model_dir)
        self.model_dir = Path(model_dir).expanduser()
        self.source = to_iso1(source.split("_")[0])
        self.target = to_iso1(target.split("_")[0])
        self.name = f"ctranslate2 {self.model_dir.name} {self.source}-{self.target}"
        self.beam_size = beam_size
        self.max_tokens = max_tokens
        self.max_batch_size = max_batch_size
        self._available = self.layout.language_tokens()
        self._source_token, self._target_token = self._language_tokens(source, target)
        self._source_spm = _load_tokenizer(self.layout.source_spm)
        self._target_spm = (
            self._source_spm if self.layout.target_spm == self.layout.source_spm
            else _load_tokenizer(self.layout.target_spm)
        )
        self._drop = set(self._available) | {
            self.layout.config.get(k) for k in ("bos_token", "eos_token", "decoder_start_token")
        } | {"<pad>", "<s>", "</s>"}
        self.device = _pick_device(device)
        self.compute_type = compute_type or _pick_compute_type(self.device)
        t0 = time.perf_counter()
        self.model = ctranslate2.Translator(str(self.model_dir), device=self.device,
                                            compute_type=self.compute_type, intra_threads=threads)
        log.info("mt: loaded %s model %s (%s → %s) on %s/%s in %.2f s", self.layout.family, self.model_dir,
                 self.source, self.target, self.device, self.compute_type, time.perf_counter() - t0)

    # ------------------------------------------------------------------ languages
    def _language_tokens(self, source: str, target: str) -> tuple[str | None, str | None]:
        """(token prepended to the source, token forced as the first target token) for this family."""
        family = self.layout.family
        available = self._available
        if family == "marian":
            if not available:
                return None, None  # a bilingual OPUS-MT model: the pair is fixed by the model
            return None, self._find_token(target, available, ">>{}<<", in_vocab=self.layout.source_vocabulary)
        if family == "nllb":
            return (self._find_token(source, available, "{}", in_vocab=self.layout.source_vocabulary),
                    self._find_token(target, available, "{}", in_vocab=self.layout.target_vocabulary))
        return (self._find_token(source, available, "__{}__", in_vocab=self.layout.source_vocabulary),
                self._find_token(target, available, "__{}__", in_vocab=self.layout.target_vocabulary))

    def _find_token(self, lang: str, available: tuple[str, ...], form: str, in_vocab: tuple[str, ...]) -> str:
        """The language token for `lang`: the model's own code if given, else ISO 639-1/-3 forms."""
        vocab = set(in_vocab)
        tokens = [t for t in available if t in vocab]
        head, _, tail = form.partition("{}")
        if form.format(lang) in tokens:  # the user passed the model's own code ("spa_Latn", "pt_BR")
            return form.format(lang)
        iso1 = to_iso1(lang.split("_")[0])
        try:
            codes = [*iso3_candidates(iso1), iso1]
        except ValueError:
            codes = [iso1]
        if self.layout.family == "m2m100":
            codes = [iso1, *codes]
        script = NLLB_SCRIPT.get(iso1)
        for code in codes:
            for candidate in (form.format(f"{code}_{script}") if script else "", form.format(code)):
                if candidate in tokens:
                    return candidate
            scripted = sorted(t for t in tokens if t.startswith(f"{head}{code}_") and t.endswith(tail))
            if scripted:
                return scripted[0]
        shown = ", ".join(sorted(tokens)[:20]) + (" ..." if len(tokens) > 20 else "")
        raise BadInputError(f"{self.model_dir}: this {self.layout.family} model has no token for language "
                            f"{lang!r}; its language tokens are {shown}.")

    # ------------------------------------------------------------------ translation
    def encode(self, sentence: str) -> tuple[list[str], list[str] | None]:
        """(source tokens, target prefix) exactly as handed to CTranslate2 for one sentence."""
        pieces = self._source_spm.encode(sentence, out_type=str)
        config = self.layout.config
        eos = config.get("eos_token", "</s>")
        source = [*pieces] if config.get("add_source_eos") else [*pieces, eos]
        if self._source_token:
            source.insert(0, self._source_token)
        elif self._target_token and self.layout.family == "marian":
            source.insert(0, self._target_token)  # OPUS multi-target models read the target from the source
        prefix = [self._target_token] if self._target_token and self.layout.family != "marian" else None
        return source, prefix

    def decode(self, tokens: list[str]) -> str:
        """Target tokens → text, dropping language and special tokens (including the forced prefix)."""
        pieces = [t for t in tokens if t not in self._drop]
        unk = self._target_spm.unk_id()
        pieces = [p for p in pieces if self._target_spm.piece_to_id(p) != unk or p == "<unk>"]
        return self._target_spm.decode(pieces).strip()

    def count_tokens(self, text: str) -> int:
        return len(self._source_spm.encode(text))

    def translate(self, text: str) -> str:
        """Translate a passage: sentences cut to the token budget, translated in batches, joined back."""
        chunks = chunk_text(text, self.max_tokens, self.count_tokens)
        return join_sentences(self.translate_sentences(chunks), self.target)

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        """One translation per input sentence, in order; empty inputs give empty outputs."""
        out = [""] * len(sentences)
        todo = [(i, " ".join(s.split())) for i, s in enumerate(sentences) if s.strip()]
        if not todo:
            return out
        encoded = [self.encode(s) for _, s in todo]
        sources = [src for src, _ in encoded]
        prefixes = [p for _, p in encoded] if encoded[0][1] is not None else None
        t0 = time.perf_counter()
        results = self.model.translate_batch(
            sources,
            target_prefix=prefixes,
            beam_size=self.beam_size,
            max_batch_size=self.max_batch_size,
            max_input_length=max(self.max_tokens * 2, 256),
            # stop a degenerate model from looping: a translation rarely runs past 2× its source
            max_decoding_length=min(512, 2 * max(len(s) for s in sources) + 10),
        )
        for (i, _), result in zip(todo, results, strict=True):
            out[i] = self.decode(result.hypotheses[0])
        n_in = sum(len(s) for s in sources)
        log.debug("mt: %s %d sentences (%d tokens) in %.3f s", self.layout.family, len(sources), n_in,
                  time.perf_counter() - t0)
        return out
