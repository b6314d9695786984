"""A weight-free lip-sync measure: does the mouth open when the speech is loud, and with what lag?

Per video frame we measure the mouth opening (face mesh, inner-lip gap / eye distance) and the speech
envelope (speech-band energy around the frame's time, in dB). Both are z-normalised and cross-correlated
over ±`max_offset` frames. The lag with the highest correlation is the A/V offset; the height of the peak
says how well the mouth follows the speech at all (a still face scores ~0).

Offset convention: **`offset_frames > 0` means the audio leads the video** — the sound is heard
`offset_frames` frames before the mouth movement that matches it (mouth[i + k] ≈ envelope[i]). To fix a
positive offset, delay the audio by `offset_seconds`. Zero is perfect sync for a pure speech-energy model;
real talkers open the mouth a little before the sound, so natural video often reads slightly negative.

LSE-D / LSE-C (the SyncNet distance and confidence the Wav2Lip paper reports) need SyncNet's weights, which
cannot be had offline: they are computed (`syncnet.py`) when the user passes `syncnet_v2.model`; without one
the report says so in `lse_note`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import BadInputError

if TYPE_CHECKING:
    from .syncnet import SyncNet

SPEECH_BAND_HZ = (300.0, 3400.0)  # where voiced speech energy lives; drops rumble and hiss
MIN_PAIRS = 8
DEFAULT_MAX_OFFSET = 15  # frames searched either way unless asked (fewer when the clip is shorter)
# Mouth-opening spread (eye-distance units) below which the mouth counts as still: a still face measures
# ~0.002 of landmark noise, a talking mouth 0.05+. Without this floor z-scoring would blow the noise up
# to unit variance and random lags would correlate at ~0.3.
MIN_MOUTH_MOTION = 0.01  # fewer overlapping frames than this and a lag gets no correlation
NO_CHECKPOINT = "LSE-D/LSE-C not computed: no SyncNet checkpoint given"

@dataclass(frozen=True, eq=False)
class SyncReport:
    """How well mouth motion follows speech energy in one clip (see the module docstring for signs)."""

    offset_frames: int  # > 0: audio leads video by this many frames
    peak_correlation: float  # Pearson r at that offset, in [-1, 1]; nan if nothing to compare
    frames: int
    face_frames: int  # frames with a usable face (the others are nan in `mouth_opening`)
    mouth_opening: np.ndarray  # per frame, nan where no usable face
    envelope: np.ndarray  # per frame, speech-band energy in dB
    fps: float = 25.0
    correlations: np.ndarray = field(default_factory=lambda: np.zeros(0))  # r per lag -max..+max
    confidence: float = float("nan")  # peak minus the median r over all lags (SyncNet-style)
    mouth_motion: float = float("nan")  # std of the mouth opening; below MIN_MOUTH_MOTION = still mouth
    lse_d: float | None = None  # SyncNet distance at its best offset (lower: better in sync)
    lse_c: float | None = None  # SyncNet confidence (higher: clearer sync)
    lse_offset: int | None = None  # SyncNet's own AV offset in 25 fps frames, same sign as offset_frames
    lse_note: str = NO_CHECKPOINT
    warning: str = ""  # e.g. where a damaged file stopped decoding (what decoded before it was analysed)

    @property
    def offset_seconds(self) -> float:
        return self.offset_frames / self.fps if self.fps > 0 else 0.0

    @property
    def max_offset(self) -> int:
        return (len(self.correlations) - 1) // 2


def _zscore(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over finite values; nan stays nan; a constant signal becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    out = np.full_like(x, np.nan)
    if ok.sum() == 0:
        return out
    std = float(x[ok].std())
    out[ok] = (x[ok] - x[ok].mean()) / std if std > 1e-9 else 0.0
    return out


def lagged_correlations(mouth: np.ndarray, envelope: np.ndarray, max_offset: int) -> np.ndarray:
    """Pearson r between mouth[i + k] and envelope[i] for k = -max_offset..max_offset (nan-aware)."""
    m, e = _zscore(mouth), _zscore(envelope)
    n = min(len(m), len(e))
    m, e = m[:n], e[:n]
    out = np.full(2 * max_offset + 1, np.nan)
    for j, k in enumerate(range(-max_offset, max_offset + 1)):
        if abs(k) >= n:
            continue  # no frames overlap at this lag
        a = m[max(k, 0) : n + min(k, 0)]
        b = e[max(-k, 0) : n - max(k, 0)]
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < MIN_PAIRS:
            continue
        a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
        denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
        out[j] = float((a * b).sum() / denom) if denom > 1e-12 else 0.0
    return out


def sync_from_arrays(
    mouth_opening: np.ndarray, envelope: np.ndarray, max_offset: int = 15, *, fps: float = 25.0,
    min_motion: float = MIN_MOUTH_MOTION,
) -> SyncReport:
    """The sync report for per-frame mouth openings (nan = no face) and a per-frame speech envelope.

    A mouth that moves less than `min_motion` (std, in `mouth_opening` units) correlates 0 at every lag.
    """
    mouth = np.asarray(mouth_opening, dtype=np.float64).reshape(-1)
    env = np.asarray(envelope, dtype=np.float64).reshape(-1)
    max_offset = max(0, int(max_offset))
    motion = float(np.nanstd(mouth)) if np.isfinite(mouth).any() else float("nan")
    corr = lagged_correlations(mouth, env, max_offset)
    if motion < min_motion:
        corr = np.where(np.isnan(corr), np.nan, 0.0)
    if np.all(np.isnan(corr)):
        offset, peak, conf = 0, float("nan"), float("nan")
    else:
        j = int(np.nanargmax(corr))
        # Among equal peaks (e.g. a constant mouth gives all zeros) prefer the smallest lag.
        ties = np.flatnonzero(np.isclose(corr, corr[j], atol=1e-9))
        j = int(ties[np.argmin(np.abs(ties - max_offset))])
        offset, peak = j - max_offset, float(corr[j])
        conf = peak - float(np.nanmedian(corr))
    return SyncReport(
        offset_frames=offset, peak_correlation=peak, frames=len(mouth),
        face_frames=int(np.isfinite(mouth).sum()), mouth_opening=mouth, envelope=env, fps=float(fps),
        correlations=corr, confidence=conf, mouth_motion=motion,
    )


def speech_envelope(pcm: np.ndarray, sample_rate: int, times: np.ndarray, fps: float) -> np.ndarray:
    """Speech-band energy in dB in a one-frame window centred on each time (seconds from audio start)."""
    from scipy.signal import butter, sosfiltfilt

    pcm = np.nan_to_num(np.asarray(pcm, dtype=np.float64))
    lo, hi = SPEECH_BAND_HZ
    hi = min(hi, 0.45 * sample_rate)
    if len(pcm) > 64:
        sos = butter(4, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
        pcm = sosfiltfilt(sos, pcm)  # zero phase: the filter adds no lag of its own
    half = 0.5 * sample_rate / max(fps, 1e-6)
    energy = np.empty(len(times))
    for i, t in enumerate(np.asarray(times, dtype=np.float64)):
        a = int(round(t * sample_rate - half))
        b = int(round(t * sample_rate + half))
        seg = pcm[max(a, 0) : max(min(b, len(pcm)), 0)]
        energy[i] = float(np.mean(seg * seg)) if len(seg) else 0.0
    return 10.0 * np.log10(energy + 1e-8)  # floor at -80 dB so silence does not dominate the z-score


def probe_frames(path: str | os.PathLike) -> int | None:
    """The video's frame count from its header (no decoding); None when the file does not say."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            rate = stream.average_rate or stream.guessed_rate
            if stream.duration is not None and stream.time_base is not None and rate:
                return int(round(float(stream.duration * stream.time_base) * float(rate)))
    except Exception:  # unreadable: evaluate_sync says so in its own words
        return None
    return None


