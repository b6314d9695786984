"""Putting a redrawn lower face back into the frame without a visible box.

Shared by every lip engine. Everything works on a region of interest (ROI) around the mouth and jaw, never
the whole frame, so it stays cheap at 640x480 and above. Landmarks are the mediapipe face mesh,
(478, 2) pixel coordinates of the full frame; ROIs are `(x1, y1, x2, y2)` with exclusive ends.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..face import landmarks as lmk

Roi = tuple[int, int, int, int]

# The jaw line from nose level on one side, through the chin, to the other (mediapipe face-mesh indices);
# the ear-level ends are left out so the region stays under the cheekbones.
JAW_LINE = lmk.JAW_LINE[1:-1]
# Top edge of the lower face: under the nose and across the cheeks, so the mask never reaches the eyes.
UNDER_NOSE = (205, 98, 2, 327, 425)
LOWER_FACE = JAW_LINE + UNDER_NOSE


def roi_around(points: np.ndarray, frame_shape: tuple[int, ...], margin: float = 0.25) -> Roi:
    """Integer box around `points`, grown by `margin` x its larger side on every edge, clipped to the frame.

    The margin leaves room for the feather ramp and for whatever the engine moves (a dropping jaw).
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    h, w = int(frame_shape[0]), int(frame_shape[1])
    (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
    pad = margin * float(max(x2 - x1, y2 - y1, 1.0))
    bx1 = int(np.clip(np.floor(x1 - pad), 0, w))
    by1 = int(np.clip(np.floor(y1 - pad), 0, h))
    bx2 = int(np.clip(np.ceil(x2 + pad) + 1, 0, w))
    by2 = int(np.clip(np.ceil(y2 + pad) + 1, 0, h))
    return bx1, by1, max(bx2, bx1), max(by2, by1)


def lower_face_polygon(landmarks: np.ndarray, *, grow_px: float = 0.0) -> np.ndarray:
    """Convex hull (N, 2) float32 of the mouth/jaw region, pushed outward by `grow_px` from its centre."""
    pts = np.asarray(landmarks, dtype=np.float32)[list(LOWER_FACE)]
    hull = cv2.convexHull(pts).reshape(-1, 2)
    if grow_px:
        centre = hull.mean(axis=0)
        d = hull - centre
        n = np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
        hull = hull + d / n * float(grow_px)
    return hull.astype(np.float32)


def polygon_mask(shape: tuple[int, ...], polygon: np.ndarray, *, feather_px: float, roi: Roi | None = None) -> np.ndarray:
    """Float32 mask of a polygon: 1 well inside, a smooth ramp `feather_px` wide inside the edge, exactly 0 out.

    The ramp lies inside the polygon so that pixels outside it stay bit-identical after a paste, and it is a
    smoothstep of the distance to the edge, so there is no step anywhere (no visible box or seam).
    """
    x1, y1, x2, y2 = roi if roi is not None else (0, 0, int(shape[1]), int(shape[0]))
    h, w = max(y2 - y1, 0), max(x2 - x1, 0)
    if h == 0 or w == 0:
        return np.zeros((h, w), np.float32)
    poly = np.asarray(polygon, dtype=np.float32).reshape(-1, 2) - np.float32([x1, y1])
    binary = np.zeros((h + 2, w + 2), np.uint8)  # 1-px border of zeros: the frame edge is not a polygon edge
    cv2.fillPoly(binary, [np.round((poly + 1) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    if feather_px <= 0:
        return binary[1:-1, 1:-1].astype(np.float32)
    dist = cv2.distanceTransform(binary, cv2.DIST_L2, 5)[1:-1, 1:-1]
    t = np.clip(dist * np.float32(1.0 / feather_px), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def lower_face_mask(
    shape: tuple[int, ...], landmarks: np.ndarray, *, feather_px: float, roi: Roi | None = None,
    grow_px: float = 0.0,
) -> np.ndarray:
    """Feathered mask of the mouth and jaw (under the nose, down to the jaw line), float32 in [0, 1].

    `shape` is the frame's shape; with `roi` the mask covers only that box (pass the same box to
    `feathered_paste`). `grow_px` pushes the region outward, e.g. to cover a jaw that an engine lowers.
    """
    return polygon_mask(shape, lower_face_polygon(landmarks, grow_px=grow_px), feather_px=feather_px, roi=roi)


def feathered_paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, roi: Roi) -> np.ndarray:
    """Blend `patch` (the ROI redrawn) into `frame` through `mask`, in place; returns `frame`.

    Only the part of the ROI where the mask is non-zero is touched, so the rest stays bit-identical.
    """
    x1, y1, x2, y2 = roi
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(ys) == 0:
        return frame
    a, b, c, d = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    region = frame[y1 + a : y1 + b, x1 + c : x1 + d]
    m = mask[a:b, c:d, None]
    src = region.astype(np.float32)
    out = src + (patch[a:b, c:d].astype(np.float32) - src) * m
    region[...] = np.clip(out + 0.5, 0, 255).astype(frame.dtype)
    return frame


def match_colour(patch: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """`patch` (BGR uint8) recoloured so its Lab mean/std match `reference` over the mask's weight.

    A generated mouth often comes out a shade off the real skin (another light, a blurrier model); matching
    the statistics of the region it replaces hides the seam that feathering alone leaves. The std ratio is
    bounded so a flat patch is not blown up into noise.
    """
    p = cv2.cvtColor(patch, cv2.COLOR_BGR2LAB).astype(np.float32)
    r = cv2.cvtColor(reference, cv2.COLOR_BGR2LAB).astype(np.float32)
    wgt = np.ones(p.shape[:2], np.float32) if mask is None else np.asarray(mask, np.float32)
    total = float(wgt.sum())
    if total < 1.0:
        return patch.copy()
    wgt = wgt[..., None] / total
    mp, mr = (p * wgt).sum(axis=(0, 1)), (r * wgt).sum(axis=(0, 1))
    sp = np.sqrt(((p - mp) ** 2 * wgt).sum(axis=(0, 1))) + 1e-3
    sr = np.sqrt(((r - mr) ** 2 * wgt).sum(axis=(0, 1))) + 1e-3
    gain = np.clip(sr / sp, 0.5, 2.0)
    out = (p - mp) * gain + mr
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2BGR)


def match_light_field(patch: np.ndarray, reference: np.ndarray, weight: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """`patch` (BGR uint8) times a smooth per-channel gain field that makes its local brightness match
    `reference` where `weight` > 0 (the ring where patch and frame meet), carried smoothly inside.

    One gain per channel cannot follow light that changes across the face (a lamp on one side, a shadow
    under the chin); a field of gains, as smooth as `sigma_px`, can, and stays a gain, so the patch's own
    texture and shading are kept. Computed at low resolution: light has no fine detail.
    """
    w = np.asarray(weight, np.float32)
    total = float(w.sum())
    if total < 16.0:
        return patch
    h, wd = patch.shape[:2]
    f = max(1.0, sigma_px / 4.0)  # work where sigma is ~4 px
    size = (max(int(round(wd / f)), 4), max(int(round(h / f)), 4))
    p = cv2.resize(patch, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    r = cv2.resize(reference, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    ws = cv2.resize(w, size, interpolation=cv2.INTER_AREA)[..., None]
    s = max(sigma_px / f, 1.0)
    # normalised convolution, with the ring's global mean as a weak prior where no ring pixel is near
    prior = 0.05
    mp = (p * ws).sum(axis=(0, 1)) / max(float(ws.sum()), 1e-6)
    mr = (r * ws).sum(axis=(0, 1)) / max(float(ws.sum()), 1e-6)
    norm = cv2.GaussianBlur(ws, (0, 0), s)[..., None] + prior
    lp = (cv2.GaussianBlur(p * ws, (0, 0), s) + prior * mp) / norm
    lr = (cv2.GaussianBlur(r * ws, (0, 0), s) + prior * mr) / norm
    gain = np.clip((lr + 4.0) / (lp + 4.0), 0.5, 2.0)
    gain = cv2.resize(gain, (wd, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(patch.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)


def detail_energy(img: np.ndarray, weight: np.ndarray) -> float:
    """Weighted mean squared Laplacian of the gray image: how much fine detail (focus, grain) it holds."""
    g = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    lap = cv2.Laplacian(g.astype(np.float32), cv2.CV_32F)
    w = np.asarray(weight, np.float32)
    return float((lap * lap * w).sum() / max(float(w.sum()), 1e-6))


def sharpness_index(img: np.ndarray, weight: np.ndarray) -> float:
    """Fine detail over coarse detail (squared Laplacian over squared gradient, weighted): falls as an
    image blurs, and depends little on what is pictured or its contrast, so two different mouths can be
    compared by it."""
    g = (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img).astype(np.float32)
    w = np.asarray(weight, np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F)
    grad = cv2.Sobel(g, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_32F, 0, 1) ** 2
    return float((lap * lap * w).sum() / max(float((grad * w).sum()), 1e-6))


_BLURS = (0.5, 0.7, 0.9, 1.2, 1.5, 1.9, 2.4, 3.0)
_SHARPENS = (0.25, 0.5, 0.8, 1.2)


def match_sharpness(
    patch: np.ndarray, reference: np.ndarray, weight: np.ndarray, *, crisper: float = 1.15, softer: float = 0.6,
) -> np.ndarray:
    """`patch` blurred or sharpened so its `sharpness_index` matches `reference` where `weight` > 0.

    A pasted mouth that is crisper than the face around it (an exemplar from a sharper moment, a soft
    video) or blurrier (motion blur) reads as pasted even when its colours are right. Picks the Gaussian
    blur, or the unsharp-mask amount, that comes closest. Blurs once the patch is `crisper` × the frame's
    index; sharpens only below `softer` × (sharpening a slightly soft resampled crop adds halos, not detail).
    """
    target = sharpness_index(reference, weight)
    have = sharpness_index(patch, weight)
    if target <= 0.0 or have <= 0.0 or softer <= have / target <= crisper:
        return patch
    if have > target:
        candidates = [cv2.GaussianBlur(patch, (0, 0), s) for s in _BLURS]
    else:
        soft = cv2.GaussianBlur(patch, (0, 0), 1.0)
        candidates = [cv2.addWeighted(patch, 1.0 + a, soft, -a, 0.0) for a in _SHARPENS]
    best, err = patch, abs(np.log(have / target))
    for c in candidates:
        e = abs(np.log(max(sharpness_index(c, weight), 1e-9) / target))
        if e < err:
            best, err = c, e
    return best
