"""A bank of the speaker's own mouth pictures, for the exemplar lip engine.

Every accepted frame leaves a crop of the lower face warped into one canonical frame (a similarity fitted
on skull-fixed landmarks, so head position, size and roll drop out), its landmarks in that frame, its yaw
and a shape descriptor. The bank keeps coverage of the mouth-shape space rather than many copies of the
common shapes: descriptors fall into bins and each bin keeps a few of its best, most recent members; old
members lose weight slowly so lighting changes get followed. Memory is bounded by the bytes of the stored
arrays. Banks save to a versioned .npz so a call can start with a full one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import BadInputError
from ..face import Face
from ..face import landmarks as lmk

FORMAT_VERSION = 1
STABLE = list(lmk.STABLE)
INNER = list(lmk.INNER_LIPS)
OUTER = list(lmk.OUTER_LIPS)
# Canonical crop, in inter-ocular units from the eye midpoint (eye line horizontal): the lower face with
# room for a dropped jaw and for the blend's feather.
CROP_X = (-1.2, 1.2)
CROP_Y = (0.35, 2.2)
# Descriptor columns.
OPENING, WIDTH, ASPECT, DARK, TEETH = range(5)
CLOSED_BELOW = 0.03  # inner-lip gap / eye distance under which a mouth counts as closed
DARK_CLOSED = 0.12  # ... and the share of dark cavity inside the outer lips it may show
OPEN_ABOVE = 0.10  # ... and over which it counts as clearly open
_OPEN_EDGES = np.array([0.015, 0.04, 0.07, 0.10, 0.14, 0.19, 0.25])
_SPREAD_EDGES = np.array([0.84, 0.92, 1.04, 1.10])  # mouth width / the speaker's closed-mouth width


@dataclass(frozen=True, eq=False)
class Exemplar:
    """One stored mouth: `crop` (BGR, canonical frame) and `landmarks` (478×2, crop pixels)."""

    id: int
    crop: np.ndarray
    landmarks: np.ndarray
    yaw: float
    descriptor: np.ndarray  # opening, width, aspect, inner darkness, teeth (see the column constants)
    quality: float


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (2×3) taking points `src` onto `dst` (closed form, no RANSAC: the points
    are a fixed, clean set)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - ms, dst - md
    var = float((a * a).sum())
    if var < 1e-9:
        return np.float32([[1, 0, 0], [0, 1, 0]])
    # dst ≈ [[p, -q], [q, p]] @ src
    p = float((a * b).sum()) / var
    q = float((a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]).sum()) / var
    rot = np.array([[p, -q], [q, p]])
    t = md - rot @ ms
    return np.hstack([rot, t[:, None]]).astype(np.float32)


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (N, 2) through a 2×3 affine map."""
    return (np.asarray(pts, np.float32) @ m[:, :2].T + m[:, 2]).astype(np.float32)


