"""Wav2Lip lip-sync through ONNX Runtime: official checkpoints, reference pre-processing, blended paste-back.

Pre-processing follows the reference so official weights see what they were trained on: the tracked face box
with the reference's pads (top, bottom, left, right), a BGR crop resized to 96×96, the model input
concat(crop with rows 48:96 zeroed, crop) / 255, and the 16-column mel window starting at the frame's time.
Post-processing does not: instead of the reference's hard paste (the visible box users complain about) the
prediction goes back through a feathered mouth/jaw mask, colour matched to the skin it replaces.

Silence: the reference keeps moving the lips while nothing is said. Here a frame whose audio is below
`silence_db` over its 200 ms window and `silence_margin` s either side gets a closed mouth (the viseme
engine's weight-free warp closes the camera's own mouth, which may be talking in the source language).
The margin keeps short pauses between words with the model; those frames are drawn from a near-silent mel.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from ..audio import rms_db
from ..errors import MissingModelError
from ..face import Face
from ..models import cache_dir, sha256_file
from . import AudioTimeline
from . import composite as comp
from .backends import OrtRunner, PlanBuilder, Runner, default_providers, select_backend
from .backends import open_session as open_session  # re-exported: benchmarks open sessions the engine's way
from .mel import MEL_RATE, WINDOW_STEPS, mel_window_from, time_start
from .mouth_shape import CLOSED
from .viseme import VisemeEngine

log = logging.getLogger("livedub.lipsync")

# (fp32 ONNX, int8 target, calibration faces, calibration mels) → the int8 model (export/ calibrates it)
Quantizer = Callable[[Path, Path, np.ndarray, np.ndarray], Path]

IMG = 96
WINDOW_S = WINDOW_STEPS / MEL_RATE  # 0.2 s of audio per frame
_MIN_CROP_PX = 24


def crop_box(face: Face, frame_shape: tuple[int, ...], pads: tuple[int, int, int, int] = (0, 10, 0, 0),
             max_aspect: float = 1.35) -> tuple[int, int, int, int] | None:
    """The reference's crop: face box grown by pads (top, bottom, left, right) px, clipped to the frame.

    A box far from square (a narrow crop at the frame edge) is widened on its short side up to `max_aspect`,
    so the 96×96 resize does not squash the face more than training crops were. None when too small.
    """
    h, w = int(frame_shape[0]), int(frame_shape[1])
    top, bottom, left, right = pads
    x1, y1, x2, y2 = (float(v) for v in face.box)
    x1, x2, y1, y2 = x1 - left, x2 + right, y1 - top, y2 + bottom
    bw, bh = x2 - x1, y2 - y1
    if bw > bh * max_aspect:
        grow = (bw / max_aspect - bh) / 2
        y1, y2 = y1 - grow, y2 + grow
    elif bh > bw * max_aspect:
        grow = (bh / max_aspect - bw) / 2
        x1, x2 = x1 - grow, x2 + grow
    box = (max(int(round(x1)), 0), max(int(round(y1)), 0), min(int(round(x2)), w), min(int(round(y2)), h))
    if box[2] - box[0] < _MIN_CROP_PX or box[3] - box[1] < _MIN_CROP_PX:
        return None
    return box


def face_input(crop96: np.ndarray) -> np.ndarray:
    """(6, 96, 96) float32 model input: crop with its lower half zeroed, then the crop itself, BGR / 255."""
    masked = crop96.copy()
    masked[IMG // 2 :] = 0
    both = np.concatenate([masked, crop96], axis=2).astype(np.float32) / 255.0
    return both.transpose(2, 0, 1)


def _has_mesh(face: Face) -> bool:
    pts = np.asarray(face.landmarks)
    return pts.ndim == 2 and pts.shape[0] >= 468 and pts.shape[1] >= 2 and bool(np.any(pts))


def paste_mask(frame_shape: tuple[int, ...], face: Face, box: tuple[int, int, int, int]) -> np.ndarray:
    """Feathered lower-face mask over `box` (float32, box-sized): the mesh's mouth/jaw region when the face
    has landmarks, else an ellipse over the lower half of the crop; zero at the crop's edges either way."""
    x1, y1, x2, y2 = box
    bw, bh = x2 - x1, y2 - y1
    feather = max(2.0, 0.08 * min(bw, bh))
    if _has_mesh(face):
        mask = comp.lower_face_mask(frame_shape, face.landmarks, feather_px=feather, roi=box)
    else:
        centre = (int(round(x1 + bw / 2)), int(round(y1 + 0.70 * bh)))
        axes = (max(int(0.36 * bw), 1), max(int(0.27 * bh), 1))
        ellipse = cv2.ellipse2Poly(centre, axes, 0, 0, 360, 10).astype(np.float32)
        mask = comp.polygon_mask(frame_shape, ellipse, feather_px=feather, roi=box)
    # the model only redraws the crop's lower half (the half it saw masked): fade in below the middle
    t = np.clip((np.arange(bh, dtype=np.float32) / max(bh, 1) - 0.46) / 0.1, 0.0, 1.0)
    return mask * (t * t * (3.0 - 2.0 * t))[:, None]


