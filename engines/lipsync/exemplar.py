"""The exemplar lip engine: the speaker's own mouth pictures, re-timed to the translated speech.

Per frame: a mouth shape from the audio (`mouth_shape`, phoneme timings when the timeline has them), the
bank mouth that fits it best (shape error + head-pose mismatch in yaw and pitch + a cost for jumping far
from the mouth now shown; the current one stays unless another is clearly better; a switch cross-fades over
`fade_frames`). The crop is morphed in the bank's canonical frame: during a fade both mouths are bent onto
the landmarks in between, so their lips coincide (no double lip), and a rounded or spread target that the
chosen mouth falls short of narrows or widens its lips a little. It is aligned to the current face by a
similarity on skull-fixed landmarks, relit by a smooth gain field matched in the ring where it meets the
frame, blurred or sharpened to the frame's detail, and blended in with a feathered mask over the mouth and
jaw. Real teeth and lips, no weights. It learns the bank from the frames it is given; until the bank covers
open and closed mouths (a photo, the first seconds of a call), or when the head is held in a pose no bank
mouth was seen in, the viseme engine draws the mouth instead, and `source_counts` says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import cv2
import numpy as np

from ..face import Face
from ..face import landmarks as lmk
from . import AudioTimeline, LipEngine
from .composite import LOWER_FACE, match_light_field, match_sharpness, polygon_mask, roi_around
from .exemplar_bank import ROUND_SPAN, SPREAD_SPAN, STABLE, Exemplar, MouthBank, apply, is_closed, similarity
from .mouth_shape import MouthShape, MouthShapeEstimator

log = logging.getLogger("livedub.exemplar")

_LIPS = list(lmk.OUTER_LIPS + lmk.INNER_LIPS)
_LOWER = list(LOWER_FACE)
_CHIN = [18, 200, 199, 175, lmk.CHIN]  # between the lower lip and the chin point: they move with the jaw
_MOVING = _LIPS + _CHIN + list(lmk.JAW_LINE[2:-2])  # what a morph moves; STABLE points stay put
SHAPE_WEIGHTS = np.float32([1.0, 0.3, 0.6])  # opening matters most; spread and rounding refine it
# Where frames come from, as counted by `source_counts` (fallback split by why).
SOURCES = ("exemplar", "fallback_bank_not_ready", "fallback_pose_uncovered", "passthrough")
MORPH_SIGMA = 0.08  # reach of one landmark's pull in a morph, eye distances (about a lip's thickness)
MAX_NARROW, MAX_WIDEN = 0.15, 0.08  # how far a morph may narrow / widen the lips towards the target shape


class ExemplarEngine:
    """`LipEngine` that shows the speaker's own mouths. `bank` may come from `MouthBank.load`; with `learn`
    it keeps filling from the frames rendered (in a dub, the source video's own talking mouth).

    `pose_weight` prices a yaw or pitch mismatch (per 10°; a head further than `max_yaw_gap` /
    `max_pitch_gap` from every bank mouth gets the viseme engine), `jump_weight` the lip-landmark distance
    from the mouth shown now (per eye distance), `stay_margin` is how much better another mouth must be to
    replace the current one, `feather` the blend ramp in eye distances.

    Diagnostics: `last_sources` / `last_reasons` / `last_choice` / `last_edit` describe each frame of the
    last `render` call; `source_counts()` adds up every frame rendered since construction.
    """

    name = "exemplar"

    def __init__(
        self, bank: MouthBank | None = None, *, fallback: LipEngine | None = None, learn: bool = True,
        estimator: MouthShapeEstimator | None = None, pose_weight: float = 0.3, jump_weight: float = 0.3,
        stay_margin: float = 0.015, fade_frames: int = 2, feather: float = 0.16, chin_room: float = 0.14,
        max_yaw_gap: float = 20.0, max_pitch_gap: float = 20.0,
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
        self.max_pitch_gap = float(max_pitch_gap)
        self._lips: tuple[int, np.ndarray] | None = None  # (bank.changes, canonical lip points per exemplar)
        self._counts = dict.fromkeys(SOURCES, 0)
        self._ready_logged = False
        # diagnostics of the last `render` call, one entry per frame
        self.last_sources: list[str] = []  # "exemplar", "fallback" or "passthrough"
        self.last_reasons: list[str] = []  # one of SOURCES: the fallbacks say why
        self.last_choice: list[int | None] = []  # bank exemplar id shown (the one faded towards)
        self.last_edit: list[tuple[tuple[int, int, int, int], np.ndarray] | None] = []  # (roi, blend mask)
        self.reset()

    def reset(self) -> None:
        """Forget the mouth being shown (a new video, a cut)."""
        self._cur: Exemplar | None = None
        self._prev: Exemplar | None = None
        self._since_switch = 0

    def source_counts(self) -> dict[str, int]:
        """Frames rendered since construction by where they came from: "exemplar" (bank mouths),
        "fallback_bank_not_ready" / "fallback_pose_uncovered" (the viseme engine, and why), "passthrough"."""
        return dict(self._counts)

    def learn(self, frames: Sequence[np.ndarray], faces: Sequence[Face | None]) -> int:
        """Offer frames to the bank; how many mouths were stored."""
        stored = sum(self.bank.add(f, face) for f, face in zip(frames, faces, strict=True))
        self._log_ready()
        return stored

    def _log_ready(self) -> None:
        if self._ready_logged or not self.bank.ready:
            return
        self._ready_logged = True
        c = self.bank.counts()
        yaw, pitch = self.bank.usual_pose()
        log.info("mouth bank ready: %d mouths (%d closed, %d open) after %d frames offered; speaker's usual "
                 "pose yaw %.0f°, pitch %.0f°", c["total"], c["closed"], c["open"], self.bank.clock, yaw, pitch)

    def render(
        self, frames: Sequence[np.ndarray], faces: Sequence[Face | None], times: Sequence[float],
        audio: AudioTimeline,
    ) -> list[np.ndarray]:
        """Frames with the mouth redrawn; frames without a usable face come back as they were (same object).

        The batch is learned from before it is drawn, so a file's first batch can already use its own mouths.
        """
        if self.learn_enabled:
            self.learn(frames, faces)
        else:
            self._log_ready()
        self.last_sources, self.last_reasons, self.last_choice, self.last_edit = [], [], [], []
        out = []
        for frame, face, t in zip(frames, faces, times, strict=True):
            if face is None or not face.usable:
                self._note("passthrough")
                out.append(frame)
                continue
            why = "fallback_bank_not_ready" if not self.bank.ready else None
            if why is None and not self._pose_covered(face):
                why = "fallback_pose_uncovered"
            if why is None:
                out.append(self.render_shape(frame, face, self.estimator.at(audio, float(t))))
                continue
            self._cur = self._prev = None  # back from the warp: start on a fresh mouth, no fade from a stale one
            self._note(why)
            out.append(self.fallback.render([frame], [face], [float(t)], audio)[0])
        return out

    def _pose_covered(self, face: Face) -> bool:
        space = self.bank.shape_space()
        if not len(space["yaw"]):
            return False
        gap = np.hypot((space["yaw"] - face.yaw) / self.max_yaw_gap, (space["pitch"] - face.pitch) / self.max_pitch_gap)
        return float(gap.min()) <= 1.0

    def _note(self, reason: str, choice: int | None = None, edit: tuple | None = None) -> None:
        self.last_sources.append("fallback" if reason.startswith("fallback") else reason)
        self.last_reasons.append(reason)
        self.last_choice.append(choice)
        self.last_edit.append(edit)
        self._counts[reason] += 1

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
        result, edit = self._composite(frame, lm, shown, shape)
        self._note("exemplar" if edit else "passthrough", self._cur.id, edit)
        return result

    # -- selection -------------------------------------------------------------------------------------

    def _select(self, shape: MouthShape, face: Face) -> None:
        """Advance the shown mouth by one frame: stay, or switch (and start a fade) to a clearly better one."""
        space = self.bank.shape_space()
        items = self.bank.exemplars
        target = np.float32([shape.opening, shape.width, shape.rounding])
        cost = (((space["shape"] - target) ** 2) * SHAPE_WEIGHTS).sum(axis=1)
        cost += self.pose_weight * (((space["yaw"] - face.yaw) / 10.0) ** 2 + ((space["pitch"] - face.pitch) / 10.0) ** 2)
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
        self, frame: np.ndarray, lm: np.ndarray, shown: list[tuple[Exemplar, float]], shape: MouthShape,
    ) -> tuple[np.ndarray, tuple | None]:
        """Blend the shown mouth(s) into a copy of `frame`; (frame, None) when nothing could be drawn."""
        iod = lmk.inter_ocular(lm)
        crop, target = self._canonical_patch(shown, shape)
        m = similarity(target[STABLE], lm[STABLE])
        poly = self._edit_polygon(lm, iod, [apply(m, target[_LOWER])])
        poly = _inside_crop(poly, m, self.bank.size)
        roi = roi_around(poly, frame.shape, margin=0.0)
        x1, y1, x2, y2 = roi
        if x2 - x1 < 8 or y2 - y1 < 8:
            return frame, None
        m_roi = m.copy()
        m_roi[:, 2] -= (x1, y1)
        patch = cv2.warpAffine(crop, m_roi, (x2 - x1, y2 - y1), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        mask = polygon_mask(frame.shape, poly, feather_px=max(2.0, self.feather * iod), roi=roi)
        reference = frame[y1:y2, x1:x2]
        ring = ((mask > 0.02) & (mask < 0.9)).astype(np.float32)  # where patch and frame meet: the same skin
        patch = match_light_field(patch, reference, ring, sigma_px=0.35 * iod)
        patch = match_sharpness(patch, reference, self._skin(mask, roi, [lm[_LIPS], apply(m, target[_LIPS])], iod))
        result = frame.copy()
        _blend(result[y1:y2, x1:x2], patch, mask)
        return result, (roi, mask)

    @staticmethod
    def _skin(mask: np.ndarray, roi: tuple[int, int, int, int], mouths: list[np.ndarray], iod: float) -> np.ndarray:
        """Weights over the ROI of the edit's skin: inside the mask, off both the frame's and the shown
        mouth (grown a little), so frame and patch are compared on the same kind of picture."""
        keep = (mask > 0.05).astype(np.uint8)
        x1, y1 = roi[0], roi[1]
        for lips in mouths:
            hull = cv2.convexHull((lips - np.float32([x1, y1])).astype(np.float32)).reshape(-1, 2)
            centre = hull.mean(axis=0)
            grown = centre + (hull - centre) * 1.25 + np.sign(hull - centre) * 0.05 * iod
            cv2.fillPoly(keep, [np.round(grown).astype(np.int32)], 0)
        return keep.astype(np.float32)

    def _canonical_patch(self, shown: list[tuple[Exemplar, float]], shape: MouthShape) -> tuple[np.ndarray, np.ndarray]:
        """(crop, landmarks) in the bank's canonical frame: the shown mouth(s) bent onto one set of
        landmarks (their weighted mean, with the lips narrowed or widened towards `shape`) and faded."""
        target = sum(w * e.landmarks for e, w in shown) if len(shown) > 1 else shown[0][0].landmarks.copy()
        target = target + self._lip_residual(shown, shape, target)
        out = None
        for e, w in shown:
            bent = morph(e.crop, e.landmarks, target, sigma=MORPH_SIGMA * self.bank.scale)
            out = bent.astype(np.float32) * w if out is None else out + bent.astype(np.float32) * w
        return np.clip(out + 0.5, 0, 255).astype(np.uint8), target

    def _lip_residual(self, shown: list[tuple[Exemplar, float]], shape: MouthShape, target: np.ndarray) -> np.ndarray:
        """Landmark offsets (478×2) that narrow the lips where the target is rounder than the shown mouth
        (or widen them where it is more spread): what makes an "oo" read when the bank's roundest mouth is
        only half round. Bounded, lips only; the jaw keeps the exemplar's."""
        space, items = self.bank.shape_space(), self.bank.exemplars
        index = {e.id: i for i, e in enumerate(items)}
        have = sum(w * space["shape"][index[e.id]] for e, w in shown if e.id in index)
        if not isinstance(have, np.ndarray):
            return np.zeros_like(target)
        change = -ROUND_SPAN * max(shape.rounding - float(have[2]), 0.0) + SPREAD_SPAN * max(shape.width - float(have[1]), 0.0)
        change = float(np.clip(change, -MAX_NARROW, MAX_WIDEN))
        offset = np.zeros_like(target)
        if abs(change) < 0.02:  # about a pixel on a webcam mouth: not worth a warp
            return offset
        lips = target[_LIPS]
        centre = lips.mean(axis=0)
        # canonical frame: x along the eye line; rounded lips also push forward, which reads as taller
        offset[_LIPS, 0] = (lips[:, 0] - centre[0]) * change
        offset[_LIPS, 1] = (lips[:, 1] - centre[1]) * max(-change, 0.0) * 0.5
        return offset

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


def morph(crop: np.ndarray, src: np.ndarray, dst: np.ndarray, *, sigma: float) -> np.ndarray:
    """`crop` bent so its landmarks `src` (the moving ones) land on `dst`, skull points held still; the
    crop itself when nothing moves. The displacement field is a Gaussian-weighted average of the control
    points' displacements (stable where lip points crowd together, as on a closed mouth), fading to zero
    a few sigmas away. The Gaussian is separable, so the field is two small matrix products on a 2-px grid."""
    move = (src[_MOVING] - dst[_MOVING]).astype(np.float32)
    if float(np.abs(move).max()) < 0.25:
        return crop
    ctrl = np.concatenate([dst[_MOVING], dst[STABLE]]).astype(np.float32)
    disp = np.concatenate([move, np.zeros((len(STABLE), 2), np.float32)])
    h, w = crop.shape[:2]
    step = 2
    xs = np.arange(0, w + step, step, dtype=np.float32)
    ys = np.arange(0, h + step, step, dtype=np.float32)
    k = np.float32(-0.5 / (sigma * sigma))
    ex = np.exp(k * (xs[:, None] - ctrl[None, :, 0]) ** 2)  # (gw, n)
    ey = np.exp(k * (ys[:, None] - ctrl[None, :, 1]) ** 2)  # (gh, n)
    norm = ey @ ex.T + np.float32(0.01)
    size = (len(xs) * step, len(ys) * step)
    fx, fy = (cv2.resize((ey * disp[:, c]) @ ex.T / norm, size, interpolation=cv2.INTER_LINEAR)[:h, :w] for c in (0, 1))
    px, py = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(crop, px + fx, py + fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


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

