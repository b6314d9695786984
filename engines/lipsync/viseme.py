"""A weight-free lip engine: the face's own lower face, warped along its landmarks to the audio's mouth shape.

Per frame: the mouth shape from the audio (`mouth_shape`), then a piecewise-affine warp of the lips and jaw
over a triangulation of face-mesh points (lips, chin, jaw line, fixed points under the nose and a fixed ring
outside the jaw), an inner mouth drawn between the warped inner lips, and a feathered paste. The source
mouth is closed first (its inner lips pulled together), so silence shows a still, closed mouth whatever the
person in the video was doing. Everything runs on a box around the lower face; no model, no GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.spatial import Delaunay

from ..face import Face
from . import AudioTimeline
from .composite import JAW_LINE as JAW
from .composite import UNDER_NOSE, feathered_paste, polygon_mask, roi_around
from .mouth_shape import MouthShape, MouthShapeEstimator

UPPER_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)  # corners belong to UPPER_OUTER
UPPER_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)  # inner corners included
LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)  # paired one to one with UPPER_INNER[1:-1]
CHIN_MID = (18, 200, 199, 175)  # between the lower lip and the chin point; move with the jaw
FIXED = UNDER_NOSE + (50, 280)  # cheeks and nose: never move

_LIPS = UPPER_OUTER + LOWER_OUTER + UPPER_INNER + LOWER_INNER
_MOVING = _LIPS + CHIN_MID + JAW
_CONTROL = _MOVING + FIXED
# slices of the control-point array
_S_UO = slice(0, 11)
_S_LO = slice(11, 20)
_S_UI = slice(20, 31)
_S_LI = slice(31, 40)
_S_CHIN = slice(40, 44)
_S_JAW = slice(44, 44 + len(JAW))
_N_LM = len(_CONTROL)

MAX_GAP = 0.42  # widest lip gap, in mouth widths
UPPER_SHARE = 0.28  # share of the gap the upper lip takes; the jaw carries the rest
RING = 0.55  # fixed ring outside the jaw line, in mouth widths from the jaw (room for the chin to drop)


class VisemeEngine:
    """`LipEngine` without weights. `strength` scales how far the mouth moves; `colour_match` takes the
    inner-mouth and teeth colours from this face's lips and skin (its lighting) instead of a fixed palette."""

    name = "viseme"

    def __init__(self, *, strength: float = 1.0, colour_match: bool = True, estimator: MouthShapeEstimator | None = None):
        self.strength = float(strength)
        self.colour_match = bool(colour_match)
        self.estimator = estimator or MouthShapeEstimator()
        self._tri: np.ndarray | None = None  # triangles over the control points, reused while valid

    def render(
        self, frames: Sequence[np.ndarray], faces: Sequence[Face | None], times: Sequence[float],
        audio: AudioTimeline,
    ) -> list[np.ndarray]:
        """Frames with the mouth redrawn; frames without a usable face come back as they were (same object)."""
        out = []
        for frame, face, t in zip(frames, faces, times, strict=True):
            if face is None or not face.usable:
                out.append(frame)
                continue
            out.append(self.render_shape(frame, face, self.estimator.at(audio, float(t))))
        return out

    def render_shape(self, frame: np.ndarray, face: Face, shape: MouthShape) -> np.ndarray:
        """A copy of `frame` whose mouth shows `shape` (also handy for previews and tests)."""
        lm = np.asarray(face.landmarks, dtype=np.float32)
        if lm.shape[0] < 468 or not np.isfinite(lm[list(_CONTROL)]).all():
            return frame
        geo = _MouthGeometry(lm[list(_CONTROL)])
        if geo.width < 8.0:  # too small to draw a mouth on
            return frame
        ring = geo.ring()
        roi = roi_around(np.concatenate([ring, geo.src]), frame.shape, margin=0.06)
        x1, y1, x2, y2 = roi
        if x2 - x1 < 8 or y2 - y1 < 8:
            return frame
        origin = np.float32([x1, y1])
        corners = np.float32([[x1, y1], [x2 - 1, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]])
        src = np.concatenate([geo.src, ring, corners]) - origin
        dst = src.copy()
        dst[:_N_LM] += geo.displacement(shape, self.strength)
        canon = src.copy()  # a half-open mouth: lips well apart, so the topology has a gap between them
        canon[:_N_LM] += geo.displacement(MouthShape(0.5), 1.0)
        tri = self._triangles(canon)
        patch = frame[y1:y2, x1:x2]
        warped = _piecewise_affine(patch, src, dst, tri)
        inner = dst[_S_UI.start : _S_LI.stop]
        colours = self._colours(frame, lm)
        _draw_inner_mouth(warped, inner, geo.v, shape, self.strength, colours)
        edit = cv2.convexHull(np.concatenate([ring, lm[list(UNDER_NOSE)]])).reshape(-1, 2)
        mask = polygon_mask(frame.shape, edit, feather_px=max(3.0, 0.25 * geo.width), roi=roi)
        result = frame.copy()
        return feathered_paste(result, warped, mask, roi)

    def _triangles(self, canon: np.ndarray) -> np.ndarray:
        """Delaunay triangles over the control points placed as a half-open mouth (a closed mouth has its
        inner lips on top of each other, which gives no usable triangles across the gap); computed once and
        kept while no triangle flips as the face moves."""
        if self._tri is not None and _all_positive(canon, self._tri):
            return self._tri
        tri = Delaunay(canon).simplices.astype(np.int32)
        a = _signed_areas(canon, tri)
        tri[a < 0] = tri[a < 0][:, ::-1]  # one orientation for all, so a flip is easy to see later
        tri = tri[np.abs(_signed_areas(canon, tri)) > 1e-3]
        lower = np.isin(tri, np.r_[_S_LO.start : _S_LO.stop, _S_LI.start : _S_LI.stop]).any(axis=1)
        self._tri = np.concatenate([tri[~lower], tri[lower]])  # the lower lip is drawn over the upper
        return self._tri

    def _colours(self, frame: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inner mouth, teeth) BGR: from this face's lips and cheeks when colour matching, else fixed."""
        if not self.colour_match:
            return np.float32([38, 30, 72]), np.float32([205, 212, 218])
        h, w = frame.shape[:2]

        def sample(idx: Sequence[int]) -> np.ndarray:
            p = np.round(lm[list(idx)]).astype(int)
            p[:, 0] = np.clip(p[:, 0], 0, w - 1)
            p[:, 1] = np.clip(p[:, 1], 0, h - 1)
            return frame[p[:, 1], p[:, 0]].astype(np.float32).mean(axis=0)

        lips = sample(UPPER_OUTER[2:-2] + LOWER_OUTER[2:-2])
        skin = sample((50, 280, 205, 425))
        light = float(np.clip(skin.mean() / 150.0, 0.45, 1.1))
        inner = 0.14 * lips + np.float32([14, 12, 38]) * light
        teeth = (0.7 * np.float32([205, 212, 218]) + 0.3 * skin) * light
        return inner, np.clip(teeth, 0, 255)


