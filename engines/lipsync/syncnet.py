"""LSE-D and LSE-C: the SyncNet lip-sync distance and confidence, from the user's `syncnet_v2.model`.

The lip-sync numbers papers report since Wav2Lip come from one network (SyncNet, Chung & Zisserman 2016,
published as joonson/syncnet_python) and one recipe (its evaluation, which Wav2Lip's scripts wrap). What
follows are the facts of that model and recipe, read from the public repository (none of its code is used):

- The network: an audio tower of 2-D convolutions over 13×20 MFCC windows, a lip tower of 3-D convolutions
  over five 224×224 colour frames, each tower followed by a 512 → 512 → 1024 head. State-dict names are
  `netcnnaud.*`, `netfcaud.*`, `netcnnlip.*`, `netfclip.*`; the public file predates BatchNorm's
  `num_batches_tracked`, so those buffers are absent from it.
- Video at 25 fps. Each frame is cropped around the face: centre of the face box, half-size s = half the
  box's larger side (centre and s median-filtered over 13 frames); rows from 1 s above the centre to 1.8 s
  below it, columns 1.4 s either side, the picture padded with grey 110 where the crop leaves it; resized
  to 224×224 and fed as BGR values 0–255, unscaled.
- Audio at 16 kHz, as int16 values, into 13 MFCCs with python_speech_features' defaults: 25 ms frames
  every 10 ms with no window function, pre-emphasis 0.97, 512-point FFT power / 512, 26 mel filters
  (0–8 kHz, bins floored), log, orthonormal DCT-II, lifter 22, and the first coefficient replaced by the
  log frame energy. That is 4 MFCC columns per video frame: window i (video frames i..i+4) pairs with
  columns 4i..4i+19.
- min(frames, samples // 640) − 5 windows. For each video window i and lag k in −15..15, the Euclidean
  distance between its embedding and audio window i+k's (a zero vector past either end), averaged over i.
  LSE-D is the smallest mean distance, LSE-C the median over the lags minus LSE-D; the AV offset is minus
  the lag of that minimum, so it is > 0 when the audio leads the video (the sign `sync_metric` uses).

Two deliberate differences: the face box comes from the mediapipe mesh (the reference uses an S3FD
detector), and the 13-frame median filter repeats the first and last boxes at the ends where the
reference pads with zeros (which pulls its first and last six crops towards the picture's corner).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..audio import SAMPLE_RATE
from ..errors import BadInputError, MissingModelError
from ..files import check_input_file

FPS = 25  # the rate SyncNet was trained at: 640 audio samples per video frame
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
WINDOW_FRAMES = 5  # video frames per lip window (200 ms)
MFCC_PER_FRAME = 4  # 10 ms MFCC columns per 40 ms video frame
MFCC_WINDOW = 20  # MFCC columns per audio window (200 ms)
MAX_LAG = 15  # frames searched either way (the reference's vshift)
CROP_SIZE = 224
CROP_SCALE = 0.4  # how far the crop reaches past the face box, in box half-sizes
CROP_FILL = 110  # grey where the crop leaves the picture
BOX_MEDIAN = 13  # frames the crop centre and size are median-filtered over
# python_speech_features' MFCC defaults, at 16 kHz
MFCC_FRAME, MFCC_HOP, MFCC_FFT = 400, 160, 512
MFCC_FILTERS, MFCC_COEFFS, MFCC_LIFTER, PREEMPHASIS = 26, 13, 22, 0.97
PAIR_EPS = 1e-6  # added to the difference before its norm, as torch's pairwise_distance does
EXPECTED = "SyncNet's syncnet_v2.model (joonson/syncnet_python)"


class SyncNetUnavailable(MissingModelError):
    """A SyncNet checkpoint was passed but cannot be used to compute LSE-D / LSE-C."""


# -- the network ---------------------------------------------------------------------------------------


def _conv_bn_relu(conv: nn.Module, channels: int, norm: type[nn.Module]) -> list[nn.Module]:
    return [conv, norm(channels), nn.ReLU()]


def _audio_tower() -> nn.Sequential:
    """13×20 MFCCs → 512 features. Pools and ReLUs hold state-dict indices too, so their order is the layout."""
    def block(cin: int, cout: int, kernel: int | tuple[int, int] = 3, padding: int = 1) -> list[nn.Module]:
        return _conv_bn_relu(nn.Conv2d(cin, cout, kernel, padding=padding), cout, nn.BatchNorm2d)

    return nn.Sequential(
        *block(1, 64), nn.MaxPool2d(1, 1),
        *block(64, 192), nn.MaxPool2d(3, (1, 2)),
        *block(192, 384), *block(384, 256), *block(256, 256), nn.MaxPool2d(3, 2),
        *block(256, 512, (5, 4), padding=0),
    )


def _lip_tower() -> nn.Sequential:
    """Five 224×224 BGR frames → 512 features (one output step per five input frames)."""
    def block(cin: int, cout: int, kernel: tuple[int, int, int], stride: tuple[int, int, int] = (1, 1, 1),
              padding: tuple[int, int, int] = (0, 1, 1)) -> list[nn.Module]:
        return _conv_bn_relu(nn.Conv3d(cin, cout, kernel, stride, padding), cout, nn.BatchNorm3d)

    return nn.Sequential(
        *block(3, 96, (5, 7, 7), (1, 2, 2), (0, 0, 0)), nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
        *block(96, 256, (1, 5, 5), (1, 2, 2)), nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        *block(256, 256, (1, 3, 3)), *block(256, 256, (1, 3, 3)), *block(256, 256, (1, 3, 3)),
        nn.MaxPool3d((1, 3, 3), (1, 2, 2)),
        *block(256, 512, (1, 6, 6), padding=(0, 0, 0)),
    )


def _head() -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, 1024))


class SyncNetModel(nn.Module):
    """The two towers and heads, named as the public checkpoint names them."""

    def __init__(self) -> None:
        super().__init__()
        self.netcnnaud = _audio_tower()
        self.netfcaud = _head()
        self.netfclip = _head()
        self.netcnnlip = _lip_tower()

    def audio_embedding(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) → (N, 1024)."""
        return self.netfcaud(self.netcnnaud(mfcc_windows).flatten(1))

    def lip_embedding(self, frames: torch.Tensor) -> torch.Tensor:
        """(1, 3, T, 224, 224) consecutive frames → (T − 4, 1024): one embedding per five-frame window.

        The first convolution spans five frames and every later layer one, so running the tower over a
        run of frames gives each window's features exactly as a batch of separate windows would.
        """
        features = self.netcnnlip(frames)  # (1, 512, T - 4, 1, 1)
        return self.netfclip(features[0, :, :, 0, 0].T)


