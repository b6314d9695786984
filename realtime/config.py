"""`DubConfig`: everything one dubbing session needs to know, built once at the edge (the CLI).

Nothing below the CLI sees argparse: sessions, the model pool and the transports take this frozen object.
Values are already checked when it exists; `replace()` makes a variant (e.g. another target language).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from livedub.engines.audio import OUTPUT_RATE
from livedub.engines.settings import Settings

LIP_ENGINES = ("exemplar", "viseme", "wav2lip")
WAV2LIP_BACKENDS = ("auto", "tensorrt", "ort-trt", "ort-cuda", "ort-cpu")


@dataclass(frozen=True)
class DubConfig:
    """Languages, engines, speeds and paths of one dub (a file or a call)."""

    target: str
    source: str | None = None  # None: detect on the first utterance, then hold it
    mt: str = "auto"  # auto: a text translator, whisper's translate task for → en when none; whisper: always that
    min_speed: float = 0.95  # natural pacing: a clip is never slowed more than this (dubtrack.speed_fit)
    max_speed: float = 1.3  # the fastest a clip is spoken to fit its slot
    catch_up_speed: float = 1.7  # live: the cap once the lag passes `catch_up_after` (= max_speed: never faster)
    catch_up_after: float = 2.5  # live: seconds of translated speech still to play that count as far behind
    keep_original: float = 0.0  # volume of the speaker's own voice under the dub
    voice_engine: str | None = None  # None: the best voice for the language (live: the best that keeps up)
    voice_match: str = "register"  # off | register (voice chosen by the speaker's pitch) | timbre (moved to them)
    # faces and lips
    engine: str | None = None  # None: wav2lip with a checkpoint, exemplar for video or a bank, else viseme
    bank: Path | None = None
    int8: bool = False
    engine_backend: str = "auto"
    pads: tuple[int, int, int, int] = (0, 10, 0, 0)
    fps: float = 25.0  # of a photo
    smooth: bool = True
    box: tuple[int, int, int, int] | None = None  # fixed face box x1, y1, x2, y2
    resize_factor: int = 1
    captions: bool = False  # live: the translated sentence drawn on the outgoing video
    output_rate: int | None = OUTPUT_RATE  # None: the voice's own rate (a speech-only WAV)
    settings: Settings = field(default_factory=Settings)

    @property
    def checkpoint(self) -> Path | None:
        return self.settings.wav2lip_checkpoint

    def lip_engine_name(self, *, video: bool) -> str:
        """The engine this config asks for, given whether the face comes from a moving video."""
        if self.engine:
            return self.engine
        if self.checkpoint:
            return "wav2lip"
        return "exemplar" if (video or self.bank) else "viseme"

    def replace(self, **changes: object) -> DubConfig:
        return dataclasses.replace(self, **changes)