class _MouthGeometry:
    """The mouth's own frame (centre, axis across, axis down, width) and the lip/jaw displacements."""

    def __init__(self, pts: np.ndarray):
        self.src = pts
        left, right = pts[_S_UO.start], pts[_S_UO.stop - 1]
        self.centre = (pts[_S_UI].mean(axis=0) + pts[_S_LI].mean(axis=0)) / 2.0
        across = right - left
        self.width = float(np.linalg.norm(across))
        self.u = across / max(self.width, 1e-6)
        v = np.float32([-self.u[1], self.u[0]])
        chin = pts[_S_JAW][len(JAW) // 2]
        self.v = v if float((chin - self.centre) @ v) > 0 else -v
        # On an open mouth the mesh puts the upper inner lip a little low, on the teeth; lift it so that
        # closing the mouth does not drag a strip of teeth along with the upper lip.
        ui = slice(_S_UI.start + 1, _S_UI.stop - 1)
        gap = np.maximum((pts[_S_LI] - pts[ui]) @ self.v, 0.0)
        pts = pts.copy()
        pts[ui] -= np.minimum(0.3 * gap, 0.03 * self.width)[:, None] * self.v[None, :]
        self.src = pts
        rel = pts - self.centre
        self.x = (rel @ self.u) / (self.width / 2.0)  # -1 / +1 at the outer corners
        self.y = rel @ self.v  # pixels, positive towards the chin

    def ring(self) -> np.ndarray:
        """Fixed points outside the jaw line: the warp fades to nothing there."""
        jaw = self.src[_S_JAW]
        d = jaw - self.centre
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
        return (jaw + d * RING * self.width).astype(np.float32)

    def displacement(self, shape: MouthShape, strength: float) -> np.ndarray:
        """Per control point (N, 2) pixels: close the source mouth, then open/spread/round it to `shape`."""
        n = len(self.src)
        along_v = np.zeros(n, np.float32)
        # 1. close: pull the inner lips together where the source mouth is open
        ui, li = self.src[_S_UI][1:-1], self.src[_S_LI]
        gap = np.maximum((li - ui) @ self.v, 0.0)
        xs = self.x[_S_UI][1:-1]
        order = np.argsort(xs)
        gap_at = np.interp(self.x, xs[order], gap[order], left=0.0, right=0.0)
        centre_gap = float(gap[len(gap) // 2 - 1 : len(gap) // 2 + 2].max())
        # 2. open to the target: a gap shaped like an ellipse across the mouth, rounder when rounding
        x_in = max(abs(self.x[_S_UI.start]), abs(self.x[_S_UI.stop - 1]), 0.3)
        o = float(np.clip(shape.opening * strength, 0.0, 1.2))
        r = float(np.clip(shape.rounding * strength, 0.0, 1.0))
        w = float(np.clip(shape.width * strength, 0.0, 1.0))
        prof = np.sqrt(np.clip(1.0 - (self.x / x_in) ** 2, 0.0, 1.0)) ** (1.0 - 0.6 * r)
        target = o * MAX_GAP * self.width * prof
        up = UPPER_SHARE
        along_v[_S_UI] = up * gap_at[_S_UI] - up * target[_S_UI]
        along_v[_S_UO] = 0.8 * up * gap_at[_S_UO] - 0.9 * up * target[_S_UO]
        along_v[_S_LI] = -(1 - up) * gap_at[_S_LI] + (1 - up) * target[_S_LI]
        along_v[_S_LO] = -(1 - up) * gap_at[_S_LO] + (1 - up) * target[_S_LO]
        for corner in (_S_UI.start, _S_UI.stop - 1):  # inner corners sit on both lips
            along_v[corner] = 0.5 * (1 - 2 * up) * (target[corner] - gap_at[corner])
        jaw_move = (1 - up) * (o * MAX_GAP * self.width - centre_gap) * 0.85
        along_v[_S_CHIN] = jaw_move * np.float32([0.97, 0.93, 0.9, 0.88])
        jaw_x = np.abs(self.x[_S_JAW]) * (self.width / 2.0) / max(float(np.ptp(self.src[_S_JAW] @ self.u)) / 2.0, 1.0)
        below = np.clip(self.y[_S_JAW] / (0.35 * self.width), 0.0, 1.0)
        along_v[_S_JAW] = jaw_move * 0.88 * np.clip(1.0 - jaw_x**2, 0.0, 1.0) * below
        # 3. across: spread ("ee") pulls the corners out, rounding ("oo") pulls them in
        along_u = np.zeros(n, np.float32)
        lips = slice(0, _S_LI.stop)
        along_u[lips] = self.x[lips] * (self.width / 2.0) * (0.14 * w - 0.22 * r)
        return (along_u[:, None] * self.u[None, :] + along_v[:, None] * self.v[None, :]).astype(np.float32)


def _signed_areas(pts: np.ndarray, tri: np.ndarray) -> np.ndarray:
    a, b, c = pts[tri[:, 0]], pts[tri[:, 1]], pts[tri[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def _all_positive(pts: np.ndarray, tri: np.ndarray) -> bool:
    return bool(len(tri)) and int(tri.max()) < len(pts) and bool((_signed_areas(pts, tri) > 1e-3).all())


def _piecewise_affine(patch: np.ndarray, src: np.ndarray, dst: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """`patch` warped so each triangle's `src` corners land on its `dst` corners (one remap, backward map).

    Pixels are labelled with the destination triangle that covers them; each label carries the affine map
    from destination back to source. Unlabelled pixels (outside the mesh) map to themselves.
    """
    h, w = patch.shape[:2]
    area = _signed_areas(dst, tri)
    a, b, c = dst[tri[:, 0]], dst[tri[:, 1]], dst[tri[:, 2]]
    longest = np.max([np.linalg.norm(b - a, axis=1), np.linalg.norm(c - b, axis=1), np.linalg.norm(a - c, axis=1)], 0)
    height = 2.0 * np.abs(area) / np.maximum(longest, 1e-6)
    # Slivers (a closed gap) draw nothing: their maps are steep, and a pixel just outside one would sample far
    # away. Folded triangles (the lower lip pressed over the upper) go first, so every triangle drawn after
    # them wins; they only fill what would otherwise be a hole.
    solid = height > 1.0
    tri = np.concatenate([tri[solid & (area < 0)], tri[solid & (area > 0)]])
    area = np.concatenate([area[solid & (area < 0)], area[solid & (area > 0)]])
    d0, d1, d2 = dst[tri[:, 0]], dst[tri[:, 1]], dst[tri[:, 2]]
    s0, s1, s2 = src[tri[:, 0]], src[tri[:, 1]], src[tri[:, 2]]
    e1, e2, f1, f2 = d1 - d0, d2 - d0, s1 - s0, s2 - s0
    det = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])[:, None]
    cx = (f1 * e2[:, 1:2] - f2 * e1[:, 1:2]) / det  # d src / d x, per triangle (T, 2)
    cy = (f2 * e1[:, 0:1] - f1 * e2[:, 0:1]) / det  # d src / d y
    c0 = s0 - cx * d0[:, 0:1] - cy * d0[:, 1:2]
    # label 0 = outside every triangle = identity
    tx = np.concatenate([np.float32([[1.0, 0.0, 0.0]]), np.stack([cx[:, 0], cy[:, 0], c0[:, 0]], 1)])
    ty = np.concatenate([np.float32([[0.0, 1.0, 0.0]]), np.stack([cx[:, 1], cy[:, 1], c0[:, 1]], 1)])
    # The map is piecewise linear, so it is evaluated on a half-resolution grid (sample (i, j) at full-res
    # pixel (2i + 0.5, 2j + 0.5)) and upsampled; as a displacement, so it stays exactly zero where nothing moves.
    hh, hw = (h + 1) // 2, (w + 1) // 2
    label = np.zeros((hh, hw), np.int32)
    fixed = np.round((np.stack([d0, d1, d2], axis=1) - 0.5) * 8).astype(np.int32)  # /2, 4 fraction bits
    n_folded = int((area < 0).sum())
    # First the outlines of the proper triangles: pixels on a collapsed triangle (a closed lip gap) belong to
    # no filled triangle and would keep the source pixel there (the dark gap of a mouth that was open);
    # a neighbour's edge covers them (maps agree along shared edges). Then the fills, in drawing order.
    for k in range(n_folded, len(tri)):
        cv2.polylines(label, [fixed[k]], True, k + 1, 1, cv2.LINE_8, shift=4)
    for k in range(len(tri)):
        cv2.fillConvexPoly(label, fixed[k], k + 1, lineType=cv2.LINE_8, shift=4)
    gx = np.arange(hw, dtype=np.float32)[None, :] * 2 + 0.5
    gy = np.arange(hh, dtype=np.float32)[:, None] * 2 + 0.5
    tx, ty = tx.astype(np.float32), ty.astype(np.float32)
    disp_x = tx[label, 0] * gx + tx[label, 1] * gy + tx[label, 2] - gx
    disp_y = ty[label, 0] * gx + ty[label, 1] * gy + ty[label, 2] - gy
    map_x = cv2.resize(disp_x, (w, h), interpolation=cv2.INTER_LINEAR) + np.arange(w, dtype=np.float32)[None, :]
    map_y = cv2.resize(disp_y, (w, h), interpolation=cv2.INTER_LINEAR) + np.arange(h, dtype=np.float32)[:, None]
    return cv2.remap(patch, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _draw_inner_mouth(
    img: np.ndarray, inner: np.ndarray, v: np.ndarray, shape: MouthShape, strength: float,
    colours: tuple[np.ndarray, np.ndarray],
) -> None:
    """Dark mouth cavity inside the warped inner lips, upper teeth along the top lip when open wide; in place.

    `inner` is UPPER_INNER (corner to corner) followed by LOWER_INNER (same direction), ROI coordinates;
    `v` is the unit vector from the nose towards the chin.
    """
    upper, lower = inner[:11], inner[11:]
    down = lower - upper[1:-1]
    lower = upper[1:-1] + np.maximum(down @ v, 0.0)[:, None] * v  # an overlapped (pressed) lip has no gap
    poly = np.concatenate([upper, lower[::-1]])
    x1, y1 = np.floor(poly.min(axis=0)).astype(int) - 2
    x2, y2 = np.ceil(poly.max(axis=0)).astype(int) + 3
    x1, y1 = max(int(x1), 0), max(int(y1), 0)
    x2, y2 = min(int(x2), img.shape[1]), min(int(y2), img.shape[0])
    if x2 - x1 < 2 or y2 - y1 < 2:
        return
    off = np.float32([x1, y1])
    # where the lips meet: a thin dark line, as on a real closed mouth; it also hides what the mesh missed
    seam = np.zeros((y2 - y1, x2 - x1), np.uint8)
    thick = max(1, int(round(0.02 * float(np.linalg.norm(upper[-1] - upper[0])))))
    cv2.polylines(seam, [np.round((upper - off) * 16).astype(np.int32)], False, 255, thick, cv2.LINE_AA, shift=4)
    s_alpha = (seam.astype(np.float32) * (0.6 / 255.0))[..., None]
    inner_colour, teeth_colour = colours
    region = img[y1:y2, x1:x2].astype(np.float32)
    region = region * (1 - s_alpha) + (inner_colour * 1.6)[None, None, :] * s_alpha
    img[y1:y2, x1:x2] = np.clip(region + 0.5, 0, 255).astype(np.uint8)
    gap = float(np.max(np.linalg.norm(lower - upper[1:-1], axis=1)))
    if gap < 0.75:
        return
    cavity = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(cavity, [np.round((poly - off) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    soft = cv2.GaussianBlur(cavity, (3, 3), 0.7).astype(np.float32) / 255.0
    alpha = soft * min(1.0, gap / 3.0)
    # a little lighter towards the lips, darkest in the middle: reads as depth
    inside = cv2.distanceTransform((cavity > 127).astype(np.uint8), cv2.DIST_L2, 3)
    depth = np.clip(inside / max(gap * 0.35, 1.0), 0.0, 1.0)[..., None]
    dark = inner_colour[None, None, :] * (1.5 - 0.7 * depth)
    out = region * (1 - alpha[..., None]) + dark * alpha[..., None]
    o = float(np.clip(shape.opening * strength, 0.0, 1.2))
    down = lower - upper[1:-1]
    tongue = float(np.clip((o - 0.35) / 0.4, 0.0, 1.0))
    if tongue > 0:  # the tongue's back, lit a little, just above the lower lip
        top = upper[1:-1] + down * 0.62
        mid = upper[1:-1] + down * 0.85
        poly_t = np.concatenate([upper[:1] + (lower[:1] - upper[:1]) * 0, top, upper[-1:], mid[::-1]])
        mask_t = np.zeros_like(cavity)
        cv2.fillPoly(mask_t, [np.round((poly_t - off) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        mask_t = cv2.blur(mask_t, (5, 5)).astype(np.float32) / 255.0
        t_alpha = (mask_t * soft * 0.45 * tongue)[..., None]
        out = out * (1 - t_alpha) + (inner_colour * 2.4)[None, None, :] * t_alpha
    show = float(np.clip((o - 0.4) / 0.35, 0.0, 1.0))
    if show > 0:  # upper teeth: a band under the upper lip, brighter at its top edge
        edge = upper[1:-1] + down * (0.2 * show)
        teeth_poly = np.concatenate([upper, edge[::-1]])
        teeth = np.zeros_like(cavity)
        cv2.fillPoly(teeth, [np.round((teeth_poly - off) * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
        t_alpha = (teeth.astype(np.float32) / 255.0) * soft * 0.8 * show
        out = out * (1 - t_alpha[..., None]) + teeth_colour[None, None, :] * t_alpha[..., None]
    img[y1:y2, x1:x2] = np.clip(out + 0.5, 0, 255).astype(np.uint8)
