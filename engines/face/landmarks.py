"""Named index sets into the mediapipe face mesh (478 refined points) and simple mouth measures.

Image-left/right is how the face appears on screen: the subject's right eye is on the image's left.
Polygons are ordered so they can be drawn or filled directly (cv2.fillPoly).
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 478

# Lips, each a closed loop starting at the image-left corner, upper lip first.
OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
MOUTH_CORNERS = (61, 291)  # outer corners, image-left then image-right
INNER_MOUTH_CORNERS = (78, 308)
UPPER_LIP_INNER = 13  # middle of the upper lip's inner edge
LOWER_LIP_INNER = 14
UPPER_LIP_TOP = 0
LOWER_LIP_BOTTOM = 17

# Face outline, clockwise on screen from the top of the forehead.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)
# Lower part of the outline, ear to ear through the chin (image-left first).
JAW_LINE = (
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454,
)
CHIN = 152
FOREHEAD = 10  # top of the face oval, on the skull's midline
# Region that moves when speaking: the jaw line closed by a line under the eyes across the nose.
LOWER_FACE = JAW_LINE + (345, 346, 347, 348, 349, 350, 277, 195, 47, 121, 120, 119, 118, 117, 116)

NOSE_BRIDGE = (168, 6, 197, 195, 5, 4)
NOSE_TIP = 1
NOSE_BOTTOM = 2
NOSTRILS = (98, 327)  # image-left, image-right
NOSE = NOSE_BRIDGE + (NOSE_TIP, NOSE_BOTTOM) + NOSTRILS

# Eye contours; "left"/"right" are image sides.
LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
RIGHT_EYE = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
LEFT_EYE_CORNERS = (33, 133)  # outer, inner
RIGHT_EYE_CORNERS = (263, 362)  # outer, inner
LEFT_IRIS = (468, 469, 470, 471, 472)  # centre first; refined mesh only
RIGHT_IRIS = (473, 474, 475, 476, 477)

# Face edges at ear level (for yaw and face width).
CHEEK_LEFT = 234
CHEEK_RIGHT = 454

# Points that move with the skull, not with speech or expression: for aligning frames and crops.
STABLE = (10, 151, 9, 168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263, 127, 356, 234, 454)


def _as_points(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[0] < N_LANDMARKS - 10 or pts.shape[1] < 2:
        raise ValueError(f"expected (478, 2+) face mesh landmarks, got shape {pts.shape}")
    return pts[:, :2]


def inter_ocular(landmarks: np.ndarray) -> float:
    """Distance between the two eye centres in pixels: a face-size unit that ignores the mouth and jaw."""
    pts = _as_points(landmarks)
    left = pts[list(LEFT_EYE_CORNERS)].mean(axis=0)
    right = pts[list(RIGHT_EYE_CORNERS)].mean(axis=0)
    return float(np.linalg.norm(right - left))


def mouth_opening(landmarks: np.ndarray) -> float:
    """Vertical gap between the inner lips divided by the inter-ocular distance (0 = closed, ~0.5 = wide)."""
    pts = _as_points(landmarks)
    iod = inter_ocular(pts)
    if not np.isfinite(iod) or iod < 1e-3:
        return 0.0
    # Average three columns of the inner lips (middle and both sides) so one noisy point matters less.
    gaps = [np.linalg.norm(pts[a] - pts[b]) for a, b in ((13, 14), (82, 87), (312, 317))]
    return float(np.mean(gaps) / iod)


def mouth_width(landmarks: np.ndarray) -> float:
    """Distance between the outer mouth corners divided by the inter-ocular distance (~0.8 at rest)."""
    pts = _as_points(landmarks)
    iod = inter_ocular(pts)
    if not np.isfinite(iod) or iod < 1e-3:
        return 0.0
    return float(np.linalg.norm(pts[MOUTH_CORNERS[1]] - pts[MOUTH_CORNERS[0]]) / iod)
