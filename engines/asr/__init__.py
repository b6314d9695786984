"""Speech recognition: the `Recognizer` interface and its backends.

`WhisperRecognizer` (faster-whisper) transcribes a buffer offline; `StreamingRecognizer` wraps any
recognizer to commit words while audio is still arriving (LocalAgreement-2).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..types import Transcript


@runtime_checkable
class Recognizer(Protocol):
    """Turns 16 kHz mono float32 PCM into timed words."""

    def transcribe(
        self,
        pcm: np.ndarray,
        *,
        language: str | None = None,
        task: str = "transcribe",
        initial_prompt: str | None = None,
    ) -> Transcript:
        """Recognise `pcm`. `language=None` auto-detects; `task="translate"` outputs English."""
        ...
