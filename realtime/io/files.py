"""Read faces from a video or photo and write H.264 + AAC mp4, streaming (frames never all in memory)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from livedub.engines.audio import OUTPUT_RATE
from livedub.engines.errors import BadInputError
from livedub.engines.files import check_input_file
from livedub.engines.metrics import StageTimes

log = logging.getLogger("livedub.video")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
MAX_SIDE = 4096  # larger inputs are scaled down (the CLI says so): nothing downstream needs more
RING_IN_MEMORY = 256 << 20  # bytes of frames kept in memory for looping before a disk ring is used


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    frames: int  # 1 for a photo; an estimate for streams without a count
    is_image: bool
    has_audio: bool

    @property
    def duration(self) -> float:
        return self.frames / self.fps


def _even(n: int) -> int:
    return max(2, n - n % 2)


def working_size(width: int, height: int, resize_factor: int = 1) -> tuple[int, int]:
    """The (width, height) frames are worked at: divided by `resize_factor`, at most MAX_SIDE a side, even."""
    scale = 1.0 / max(resize_factor, 1)
    if max(height, width) * scale > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
    return _even(int(width * scale)), _even(int(height * scale))


def _scaled(frame: np.ndarray, resize_factor: int) -> np.ndarray:
    import cv2

    h, w = frame.shape[:2]
    nw, nh = working_size(w, h, resize_factor)
    if (nh, nw) == (h, w):
        return frame
    return cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_AREA)


def probe_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of a photo or video as it will decode, from its header; None when it does not say."""
    path = Path(path)
    try:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            from PIL import Image

            with Image.open(path) as img:
                width, height = img.size
                turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation: decoders turn it upright
            return (height, width) if turned else (width, height)
        import av

        with av.open(str(path)) as container:
            video = container.streams.video[0]
            return (int(video.width), int(video.height)) if video.width and video.height else None
    except Exception:  # unreadable or no video: opening it for real says so in its own words
        return None


