"""One whisper pass whose cost is known before it starts: the live loop's recognition step.

faster-whisper's `transcribe` is built for files: it retries a doubtful decode at up to five higher
temperatures, lets greedy decoding run to 448 tokens, and re-encodes another 30 s window from wherever the
last word ended. On a live buffer each of these multiplies the cost of a pass (a 1.3 s Mandarin buffer once
took 70 s), and a stalled pass stalls the call. Here a pass is exactly one encoder window sized to the
buffer, one decode at temperature 0 (greedy; a small beam for scripts without spaces) with a token cap
proportional to the audio, and one alignment for word times. A decode that hits the cap or repeats itself is over budget: it yields no words. The one
exception is a prompted decode that recited its prompt (whisper copies prompts, more so on short
windows): it is retried once without the prompt, on the same encoder output, with the tokens it left.
A pass never decodes more than its cap in all.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from ..text_join import unspaced
from ..types import Transcript

_FRAMES_PER_S = 100  # whisper's mel frames per second
_MAX_LENGTH = 448  # whisper's decoder context, prompt included
_PREPEND = "\"'“¿([{-"
_APPEND = "\"'.。,，!！?？:：”)]}、"
UNSPACED_LANGUAGES = frozenset({"zh", "yue", "ja", "th", "lo", "km", "my", "bo"})  # written without spaces


@dataclass(frozen=True)
class PassBudget:
    """How much one pass may cost. The encoder window is the buffer plus `pad_s` of silence, rounded up
    to whole seconds, at least `min_window_s` and at most 30 s (whisper-base encodes 4 s in 0.05 s and
    30 s in 1.2 s on 2 cores; with more padding whisper fills it with repeats of what it heard); the
    decode stops after `tokens_base + tokens_per_s` × seconds of audio (speech runs 3–6 tokens a second in
    the languages measured); a prompt keeps at most `prompt_tokens` of its last tokens. Prompts are off by
    default: on windows this short whisper recites them (on six benchmark clips, a 32-token prompt made
    49 of 205 passes run over budget and lost a whole sentence; without, 3 of 200 and none)."""

    pad_s: float = 0.3
    min_window_s: int = 1
    tokens_base: int = 8
    tokens_per_s: float = 6.0
    prompt_tokens: int = 0
    max_compression: float = 2.4  # zlib ratio above which a decode is a loop, not speech
    copy_units: int = 5  # this many words (characters in CJK) of the prompt again: copied, not heard
    beam_size: int = 1  # greedy: a pass must be cheap
    # languages written without spaces are agreed on character by character, and a greedy decode of a
    # short window flips single characters that two passes then agree on ("まれ石や" for "マレーシア");
    # a small beam costs about 0.1 s more a pass there (whisper-base, 2 cores)
    beam_size_unspaced: int = 5

    def beam(self, language: str) -> int:
        return self.beam_size_unspaced if language in UNSPACED_LANGUAGES else self.beam_size

    def window_s(self, seconds: float) -> int:
        return int(min(30, max(self.min_window_s, math.ceil(seconds + self.pad_s))))

    def token_cap(self, seconds: float) -> int:
        return int(self.tokens_base + self.tokens_per_s * seconds)


@dataclass(frozen=True)
class PassStats:
    """What the latest pass cost and why it gave what it gave."""

    audio_s: float = 0.0
    window_s: int = 0
    tokens: int = 0  # decoded in all (both decodes when retried)
    token_cap: int = 0
    elapsed_s: float = 0.0
    over_budget: str = ""  # "" | "token cap" | "repetition" | "prompt copy"
    no_speech: float = 0.0
    detected: str = ""  # the language this window sounds like, and how sure whisper is
    detected_probability: float = 0.0
    retried: bool = False  # the prompted decode recited its prompt; one without it used the tokens left


@dataclass(frozen=True)
class PassTranscript(Transcript):
    """A bounded pass's transcript, with what the pass cost (`stats.over_budget` set: no words, by
    design, rather than no speech)."""

    stats: PassStats = PassStats()


@dataclass(frozen=True)
class RawWord:
    text: str  # as whisper spells it, with its leading space in languages that use spaces
    start: float
    end: float
    probability: float


def bounded_pass(
    model,
    pcm: np.ndarray,
    *,
    language: str | None,
    task: str,
    prompt: str | None,
    budget: PassBudget,
) -> tuple[list[RawWord], str, PassStats]:
    """Recognise `pcm` (16 kHz, at most 30 s) with `model` (a faster_whisper.WhisperModel) in one window.

    Returns words, the language used (detected from this window when `language` is None) and the pass's
    cost, which also names the language detected whether or not one was given."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    started = time.perf_counter()
    seconds = min(len(pcm) / SAMPLE_RATE, 30.0)
    window = budget.window_s(seconds)
    features = model.feature_extractor(pcm[: int(30 * SAMPLE_RATE)])
    frames = min(features.shape[-1], int(seconds * _FRAMES_PER_S))
    encoded = model.encode(pad_or_trim(features[:, :frames], window * _FRAMES_PER_S))
    detected, probability = "en", 1.0
    if model.model.is_multilingual:  # one decoder step: always, so a caller can see a language change
        token, probability = model.model.detect_language(encoded)[0][0]
        detected = token[2:-2]
    language = language or detected
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task=task, language=language)
    cap = budget.token_cap(seconds)
    head: list[int] = []
    if prompt and prompt.strip() and budget.prompt_tokens > 0:
        head = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())[-budget.prompt_tokens :]]
    beam = budget.beam(language)
    tokens, over, silent, no_speech = _decode(model, tokenizer, encoded, head, cap, budget, beam)
    if head and not over and _copies(tokenizer.decode(tokens), prompt or "", budget.copy_units):
        over = "prompt copy"
    decoded = len(tokens)
    retried = bool(over and head and over != "token cap" and cap - decoded >= 4)
    if retried:  # whisper copied the prompt instead of listening: the rest of the budget, without it
        tokens, over, silent, no_speech = _decode(model, tokenizer, encoded, [], cap - decoded, budget, beam)
        decoded += len(tokens)
    words: list[RawWord] = []
    if tokens and not over and not silent:
        words = _align(model, tokenizer, tokens, encoded, frames, seconds)
    stats = PassStats(seconds, window, decoded, cap, time.perf_counter() - started, over, no_speech,
                      detected, float(probability), retried)
    return words, language, stats


