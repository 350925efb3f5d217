"""The daily routine: reproducible per seed, a whole day, the expected sensors at the expected times."""

from __future__ import annotations

import itertools
import random

from simulators.routine import DAY, HOUR, Routine, draw_profile, local_midnight, plan_day

ROOMS = ["living_room", "kitchen", "bathroom", "bedroom"]
MIDNIGHT = local_midnight(1_700_000_000.0)


def test_a_day_is_covered_back_to_back():
    profile = draw_profile(random.Random(3))
    day = plan_day(profile, MIDNIGHT, random.Random(4))
    assert day[0].start == MIDNIGHT and day[-1].end == MIDNIGHT + DAY
    for a, b in itertools.pairwise(day):
        assert a.end <= b.start + 1e-6
    kinds = {a.kind for a in day}
    assert {"sleep", "meal", "bathroom", "idle"} <= kinds


def test_same_seed_same_day_other_seed_other_day():
    one = Routine(draw_profile(random.Random(1)), 1, ROOMS).events(MIDNIGHT, MIDNIGHT + DAY)
    again = Routine(draw_profile(random.Random(1)), 1, ROOMS).events(MIDNIGHT, MIDNIGHT + DAY)
    other = Routine(draw_profile(random.Random(2)), 2, ROOMS).events(MIDNIGHT, MIDNIGHT + DAY)
    assert one == again
    assert one != other


def test_events_are_ordered_and_plausible():
    routine = Routine(draw_profile(random.Random(5)), 5, ROOMS)
    events = routine.events(MIDNIGHT, MIDNIGHT + 2 * DAY)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    roles = {e.role for e in events}
    assert {"motion", "bed", "checkin"} <= roles
    # Nobody moves in the kitchen at 3 a.m.: the night belongs to the bedroom and the bathroom.
    night = [e for e in events if e.role == "motion" and (e.ts - MIDNIGHT) % DAY < 3 * HOUR and e.body["motion"]]
    assert {e.room for e in night} <= {"bedroom", "bathroom"}


def test_going_out_opens_and_closes_the_door_twice():
    for seed in range(20):
        routine = Routine(draw_profile(random.Random(seed)), seed, ROOMS)
        outings = [a for a in routine.day(MIDNIGHT) if a.kind == "out"]
        if outings:
            out = outings[0]
            doors = [e for e in routine.events(out.start - 1, out.end + 60) if e.role == "exit"]
            assert [e.body["contact"] for e in doors] == ["open", "closed", "open", "closed"]
            motion = [e for e in routine.events(out.start + 60, out.end - 60) if e.role == "motion"
                      and e.body["motion"]]
            assert motion == []
            return
    raise AssertionError("no resident went out in 20 draws")
