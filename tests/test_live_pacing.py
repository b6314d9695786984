"""Live pacing run exactly on a stepped clock: real Apertium (en → es) and espeak-ng, no wall-clock timing.

Each unit is handed over half a second after its source speech ended (a typical commit) and said with the
clock frozen, so every placement and speed follows from the policy alone and can be checked exactly.
"""

import asyncio

import pytest

from livedub.engines.metrics import RollingStats
from livedub.realtime.clock import SteppedClock
from livedub.realtime.config import DubConfig
from livedub.realtime.dubtrack import MIN_GAP, DubTrack
from livedub.realtime.events import EventHub
from livedub.realtime.pool import ModelPool
from livedub.realtime.speech.pacing import BEHIND_S, MERGE_BACKLOG_S
from livedub.realtime.speech.path import SpeechPath
from livedub.realtime.speech.streaming import LiveSpeech
from livedub.realtime.speech.units import Unit

COMMIT_S = 0.5
# A monologue without pauses: Spanish from espeak-ng runs longer than the English it follows, so a live
# session falls behind unless pacing catches up.
SENTENCES = [
    "The committee met on Monday to discuss the new budget for the schools.",
    "Several members argued that the money should go to the teachers first.",
    "Others wanted to repair the old buildings before the winter comes.",
    "After a long debate they agreed to split the money between both plans.",
    "The mayor said that the decision was fair to every family in the city.",
    "Parents will be able to read the full report on the city website.",
]


@pytest.fixture(scope="module")
def pool():
    pool = ModelPool()
    yield pool
    pool.close()


def run_monologue(pool, config, units, *, together=()):
    """Say `units` as a live session would; the indices in `together` are handed over at once with the one
    before them. Returns the clips and, per clip, the clock time when its unit was taken."""

    async def main():
        clock = SteppedClock()
        track = DubTrack(output_rate=24_000)
        path = SpeechPath(config, pool, track, live=True)
        errors = []
        live = LiveSpeech(path, pool, clock, EventHub(), RollingStats(), on_error=lambda s, e: errors.append(e),
                          source_language=lambda: "en")
        task = asyncio.create_task(live.run())
        taken = []
        i = 0
        while i < len(units):
            batch = [units[i]]
            while i + len(batch) < len(units) and i + len(batch) in together:
                batch.append(units[i + len(batch)])
            clock.set(batch[-1].end + COMMIT_S)
            taken.append((clock.now(), track.end))
            for unit in batch:
                live.queue(unit)
            await live.idle()
            i += len(batch)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not errors, errors
        return track.clips, taken

    return asyncio.run(main())


def monologue(n: int) -> list[Unit]:
    """`n` units of 3 s each, back to back (a speaker who never pauses)."""
    return [Unit(SENTENCES[i % len(SENTENCES)], 3.0 * i, 3.0 * i + 2.9, "en", 12) for i in range(n)]


def config(**kw) -> DubConfig:
    return DubConfig(target="es", source="en", voice_engine="espeak-ng", **kw)


def test_lag_stays_bounded_over_a_minute_of_monologue(pool):
    cfg = config()
    units = monologue(20)  # 60 s
    clips, taken = run_monologue(pool, cfg, units)
    assert len(clips) == len(units)
    for clip, (now, end_before) in zip(clips, taken, strict=True):
        backlog = max(end_before - now, 0.0)
        assert clip.start == pytest.approx(max(now, end_before + MIN_GAP), abs=1e-6)  # when ready, after the last
        cap = cfg.catch_up_speed if backlog > cfg.catch_up_after else cfg.max_speed
        assert clip.speed <= cap + 1e-6
        if backlog <= BEHIND_S:
            assert clip.speed == 1.0  # on time: natural pace, never squeezed
    onsets = [clip.start - unit.end for clip, unit in zip(clips, units, strict=True)]
    # once past the catch-up threshold the backlog shrinks, so it never exceeds the threshold by more than
    # one clip at --max-speed can add to it (its length less the 3 s the speaker took)
    growth = max(c.end - c.start - 3.0 for c in clips if c.speed <= cfg.max_speed + 1e-6)
    assert max(onsets) <= COMMIT_S + cfg.catch_up_after + MIN_GAP + max(growth, 0.0) + 1e-6
    # and it does not drift over the minute: the last clips start no later than those of the second quarter
    assert sum(onsets[-5:]) / 5 <= sum(onsets[5:10]) / 5 + 0.3
    assert any(c.speed > cfg.max_speed for c in clips)  # the catch-up cap was needed here


def test_max_speed_is_never_exceeded_when_catch_up_is_off(pool):
    cfg = config(max_speed=1.2, catch_up_speed=1.2)
    clips, _ = run_monologue(pool, cfg, monologue(10))
    assert max(c.speed for c in clips) <= 1.2 + 1e-6
    assert any(c.speed > 1.05 for c in clips)  # behind, it did speed up to its cap


def test_min_speed_bounds_how_much_a_clip_is_slowed(pool):
    # a long source unit with a short translation, said while behind: the slot is longer than the clip
    cfg = config(min_speed=1.0)
    units = [Unit(SENTENCES[0], 0.0, 2.9, "en", 12), Unit("Yes.", 3.0, 9.0, "en", 1)]
    clips, _ = run_monologue(pool, cfg, units, together={1})
    assert all(c.speed >= 1.0 for c in clips)


def test_units_waiting_behind_a_long_backlog_are_said_as_one(pool):
    # a long first clip is still playing when three short units arrive together
    units = [Unit(" ".join(SENTENCES[:3]), 0.0, 2.9, "en", 36), Unit("Thank you.", 3.0, 3.6, "en", 2),
             Unit("Good morning.", 3.8, 4.4, "en", 2), Unit("See you soon.", 4.6, 5.3, "en", 3)]
    clips, taken = run_monologue(pool, config(), units, together={2, 3})
    now, end_before = taken[1]
    assert end_before - now > MERGE_BACKLOG_S  # the scenario: a backlog when they arrive
    assert len(clips) == 2
    assert clips[1].source_text == "Thank you. Good morning. See you soon."
    assert (clips[1].source_start, clips[1].source_end) == (3.0, 5.3)