def _decode(model, tokenizer, encoded, head: list[int], cap: int, budget: PassBudget, beam: int):
    """One decode (greedy, or a beam of `beam`) of at most `cap` tokens → (text tokens, why over budget,
    silent, no-speech p)."""
    from faster_whisper.transcribe import get_suppressed_tokens

    sequence = [*head, *tokenizer.sot_sequence, tokenizer.no_timestamps]
    counted = len(sequence) - (1 if head else 0)  # CTranslate2 does not count the <|startofprev|> token
    cap = min(cap, _MAX_LENGTH - counted)
    result = model.model.generate(
        encoded,
        [sequence],
        beam_size=beam,
        max_length=counted + cap,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=list(get_suppressed_tokens(tokenizer, [-1])),
    )[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot][:cap]
    text = tokenizer.decode(tokens).strip().encode()
    over = ""
    if len(tokens) >= cap:
        over = "token cap"  # no end of text within the budget: a loop, or audio the model cannot read
    elif text and len(text) / len(zlib.compress(text)) > budget.max_compression:
        over = "repetition"
    # whisper's own no-speech rule; CTranslate2 scores a sequence by its mean token log-probability
    silent = result.no_speech_prob > 0.6 and result.scores[0] < -1.0
    return tokens, over, silent, float(result.no_speech_prob)


def _units(text: str) -> list[str]:
    """Lowercase words, or characters in scripts without spaces: what a copy is measured in."""
    out: list[str] = []
    for piece in text.lower().split():
        if any(unspaced(c) for c in piece):
            out += [c for c in piece if c.isalnum()]
        elif word := "".join(c for c in piece if c.isalnum() or c == "'"):
            out.append(word)
    return out


def _copies(text: str, prompt: str, run: int) -> bool:
    """Whether `text` repeats `run` consecutive units of `prompt` (whisper reciting its prompt)."""
    said, given = _units(text), _units(prompt)
    runs = {tuple(given[i : i + run]) for i in range(len(given) - run + 1)}
    return any(tuple(said[i : i + run]) in runs for i in range(len(said) - run + 1))


def _align(model, tokenizer, tokens: list[int], encoded, frames: int, seconds: float) -> list[RawWord]:
    """Word times from the decoder's cross-attention (faster-whisper's alignment, one segment)."""
    segment = {"seek": 0, "start": 0.0, "end": seconds, "tokens": tokens}
    model.add_word_timestamps([[segment]], tokenizer, encoded, frames, _PREPEND, _APPEND, 0.0)
    return [
        RawWord(w["word"], float(w["start"]), float(w["end"]), float(w["probability"]))
        for w in segment.get("words", ())
    ]