class FaceVideo:
    """Frames of a video or a photo, at the video's own rate (or `fps` for a photo).

    `frames(n)` yields exactly n frames: the video plays forward, then back and forth when n is longer
    (the reference's behaviour for audio longer than the video), through a disk cache so memory stays flat.
    """

    def __init__(self, path: str | os.PathLike, *, fps: float = 25.0, resize_factor: int = 1):
        import av

        self.path = Path(path)
        self.resize_factor = resize_factor
        check_input_file(self.path, what="a video or a photo")
        self._image: np.ndarray | None = None
        if self.path.suffix.lower() in IMAGE_SUFFIXES:
            self._image = self._read_image()
            h, w = self._image.shape[:2]
            self.info = VideoInfo(w, h, float(fps), 1, True, False)
            return
        try:
            with av.open(str(self.path)) as c:
                if not c.streams.video:
                    raise BadInputError(f"{self.path}: has no video track (pass a video or a photo as the face)")
                v = c.streams.video[0]
                rate = float(v.average_rate or v.guessed_rate or fps)
                count = v.frames or int(round(float(c.duration or 0) / 1e6 * rate))
                first = next(c.decode(v), None)
                if first is None:
                    raise BadInputError(f"{self.path}: the video track holds no frames")
                frame = _scaled(first.to_ndarray(format="bgr24"), resize_factor)
                has_audio = bool(c.streams.audio)
        except BadInputError:
            raise
        except Exception as exc:
            raise BadInputError(f"{self.path}: cannot be read as a video or image ({_first_line(exc)})") from None
        if not 1.0 <= rate <= 240.0:
            rate = fps
        self.info = VideoInfo(frame.shape[1], frame.shape[0], rate, max(count, 1), False, has_audio)

    def _read_image(self) -> np.ndarray:
        import cv2

        data = np.fromfile(str(self.path), np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise BadInputError(f"{self.path}: cannot be read as an image")
        return _scaled(img, self.resize_factor)

    def _decode(self) -> Iterator[np.ndarray]:
        import av

        try:
            with av.open(str(self.path)) as c:
                for f in c.decode(c.streams.video[0]):
                    yield _scaled(f.to_ndarray(format="bgr24"), self.resize_factor)
        except Exception as exc:  # a truncated file: keep what decoded
            log.warning("%s: video decoding stopped early (%s)", self.path, _first_line(exc))

    def frames(self, n: int) -> Iterator[np.ndarray]:
        """Exactly `n` frames: forward, then back and forth over the end of the video.

        Only the frames the loop will replay are kept: the last `n - count` (a dub slightly longer than the
        video) or all of them (a short clip under long audio), in memory when small, else in a disk ring.
        """
        if self._image is not None:
            for _ in range(n):
                yield self._image
            return
        shape = (self.info.height, self.info.width, 3)
        expected = self.info.frames
        keep = 0 if n <= expected else min(expected + 8, n - expected + 16)  # + slack for a miscounted video
        ring: np.ndarray | None = None
        decoded = 0
        frame = None
        with contextlib.ExitStack() as stack:
            for frame in self._decode():
                if decoded >= n:
                    return
                if frame.shape != shape:  # a resolution change mid-stream
                    import cv2

                    frame = cv2.resize(frame, (shape[1], shape[0]))
                if keep:
                    if ring is None:
                        ring = _frame_ring(stack, keep, shape)
                    ring[decoded % keep] = frame
                yield frame
                decoded += 1
            if decoded == 0:
                raise BadInputError(f"{self.path}: no frame could be decoded")
            oldest = decoded - min(keep, decoded)
            for i in range(decoded, n):
                if ring is None:  # the video held fewer frames than its header said: hold the last one
                    yield frame
                    continue
                j = max(_ping_pong(i, decoded), oldest)
                yield np.array(ring[j % keep])


def _frame_ring(stack: contextlib.ExitStack, size: int, shape: tuple[int, int, int]) -> np.ndarray:
    """Room for `size` frames: memory up to RING_IN_MEMORY bytes, else a temporary file (memory stays flat)."""
    if size * int(np.prod(shape)) <= RING_IN_MEMORY:
        return np.empty((size, *shape), np.uint8)
    file = stack.enter_context(tempfile.TemporaryFile(prefix="livedub-frames-"))  # noqa: SIM115 (closed by the stack)
    return np.memmap(file, np.uint8, "w+", shape=(size, *shape))


def _ping_pong(i: int, count: int) -> int:
    if count <= 1:
        return 0
    period = 2 * count - 2
    k = i % period
    return k if k < count else period - k


def _first_line(exc: Exception) -> str:
    return (str(exc).strip() or type(exc).__name__).splitlines()[0][:160]


class Mp4Writer:
    """H.264 (yuv420p) + AAC mp4 with audio interleaved as frames arrive."""

    def __init__(self, path: str | os.PathLike, width: int, height: int, fps: float, audio: np.ndarray | None,
                 audio_rate: int = OUTPUT_RATE, crf: int = 20, preset: str = "veryfast"):
        import av

        self.container = av.open(str(path), "w")
        rate = Fraction(fps).limit_denominator(1001)
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = _even(width), _even(height)
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": preset}
        self.fps = float(rate)
        self.audio_pcm = None if audio is None else np.clip(np.asarray(audio, np.float32), -1, 1)
        self.audio_rate = audio_rate
        self.audio_stream = None
        if self.audio_pcm is not None:
            self.audio_stream = self.container.add_stream("aac", rate=audio_rate)
            self.audio_stream.layout = "mono"
        self._audio_pos = 0
        self.frames_written = 0

    def write(self, frame_bgr: np.ndarray) -> None:
        import av
        import cv2

        h, w = self.video.height, self.video.width
        if frame_bgr.shape[0] != h or frame_bgr.shape[1] != w:
            frame_bgr = frame_bgr[:h, :w]
        # OpenCV's conversion to the encoder's yuv420p: ~1.7 ms a 720p frame where the encoder's own takes ~6
        yuv = cv2.cvtColor(np.ascontiguousarray(frame_bgr), cv2.COLOR_BGR2YUV_I420)
        vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        vf.pts = self.frames_written
        for pkt in self.video.encode(vf):
            self.container.mux(pkt)
        self.frames_written += 1
        self._write_audio_until(self.frames_written / self.fps)

    def _write_audio_until(self, t: float | None) -> None:
        import av

        if self.audio_pcm is None or self.audio_stream is None:
            return
        end = len(self.audio_pcm) if t is None else min(int(math.ceil(t * self.audio_rate)), len(self.audio_pcm))
        step = 1024
        while self._audio_pos < end and (t is None or end - self._audio_pos >= step):
            chunk = self.audio_pcm[self._audio_pos : self._audio_pos + step]
            af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            af.sample_rate = self.audio_rate
            af.pts = self._audio_pos
            for pkt in self.audio_stream.encode(af):
                self.container.mux(pkt)
            self._audio_pos += len(chunk)

    def close(self) -> None:
        for pkt in self.video.encode():
            self.container.mux(pkt)
        if self.audio_stream is not None:
            self._write_audio_until(None)
            for pkt in self.audio_stream.encode():
                self.container.mux(pkt)
        self.container.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def remux_with_audio(video_path: str | os.PathLike, audio: np.ndarray, audio_rate: int,
                     out_path: str | os.PathLike) -> None:
    """Copy the video stream of `video_path` (no re-encode) and add `audio` as AAC from time 0 (live records)."""
    import av

    with av.open(str(video_path)) as src, av.open(str(out_path), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        aout = dst.add_stream("aac", rate=audio_rate)
        aout.layout = "mono"
        for packet in src.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        pcm = np.clip(np.asarray(audio, np.float32), -1, 1)
        for pos in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(pcm[pos : pos + 1024].reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate, frame.pts = audio_rate, pos
            for packet in aout.encode(frame):
                dst.mux(packet)
        for packet in aout.encode():
            dst.mux(packet)


def prefetch(items: Iterator[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Run a frame iterator in a thread, `size` frames ahead: decoding overlaps tracking on another core."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def worker() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # hand decoder errors to the consumer
            q.put(exc)

    thread = threading.Thread(target=worker, name="livedub-decode", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class BackgroundWriter:
    """Encodes frames on a thread so x264 works while the next batch is tracked and rendered."""

    def __init__(self, writer: Mp4Writer, times: StageTimes, size: int = 16):
        self.writer, self.times = writer, times
        self.q: queue.Queue = queue.Queue(maxsize=size)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="livedub-encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (frame := self.q.get()) is not None:
            if self.error is None:
                try:
                    with self.times.stage("encode"):
                        self.writer.write(frame)
                except BaseException as exc:
                    self.error = exc

    def put(self, frame: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(frame)

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