def model_path(onnx_path: str | os.PathLike | None) -> Path:
    """The generator's ONNX file, or one clear line saying what to pass."""
    if onnx_path is None:
        raise MissingModelError(
            "Wav2Lip needs a model: pass --checkpoint wav2lip_gan.pth (or wav2lip.pth) from the "
            "Wav2Lip authors, or an exported --onnx file; none is bundled or downloaded."
        )
    path = Path(onnx_path)
    if not path.is_file():
        raise MissingModelError(f"{path}: no such ONNX file (export it with `livedub export`)")
    return path


class CalibratedInt8Runner:
    """A static-int8 generator calibrated on the first batch it runs (the user's own face and speech) and cached
    beside the fp32 model in `cache`; ONNX Runtime opens it on `providers` then."""

    def __init__(self, onnx_path: Path, quantizer: Quantizer, providers: Sequence, threads: int | None = None,
                 cache: Path | None = None):
        self.onnx_path, self._quantizer = onnx_path, quantizer
        self.providers, self.threads, self.cache = list(providers), threads, cache
        self._runner: OrtRunner | None = None

    @property
    def name(self) -> str:
        return self._runner.name if self._runner is not None else "ort-int8 (not calibrated yet)"

    @property
    def pads_batches(self) -> bool:
        return self._runner.pads_batches if self._runner is not None else False

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        if self._runner is None:
            self._runner = OrtRunner(self._int8_model(face, mel), self.providers, self.threads)
        return self._runner.run(mel, face)

    def _int8_model(self, faces: np.ndarray, mels: np.ndarray) -> Path:
        target = cache_dir(self.cache) / "wav2lip" / f"{sha256_file(self.onnx_path)}.int8.onnx"
        if not target.exists():
            log.info("calibrating int8 Wav2Lip on %d face crops (once per model)", len(faces))
            self._quantizer(self.onnx_path, target, faces, mels)
        return target


def open_runner(onnx_path: str | os.PathLike | None, *, checkpoint: str | os.PathLike | None = None,
                providers: Sequence | None = None, backend: str = "auto", plan_builder: PlanBuilder | None = None,
                quantizer: Quantizer | None = None, plan_path: str | os.PathLike | None = None, max_batch: int = 64,
                int8: bool = False, threads: int | None = None, cache: Path | None = None) -> Runner:
    """Where one Wav2Lip model runs (see `Wav2LipEngine` for the options). A ModelPool opens it once per
    model and shares it between sessions; a standalone engine opens its own."""
    path = model_path(onnx_path)
    if int8:
        if quantizer is None:
            raise MissingModelError("int8 Wav2Lip needs a quantizer (the ModelPool passes export's)")
        return CalibratedInt8Runner(path, quantizer, providers if providers is not None else default_providers(cache),
                                    threads, cache)
    if providers is not None:
        return OrtRunner(path, providers, threads)
    return select_backend(backend, onnx_path=path, checkpoint=checkpoint, plan_path=plan_path, threads=threads,
                          max_batch=max_batch, plan_builder=plan_builder, cache=cache)


