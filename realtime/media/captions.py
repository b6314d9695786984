"""`--captions`: the translated sentence drawn at the bottom of the outgoing video.

Letters come from real fonts through Pillow (FreeType; raqm joins and orders right-to-left scripts when
the system has FriBiDi): DejaVu Sans for Latin, Greek, Cyrillic, Arabic and Hebrew, WenQuanYi Micro Hei for
Chinese, Japanese and Korean (it has Latin and Cyrillic too, so mixed text stays whole). Live mode draws a
caption on every frame, so the text is laid out and rasterised once per (caption, frame width) and each
frame costs one blend of a cached band. Without the fonts, one warning names the Debian packages and
captions fall back to OpenCV's built-in font, which only has ASCII.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from livedub.engines.text_join import join_words, unspaced

log = logging.getLogger("livedub.captions")

FONT_DIR = Path("/usr/share/fonts/truetype")
TEXT_FONT = FONT_DIR / "dejavu" / "DejaVuSans.ttf"  # Debian fonts-dejavu-core
CJK_FONT = FONT_DIR / "wqy" / "wqy-microhei.ttc"  # Debian fonts-wqy-microhei
FONT_PACKAGES = "fonts-dejavu-core fonts-wqy-microhei"
BAND_DIM = 0.45  # the video under the caption band keeps this much of its brightness
MARGIN_PX = 10

# Hangul, kana and Han blocks: the letters DejaVu Sans lacks and the CJK font has
_CJK = ((0x1100, 0x11FF), (0x2E80, 0x9FFF), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF),
        (0xFF00, 0xFFEF), (0x20000, 0x3FFFF))


@dataclass(frozen=True)
class CaptionBand:
    """A rendered caption for one frame shape, as two uint8 images the size of the band (OpenCV blends them
    in about a millisecond): `keep` is how much video stays (/255), `white` is the light the letters add."""

    keep: np.ndarray  # (rows, width[, channels]) uint8: 255 × BAND_DIM where there is no ink, 0 under full ink
    white: np.ndarray  # (rows, width[, channels]) uint8: 255 × ink coverage


def draw_caption(frame: np.ndarray, text: str, *, max_lines: int = 2) -> np.ndarray:
    """A copy of `frame` with `text` in white on a dark band at the bottom, wrapped to the frame's width
    (the last `max_lines` lines, centred); the frame itself when there is nothing to draw."""
    h, w = frame.shape[:2]
    band = caption_band(" ".join(text.split()), w, frame.shape[2] if frame.ndim == 3 else 0, max_lines)
    if band is None:
        return frame
    rows = min(band.keep.shape[0], h)
    out = frame.copy()
    under = out[h - rows :]
    under[:] = cv2.add(cv2.multiply(under, band.keep[-rows:], scale=1 / 255), band.white[-rows:])
    return out


@lru_cache(maxsize=64)
def caption_band(text: str, width: int, channels: int = 3, max_lines: int = 2) -> CaptionBand | None:
    """The caption band for `text` on frames `width` wide with `channels` (0: grey) — cached, since live mode
    asks once per frame — or None when there is nothing to draw."""
    if not text or width < 2 * MARGIN_PX + 8:
        return None
    scale = max(0.4, min(1.2, width / 900))
    font = _font(_needs_cjk(text), int(round(30 * scale)))
    if font is None:
        return _band(_hershey_ink(text, width, max_lines, scale), channels)
    lines = _wrap(text, max_lines, width - 2 * MARGIN_PX, font.getlength)
    return _band(_pillow_ink(lines, width, font), channels)


def _needs_cjk(text: str) -> bool:
    return any(lo <= ord(c) <= hi for c in text for lo, hi in _CJK)


def _wrap(text: str, max_lines: int, room: float, length: Callable[[str], float]) -> list[str]:
    """Greedy wrap into lines that fit `room` by `length(line)`; the last `max_lines` (the newest words)."""
    lines: list[str] = []
    for word in _pieces(text):
        trial = join_words([lines[-1], word]) if lines else word
        if lines and length(trial) <= room:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines[-max_lines:]


def _pieces(text: str) -> list[str]:
    """Where a line may break: between words, and also between any two letters of an unspaced script
    (zh, ja, th, ...), whose runs of spaced letters ("iPhone" in "我用 iPhone") stay whole."""
    pieces: list[str] = []
    for word in text.split():
        run = ""
        for char in word:
            if unspaced(char):
                pieces += [run, char] if run else [char]
                run = ""
            else:
                run += char
        if run:
            pieces.append(run)
    return pieces


def _band(ink: np.ndarray, channels: int) -> CaptionBand:
    cover = ink.astype(np.float32) / 255.0
    keep = np.round(255.0 * BAND_DIM * (1.0 - cover)).astype(np.uint8)
    white = ink.copy()
    if channels:
        keep, white = np.repeat(keep[:, :, None], channels, axis=2), np.repeat(white[:, :, None], channels, axis=2)
    return CaptionBand(keep, white)


def _pillow_ink(lines: list[str], width: int, font: ImageFont.FreeTypeFont) -> np.ndarray:
    ascent, descent = font.getmetrics()
    line_h = int((ascent + descent) * 1.15)
    img = Image.new("L", (width, line_h * len(lines) + MARGIN_PX))
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        # anchor "ms": x is the line's middle, y its baseline; raqm lays out each run in its own direction
        draw.text((width / 2, MARGIN_PX // 2 + line_h * i + ascent), line, font=font, fill=255, anchor="ms")
    return np.asarray(img)


@lru_cache(maxsize=8)
def _font(cjk: bool, size: int) -> ImageFont.FreeTypeFont | None:
    """Pillow's FreeType font for the script at this pixel size, or None (warned once) when it is missing."""
    path = CJK_FONT if cjk else TEXT_FONT
    if not path.is_file():
        _warn_once(f"caption font {path} is missing (install Debian {FONT_PACKAGES}); drawing captions with "
                   "OpenCV's built-in font, which shows only ASCII letters")
        return None
    if not features.check("raqm"):
        _warn_once("Pillow has no raqm layout here (needs the system's FriBiDi: Debian libfribidi0): Arabic and "
                   "Hebrew captions are drawn letter by letter, unjoined and left to right")
    return ImageFont.truetype(str(path), size)


@cache
def _warn_once(message: str) -> None:
    log.warning(message)


def _hershey_ink(text: str, width: int, max_lines: int, scale: float) -> np.ndarray:
    """The caption in OpenCV's Hershey font (ASCII only): what draws when no font file is found."""
    thick = max(1, int(round(scale * 2)))
    face = cv2.FONT_HERSHEY_SIMPLEX
    lines = _wrap(text, max_lines, width - 2 * MARGIN_PX, lambda s: cv2.getTextSize(s, face, scale, thick)[0][0])
    line_h = int(cv2.getTextSize("Ag", face, scale, thick)[0][1] * 1.8)
    ink = np.zeros((line_h * len(lines) + MARGIN_PX, width), np.uint8)
    for i, line in enumerate(lines):
        tw = cv2.getTextSize(line, face, scale, thick)[0][0]
        cv2.putText(ink, line, ((width - tw) // 2, line_h * (i + 1) - line_h // 4), face, scale, 255, thick,
                    cv2.LINE_AA)
    return ink
