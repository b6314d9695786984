"""`--captions`: the translated sentence drawn at the bottom of the outgoing video."""

from __future__ import annotations

import cv2
import numpy as np

from livedub.engines.text_join import join_words, unspaced


def draw_caption(frame: np.ndarray, text: str, *, max_lines: int = 2) -> np.ndarray:
    """A copy of `frame` with `text` in white on a dark band at the bottom, wrapped to the frame's width."""
    h, w = frame.shape[:2]
    scale = max(0.4, min(1.2, w / 900))
    thick = max(1, int(round(scale * 2)))
    lines: list[str] = []
    # unspaced scripts (zh, ja, th, ...) wrap between any two letters, spaced ones between words
    pieces = list(text.replace(" ", "")) if any(unspaced(c) for c in text) else text.split()
    for word in pieces:
        trial = join_words([lines[-1], word]) if lines else word
        if lines and cv2.getTextSize(trial, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][0] <= w - 20:
            lines[-1] = trial
        else:
            lines.append(word)
    lines = lines[-max_lines:]
    if not lines:
        return frame
    line_h = int(cv2.getTextSize("Ag", cv2.FONT_HERSHEY_SIMPLEX, scale, thick)[0][1] * 1.8)
    out = frame.copy()
    top = h - line_h * len(lines) - 10
    band = out[max(top, 0) :]
    band[:] = (band * 0.45).astype(np.uint8)
    for i, line in enumerate(lines):
        y = top + line_h * (i + 1) - line_h // 4
        cv2.putText(out, line, (10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out