def max_offset_limit(frames: int) -> int:
    """The largest lag a video of `frames` frames can be searched at (MIN_PAIRS frames still overlap)."""
    return max(frames - MIN_PAIRS, 0)


@dataclass(frozen=True, eq=False)
class _Track:
    """What one decoding pass measured, per frame (times in seconds on the container clock)."""

    openings: np.ndarray  # mouth opening, nan where no usable face
    times: np.ndarray
    boxes: np.ndarray  # (frames, 4) x1, y1, x2, y2 of the face mesh, nan where no usable face
    fps: float
    audio_start: float
    warning: str  # where a file damaged part-way stopped decoding ("" when it did not)


def _mouth_track(path: Path, tracker: object) -> _Track:
    """Mouth opening, face box and presentation time per video frame, decoded one frame at a time.

    A file damaged part-way gives the frames before the damage and a warning saying where it is.
    """
    import av

    from ..face import landmarks as lmk

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise BadInputError(f"{path}: cannot be read as video ({str(exc).splitlines()[0][:160]})") from None
    with container:
        if not container.streams.video:
            raise BadInputError(f"{path}: has no video track")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or 25
        fps = float(rate)
        audio_start = 0.0
        if container.streams.audio:
            a = container.streams.audio[0]
            if a.start_time is not None and a.time_base is not None:
                audio_start = float(a.start_time * a.time_base)
        openings: list[float] = []
        times: list[float] = []
        boxes: list[np.ndarray] = []
        warning = ""
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames, None)
            except Exception as exc:  # av raises InvalidData and other FFmpeg errors mid-file
                reason = (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0][:160]
                if not openings:
                    raise BadInputError(f"{path}: the video track cannot be decoded ({reason})") from None
                at = times[-1] + 1.0 / fps
                warning = (f"{path}: damaged or truncated at {at:.2f} s ({reason}): measured the "
                           f"{len(openings)} frames before it")
                break
            if frame is None:
                break
            t = frame.time if frame.time is not None else len(openings) / fps
            face = tracker.track(frame.to_ndarray(format="bgr24"), timestamp=t)
            usable = face is not None and face.usable
            openings.append(lmk.mouth_opening(face.landmarks) if usable else np.nan)
            boxes.append(np.r_[face.landmarks.min(axis=0), face.landmarks.max(axis=0)] if usable else np.full(4, np.nan))
            times.append(t)
    return _Track(np.asarray(openings), np.asarray(times), np.asarray(boxes).reshape(-1, 4), fps, audio_start,
                  warning)


