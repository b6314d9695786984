"""Cross-session batching for the lip-sync network: every call of a process shares one model context.

One `LipBatcher` per model owns its runner (one ONNX Runtime session or TensorRT context). Each session takes
a `LipClient` and calls `client.run(mels, faces)` from its own video worker thread: the call blocks that
thread, never the event loop. The batcher's thread pools the waiting frames of all sessions and runs them as
one inference call as soon as `max_batch` frames wait, every open session has a frame waiting (nobody else
can join), or the oldest has waited `deadline_ms`; frames that arrive while a batch runs form the next one.
Batches are filled round-robin over sessions, so one session's long run (file mode) cannot starve a live call.

Backpressure: each session holds at most one waiting request (latest-frame semantics): a newer one replaces
it and the replaced caller gets `FrameDropped`. An inference error reaches every caller whose frames were in
the failed batch, and the thread goes on with the next. A session that closes (or whose client is garbage
collected) has its waiting frames dropped; the others are not disturbed. Asyncio callers `await submit(...)`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livedub.engines.lipsync.backends import Runner

log = logging.getLogger("livedub.face")

RunFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
MEL_SHAPE, FACE_SHAPE = (1, 80, 16), (6, 96, 96)
MAX_BATCH = 64  # a dynamic-shape runner's largest batch (the TensorRT plan's profile is built for it)
PADDED_BATCH = 8  # runners with one engine per shape (ORT TensorRT/CUDA EP) get every batch padded to this


class FrameDropped(RuntimeError):
    """Frames the batcher let go without running them: replaced by a newer request of the same session, or
    their session closed. Not a model failure; the caller sends the frame on unchanged."""


@dataclass(eq=False)
class _Request:
    """One call's frames from one session (one lane); filled in as its frames' batches finish."""

    lane: int
    mels: np.ndarray
    faces: np.ndarray
    future: Future
    queued: float  # time.monotonic() when posted
    out: np.ndarray | None = None
    next: int = 0  # frames [0, next) are in a batch already
    finished: int = 0

    @property
    def size(self) -> int:
        return len(self.mels)


@dataclass
class BatchStats:
    """What the batcher did: batch sizes, sessions per batch, waits before a frame's batch started, drops."""

    batches: int = 0
    frames: int = 0
    failed: int = 0  # batches whose inference raised
    dropped: int = 0  # frames replaced by a newer request or left by a closed session
    sizes: deque = field(default_factory=lambda: deque(maxlen=10_000))
    sessions: deque = field(default_factory=lambda: deque(maxlen=10_000))  # distinct lanes per batch
    waits_ms: deque = field(default_factory=lambda: deque(maxlen=10_000))

    @property
    def mean_batch(self) -> float:
        return self.frames / self.batches if self.batches else 0.0


