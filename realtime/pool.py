"""`ModelPool`: the engines a process loads once and shares between its dubbing sessions.

Recognizers, translators, voices and Wav2Lip models are loaded on first use and kept; per-session state (a
streaming recognizer's buffer, a face tracker, an exemplar mouth bank) is built fresh for each session from
them. This is also the one place that turns a Wav2Lip checkpoint into an ONNX model and a TensorRT plan, so
`engines/` never imports `export/`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from livedub.engines import registry
from livedub.engines.asr import Recognizer
from livedub.engines.errors import LivedubError
from livedub.engines.face import FaceTracker
from livedub.engines.lipsync import LipEngine
from livedub.engines.mt import Translator
from livedub.engines.settings import Settings
from livedub.engines.tts import Synthesizer

from .config import DubConfig
from .workers import ModelWorker

log = logging.getLogger("livedub.pool")

T = TypeVar("T")


MODEL_WORKERS = ("asr", "mt", "tts")
MODEL_NICE = 10  # niceness of model threads (and the processes they start) against media threads

# A live voice must speak much faster than real time: recognition and video share the same cores. Counted in
# CPU: seconds of synthesis × the threads it runs on, per second of speech, at most this share of the machine's
# cores (2 cores: 0.3). Wall time on an idle machine misleads: Kokoro timed at RTF 0.19 on 2 threads (0.38
# core-seconds per second) fell 14 s behind in a 30 s live monologue beside whisper (RTF ~0.7 under that load).
LIVE_CORE_SHARE = 0.15
LIVE_MAX_RTF = LIVE_CORE_SHARE * (os.cpu_count() or 2)
WARM_UP_TEXT = {  # short: timing a voice must not hold up the start of a call
    "en": "Hello everyone, welcome.",
    "es": "Hola a todos, bienvenidos.",
    "pt": "Olá a todos, bem-vindos.",
    "fr": "Bonjour à tous, bienvenue.",
    "de": "Hallo zusammen, willkommen.",
    "it": "Ciao a tutti, benvenuti.",
}


def build_plan(source: Path, max_batch: int, cache: Path | None = None) -> Path:
    """A TensorRT plan for a checkpoint or ONNX file (fp16 kernels), built once and cached."""
    from livedub.export.tensorrt_build import cached_plan

    return cached_plan(source, fp16=True, max_batch=max_batch, cache=cache)


def _real_time_factor(voice: Synthesizer, text: str) -> float:
    """Seconds of work per second of speech: the first run loads the model, the second is the one timed."""
    voice.synthesize(text)
    started = time.perf_counter()
    speech = voice.synthesize(text)
    return (time.perf_counter() - started) / max(speech.duration, 1e-3)


class ModelPool:
    """Engines shared by every session of a process; thread-safe loading, one worker thread per model."""

    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()
        self._lock = threading.RLock()
        self._models: dict[tuple, object] = {}
        self._loading: dict[tuple, threading.Lock] = {}  # one lock per model being made
        self._workers: dict[str, ModelWorker] = {}
        self._rtf: dict[str, tuple[float, str]] = {}  # a voice network's real-time factor here (and the language
        # it was timed on), by its `speed_key`
        self._live_calls = 0  # live sessions speaking through this pool's one TTS worker
        for name in MODEL_WORKERS:  # threads started here, at the edge, not on a session's event loop
            self.worker(name)

    def _get(self, key: tuple, make: Callable[[], T]) -> T:
        """The model under `key`, made once. A load holds only its own key's lock, so asking for a loaded model
        (or a worker) never waits behind another model's load."""
        with self._lock:
            if key in self._models:
                return self._models[key]  # type: ignore[return-value]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._models:
                    return self._models[key]  # type: ignore[return-value]
            model = make()
            with self._lock:
                self._models[key] = model
                self._loading.pop(key, None)
            return model

    # -- speech -------------------------------------------------------------------------------------

    def recognizer(self, *, streaming: bool = False, fast: bool = False, live: bool = False) -> Recognizer:
        """`live`: recognition shares the machine with video, so it leaves one core to the frames."""
        def make() -> Recognizer:
            rec = registry.recognizer(self.settings, fast=fast, streaming=streaming)
            if live and hasattr(rec, "cpu_threads"):
                rec.cpu_threads = max(1, (os.cpu_count() or 2) - 1)
            return rec

        return self._get(("asr", streaming, fast, live), make)

    def translator(self, source: str, target: str) -> Translator | None:
        """A text translator for the pair, or None when whisper's translate task must do it (→ en)."""
        return self._get(("mt", source, target), lambda: registry.translator(source, target, self.settings))

    def speech_route(self, source: str, target: str) -> registry.SpeechRoute:
        """How speech in `source` reaches `target`: maybe whisper's translate task first, then text hops."""
        return self._get(("mt-speech", source, target), lambda: registry.speech_route(source, target, self.settings))

    def preload_routes(self, source: str, targets: Iterable[str]) -> list[str]:
        """Build the speech routes from `source` to each of `targets` and load their in-process weights, so a
        caller switching language mid-call loads nothing (native loads hold the GIL and stall the frames).
        Run it on the MT worker. Returns the route names; targets nothing reaches are left out."""
        names = []
        for target in targets:
            if target == source:
                continue
            try:
                route = self.speech_route(source, target)
                route.preload()
            except LivedubError as exc:
                log.debug("no route preloaded for %s → %s: %s", source, target, exc)
                continue
            names.append(f"{source} → {target}: {route.name}")
        return names

    def synthesizer(self, language: str, *, pitch_hz: float | None = None, engine: str | None = None) -> Synthesizer:
        """The voice for `language` (of `engine` when given), chosen by the speaker's register when known."""
        register = None
        if pitch_hz is not None:
            from livedub.engines.tts.voices import register_of

            register = register_of(pitch_hz)
        return self._get(("tts", language, register, engine),
                         lambda: registry.synthesizer(language, self.settings, pitch_hz=pitch_hz, engine=engine))

    def live_synthesizer(self, language: str, *, pitch_hz: float | None = None, engine: str | None = None,
                         max_rtf: float = LIVE_MAX_RTF) -> tuple[Synthesizer, str]:
        """The best voice for `language` that is fast enough to speak live beside recognition and video on this
        machine (measured on a warm-up sentence, in core-seconds per second of speech against `max_rtf`) for
        every live call sharing the one TTS worker, and one line saying what was chosen and why. An `engine`
        the user asked for is taken as it is."""
        if engine is not None:
            return self._loaded(self.synthesizer(language, pitch_hz=pitch_hz, engine=engine), language), ""
        calls = max(self._live_calls, 1)
        voice, why = self._get(("tts-live", language, calls),
                               lambda: self._pick_live_voice(language, None, max_rtf, calls))
        if pitch_hz is None:
            return voice, why
        from livedub.engines.tts.voices import register_of

        def same_backend_for_register() -> Synthesizer:  # measured once per language; the register picks within
            for other in registry.voices_for(language, self.settings, pitch_hz=pitch_hz):
                if type(other) is type(voice):
                    return other
            return voice

        voice = self._get(("tts-live", language, register_of(pitch_hz), type(voice).__name__),
                          same_backend_for_register)
        return self._loaded(voice, language), why

    @contextlib.contextmanager
    def live_call(self) -> Iterator[None]:
        """A live session speaking through this pool while inside: the live voice is chosen for all of them
        (two calls on one TTS worker need a voice twice as fast), and chosen again when one ends."""
        with self._lock:
            self._live_calls += 1
        try:
            yield
        finally:
            with self._lock:
                self._live_calls -= 1

    def _loaded(self, voice: Synthesizer, language: str) -> Synthesizer:
        """`voice` once it has spoken (which loads its model): a load mid-call holds the GIL (Kokoro's ONNX
        session ~0.3 s) and stalls every call's frames, so it happens where the voice is chosen, at warm-up."""
        self._get(("tts-loaded", voice.name), lambda: voice.synthesize(WARM_UP_TEXT.get(language, WARM_UP_TEXT["en"])))
        return voice

    def _pick_live_voice(self, language: str, pitch_hz: float | None, max_rtf: float,
                         calls: int = 1) -> tuple[Synthesizer, str]:
        voices = registry.voices_for(language, self.settings, pitch_hz=pitch_hz)
        if not voices:
            return self.synthesizer(language, pitch_hz=pitch_hz), ""  # raises the one clear message
        text = WARM_UP_TEXT.get(language, WARM_UP_TEXT["en"])
        shared = f" × {calls} calls" if calls > 1 else ""
        slow: list[str] = []
        for voice in voices[:-1]:
            speed_key = getattr(voice, "speed_key", voice.name)
            try:
                if speed_key not in self._rtf:  # timed once (for any language), never again mid-call
                    self._rtf[speed_key] = _real_time_factor(voice, text), language
                rtf, timed_on = self._rtf[speed_key]
            except Exception as exc:  # a voice that fails here is not used live
                slow.append(f"{voice.name} failed ({exc})")
                continue
            cost = rtf * getattr(voice, "threads", 1)  # core-seconds per second of speech
            said = f"RTF {rtf:.2f}, {cost:.2f} core-s per s{shared}"
            if cost * calls <= max_rtf:
                why = f"; {', '.join(slow)}" if slow else ""
                return voice, f"live voice for {language}: {voice.name} ({said}{why})"
            slow.append(f"{voice.name} too slow to keep up live here ({said} > {max_rtf:.2f} for {timed_on})")
        voice = voices[-1]
        voice.synthesize(text)
        return voice, f"live voice for {language}: {voice.name} ({'; '.join(slow)})" if slow else ""

    # -- faces and lips -----------------------------------------------------------------------------

    def wav2lip_onnx(self, checkpoint: Path) -> Path:
        """The fp32 ONNX export of a checkpoint (cached on disk by its sha256; an .onnx passes through)."""
        if checkpoint.suffix.lower() == ".onnx":
            return checkpoint
        from livedub.export.onnx_export import cached_onnx

        return self._get(("wav2lip-onnx", str(checkpoint)), lambda: cached_onnx(checkpoint, self.settings.cache))

    def lip_engine(self, config: DubConfig, *, video: bool) -> LipEngine:
        """A new engine for one session (engines keep per-speaker state such as the mouth bank). A network's
        model is opened once per process: every session's engine runs it through one shared `LipBatcher`."""
        name = config.lip_engine_name(video=video)
        if name == "wav2lip":
            if not config.checkpoint:
                raise LivedubError("the wav2lip engine needs a checkpoint (wav2lip_gan.pth): --checkpoint or "
                                   "LIVEDUB_WAV2LIP")
            from livedub.engines.lipsync.wav2lip import Wav2LipEngine, open_runner
            from livedub.export.onnx_export import quantize_int8

            from .face.batcher import LipBatcher

            onnx = self.wav2lip_onnx(config.checkpoint)

            def shared_model() -> LipBatcher:
                return LipBatcher(open_runner(onnx, checkpoint=config.checkpoint, int8=config.int8,
                                              backend=config.engine_backend, quantizer=quantize_int8,
                                              plan_builder=lambda s, b: build_plan(s, b, self.settings.cache),
                                              cache=self.settings.cache))

            batcher = self._get(("wav2lip-runner", str(onnx), config.engine_backend, config.int8), shared_model)
            return Wav2LipEngine(onnx, runner=batcher.client(), pads=config.pads, batch_size=batcher.max_batch)
        if name == "exemplar":
            from livedub.engines.lipsync.exemplar import ExemplarEngine
            from livedub.engines.lipsync.exemplar_bank import MouthBank

            bank = MouthBank.load(config.bank) if config.bank and config.bank.exists() else MouthBank()
            return ExemplarEngine(bank, learn=True)
        if name == "viseme":
            from livedub.engines.lipsync.viseme import VisemeEngine

            return VisemeEngine()
        raise LivedubError(f"unknown lip engine {name!r}")

    def face_tracker(self, config: DubConfig, fps: float) -> FaceTracker:
        """A new tracker for one session (it smooths over the session's own frames)."""
        from livedub.engines.face.mediapipe_tracker import MediapipeFaceTracker

        return MediapipeFaceTracker(smoothing=0.5 if config.smooth else 0.0, fps=fps, fixed_box=config.box)

    # -- workers ------------------------------------------------------------------------------------

    def worker(self, name: str, *, media: bool = False) -> ModelWorker:
        """The thread that runs one model ("asr", "mt", "tts", ...) for every session of this pool. Model
        threads run at a lower CPU priority than `media` ones (a session's video), so frames never wait
        behind a whisper pass."""
        with self._lock:
            worker = self._workers.get(name)
            if worker is None or worker.closed:
                worker = self._workers[name] = ModelWorker(name, nice=0 if media else MODEL_NICE)
            return worker

    def busy_seconds(self) -> dict[str, float]:
        """Seconds each model worker has spent working (CPU share per stage)."""
        with self._lock:
            return {name: w.busy_seconds for name, w in self._workers.items()}

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers, then the processes models keep running (Apertium's pipeline)."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
            models = list(self._models.values())
        for w in workers:
            w.close()
        for model in models:
            close = getattr(model, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