def _decoded_frames(path: Path) -> Iterator[np.ndarray]:
    """The video's frames again, BGR, until the end or the first frame that does not decode."""
    import av

    with av.open(str(path)) as container:
        frames = container.decode(container.streams.video[0])
        while True:
            try:
                frame = next(frames, None)
            except Exception:  # the damage the first pass reported: it measured only what came before
                return
            if frame is None:
                return
            yield frame.to_ndarray(format="bgr24")


def _syncnet_report(report: SyncReport, net: SyncNet, path: Path, pcm: np.ndarray, track: _Track) -> SyncReport:
    """The report with SyncNet's LSE-D / LSE-C: the video taken at 25 fps, the audio from its first frame."""
    from ..audio import SAMPLE_RATE
    from .syncnet import frames_at_25fps, pick

    chosen = frames_at_25fps(track.times)
    lead = int(round((track.times[0] - track.audio_start) * SAMPLE_RATE))  # audio before the first frame
    pcm = pcm[lead:] if lead >= 0 else np.concatenate([np.zeros(-lead, np.float32), pcm])
    score = net.score(pick(_decoded_frames(path), chosen), track.boxes[chosen], pcm)
    return dataclasses.replace(report, lse_d=score.lse_d, lse_c=score.lse_c, lse_offset=score.offset_frames,
                               lse_note=f"SyncNet over {score.windows} windows of 5 frames at 25 fps")


def evaluate_sync(
    video_path: str | os.PathLike, *, max_offset: int | None = None,
    syncnet_checkpoint: str | os.PathLike | None = None,
) -> SyncReport:
    """Measure lip sync of a video file with its own audio track (see the module docstring).

    Frames are decoded and tracked one at a time, so long videos do not fill memory. The mouth is
    measured on raw (unsmoothed) landmarks so the measure adds no lag of its own. A clip that cannot be
    measured — no speech, too few frames with a face, a lag search longer than the clip — is refused
    (BadInputError) rather than reported as in sync. `max_offset` None: DEFAULT_MAX_OFFSET, or less when
    the clip is too short for it.
    """
    from ..asr.vad import speech_spans
    from ..audio import SAMPLE_RATE, decode_audio
    from ..face.mediapipe_tracker import MediapipeFaceTracker

    path = Path(video_path)
    if max_offset is not None and max_offset < 0:
        raise BadInputError(f"max offset {max_offset}: the lag search cannot be negative")
    net = None
    if syncnet_checkpoint is not None:  # a wrong file is refused before the slow part
        from .syncnet import load_syncnet

        net = load_syncnet(syncnet_checkpoint)
    pcm = decode_audio(path, SAMPLE_RATE)  # raises BadInputError for missing files or no audio
    expected = probe_frames(path)
    _check_lag_search(path, expected, max_offset)  # before the slow part, when the header says
    if not speech_spans(pcm):
        raise BadInputError(f"{path}: no speech in the audio track (silence or noise): nothing to measure the "
                            "mouth against")
    tracker = MediapipeFaceTracker(smoothing=0)
    try:
        track = _mouth_track(path, tracker)
    finally:
        tracker.close()
    openings, times, warning = track.openings, track.times, track.warning
    if len(openings) == 0:
        raise BadInputError(f"{path}: the video track holds no frames")
    if not warning and expected is not None and expected - len(openings) > max(2, expected // 50):
        warning = (f"{path}: damaged or truncated at {times[-1]:.2f} s ({len(openings)} of the {expected} frames "
                   "its header lists decode): measured those")
    faces = int(np.isfinite(openings).sum())
    if faces < MIN_PAIRS:
        raise BadInputError(f"{path}: a usable face in {faces} of {len(openings)} frames; measuring lip sync "
                            f"needs at least {MIN_PAIRS}")
    if max_offset is None:
        max_offset = min(DEFAULT_MAX_OFFSET, max_offset_limit(len(openings)))
    _check_lag_search(path, len(openings), max_offset)
    envelope = speech_envelope(pcm, SAMPLE_RATE, times - track.audio_start, track.fps)
    report = dataclasses.replace(sync_from_arrays(openings, envelope, max_offset, fps=track.fps), warning=warning)
    return _syncnet_report(report, net, path, pcm, track) if net is not None else report


def _check_lag_search(path: Path, frames: int | None, max_offset: int | None) -> None:
    if max_offset is not None and frames is not None and max_offset > max_offset_limit(frames):
        raise BadInputError(f"{path}: {frames} frames cannot be searched +-{max_offset} frames "
                            f"(at most +-{max_offset_limit(frames)})")

