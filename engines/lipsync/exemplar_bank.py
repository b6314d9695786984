"""A bank of the speaker's own mouth pictures, for the exemplar lip engine.

Every accepted frame leaves a crop of the lower face warped into one canonical frame (a similarity fitted
on skull-fixed landmarks, so head position, size and roll drop out), its landmarks in that frame, its yaw,
pitch and a shape descriptor. What is accepted is judged against this speaker and this video, not against
fixed numbers: the head pose within a band around the speaker's usual pose (the running median of the
tracked yaw and pitch; people in calls often sit turned to the camera), and the sharpness against the
video's own (old film, a webcam at night and paintings are soft all through). The bank keeps coverage of the mouth-shape space rather than many copies of the
common shapes: descriptors fall into bins and each bin keeps a few of its best, most recent members; old
members lose weight slowly so lighting changes get followed. Memory is bounded by the bytes of the stored
arrays. Banks save to a versioned .npz so a call can start with a full one.
"""

from __future__ import annotations

import inspect
import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import BadInputError
from ..face import Face
from ..face import landmarks as lmk
from ..files import atomic_write

FORMAT_VERSION = 2  # 2 added pitch and the speaker's pose history
READABLE_VERSIONS = (1, 2)
POSE_WINDOW = 301  # recent faces whose median is the speaker's usual pose (and sharpness); ~10 s at 30 fps
FLAT_BELOW = 0.5  # Laplacian variance of a crop with no texture at all (a blank or frozen frame)
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
SPREAD_SPAN = 0.12  # width over the usual width at that opening that counts as fully spread ("ee")
ROUND_SPAN = 0.18  # ... and under it, fully rounded ("oo")
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
    quality: float  # sharpness of the lips area (Laplacian variance in the canonical crop)
    pitch: float = 0.0


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
    mouth (open and closed shapes covered). Defaults suit a 25–30 fps webcam.

    `yaw_band` / `pitch_band` (degrees) is how far from the speaker's usual pose a mouth is still taken
    (widened to 2.5 robust standard deviations of the speaker's own pose for lively speakers); `max_turn` bounds |yaw| itself (past it the far half of the mouth is foreshortened away). A face must
    be `relative_sharpness` × as sharp as the median of the video's recent faces (motion blur, focus hunts).
    """

    def __init__(
        self, *, max_bytes: int = 64 << 20, scale: int = 96, yaw_band: float = 15.0, pitch_band: float = 15.0,
        max_turn: float = 40.0, min_iod_px: float = 20.0, relative_sharpness: float = 0.5, per_bin: int = 4,
        half_life: float = 1500.0, min_exemplars: int = 12,
    ):
        self.max_bytes = int(max_bytes)
        self.scale = int(scale)  # canonical pixels per inter-ocular distance
        self.yaw_band = float(yaw_band)
        self.pitch_band = float(pitch_band)
        self.max_turn = float(max_turn)
        # smaller faces carry too few pixels for a mouth (the tracker's own floor is about the same); a
        # small face's crop is upscaled, but it is shown again at the scale it came from
        self.min_iod_px = float(min_iod_px)
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
        self._poses: deque[tuple[float, float]] = deque(maxlen=POSE_WINDOW)  # (yaw, pitch) of usable faces
        self._sharpness: deque[float] = deque(maxlen=POSE_WINDOW)  # of the faces measured

    # -- filling ---------------------------------------------------------------------------------------

    def add(self, frame: np.ndarray, face: Face | None) -> bool:
        """Offer one frame and its tracked face; True when a mouth from it was stored."""
        self.clock += 1
        if face is None or not face.usable:
            return False
        yaw, pitch = float(face.yaw), float(getattr(face, "pitch", 0.0))
        if not (np.isfinite(yaw) and np.isfinite(pitch)):
            return False
        self._poses.append((yaw, pitch))
        usual_yaw, usual_pitch = self.usual_pose()
        yaw_band, pitch_band = self.pose_bands()
        if abs(yaw) > self.max_turn or abs(yaw - usual_yaw) > yaw_band or abs(pitch - usual_pitch) > pitch_band:
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
        item = Exemplar(self._next_id, crop, canon, yaw, desc, quality, pitch)
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

    def usual_pose(self) -> tuple[float, float]:
        """(yaw, pitch) the speaker usually holds: the median over the recent faces offered."""
        if not self._poses:
            return 0.0, 0.0
        yaw, pitch = np.median(np.asarray(self._poses, np.float32), axis=0)
        return float(yaw), float(pitch)

    def pose_bands(self) -> tuple[float, float]:
        """(yaw, pitch) half-widths of the accepted band: the configured ones, or 2.5 robust standard
        deviations of the recent poses where this speaker moves more than that."""
        if len(self._poses) < 10:
            return self.yaw_band, self.pitch_band
        poses = np.asarray(self._poses, np.float32)
        spread = 2.5 * 1.4826 * np.median(np.abs(poses - np.median(poses, axis=0)), axis=0)
        return max(self.yaw_band, float(spread[0])), max(self.pitch_band, float(spread[1]))

    def _quality(self, crop: np.ndarray, canon: np.ndarray) -> float:
        """Sharpness of the lips area (Laplacian variance); 0 when blurred for this video, mostly clipped
        to black or white, or off the crop. Dim and soft videos are judged against themselves."""
        x1, y1 = np.floor(canon[OUTER].min(axis=0) - 0.15 * self.scale).astype(int)
        x2, y2 = np.ceil(canon[OUTER].max(axis=0) + 0.15 * self.scale).astype(int)
        w, h = self.size
        if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
            return 0.0
        gray = cv2.cvtColor(crop[y1:y2, x1:x2], cv2.COLOR_BGR2GRAY)
        if float(((gray < 4) | (gray > 251)).mean()) > 0.25:
            return 0.0  # crushed shadows or blown highlights: no lips to see
        sharp = float(cv2.Laplacian(gray, cv2.CV_32F).var())
        self._sharpness.append(sharp)
        floor = FLAT_BELOW
        if len(self._sharpness) >= 5:
            floor = max(floor, self.relative_sharpness * float(np.median(self._sharpness)))
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
        """Per exemplar, in the `MouthShape` scale: opening (1 = the widest this speaker's bank holds, so a
        wide target gets the widest real mouth), spread and rounding (width against this speaker's usual
        width at that opening: a jaw drop narrows every mouth, so only a mouth narrower than its opening
        explains is rounded), plus descriptors and poses; cached until the bank changes."""
        if self._cache is not None and self._cache[0] == self.changes:
            return self._cache[1]
        desc = np.stack([e.descriptor for e in self._items]) if self._items else np.zeros((0, 5), np.float32)
        open_ref = max(float(np.percentile(desc[:, OPENING], 95)) if len(desc) else 0.0, 0.05)
        rel = desc[:, WIDTH] / np.maximum(self._usual_width(desc), 1e-3)
        space = {
            "shape": np.stack([np.clip(desc[:, OPENING] / open_ref, 0, 1.2), np.clip((rel - 1.0) / SPREAD_SPAN, 0, 1),
                               np.clip((1.0 - rel) / ROUND_SPAN, 0, 1)], axis=1).astype(np.float32),
            "descriptor": desc,
            "yaw": np.float32([e.yaw for e in self._items]),
            "pitch": np.float32([e.pitch for e in self._items]),
            "quality": np.float32([e.quality for e in self._items]),
        }
        self._cache = (self.changes, space)
        return space

    def _usual_width(self, desc: np.ndarray) -> np.ndarray:
        """This speaker's mouth width as a function of opening (a line fitted over the bank), per row."""
        neutral = self.neutral_width()
        if len(desc) < 6 or np.ptp(desc[:, OPENING]) < 0.03:
            return np.full(len(desc), neutral, np.float32)
        slope, _ = np.polyfit(desc[:, OPENING], desc[:, WIDTH], 1)
        slope = min(float(slope), 0.0)  # opening never widens a mouth by itself; spread does
        return (neutral + slope * desc[:, OPENING]).astype(np.float32)

    # -- persistence -----------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the bank to an .npz (compressed; the crops dominate), atomically (`engines.files`): a crash
        mid-write never leaves half a bank where a good one was, and a run's `OutputPlan` commits it with
        the run's other outputs."""
        path = Path(path)
        config = {k: getattr(self, k) for k in _CONFIG}
        w, h = self.size
        with atomic_write(path) as partial, open(partial, "wb") as fh:
            self._write(fh, config, len(self._items), w, h)
        return path

    def _write(self, fh, config: dict, n: int, w: int, h: int) -> None:
        np.savez_compressed(
            fh, format_version=np.int32(FORMAT_VERSION), config=np.array(json.dumps(config)),
            template=self.template if self.template is not None else np.zeros((0, 2), np.float32),
            clock=np.int64(self.clock), next_id=np.int64(self._next_id),
            ids=np.int64([e.id for e in self._items]),
            crops=np.stack([e.crop for e in self._items]) if n else np.zeros((0, h, w, 3), np.uint8),
            landmarks=np.stack([e.landmarks for e in self._items]) if n else np.zeros((0, 478, 2), np.float32),
            yaw=np.float32([e.yaw for e in self._items]), pitch=np.float32([e.pitch for e in self._items]),
            descriptor=np.stack([e.descriptor for e in self._items]) if n else np.zeros((0, 5), np.float32),
            quality=np.float32([e.quality for e in self._items]),
            stamp=np.int64(self._stamp), bins=np.int32(self._bin).reshape(-1, 3),
            poses=np.float32(list(self._poses)).reshape(-1, 2), sharpness=np.float32(list(self._sharpness)),
        )

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
        if version not in READABLE_VERSIONS:
            raise BadInputError(f"{path}: mouth bank format {version}, this livedub reads formats "
                                f"{', '.join(map(str, READABLE_VERSIONS))}")
        need = {"config", "template", "clock", "next_id", "ids", "crops", "landmarks", "yaw", "descriptor",
                "quality", "stamp", "bins"}
        if need - data.keys():
            raise BadInputError(f"{path}: mouth bank misses {sorted(need - data.keys())}")
        try:
            # settings this livedub no longer has (format 1's absolute yaw and sharpness limits) are dropped
            bank = cls(**{k: v for k, v in json.loads(str(data["config"])).items() if k in _CONFIG})
            n = len(data["ids"])
            w, h = bank.size
            if data["crops"].shape != (n, h, w, 3) or data["landmarks"].shape != (n, lmk.N_LANDMARKS, 2):
                raise ValueError("array shapes disagree")
            bank.template = data["template"].astype(np.float32) if len(data["template"]) else None
            bank.clock, bank._next_id = int(data["clock"]), int(data["next_id"])
            pitch = data["pitch"] if "pitch" in data else np.zeros(n, np.float32)  # format 1: none measured
            bank._poses.extend((float(y), float(p)) for y, p in data.get("poses", np.zeros((0, 2)))[-POSE_WINDOW:])
            bank._sharpness.extend(float(v) for v in data.get("sharpness", np.zeros(0))[-POSE_WINDOW:])
            for i in range(n):
                bank._items.append(Exemplar(int(data["ids"][i]), data["crops"][i].copy(), data["landmarks"][i].copy(),
                                            float(data["yaw"][i]), data["descriptor"][i].copy(), float(data["quality"][i]),
                                            float(pitch[i])))
                bank._stamp.append(int(data["stamp"][i]))
                bank._bin.append(tuple(int(v) for v in data["bins"][i]))
        except (TypeError, ValueError, KeyError) as exc:
            raise BadInputError(f"{path}: damaged mouth bank ({exc})") from None
        bank.changes = 1
        return bank


_CONFIG = tuple(p for p in inspect.signature(MouthBank.__init__).parameters if p != "self")


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