def _settle(future: Future, *, result: object = None, error: BaseException | None = None) -> None:
    """Complete a future unless its caller gave up on it (cancelled) first."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class LipClient:
    """One session's handle on a shared `LipBatcher`: a `Runner` whose calls queue in the session's own lane.

    `run` blocks the calling thread (a session's video worker) until its frames' batches finish. `close`
    drops this session's waiting frames; a client that is garbage collected is closed the same way.
    """

    pads_batches = False  # the batcher pads what its runner needs

    def __init__(self, batcher: LipBatcher, lane: int):
        self.batcher, self.lane = batcher, lane
        self.max_batch = batcher.max_batch
        self.closed = False

    @property
    def name(self) -> str:
        return self.batcher.name

    def submit(self, mels: np.ndarray, faces: np.ndarray) -> Future:
        """Queue frames (mels (N,1,80,16), faces (N,6,96,96)); the future gives their (N,3,96,96) outputs."""
        if self.closed:
            raise RuntimeError("this session's lip client is closed")
        return self.batcher.post(self.lane, mels, faces, registered=True)

    def run(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        """The `Runner` contract, through the shared batcher (blocking)."""
        return self.submit(mel, face).result()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.batcher.close_lane(self.lane)


class LipBatcher:
    """Pools the generator calls of concurrent sessions into batches of up to `max_batch` frames.

    `runner` is a backends Runner (or any `run(mel, face) -> out` callable) and is only ever called from the
    batcher's own thread. A runner with `pads_batches` (one engine per shape) gets every batch padded to
    `max_batch` (by default PADDED_BATCH for those, else MAX_BATCH).
    """

    def __init__(self, runner: Runner | RunFn, *, max_batch: int | None = None, deadline_ms: float = 4.0):
        self.runner = runner
        self._run: RunFn = runner.run if hasattr(runner, "run") else runner
        if max_batch is None:
            max_batch = PADDED_BATCH if self.pads_batches else MAX_BATCH
        self.max_batch = max(1, int(max_batch))
        self.deadline = max(float(deadline_ms), 0.0) / 1000.0
        self.stats = BatchStats()
        self._cond = threading.Condition()
        self._lanes: dict[int, deque[_Request]] = {}  # waiting requests per lane, oldest first
        self._clients: dict[int, weakref.ref] = {}  # open sessions' lanes
        self._next_lane = 0
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"livedub-lip-batcher-{self.name}", daemon=True)
        self._thread.start()

    @property
    def name(self) -> str:
        """Where the model runs (the runner's name: an int8 runner names its provider once calibrated)."""
        return getattr(self.runner, "name", "callable")

    @property
    def pads_batches(self) -> bool:
        return bool(getattr(self.runner, "pads_batches", False))

    # -- sessions --------------------------------------------------------------------------------------

    def client(self) -> LipClient:
        """A new session's handle (its own lane)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("LipBatcher is closed")
            lane = self._new_lane()
            client = LipClient(self, lane)
            self._clients[lane] = weakref.ref(client)
        weakref.finalize(client, self.close_lane, lane)
        return client

    @property
    def open_sessions(self) -> int:
        with self._cond:
            return len(self._clients)

    def close_lane(self, lane: int) -> None:
        """A session left: its waiting frames are dropped (a batch already running finishes for the others)."""
        with self._cond:
            self._clients.pop(lane, None)
            dropped = list(self._lanes.pop(lane, ()))
            self.stats.dropped += sum(r.size - r.next for r in dropped)
            self._cond.notify_all()  # the sessions left may now all be waiting
        for r in dropped:
            _settle(r.future, error=FrameDropped("the session closed before its frames ran"))

    def _new_lane(self) -> int:
        self._next_lane += 1
        return self._next_lane

    # -- posting ---------------------------------------------------------------------------------------

    def post(self, lane: int | None, mels: np.ndarray, faces: np.ndarray, *, registered: bool = False) -> Future:
        """Queue frames in `lane` (None: a one-off lane of their own); thread-safe, returns at once.

        A registered lane keeps one waiting request: a newer one replaces any that has not started.
        """
        mels = np.ascontiguousarray(mels, np.float32).reshape(-1, *MEL_SHAPE)
        faces = np.ascontiguousarray(faces, np.float32).reshape(-1, *FACE_SHAPE)
        if len(mels) != len(faces):
            raise ValueError(f"{len(mels)} mel windows for {len(faces)} faces")
        future: Future = Future()
        if not len(mels):
            future.set_result(np.zeros((0, 3, 96, 96), np.float32))
            return future
        replaced: list[_Request] = []
        with self._cond:
            if self._closed:
                raise RuntimeError("LipBatcher is closed")
            if lane is None:
                lane = self._new_lane()
            elif registered and lane not in self._clients:
                raise RuntimeError("this session's lip client is closed")
            queue = self._lanes.setdefault(lane, deque())
            if registered:
                replaced = [r for r in queue if r.next == 0]
                for r in replaced:
                    queue.remove(r)
                self.stats.dropped += sum(r.size for r in replaced)
            queue.append(_Request(lane, mels, faces, future, time.monotonic()))
            self._cond.notify_all()
        for r in replaced:
            _settle(r.future, error=FrameDropped("a newer frame of the same session replaced it"))
        return future

    async def submit(self, mel: np.ndarray, face: np.ndarray) -> np.ndarray:
        """One frame's output for an asyncio caller, batched with whatever else arrives within the deadline."""
        out = await asyncio.wrap_future(self.post(None, mel, face))
        return out[0]

    def submit_many(self, mels: np.ndarray, faces: np.ndarray) -> np.ndarray:
        """Outputs for N frames at once (blocking), run as full batches of `max_batch` and one remainder."""
        return self.post(None, mels, faces).result()

    # -- the batcher thread ----------------------------------------------------------------------------

    def _serve(self) -> None:
        while True:
            with self._cond:
                batch = self._next_batch()
            if batch is None:
                return
            self._flush(batch)

    def _next_batch(self) -> list[tuple[_Request, int, int]] | None:
        """Wait (holding the condition) until a batch is due; None once closed and drained."""
        while True:
            self._purge()
            waiting = sum(r.size - r.next for q in self._lanes.values() for r in q)
            if not waiting:
                if self._closed:
                    return None
                self._cond.wait()
                continue
            oldest = min((q[0] for q in self._lanes.values()), key=lambda r: r.queued)  # no empty lanes
            remaining = oldest.queued + self.deadline - time.monotonic()
            if self._closed or waiting >= self.max_batch or oldest.next > 0 or remaining <= 0 or self._all_waiting():
                return self._take()
            self._cond.wait(remaining)

    def _purge(self) -> None:
        """Forget requests whose callers gave up or failed, and empty lanes."""
        for lane in list(self._lanes):
            queue = self._lanes[lane]
            for r in [r for r in queue if r.future.done()]:
                queue.remove(r)
            if not queue:
                del self._lanes[lane]

    def _all_waiting(self) -> bool:
        """Every open session has frames waiting: no one else can join this batch, so waiting gains nothing."""
        return bool(self._clients) and all(lane in self._lanes for lane in self._clients)

    def _take(self) -> list[tuple[_Request, int, int]]:
        """Up to `max_batch` frames, one per lane in turn (oldest lane first): (request, first, end) slices."""
        order = sorted(self._lanes, key=lambda lane: self._lanes[lane][0].queued)
        left = {lane: sum(r.size - r.next for r in self._lanes[lane]) for lane in order}
        share = dict.fromkeys(order, 0)
        room = self.max_batch
        while room:
            took = False
            for lane in order:
                if room and share[lane] < left[lane]:
                    share[lane] += 1
                    room -= 1
                    took = True
            if not took:
                break
        batch = []
        for lane in order:
            queue, count = self._lanes[lane], share[lane]
            while count:
                r = queue[0]
                end = min(r.size, r.next + count)
                batch.append((r, r.next, end))
                count -= end - r.next
                r.next = end
                if r.next == r.size:
                    queue.popleft()
            if not queue:
                del self._lanes[lane]
        return batch

    def _flush(self, batch: list[tuple[_Request, int, int]]) -> None:
        now = time.monotonic()
        n = sum(end - first for _, first, end in batch)
        try:
            mels = np.concatenate([r.mels[first:end] for r, first, end in batch])
            faces = np.concatenate([r.faces[first:end] for r, first, end in batch])
            if self.pads_batches and n < self.max_batch:
                mels = np.concatenate([mels, np.repeat(mels[-1:], self.max_batch - n, axis=0)])
                faces = np.concatenate([faces, np.repeat(faces[-1:], self.max_batch - n, axis=0)])
            out = np.asarray(self._run(mels, faces), np.float32)
            if len(out) < n:
                raise RuntimeError(f"lip-sync model returned {len(out)} outputs for {n} inputs")
        except Exception as exc:  # every caller of this batch gets the error; the thread goes on
            log.warning("lip-sync batch of %d frames failed: %s", n, exc)
            with self._cond:
                self.stats.failed += 1
                for r, _, _ in batch:  # the rest of a failed request is not run
                    queue = self._lanes.get(r.lane)
                    if queue is not None and r in queue:
                        queue.remove(r)
            for r, _, _ in batch:
                _settle(r.future, error=exc)
            return
        done = []
        with self._cond:
            self.stats.batches += 1
            self.stats.frames += n
            self.stats.sizes.append(n)
            self.stats.sessions.append(len({r.lane for r, _, _ in batch}))
            self.stats.waits_ms.extend(1000 * (now - r.queued) for r, first, end in batch for _ in range(first, end))
            at = 0
            for r, first, end in batch:
                if r.out is None:
                    r.out = np.empty((r.size, *out.shape[1:]), np.float32)
                r.out[first:end] = out[at : at + end - first]
                at += end - first
                r.finished += end - first
                if r.finished == r.size:
                    done.append(r)
        for r in done:
            _settle(r.future, result=r.out)

    # -- lifecycle -------------------------------------------------------------------------------------

    def close(self) -> None:
        """Run the frames already posted (at once, no deadline), then stop the thread; later posts refuse."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> LipBatcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
