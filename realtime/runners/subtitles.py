"""SRT and WebVTT subtitles from timed texts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..outputs import atomic_output

Cue = tuple[float, float, str]  # start, end (seconds), text


def _stamp(seconds: float, sep: str) -> str:
    ms = max(int(round(seconds * 1000)), 0)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def srt(cues: Sequence[Cue]) -> str:
    blocks = [f"{i}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{text.strip()}\n"
              for i, (a, b, text) in enumerate(_clean(cues), 1)]
    return "\n".join(blocks)


def vtt(cues: Sequence[Cue]) -> str:
    blocks = [f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{text.strip()}\n" for a, b, text in _clean(cues)]
    return "WEBVTT\n\n" + "\n".join(blocks)


def _clean(cues: Sequence[Cue]) -> list[Cue]:
    """Drop empty cues; make each end after its start and before the next cue starts."""
    kept = sorted(((a, b, t) for a, b, t in cues if t.strip()), key=lambda c: c[0])
    out: list[Cue] = []
    for i, (a, b, t) in enumerate(kept):
        nxt = kept[i + 1][0] if i + 1 < len(kept) else None
        b = max(b, a + 0.3)
        if nxt is not None:
            b = min(b, nxt)
        out.append((a, b, t))
    return out


def subtitle_paths(base: Path, language: str) -> list[Path]:
    """Where the subtitles of one language go: BASE.LANG.srt and BASE.LANG.vtt."""
    return [base.with_name(f"{base.name}.{language}.srt"), base.with_name(f"{base.name}.{language}.vtt")]


def write_subtitles(base: Path, language: str, cues: Sequence[Cue]) -> list[Path]:
    """BASE.LANG.srt and BASE.LANG.vtt, each written whole (see outputs.py); returns their paths."""
    paths = subtitle_paths(base, language)
    for path, text in zip(paths, (srt(cues), vtt(cues)), strict=True):
        with atomic_output(path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return paths
