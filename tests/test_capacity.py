"""A node's capacity from measured headroom: the estimator on exact numbers, the sampler on exact readings,
and the warm-up measurement on this machine's real face path, codecs and recognizer."""

from __future__ import annotations

import asyncio

import pytest

from livedub.realtime.runners.capacity import (
    DRAINING,
    FULL,
    FULL_QUALITY,
    READY,
    REDUCED,
    SessionCost,
    all_fit_at_full,
    capacity,
    fit_of,
    sessions_fit,
)
from livedub.realtime.runners.headroom import DUTY_WINDOW_S, Headroom, Reading, WarmUp


def test_calls_that_fit_follow_the_cost_of_a_frame_and_the_model_duty():
    # 2 cores, 15% kept free → 1.7 cores. A call at 30 fps: 16 ms × 30 + 0.05 = 0.53 cores → 3 calls;
    # at 15 fps: 0.29 cores → 5 calls.
    cost = SessionCost(frame_s=0.016, model_duty=0.05)
    assert cost.cores(FULL_QUALITY) == pytest.approx(0.53)
    assert cost.cores(REDUCED) == pytest.approx(0.29)
    assert sessions_fit(cost, 2, FULL_QUALITY) == 3
    assert sessions_fit(cost, 2, REDUCED) == 5
    assert sessions_fit(cost, 4, FULL_QUALITY) == 6, "twice the cores, twice the calls"
    assert sessions_fit(SessionCost(0.032, 0.05), 2, FULL_QUALITY) == 1, "a dearer frame, fewer calls"
    assert sessions_fit(SessionCost(0.016, 0.6), 2, FULL_QUALITY) == 1, "a busier recognizer, fewer calls"


def test_a_frame_slower_than_its_interval_fits_no_call_at_that_rate():
    cost = SessionCost(frame_s=0.04)  # 40 ms: over 33 ms at 30 fps, under 67 ms at 15 fps
    assert sessions_fit(cost, 16, FULL_QUALITY) == 0, "one call's frames are drawn one at a time"
    assert sessions_fit(cost, 16, REDUCED) == 22


def test_capacity_offers_full_quality_first_then_reduced_then_is_full():
    cost = SessionCost(frame_s=0.03, model_duty=0.3)  # 1.2 cores at 30 fps (1 fits), 0.75 at 15 fps (2 fit)
    assert fit_of(cost, 2).full == 1 and fit_of(cost, 2).reduced == 2
    idle = capacity(0, 4, cost=cost, cores=2)
    assert (idle.state, idle.sessions_more, idle.sessions_more_full, idle.quality) == (READY, 2, 1, "full")
    assert idle.per_call_cores == pytest.approx(1.2)
    one = capacity(1, 4, cost=cost, cores=2)
    assert (one.state, one.sessions_more, one.sessions_more_full, one.quality) == (READY, 1, 0, "reduced")
    assert one.reduced and (one.max_fps, one.max_width) == (REDUCED.max_fps, REDUCED.max_width)
    two = capacity(2, 4, cost=cost, cores=2)
    assert (two.state, two.sessions_more, two.weight) == (FULL, 0, 0)
    assert all_fit_at_full(1, cost, 2) and not all_fit_at_full(2, cost, 2)
    # told to send in full again only with room to spare: 1.2 cores fit in 1.7 (15% free), not in 1.0 (50%)
    assert not all_fit_at_full(1, cost, 2, reserve=0.5)


def test_a_node_with_no_call_takes_one_however_slow():
    slow = SessionCost(frame_s=0.1)  # 100 ms a frame: not even 15 fps fit
    room = capacity(0, 4, cost=slow, cores=2)
    assert (room.state, room.sessions_more, room.sessions_more_full, room.quality) == (READY, 1, 0, "reduced")
    assert capacity(1, 4, cost=slow, cores=2).state == FULL


def test_the_cap_stays_the_upper_bound_and_draining_takes_nothing():
    cheap = SessionCost(frame_s=0.001)
    room = capacity(1, 3, cost=cheap, cores=16)
    assert room.sessions_more == 2 and room.sessions_more_full == 2, "--max-sessions bounds a cheap call"
    assert room.weight == round(100 * 2 / 3)
    assert capacity(1, 3, cost=cheap, cores=16, draining=True).state == DRAINING
    assert capacity(1, 3, cost=cheap, cores=16, draining=True).sessions_more == 0
    assert capacity(3, 3, cost=cheap, cores=16).state == FULL
    bare = capacity(1, 4)
    assert (bare.sessions_more, bare.cost_source, bare.quality) == (3, "cap", "full"), "no figure: the cap only"
    assert set(bare.as_json()) >= {"sessions", "max_sessions", "sessions_more", "state", "weight", "quality",
                                   "max_fps", "max_width", "sessions_more_full"}


def test_the_warm_up_figure_is_used_before_any_call():
    room = Headroom(cores=2)
    assert room.cost() is None
    room.warmed(WarmUp(face_s=0.011, codec_s=0.005, pass_s=0.03))
    cost = room.cost()
    # a pass per 0.3 s of speech, half of the time: 0.03 / 0.3 × 0.5 = 0.05 of a core
    assert cost.source == "warm-up"
    assert cost.frame_s == pytest.approx(0.016) and cost.model_duty == pytest.approx(0.05)