class Wav2LipEngine:
    """`LipEngine` running an official Wav2Lip checkpoint (exported once to ONNX and cached) or an .onnx file.

    `backend` picks where the generator runs (see `backends.select_backend`: auto, tensorrt, ort-trt, ort-cuda,
    ort-cpu); explicit ORT `providers` bypass the choice. `int8=True` runs a static-int8 model calibrated on
    the first batch this engine renders (the user's own face and speech) and cached beside the fp32 model in
    `cache` (`Settings.cache`); faster on CPUs, slightly less exact. A given `runner` (a ModelPool's client of
    the model shared by every session) replaces all of these; the per-session drawing state stays here.
    """

    name = "wav2lip"

    def __init__(self, onnx_path: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None,
                 providers: Sequence | None = None, backend: str = "auto",
                 plan_builder: PlanBuilder | None = None, quantizer: Quantizer | None = None,
                 plan_path: str | os.PathLike | None = None, max_batch: int = 64, batch_size: int = 8,
                 pads: tuple[int, int, int, int] = (0, 10, 0, 0), int8: bool = False, colour_match: bool = True,
                 silence_db: float = -50.0, silence_margin: float = 0.2, threads: int | None = None,
                 cache: Path | None = None, runner: Runner | None = None):
        self.batch_size = max(1, int(batch_size))
        self.pads = tuple(int(p) for p in pads)
        self.colour_match = colour_match
        self.silence_db = float(silence_db)
        self.silence_margin = max(float(silence_margin), 0.0)
        self._closer = VisemeEngine()  # closes the mouth in silence, no weights needed
        self.int8 = int8
        if runner is None:  # this engine's own generator (a ModelPool passes one runner shared by sessions)
            runner = open_runner(onnx_path, checkpoint=checkpoint, providers=providers, backend=backend,
                                 plan_builder=plan_builder, quantizer=quantizer, plan_path=plan_path,
                                 max_batch=max(int(max_batch), self.batch_size), int8=int8, threads=threads,
                                 cache=cache)
        self.onnx_path = Path(onnx_path) if onnx_path is not None else None
        self._runner: Runner = runner
        self.providers = list(getattr(runner, "providers", []))

    @property
    def backend(self) -> str:
        """Where the generator runs (tensorrt, ort-trt, ort-cuda, ort-cpu); int8 reports once opened."""
        return self._runner.name

    def close(self) -> None:
        """Release the runner: a shared one's client drops this session's waiting frames (others go on)."""
        closer = getattr(self._runner, "close", None)
        if callable(closer):
            closer()

    # -- LipEngine ---------------------------------------------------------------------------------

    def render(self, frames: Sequence[np.ndarray], faces: Sequence[Face | None], times: Sequence[float],
               audio: AudioTimeline) -> list[np.ndarray]:
        """Frames with the mouth redrawn for the audio at their times; untouched without a face or speech."""
        out = [np.asarray(f) for f in frames]
        jobs = []  # (frame index, box, 96×96 crop, mel window)
        for i, (frame, face, t) in enumerate(zip(out, faces, times, strict=True)):
            if self._silent(face, float(t), audio):
                out[i] = self._closer.render_shape(frame, face, CLOSED)
                continue
            job = self._prepare(frame, face, float(t), audio)
            if job is not None:
                jobs.append((i, *job))
        if not jobs:
            return out
        faces_in = np.stack([face_input(crop) for _, _, crop, _ in jobs])
        mels_in = np.stack([mel[None] for _, _, _, mel in jobs])
        preds = self._infer(mels_in, faces_in)
        for (i, box, _, _), pred in zip(jobs, preds, strict=True):
            out[i] = self._paste(out[i], faces[i], box, pred)
        return out

    # -- steps -------------------------------------------------------------------------------------

    def _silent(self, face: Face | None, t: float, audio: AudioTimeline) -> bool:
        """Nothing said around t (and a face to close the mouth of)."""
        if face is None or not face.usable:
            return False
        span = audio.window(t - self.silence_margin, t + WINDOW_S + self.silence_margin)
        return rms_db(span) < self.silence_db

    def _prepare(self, frame: np.ndarray, face: Face | None, t: float, audio: AudioTimeline):
        if face is None or not face.usable or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            return None
        box = crop_box(face, frame.shape, self.pads)
        if box is None:
            return None
        x1, y1, x2, y2 = box
        crop = cv2.resize(frame[y1:y2, x1:x2], (IMG, IMG), interpolation=cv2.INTER_AREA
                          if (x2 - x1) > IMG else cv2.INTER_LINEAR)
        return box, crop, mel_window_from(audio, time_start(t))

    def _infer(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        outs = []
        for a in range(0, len(faces), self.batch_size):
            m, f = mels[a : a + self.batch_size], faces[a : a + self.batch_size]
            n = len(f)
            if self._runner.pads_batches and n < self.batch_size:
                m = np.concatenate([m, np.repeat(m[-1:], self.batch_size - n, axis=0)])
                f = np.concatenate([f, np.repeat(f[-1:], self.batch_size - n, axis=0)])
            outs.append(self._runner.run(m, f)[:n])
        return np.concatenate(outs).astype(np.float32, copy=False)

    def _paste(self, frame: np.ndarray, face: Face, box: tuple[int, int, int, int], pred: np.ndarray):
        x1, y1, x2, y2 = box
        patch = np.clip(pred.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)  # BGR 96×96
        patch = cv2.resize(patch, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        mask = paste_mask(frame.shape, face, box)
        if self.colour_match:
            patch = comp.match_colour(patch, frame[y1:y2, x1:x2], mask)
        return comp.feathered_paste(frame.copy(), patch, mask, box)
