"""Cross-session batching for the lip-sync model: many live calls, one GPU running full batches.

A GPU renders 64 face crops in little more time than one, so frames from all live sessions are pooled: each
session awaits `submit(mel, face)` per frame; a worker flushes when `max_batch` frames wait or the oldest has
waited `deadline_ms` (a few ms added to a live frame at most). Inference runs on one executor thread, so the
event loop keeps serving audio and video while the GPU works, and frames arriving meanwhile form the next
batch. File mode hands a whole run of consecutive frames to `submit_many`, which cuts it into full batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livedub.engines.lipsync.backends import Runner

RunFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class _Job:
    mel: np.ndarray
    face: np.ndarray
    future: asyncio.Future
    queued: float  # loop.time() when submitted


@dataclass
class BatchStats:
    """What the batcher did: batch sizes run and how long frames waited before their batch started."""

    batches: int = 0
    frames: int = 0
    sizes: deque = field(default_factory=lambda: deque(maxlen=10_000))
    waits_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


class LipBatcher:
    """Pools per-frame generator calls from concurrent callers into batches of up to `max_batch`.

    `runner` is a backends Runner (or any `run(mel, face) -> out` callable); `submit` takes one frame's mel
    (1,80,16) and face (6,96,96) and returns its (3,96,96) output. Errors from a batch reach each of its callers.
    """

    def __init__(self, runner: Runner | RunFn, *, max_batch: int = 64, deadline_ms: float = 4.0):
        self._run: RunFn = runner.run if hasattr(runner, "run") else runner
        self.name = getattr(runner, "name", "callable")
        self.max_batch = max(1, int(max_batch))
        self.deadline = max(float(deadline_ms), 0.0) / 1000.0
        self.stats = BatchStats()
        self._pending: deque[_Job] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lip-batcher")
        self._lock = threading.Lock()  # one model call at a time: async worker and submit_many share it
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- live: one frame per call, from many sessions ----------------------------------------------------

    async def submit(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        """This frame's model output, computed in a batch with whatever else arrives within the deadline."""
        if self._closed:
            raise RuntimeError("LipBatcher is closed")
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._loop, self._wakeup = loop, asyncio.Event()
            self._worker = loop.create_task(self._work(), name="lip-batcher")
        elif loop is not self._loop:
            raise RuntimeError("LipBatcher serves the event loop it first ran on")
        job = _Job(np.asarray(mel, np.float32).reshape(1, 80, 16), np.asarray(face, np.float32).reshape(6, 96, 96),
                   loop.create_future(), loop.time())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            oldest = self._pending[0].queued
            while len(self._pending) < self.max_batch and not self._closed:
                remaining = oldest + self.deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            batch = [j for j in batch if not j.future.done()]  # callers that gave up (cancelled)
            if batch:
                await self._flush(loop, batch)

    async def _flush(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        now = loop.time()
        self.stats.waits_ms.extend(1000 * (now - j.queued) for j in batch)
        mels = np.stack([j.mel for j in batch])
        faces = np.stack([j.face for j in batch])
        try:
            out = await loop.run_in_executor(self._executor, self._locked_run, mels, faces)
            if len(out) != len(batch):
                raise RuntimeError(f"lip-sync model returned {len(out)} outputs for {len(batch)} inputs")
        except Exception as exc:  # every caller of this batch gets the error; the worker goes on
            for j in batch:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        for j, o in zip(batch, out, strict=True):
            if not j.future.done():
                j.future.set_result(o)

    def _locked_run(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        with self._lock:
            out = self._run(mels, faces)
            self.stats.batches += 1
            self.stats.frames += len(mels)
            self.stats.sizes.append(len(mels))
            return out

    async def aclose(self) -> None:
        """Finish the frames already submitted (flushed at once, no deadline), then stop the worker."""
        self._closed = True
        if self._worker is not None:
            self._wakeup.set()
            try:
                await self._worker
            finally:
                self._worker = None
        self._executor.shutdown(wait=True)

    async def __aenter__(self) -> LipBatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- file mode: consecutive frames of one video ----------------------------------------------------------

    def submit_many(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Outputs for N frames at once (blocking), run as full batches of `max_batch` and one remainder."""
        if self._closed:
            raise RuntimeError("LipBatcher is closed")
        mels = np.asarray(mels, np.float32).reshape(-1, 1, 80, 16)
        faces = np.asarray(faces, np.float32).reshape(-1, 6, 96, 96)
        if len(mels) != len(faces):
            raise ValueError(f"{len(mels)} mel windows for {len(faces)} faces")
        if not len(mels):
            return np.zeros((0, 3, 96, 96), np.float32)
        outs = [self._locked_run(mels[a : a + self.max_batch], faces[a : a + self.max_batch])
                for a in range(0, len(mels), self.max_batch)]
        return np.concatenate(outs)