class MouthBank:
    """The speaker's mouths. `add(frame, face)` offers a tracked frame; `ready` says the bank can drive a
    mouth (open and closed shapes covered). Defaults suit a 25–30 fps webcam."""

    def __init__(
        self, *, max_bytes: int = 64 << 20, scale: int = 96, max_yaw: float = 15.0, min_iod_px: float = 40.0,
        min_sharpness: float = 8.0, relative_sharpness: float = 0.4, per_bin: int = 4, half_life: float = 1500.0, min_exemplars: int = 12,
    ):
        self.max_bytes = int(max_bytes)
        self.scale = int(scale)  # canonical pixels per inter-ocular distance
        self.max_yaw = float(max_yaw)
        self.min_iod_px = float(min_iod_px)  # smaller faces would be upscaled into blurry exemplars
        self.min_sharpness = float(min_sharpness)  # Laplacian variance floor on the canonical crop
        # ... and against the bank's median: what is sharp depends on the camera, motion blur is relative
        self.relative_sharpness = float(relative_sharpness)
        self.per_bin = int(per_bin)
        self.half_life = float(half_life)  # offered frames after which a member's quality counts half
        self.min_exemplars = int(min_exemplars)
        self.size = (int(round((CROP_X[1] - CROP_X[0]) * scale)), int(round((CROP_Y[1] - CROP_Y[0]) * scale)))
        self.template: np.ndarray | None = None  # STABLE points in crop pixels, set by the first face
        self.clock = 0  # frames offered so far: the bank's notion of time, independent of any clock
        self.changes = 0  # bumped on every add/evict, so users can cache what they derive from the bank
        self._items: list[Exemplar] = []
        self._stamp: list[int] = []
        self._bin: list[tuple[int, int, int]] = []
        self._next_id = 0
        self._cache: tuple[int, dict] | None = None

    # -- filling ---------------------------------------------------------------------------------------

    def add(self, frame: np.ndarray, face: Face | None) -> bool:
        """Offer one frame and its tracked face; True when a mouth from it was stored."""
        self.clock += 1
        if face is None or not face.usable or abs(face.yaw) > self.max_yaw:
            return False
        lm = np.asarray(face.landmarks, np.float32)[:, :2]
        if lm.shape[0] < lmk.N_LANDMARKS or not np.isfinite(lm).all() or lmk.inter_ocular(lm) < self.min_iod_px:
            return False
        if self.template is None:
            self.template = self._make_template(lm)
        m = similarity(lm[STABLE], self.template)
        canon = apply(m, lm)
        opening, width = lmk.mouth_opening(canon), lmk.mouth_width(canon)
        key = (int(np.searchsorted(_OPEN_EDGES, opening)), int(np.searchsorted(_SPREAD_EDGES, width / self.neutral_width(width))))
        crop = cv2.warpAffine(frame, m, self.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        quality = self._quality(crop, canon)
        if quality <= 0.0:
            return False
        dark, teeth = _inside_mouth(crop, canon)
        if opening < CLOSED_BELOW and dark > 1.5 * DARK_CLOSED:
            return False  # the mesh says closed, the picture shows a gap: its landmarks cannot be trusted
        aspect = float(np.linalg.norm(canon[17] - canon[0]) / max(np.linalg.norm(canon[291] - canon[61]), 1e-6))
        desc = np.float32([opening, width, aspect, dark, teeth])
        bin_key = (*key, int(teeth > 0.08))
        item = Exemplar(self._next_id, crop, canon, float(face.yaw), desc, quality)
        return self._insert(item, bin_key)

    def _make_template(self, lm: np.ndarray) -> np.ndarray:
        """The first face's STABLE points placed so the eye line is horizontal and the lower face fills
        the crop; later faces are fitted onto it."""
        left, right = lm[list(lmk.LEFT_EYE_CORNERS)].mean(axis=0), lm[list(lmk.RIGHT_EYE_CORNERS)].mean(axis=0)
        d = right - left
        iod = float(np.linalg.norm(d))
        c, s = d / iod
        rot = np.float32([[c, s], [-s, c]]) * (self.scale / iod)
        offset = np.float32([-CROP_X[0], -CROP_Y[0]]) * self.scale
        return ((lm[STABLE] - (left + right) / 2) @ rot.T + offset).astype(np.float32)

    def _quality(self, crop: np.ndarray, canon: np.ndarray) -> float:
        """Sharpness of the lips area (Laplacian variance), 0 when blurred, badly lit or off the crop."""
        x1, y1 = np.floor(canon[OUTER].min(axis=0) - 0.15 * self.scale).astype(int)
        x2, y2 = np.ceil(canon[OUTER].max(axis=0) + 0.15 * self.scale).astype(int)
        w, h = self.size
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            return 0.0
        gray = cv2.cvtColor(crop[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        mean = float(gray.mean())
        clipped = float(((gray < 6) | (gray > 249)).mean())
        if not 40.0 <= mean <= 220.0 or clipped > 0.05:
            return 0.0
        sharp = float(cv2.Laplacian(gray, cv2.CV_32F).var())
        floor = self.min_sharpness
        if len(self._items) >= 8:
            floor = max(floor, self.relative_sharpness * float(np.median([e.quality for e in self._items])))
        return sharp if sharp >= floor else 0.0

    def _effective(self, i: int) -> float:
        """Quality discounted by age: an old mouth is kept only while nothing as good and newer comes."""
        return self._items[i].quality * 0.5 ** ((self.clock - self._stamp[i]) / self.half_life)

    def _insert(self, item: Exemplar, key: tuple[int, int, int]) -> bool:
        members = [i for i, b in enumerate(self._bin) if b == key]
        if len(members) >= self.per_bin:
            worst = min(members, key=self._effective)
            if item.quality <= self._effective(worst) * 1.1:  # 10% better needed: refresh slowly
                return False
            self._remove(worst)
        cost = _nbytes(item)
        if cost > self.max_bytes:
            return False
        while self._items and self.nbytes + cost > self.max_bytes:
            victim = self._victim()
            if len(self._bin_members(victim)) == 1 and self._effective(victim) >= item.quality:
                return False  # every bin is down to one mouth, all better than this one: keep coverage
            self._remove(victim)
        self._items.append(item)
        self._stamp.append(self.clock)
        self._bin.append(key)
        self._next_id += 1
        self.changes += 1
        return True

    def _bin_members(self, i: int) -> list[int]:
        return [j for j, b in enumerate(self._bin) if b == self._bin[i]]

    def _victim(self) -> int:
        """Whom to drop when memory is full: the weakest member of the most crowded bin (coverage first)."""
        counts: dict[tuple[int, int, int], int] = {}
        for b in self._bin:
            counts[b] = counts.get(b, 0) + 1
        crowd = max(counts.values())
        return min((i for i, b in enumerate(self._bin) if counts[b] == crowd), key=self._effective)

    def _remove(self, i: int) -> None:
        for seq in (self._items, self._stamp, self._bin):
            del seq[i]
        self.changes += 1

    # -- what the engine reads -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    @property
    def exemplars(self) -> list[Exemplar]:
        return list(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes held by the stored arrays (the quantity `max_bytes` bounds)."""
        return sum(_nbytes(e) for e in self._items)

    def neutral_width(self, fallback: float = 1.0) -> float:
        """The speaker's closed-mouth width (eye-distance units): the zero point of spread and rounding."""
        closed = [e.descriptor[WIDTH] for e in self._items if is_closed(e.descriptor)]
        widths = closed or [e.descriptor[WIDTH] for e in self._items]
        return float(np.median(widths)) if widths else float(fallback)

    def counts(self) -> dict[str, int]:
        """How many closed / clearly open mouths the bank holds."""
        d = np.stack([e.descriptor for e in self._items]) if self._items else np.zeros((0, 5), np.float32)
        return {"total": len(d), "closed": int(is_closed(d).sum()), "open": int((d[:, OPENING] > OPEN_ABOVE).sum())}

    @property
    def ready(self) -> bool:
        """Enough mouths, open and closed among them, to speak with."""
        c = self.counts()
        return c["total"] >= self.min_exemplars and c["closed"] >= 2 and c["open"] >= 2

    def shape_space(self) -> dict[str, np.ndarray]:
        """Per exemplar, in the `MouthShape` scale: opening (by this speaker's wide opening), spread and
        rounding (width against the closed mouth), plus descriptors and yaws; cached until the bank changes."""
        if self._cache is not None and self._cache[0] == self.changes:
            return self._cache[1]
        desc = np.stack([e.descriptor for e in self._items]) if self._items else np.zeros((0, 5), np.float32)
        open_ref = max(float(np.percentile(desc[:, OPENING], 90)) if len(desc) else 0.0, 0.12)
        rel = desc[:, WIDTH] / max(self.neutral_width(), 1e-3)
        space = {
            "shape": np.stack([desc[:, OPENING] / open_ref, np.clip((rel - 1.0) / 0.14, 0, 1),
                               np.clip((1.0 - rel) / 0.22, 0, 1)], axis=1).astype(np.float32),
            "descriptor": desc,
            "yaw": np.float32([e.yaw for e in self._items]),
            "quality": np.float32([e.quality for e in self._items]),
        }
        self._cache = (self.changes, space)
        return space

    # -- persistence -----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to an .npz (compressed; the crops dominate)."""
        path = Path(path)
        config = {k: getattr(self, k) for k in ("max_bytes", "scale", "max_yaw", "min_iod_px", "min_sharpness",
                                                "relative_sharpness", "per_bin", "half_life", "min_exemplars")}
        w, h = self.size
        n = len(self._items)
        with path.open("wb") as fh:
            np.savez_compressed(
                fh, format_version=np.int32(FORMAT_VERSION), config=np.array(json.dumps(config)),
                template=self.template if self.template is not None else np.zeros((0, 2), np.float32),
                clock=np.int64(self.clock), next_id=np.int64(self._next_id),
                ids=np.int64([e.id for e in self._items]),
                crops=np.stack([e.crop for e in self._items]) if n else np.zeros((0, h, w, 3), np.uint8),
                landmarks=np.stack([e.landmarks for e in self._items]) if n else np.zeros((0, 478, 2), np.float32),
                yaw=np.float32([e.yaw for e in self._items]),
                descriptor=np.stack([e.descriptor for e in self._items]) if n else np.zeros((0, 5), np.float32),
                quality=np.float32([e.quality for e in self._items]),
                stamp=np.int64(self._stamp), bins=np.int32(self._bin).reshape(-1, 3),
            )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> MouthBank:
        """A bank saved by `save`; BadInputError when the file is missing, not a bank, or another version."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise BadInputError(f"mouth bank {path} not found") from None
        except Exception as exc:
            raise BadInputError(f"{path} is not a mouth bank file ({type(exc).__name__})") from None
        version = int(data["format_version"]) if "format_version" in data else None
        if version != FORMAT_VERSION:
            raise BadInputError(f"{path}: mouth bank format {version}, this livedub reads format {FORMAT_VERSION}")
        need = {"config", "template", "clock", "next_id", "ids", "crops", "landmarks", "yaw", "descriptor",
                "quality", "stamp", "bins"}
        if need - data.keys():
            raise BadInputError(f"{path}: mouth bank misses {sorted(need - data.keys())}")
        try:
            bank = cls(**json.loads(str(data["config"])))
            n = len(data["ids"])
            w, h = bank.size
            if data["crops"].shape != (n, h, w, 3) or data["landmarks"].shape != (n, lmk.N_LANDMARKS, 2):
                raise ValueError("array shapes disagree")
            bank.template = data["template"].astype(np.float32) if len(data["template"]) else None
            bank.clock, bank._next_id = int(data["clock"]), int(data["next_id"])
            for i in range(n):
                bank._items.append(Exemplar(int(data["ids"][i]), data["crops"][i].copy(), data["landmarks"][i].copy(),
                                            float(data["yaw"][i]), data["descriptor"][i].copy(), float(data["quality"][i])))
                bank._stamp.append(int(data["stamp"][i]))
                bank._bin.append(tuple(int(v) for v in data["bins"][i]))
        except (TypeError, ValueError, KeyError) as exc:
            raise BadInputError(f"{path}: damaged mouth bank ({exc})") from None
        bank.changes = 1
        return bank


def is_closed(descriptor: np.ndarray) -> np.ndarray:
    """Closed lips by both the landmarks (no gap) and the pixels (no dark cavity); works on one or many."""
    d = np.asarray(descriptor)
    return (d[..., OPENING] < CLOSED_BELOW) & (d[..., DARK] < DARK_CLOSED)


def _nbytes(e: Exemplar) -> int:
    return int(e.crop.nbytes + e.landmarks.nbytes + e.descriptor.nbytes) + 16  # + yaw, quality


def _inside_mouth(crop: np.ndarray, canon: np.ndarray) -> tuple[float, float]:
    """(dark, teeth): shares of the outer-lip area that are cavity-dark and teeth-bright, against the skin
    below the lower lip. A closed mouth shows only lips and a thin seam there (dark ≈ 0.02–0.05)."""
    poly = canon[OUTER]
    x1, y1 = np.floor(poly.min(axis=0)).astype(int)
    x2, y2 = np.ceil(poly.max(axis=0)).astype(int) + 1
    h, w = crop.shape[:2]
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0, 0.0
    mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
    cv2.fillPoly(mask, [np.round((poly - [x1, y1]) * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    if mask.sum() < 4:
        return 0.0, 0.0
    lab = cv2.cvtColor(crop[y1:y2, x1:x2], cv2.COLOR_BGR2LAB).astype(np.float32)
    chin = np.round(canon[[18, 200]].mean(axis=0)).astype(int)  # below the lower lip: skin
    cy, cx = min(max(chin[1], 0), h - 1), min(max(chin[0], 0), w - 1)
    skin = cv2.cvtColor(crop[max(cy - 3, 0) : cy + 4, max(cx - 3, 0) : cx + 4], cv2.COLOR_BGR2LAB).reshape(-1, 3)
    skin_l = float(np.median(skin[:, 0])) if len(skin) else 150.0
    inside = lab[mask > 0]
    chroma = np.hypot(inside[:, 1] - 128.0, inside[:, 2] - 128.0)
    dark = float((inside[:, 0] < 0.45 * skin_l).mean())
    teeth = float(((inside[:, 0] > 0.85 * skin_l) & (chroma < 25)).mean())
    return dark, teeth