def test_the_calls_measurements_refine_the_warm_up_figure():
    never_warmed = Headroom(cores=2)
    never_warmed.observe(Reading(0.0, busy_s=0.0, calls=1), [0.020])
    assert never_warmed.cost() is None, "a node never warmed has no figure: the cap alone"
    room = Headroom(cores=2)
    room.warmed(WarmUp(face_s=0.011, codec_s=0.005, pass_s=0.03))
    t = 100.0
    room.observe(Reading(t, busy_s=10.0, calls=2), [])
    assert room.cost().source == "warm-up", "one reading is no rate, and no call has enough frames yet"
    # 4 s later the model workers were busy 0.8 s: 0.1 of a core per call
    room.observe(Reading(t + 4, busy_s=10.8, calls=2), [])
    cost = room.cost()
    assert cost.source == "calls"
    assert cost.model_duty == pytest.approx(0.1) and cost.frame_s == pytest.approx(0.016), "frames: warm-up's"
    # the calls' video stage: 20, 18 and 30 ms a frame → the median 20 ms, + 5 ms of codecs timed at warm-up
    room.observe(Reading(t + 5, busy_s=11.0, calls=2), [0.020, 0.018, 0.030])
    assert room.cost().frame_s == pytest.approx(0.025)
    assert fit_of(room.cost(), 2).full == 2, "1.7 cores / (25 ms × 30 + 0.1) = 2.0"
    room.observe(Reading(t + 6, busy_s=11.0, calls=0), [])
    assert room.cost().frame_s == pytest.approx(0.016), "the calls ended: their frames no longer count"
    assert room.cost().model_duty == pytest.approx(0.05), "nor their recognition passes"


def test_a_rate_is_only_taken_over_a_steady_call_count():
    room = Headroom(cores=2)
    room.warmed(WarmUp(face_s=0.011, codec_s=0.005, pass_s=0.03))
    room.observe(Reading(0.0, busy_s=0.0, calls=1), [])
    room.observe(Reading(DUTY_WINDOW_S / 2, busy_s=1.0, calls=2), [])  # a second call joined
    room.observe(Reading(DUTY_WINDOW_S, busy_s=1.2, calls=2), [])
    assert room.cost().source == "warm-up", "the window restarted when the second call joined: no rate yet"
    # a full window after the second call joined: 0.2 busy seconds a second over 2 calls
    room.observe(Reading(DUTY_WINDOW_S * 1.5, busy_s=1.0 + 0.2 * DUTY_WINDOW_S, calls=2), [])
    assert room.cost().model_duty == pytest.approx(0.1)


def test_a_given_cost_is_used_as_it_is():
    given = SessionCost(frame_s=0.03, model_duty=0.3, source="given")
    room = Headroom(cores=2, cost=given)
    room.warmed(WarmUp(face_s=0.001, codec_s=0.001, pass_s=0.001))
    room.observe(Reading(0.0, 0.0, 1), [0.001])
    assert room.cost() is given


def test_warm_up_measures_a_call_on_this_machine():
    """The real face path (mediapipe + the viseme engine on a 640×480 face), aiortc's VP8 codecs and a
    tiny.en pass, timed on a started session; the figure it gives is what `/health` reports before calls."""
    from webrtc_helpers import shared_pool

    from livedub.realtime.clock import WallClock
    from livedub.realtime.runners.headroom import WARM_FRAMES, face_frames, measure_warm_up
    from livedub.realtime.session import DubSession

    config, pool = shared_pool()

    async def run():
        session = DubSession(config, pool, WallClock(), fps=30, video=True, name="measure")
        await session.start()
        try:
            warm = await measure_warm_up(session, pool)
            faces = [session.face.tracker.track(f, timestamp=i / 30) for i, f in enumerate(face_frames(n=3))]
            return warm, session.face.frames_in, session.face.frames_unchanged, faces
        finally:
            await session.aclose()

    warm, frames_in, unchanged, faces = asyncio.run(run())
    room = Headroom(cores=2)
    room.warmed(warm)
    fit = fit_of(room.cost(), 2)
    print(f"\nwarm-up on this machine (CPU time): face path {1000 * warm.face_s:.1f} ms, codecs "
          f"{1000 * warm.codec_s:.1f} ms a 640x480 frame, a tiny.en pass {1000 * warm.pass_s:.0f} ms → {room.cost().cores(FULL_QUALITY):.2f} "
          f"cores a call at 30 fps; on 2 cores {fit.full} calls at full quality, {fit.reduced} at 15 fps")
    assert frames_in == WARM_FRAMES and unchanged == 0, "every timed frame went through the face path"
    assert all(f is not None and f.usable for f in faces), "the timed frames show a face the tracker follows"
    assert warm.face_s > 0 and warm.codec_s > 0 and warm.pass_s > 0
    room_json = capacity(0, 8, cost=room.cost(), cores=2)
    assert room_json.cost_source == "warm-up" and room_json.sessions_more == min(8, fit.reduced)