def load_syncnet(path: str | os.PathLike) -> SyncNet:
    """The SyncNet in a `syncnet_v2.model` file; anything else is refused with the reason."""
    path = Path(path)
    check_input_file(path, f"SyncNet checkpoint {path}", EXPECTED, error=SyncNetUnavailable)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors of many kinds (their text is long): not a checkpoint
        raise SyncNetUnavailable(f"{path}: cannot be read as a PyTorch checkpoint of weights "
                                 f"({type(exc).__name__}); LSE-D/LSE-C need {EXPECTED}") from None
    model = SyncNetModel()
    model.load_state_dict(_checked_state(path, state, model.state_dict()), strict=False)
    return SyncNet(model.eval())


def _checked_state(path: Path, state: object, expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors when they are exactly SyncNet's (names, shapes, finite values)."""
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SyncNetUnavailable(f"{path}: not a SyncNet checkpoint (no table of weights); pass {EXPECTED}")
    state = {_strip_prefix(str(k)): v for k, v in state.items()}
    needed = [k for k in expected if not k.endswith("num_batches_tracked")]
    missing = [k for k in needed if k not in state]
    unknown = [k for k in state if k not in expected]
    if missing or unknown:
        found = f"{len(needed) - len(missing)} of SyncNet's {len(needed)} weights and {len(unknown)} unknown"
        example = f"it lacks {missing[0]}" if missing else f"it has {unknown[0]}"
        raise SyncNetUnavailable(f"{path}: not a SyncNet checkpoint ({found}; e.g. {example}); pass {EXPECTED}")
    for key in needed:
        if tuple(state[key].shape) != tuple(expected[key].shape):
            raise SyncNetUnavailable(f"{path}: {key} has shape {tuple(state[key].shape)}, SyncNet's is "
                                     f"{tuple(expected[key].shape)}; pass {EXPECTED}")
        if state[key].is_floating_point() and not bool(torch.isfinite(state[key]).all()):
            raise SyncNetUnavailable(f"{path}: {key} holds NaN or infinite values; the checkpoint is damaged")
    return state


def _strip_prefix(key: str) -> str:
    """Names saved from a wrapper (DataParallel's `module.`, the trainer's `__S__.`) → the model's own."""
    for prefix in ("module.", "__S__."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    return key


# -- inputs: MFCCs and face crops -----------------------------------------------------------------------


def _mel_filterbank() -> np.ndarray:
    """(26, 257) triangular filters spaced evenly on the mel scale from 0 Hz to Nyquist, FFT bins floored."""
    top = 2595.0 * np.log10(1.0 + (SAMPLE_RATE / 2) / 700.0)
    hz = 700.0 * (10.0 ** (np.linspace(0.0, top, MFCC_FILTERS + 2) / 2595.0) - 1.0)
    bins = np.floor((MFCC_FFT + 1) * hz / SAMPLE_RATE).astype(int)
    bank = np.zeros((MFCC_FILTERS, MFCC_FFT // 2 + 1))
    for j, (lo, mid, hi) in enumerate(zip(bins[:-2], bins[1:-1], bins[2:], strict=True)):
        if mid > lo:
            bank[j, lo:mid] = (np.arange(lo, mid) - lo) / (mid - lo)
        if hi > mid:
            bank[j, mid:hi] = (hi - np.arange(mid, hi)) / (hi - mid)
    return bank


def mfcc(pcm: np.ndarray, block: int = 4096) -> np.ndarray:
    """(13, columns) MFCCs of 16 kHz mono float PCM, one column per 10 ms, as SyncNet was trained on.

    The PCM is scaled to the int16 values the reference reads from a WAV (the scale moves the log energy,
    so it matters); frames are computed `block` at a time so long audio never needs a frames × 400 array.
    """
    x = np.clip(np.round(np.asarray(pcm, np.float64).reshape(-1) * 32768.0), -32768, 32767)
    if len(x):
        x = np.append(x[:1], x[1:] - PREEMPHASIS * x[:-1])
    count = 1 if len(x) <= MFCC_FRAME else 1 + int(np.ceil((len(x) - MFCC_FRAME) / MFCC_HOP))
    x = np.pad(x, (0, (count - 1) * MFCC_HOP + MFCC_FRAME - len(x)))
    bank, tiny = _mel_filterbank(), np.finfo(float).eps
    lift = 1.0 + (MFCC_LIFTER / 2.0) * np.sin(np.pi * np.arange(MFCC_COEFFS) / MFCC_LIFTER)
    out = np.empty((MFCC_COEFFS, count), np.float32)
    from scipy.fft import dct

    for start in range(0, count, block):
        starts = MFCC_HOP * np.arange(start, min(start + block, count))
        frames = x[starts[:, None] + np.arange(MFCC_FRAME)[None, :]]
        power = np.abs(np.fft.rfft(frames, MFCC_FFT)) ** 2 / MFCC_FFT
        energy = np.where(power.sum(1) == 0, tiny, power.sum(1))
        bands = power @ bank.T
        cepstra = dct(np.log(np.where(bands == 0, tiny, bands)), type=2, axis=1, norm="ortho")[:, :MFCC_COEFFS]
        cepstra *= lift
        cepstra[:, 0] = np.log(energy)
        out[:, start:start + len(starts)] = cepstra.T
    return out


def crop_track(boxes: np.ndarray) -> np.ndarray:
    """(frames, 3) crop centre x, centre y and half-size from face boxes (x1, y1, x2, y2 per frame).

    Rows that are nan (no face in that frame) are interpolated from the frames around them; then each
    column is median-filtered over BOX_MEDIAN frames, so the crop does not jitter with the detector.
    """
    from scipy.ndimage import median_filter

    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    track = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2,
                      np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) / 2], axis=1)
    ok = np.isfinite(track).all(axis=1)
    if not ok.any():
        raise BadInputError("no frame has a face to crop for SyncNet")
    frames = np.arange(len(track))
    for c in range(3):
        track[:, c] = np.interp(frames, frames[ok], track[ok, c])
    return median_filter(track, size=(BOX_MEDIAN, 1), mode="nearest")


def face_crop(frame_bgr: np.ndarray, centre_x: float, centre_y: float, half: float) -> np.ndarray:
    """The 224×224 crop SyncNet sees for one frame (module docstring), grey where it leaves the picture."""
    import cv2

    half = max(float(half), 1.0)
    pad = int(half * (1 + 2 * CROP_SCALE))  # the reference pads the picture by this, then slices: same ints
    y0 = int(centre_y + pad - half) - pad
    y1 = int(centre_y + pad + half * (1 + 2 * CROP_SCALE)) - pad
    x0 = int(centre_x + pad - half * (1 + CROP_SCALE)) - pad
    x1 = int(centre_x + pad + half * (1 + CROP_SCALE)) - pad
    h, w = frame_bgr.shape[:2]
    crop = np.full((max(y1 - y0, 1), max(x1 - x0, 1), 3), CROP_FILL, np.uint8)
    sy0, sy1, sx0, sx1 = max(y0, 0), min(y1, h), max(x0, 0), min(x1, w)
    if sy1 > sy0 and sx1 > sx0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame_bgr[sy0:sy1, sx0:sx1]
    return cv2.resize(crop, (CROP_SIZE, CROP_SIZE))


# -- scores ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SyncNetScore:
    """LSE-D / LSE-C of one clip and what they were read from."""

    lse_d: float  # smallest mean embedding distance over the lags: lower is better synced
    lse_c: float  # median mean distance minus lse_d: higher means a clearer, more confident sync
    offset_frames: int  # > 0: the audio leads the video by this many 25 fps frames
    mean_distances: np.ndarray  # per lag -MAX_LAG..MAX_LAG
    windows: int


def lag_distances(video: np.ndarray, audio: np.ndarray, max_lag: int = MAX_LAG) -> np.ndarray:
    """(windows, 2·max_lag + 1): distance from video window i to audio window i + k, k = -max_lag..max_lag.

    Audio windows past either end count as zero vectors, as in the reference.
    """
    video, audio = np.asarray(video, np.float64), np.asarray(audio, np.float64)
    n = len(video)
    padded = np.concatenate([np.zeros((max_lag, audio.shape[1])), audio[:n], np.zeros((max_lag, audio.shape[1]))])
    return np.stack([np.linalg.norm(video - padded[j:j + n] + PAIR_EPS, axis=1) for j in range(2 * max_lag + 1)],
                    axis=1)


def score_embeddings(video: np.ndarray, audio: np.ndarray, max_lag: int = MAX_LAG) -> SyncNetScore:
    """LSE-D, LSE-C and the AV offset from per-window lip and audio embeddings (the same number of each)."""
    if len(video) == 0 or len(video) != len(audio):
        raise ValueError(f"need as many audio as video windows, at least one ({len(video)} and {len(audio)})")
    mean = lag_distances(video, audio, max_lag).mean(axis=0)
    best = int(np.argmin(mean))
    lse_d = float(mean[best])
    return SyncNetScore(lse_d=lse_d, lse_c=float(np.median(mean)) - lse_d, offset_frames=max_lag - best,
                        mean_distances=mean, windows=len(video))


class SyncNet:
    """A loaded SyncNet: embeddings for face crops and speech, and the scores they give."""

    def __init__(self, model: SyncNetModel, chunk: int = 16):
        self.model = model
        self.chunk = chunk  # windows per forward pass: bounds memory (~100 MB at 16) whatever the clip length

    @torch.inference_mode()
    def lip_embeddings(self, crops: Iterable[np.ndarray]) -> np.ndarray:
        """(crops − 4, 1024) for consecutive 224×224 BGR crops, streamed `chunk` windows at a time."""
        out: list[np.ndarray] = []
        run: list[np.ndarray] = []
        for crop in crops:
            run.append(crop)
            if len(run) == self.chunk + WINDOW_FRAMES - 1:
                out.append(self._lips(run))
                run = run[-(WINDOW_FRAMES - 1):]  # the next windows start inside this run
        if len(run) >= WINDOW_FRAMES:
            out.append(self._lips(run))
        return np.concatenate(out) if out else np.zeros((0, 1024), np.float32)

    def _lips(self, run: list[np.ndarray]) -> np.ndarray:
        frames = torch.from_numpy(np.stack(run)).float().permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, T, H, W)
        return self.model.lip_embedding(frames).numpy()

    @torch.inference_mode()
    def audio_embeddings(self, coefficients: np.ndarray, windows: int) -> np.ndarray:
        """(windows, 1024): window i reads MFCC columns 4i..4i+19 (the audio of video frames i..i+4)."""
        starts = MFCC_PER_FRAME * np.arange(windows)
        if windows and starts[-1] + MFCC_WINDOW > coefficients.shape[1]:
            raise ValueError(f"{coefficients.shape[1]} MFCC columns cannot fill {windows} windows")
        out = []
        for i in range(0, windows, 4 * self.chunk):
            batch = np.stack([coefficients[:, s:s + MFCC_WINDOW] for s in starts[i:i + 4 * self.chunk]])
            out.append(self.model.audio_embedding(torch.from_numpy(batch).float().unsqueeze(1)).numpy())
        return np.concatenate(out) if out else np.zeros((0, 1024), np.float32)

    def score(self, frames: Iterable[np.ndarray], boxes: np.ndarray, pcm: np.ndarray) -> SyncNetScore:
        """Score 25 fps BGR `frames` (one face box per frame, nan where none) against `pcm` (16 kHz, starting
        with the first frame). The number of windows follows the reference: min(frames, samples // 640) − 5."""
        track = crop_track(boxes)
        length = min(len(track), len(pcm) // SAMPLES_PER_FRAME)
        windows = length - WINDOW_FRAMES
        if windows < 1:
            raise BadInputError(f"SyncNet needs at least {WINDOW_FRAMES + 1} frames ({(WINDOW_FRAMES + 1) / FPS:.2f} s) "
                                f"of video with audio; this clip has {length}")
        crops = (face_crop(frame, *track[i]) for i, frame in zip(range(windows + WINDOW_FRAMES - 1), frames,
                                                                   strict=False))
        lips = self.lip_embeddings(crops)[:windows]
        if len(lips) < windows:
            raise BadInputError(f"the video ended after {len(lips) + WINDOW_FRAMES - 1} frames; SyncNet needed "
                                f"{windows + WINDOW_FRAMES - 1}")
        speech = self.audio_embeddings(mfcc(pcm[:length * SAMPLES_PER_FRAME]), windows)
        return score_embeddings(lips, speech)


def frames_at_25fps(times: np.ndarray) -> np.ndarray:
    """For 25 fps output frames from the first decoded frame on, the index of the decoded frame nearest each.

    This is what converting the video to 25 fps (as the reference does first) keeps: frames repeated when
    the video is slower, dropped when it is faster.
    """
    t = np.asarray(times, np.float64)
    count = int(np.floor((t[-1] - t[0]) * FPS + 0.5)) + 1
    wanted = t[0] + np.arange(count) / FPS
    after = np.clip(np.searchsorted(t, wanted), 1, len(t) - 1) if len(t) > 1 else np.zeros(count, int)
    if len(t) == 1:
        return after
    before = after - 1
    return np.where(np.abs(t[after] - wanted) < np.abs(wanted - t[before]), after, before)


def pick(frames: Iterable[np.ndarray], indices: np.ndarray) -> Iterator[np.ndarray]:
    """The frames at non-decreasing `indices` of a stream, repeating or skipping as the indices do."""
    wanted = iter(np.asarray(indices, int).tolist())
    target = next(wanted, None)
    for i, frame in enumerate(frames):
        while target == i:
            yield frame
            target = next(wanted, None)
        if target is None:
            return
