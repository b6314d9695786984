"""The exemplar lip engine: the speaker's own mouth pictures, re-timed to the translated speech.

Per frame: a mouth shape from the audio (`mouth_shape`, phoneme timings when the timeline has them), the
bank mouth that fits it best (shape error + head-pose mismatch + a cost for jumping far from the mouth now
shown; the current one stays unless another is clearly better; a switch cross-fades over `fade_frames`),
that mouth's crop aligned to the current face by a similarity on skull-fixed landmarks, recoloured to the
frame's light in a ring around the mouth, and blended in with a feathered mask over the mouth and jaw. Real
teeth and lips, no weights. It learns the bank from the frames it is given; until the bank covers open and
closed mouths (a photo, the first seconds of a call) the viseme engine draws the mouth instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..face import Face
from ..face import landmarks as lmk
from . import AudioTimeline, LipEngine
from .composite import LOWER_FACE, polygon_mask, roi_around
from .exemplar_bank import STABLE, Exemplar, MouthBank, apply, is_closed, similarity
from .mouth_shape import MouthShape, MouthShapeEstimator

_LIPS = list(lmk.OUTER_LIPS + lmk.INNER_LIPS)
_LOWER = list(LOWER_FACE)
SHAPE_WEIGHTS = np.float32([1.0, 0.25, 0.35])  # opening matters most; spread and rounding refine it


class ExemplarEngine:
    """`LipEngine` that shows the speaker's own mouths. `bank` may come from `MouthBank.load`; with `learn`
    it keeps filling from the frames rendered (in a dub, the source video's own talking mouth).

    `pose_weight` prices a yaw mismatch (per 10°; past `max_yaw_gap` from every bank mouth the viseme
    engine draws instead), `jump_weight` the lip-landmark distance from the mouth
    shown now (per eye distance), `stay_margin` is how much better another mouth must be to replace the
    current one, `feather` the blend ramp in eye distances.
    """

    name = "exemplar"

    def __init__(
        self, bank: MouthBank | None = None, *, fallback: LipEngine | None = None, learn: bool = True,
        estimator: MouthShapeEstimator | None = None, pose_weight: float = 0.3, jump_weight: float = 0.3,
        stay_margin: float = 0.015, fade_frames: int = 2, feather: float = 0.16, chin_room: float = 0.14,
        max_yaw_gap: float = 20.0,
    ):
        self.bank = bank if bank is not None else MouthBank()
        if fallback is None:
            from .viseme import VisemeEngine

            fallback = VisemeEngine(estimator=estimator)
        self.fallback = fallback
        self.learn_enabled = bool(learn)
        self.estimator = estimator or MouthShapeEstimator()
        self.pose_weight = float(pose_weight)
        self.jump_weight = float(jump_weight)
        self.stay_margin = float(stay_margin)
        self.fade_frames = max(1, int(fade_frames))
        self.feather = float(feather)
        self.chin_room = float(chin_room)  # room below the lower chin, eye distances: the feather lands on neck
        self.max_yaw_gap = float(max_yaw_gap)  # a head turned further from every bank mouth gets visemes
        self._lips: tuple[int, np.ndarray] | None = None  # (bank.changes, canonical lip points per exemplar)
        # diagnostics of the last `render` call, one entry per frame
        self.last_sources: list[str] = []  # "exemplar", "fallback" or "passthrough"
        self.last_choice: list[int | None] = []  # bank exemplar id shown (the one faded towards)
        self.last_edit: list[tuple[tuple[int, int, int, int], np.ndarray] | None] = []  # (roi, blend mask)
        self.reset()

    def reset(self) -> None:
        """Forget the mouth being shown (a new video, a cut)."""
        self._cur: Exemplar | None = None
        self._prev: Exemplar | None = None
        self._since_switch = 0

    def learn(self, frames: Sequence[np.ndarray], faces: Sequence[Face | None]) -> int:
        """Offer frames to the bank; how many mouths were stored."""
        return sum(self.bank.add(f, face) for f, face in zip(frames, faces, strict=True))

    def render(
        self, frames: Sequence[np.ndarray], faces: Sequence[Face | None], times: Sequence[float],
        audio: AudioTimeline,
    ) -> list[np.ndarray]:
        """Frames with the mouth redrawn; frames without a usable face come back as they were (same object).

        The batch is learned from before it is drawn, so a file's first batch can already use its own mouths.
        """
        if self.learn_enabled:
            self.learn(frames, faces)
        self.last_sources, self.last_choice, self.last_edit = [], [], []
        out = []
        for frame, face, t in zip(frames, faces, times, strict=True):
            if face is None or not face.usable:
                self._note("passthrough")
                out.append(frame)
            elif not self.bank.ready or not self._pose_covered(face):
                self._note("fallback")
                out.append(self.fallback.render([frame], [face], [float(t)], audio)[0])
            else:
                out.append(self.render_shape(frame, face, self.estimator.at(audio, float(t))))
        return out

    def _pose_covered(self, face: Face) -> bool:
        yaws = self.bank.shape_space()["yaw"]
        return bool(len(yaws)) and float(np.min(np.abs(yaws - face.yaw))) <= self.max_yaw_gap

    def _note(self, source: str, choice: int | None = None, edit: tuple | None = None) -> None:
        self.last_sources.append(source)
        self.last_choice.append(choice)
        self.last_edit.append(edit)

    def render_shape(self, frame: np.ndarray, face: Face, shape: MouthShape) -> np.ndarray:
        """A copy of `frame` showing the bank mouth chosen for `shape` (advances the cross-fade state)."""
        lm = np.asarray(face.landmarks, np.float32)[:, :2]
        if not np.isfinite(lm).all() or lmk.inter_ocular(lm) < 8.0 or not len(self.bank):
            self._note("passthrough")
            return frame
        self._select(shape, face)
        shown = [(self._cur, min(1.0, self._since_switch / self.fade_frames))]
        if shown[0][1] < 1.0 and self._prev is not None:
            shown.append((self._prev, 1.0 - shown[0][1]))
        result, edit = self._composite(frame, lm, shown)
        self._note("exemplar" if edit else "passthrough", self._cur.id, edit)
        return result

    # -- selection -------------------------------------------------------------------------------------

    def _select(self, shape: MouthShape, face: Face) -> None:
        """Advance the shown mouth by one frame: stay, or switch (and start a fade) to a clearly better one."""
        space = self.bank.shape_space()
        items = self.bank.exemplars
        target = np.float32([shape.opening, shape.width, shape.rounding])
        cost = (((space["shape"] - target) ** 2) * SHAPE_WEIGHTS).sum(axis=1)
        cost += self.pose_weight * ((space["yaw"] - face.yaw) / 10.0) ** 2
        cost -= 0.02 * space["quality"] / max(float(space["quality"].max()), 1e-6)  # sharper wins ties
        if shape.opening <= 0.0:  # silence or lips pressed (p, b, m): only a closed mouth will do
            closed = is_closed(space["descriptor"])
            if closed.any():
                cost[~closed] += 10.0
        cur = next((i for i, e in enumerate(items) if self._cur is not None and e.id == self._cur.id), None)
        if self._cur is not None:
            lips = self._lip_points(items)
            ref = self._cur.landmarks[_LIPS]
            jump = np.abs(lips - ref[None]).mean(axis=(1, 2)) / self.bank.scale
            cost += self.jump_weight * jump
        best = int(np.argmin(cost))
        self._since_switch += 1
        if self._cur is None:
            self._cur, self._since_switch = items[best], self.fade_frames
        elif best != cur and (cur is None or cost[best] < cost[cur] - self.stay_margin):
            self._prev, self._cur, self._since_switch = self._cur, items[best], 1

    def _lip_points(self, items: list[Exemplar]) -> np.ndarray:
        if self._lips is None or self._lips[0] != self.bank.changes:
            self._lips = (self.bank.changes, np.stack([e.landmarks[_LIPS] for e in items]))
        return self._lips[1]

    # -- compositing -----------------------------------------------------------------------------------

    def _composite(
        self, frame: np.ndarray, lm: np.ndarray, shown: list[tuple[Exemplar, float]],
    ) -> tuple[np.ndarray, tuple | None]:
        """Blend the shown mouth(s) into a copy of `frame`; (frame, None) when nothing could be drawn."""
        iod = lmk.inter_ocular(lm)
        maps = [similarity(e.landmarks[STABLE], lm[STABLE]) for e, _ in shown]
        poly = self._edit_polygon(lm, iod, [apply(m, e.landmarks[_LOWER]) for m, (e, _) in zip(maps, shown, strict=True)])
        poly = _inside_crop(poly, maps[0], self.bank.size)
        roi = roi_around(poly, frame.shape, margin=0.0)
        x1, y1, x2, y2 = roi
        if x2 - x1 < 8 or y2 - y1 < 8:
            return frame, None
        size = (x2 - x1, y2 - y1)
        patch = None
        for m, (e, w) in zip(maps, shown, strict=True):
            m_roi = m.copy()
            m_roi[:, 2] -= (x1, y1)
            warped = cv2.warpAffine(e.crop, m_roi, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            patch = warped if patch is None else cv2.addWeighted(patch, 1.0 - w, warped, w, 0.0)
        mask = polygon_mask(frame.shape, poly, feather_px=max(2.0, self.feather * iod), roi=roi)
        patch = _match_light(patch, frame[y1:y2, x1:x2], mask)
        result = frame.copy()
        _blend(result[y1:y2, x1:x2], patch, mask)
        return result, (roi, mask)

    def _edit_polygon(self, lm: np.ndarray, iod: float, jaws: list[np.ndarray]) -> np.ndarray:
        """The region to replace: the lower face of the frame and of the shown mouth(s) together, kept a
        little inside the cheeks and extended under the lower chin so the feather lies on skin and neck."""
        pts = np.concatenate([lm[_LOWER], *jaws])
        hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2)
        centre = lm[_LIPS].mean(axis=0)
        across = lm[lmk.RIGHT_EYE_CORNERS[0]] - lm[lmk.LEFT_EYE_CORNERS[0]]
        u = across / max(float(np.linalg.norm(across)), 1e-6)
        v = np.float32([-u[1], u[0]])
        rel = hull - centre
        du, dv = rel @ u, rel @ v
        dv = np.where(dv > 0, dv + self.chin_room * iod, dv)
        out = centre + (0.94 * du)[:, None] * u + dv[:, None] * v
        return cv2.convexHull(out.astype(np.float32)).reshape(-1, 2)


def _match_light(patch: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`patch` with each colour channel's mean/std matched to `reference` over the feather band (the
    ring where a difference in light would read as a seam); a per-channel gain is how light and white
    balance change, and as a lookup table it costs next to nothing."""
    band = ((mask > 0.1) & (mask < 0.9)).view(np.uint8)
    if cv2.countNonZero(band) < 16:
        return patch
    mp, sp = (v.reshape(3).astype(np.float32) for v in cv2.meanStdDev(patch, mask=band))
    mr, sr = (v.reshape(3).astype(np.float32) for v in cv2.meanStdDev(reference, mask=band))
    gain = np.clip((sr + 2.0) / (sp + 2.0), 0.6, 1.6)
    levels = np.arange(256, dtype=np.float32)[:, None]
    lut = np.clip((levels - mp) * gain + mr + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(patch, lut.reshape(256, 1, 3))


def _blend(region: np.ndarray, patch: np.ndarray, mask: np.ndarray) -> None:
    """region = patch·mask + region·(1 − mask), in place, only over the mask's bounding box (outside it
    the frame stays bit-identical)."""
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(ys) == 0:
        return
    a, b, c, d = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    m = np.ascontiguousarray(mask[a:b, c:d])
    region[a:b, c:d] = cv2.blendLinear(patch[a:b, c:d], region[a:b, c:d], m, 1.0 - m)


def _inside_crop(poly: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`poly` (frame pixels) pulled inside the exemplar crop's footprint, so the blend never shows the
    crop's replicated border."""
    inv = cv2.invertAffineTransform(m)
    local = apply(inv, poly)
    w, h = size
    local[:, 0] = np.clip(local[:, 0], 2.0, w - 3.0)
    local[:, 1] = np.clip(local[:, 1], 2.0, h - 3.0)
    return apply(m, local)

