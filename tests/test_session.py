"""DubSession pieces that need no model: the speaker's voice under the dub, clocks, events."""

import asyncio
import threading

import numpy as np
import pytest

from livedub.engines.types import Speech
from livedub.realtime.clock import VirtualClock, WallClock
from livedub.realtime.config import DubConfig
from livedub.realtime.pool import ModelPool
from livedub.realtime.session import DubSession, SessionEvent


def test_audio_out_mixes_the_dub_over_the_ducked_original():
    session = DubSession(DubConfig(target="es", keep_original=0.25), ModelPool(), WallClock())
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(48_000) / 48_000)).astype(np.float32)
    for i in range(0, len(tone), 960):  # 20 ms microphone blocks starting at session time 2.0
        session.push_audio(tone[i : i + 960], 2.0 + i / 48_000, rate=48_000)
    session.track.place(Speech(np.full(4800, 0.1, np.float32), 48_000), 2.5)
    before = session.audio_out(1.0, 2.0)
    assert np.abs(before).max() == 0.0  # nothing was said before the microphone started
    mid = session.audio_out(2.2, 2.4)
    expected = 0.25 * tone[int(0.2 * 48_000) : int(0.4 * 48_000)]
    assert np.abs(mid[100:-100] - expected[100:-100]).max() < 0.02  # the resampler's edges aside
    dub = session.audio_out(2.55, 2.58)
    a = round(0.55 * 48_000)
    assert np.abs(dub - (0.1 + 0.25 * tone[a : a + len(dub)])).max() < 0.02


def test_clocks_place_clips_where_each_mode_needs_them():
    virtual = VirtualClock()
    assert virtual.clip_start(3.2) == 3.2 and not virtual.live  # files: at the source sentence's start
    wall = WallClock()
    assert wall.live and wall.clip_start(0.0) == pytest.approx(wall.now(), abs=0.01)  # live: when ready


def test_every_reader_gets_the_events_and_a_slow_one_loses_only_the_oldest():
    async def main():
        session = DubSession(DubConfig(target="es"), ModelPool(), WallClock())
        one, two = session.events(), session.events()
        for i in range(600):  # nobody reads meanwhile: each reader keeps the latest 512
            session.hub.emit(SessionEvent("word", text=str(i)))
        return [(await one.__anext__()).text for _ in range(3)], (await two.__anext__()).text

    first_three, other = asyncio.run(main())
    assert first_three == ["88", "89", "90"] and other == "88"


def test_captions_are_drawn_at_the_bottom_only():
    from livedub.realtime.media.captions import draw_caption

    frame = np.full((480, 640, 3), 120, np.uint8)
    out = draw_caption(frame, "La casa es muy grande y mi hermano tiene un coche rojo que conduce cada día")
    changed = np.any(out != frame, axis=2)
    rows = np.nonzero(changed.any(axis=1))[0]
    assert rows.min() > 480 * 0.75 and rows.max() == 479  # a band at the bottom, two lines at most
    assert (out[rows.min():] > 200).all(axis=2).sum() > 200  # white letters on it
    assert np.array_equal(draw_caption(frame, "   "), frame)


def test_a_closed_session_leaves_nothing_behind_in_the_pool():
    pool = ModelPool()
    workers = set(pool.busy_seconds())

    async def one_call(i: int) -> None:
        session = DubSession(DubConfig(target="es", source="en", engine="viseme", voice_engine="espeak-ng"),
                             pool, WallClock(), name=f"peer{i}")
        session.face.open_worker(session.name)  # what start() does for the frames, without loading whisper
        await session.process_video(np.zeros((48, 64, 3), np.uint8), 0.0)
        await session.aclose()

    async def calls() -> None:
        for i in range(3):
            await one_call(i)

    asyncio.run(calls())
    assert set(pool.busy_seconds()) == workers
    assert not [t for t in threading.enumerate() if t.name.startswith("livedub-video")]
    pool.close()


def test_audio_waits_for_the_typical_frame_and_the_slow_ones_lead_by_at_most_45_ms():
    from types import SimpleNamespace

    from livedub.realtime.media.avsync import AvSync

    def delay(p50_s: float, p95_s: float, cap_s: float = 1.0) -> float:
        latency = SimpleNamespace(percentile=lambda stage, q: {50: p50_s, 95: p95_s}[q] if stage == "video" else None)
        session = SimpleNamespace(latency=latency, audio_delay=0.0)
        got = AvSync(session, cap_s=cap_s).update()
        assert session.audio_delay == got
        return got

    assert delay(0.040, 0.060) == 0.040  # steady: the median frame, and the slowest lead by only 20 ms
    assert delay(0.050, 0.170) == 0.125  # loaded: raised until p95 leads by 45 ms, not all the way to p95
    assert delay(0.400, 2.000) == 1.0  # a stall never holds speech back past the cap
