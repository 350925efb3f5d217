"""Hour-of-week profile: SQL rows, learning from events, smoothing and cold start."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from hub.detection.activity_profile import (
    ActivityProfile,
    OnlineProfileLearner,
    hour_of_week,
    hourly_activity,
    profile_from_counts,
    profile_from_events,
)
from hub.detection.home_events import DetectionError, HomeEvent

MONDAY = datetime(2024, 3, 4)


def test_hour_of_week_matches_isodow_convention() -> None:
    assert hour_of_week(MONDAY) == 0
    assert hour_of_week(MONDAY + timedelta(days=6, hours=23, minutes=59)) == 167


def test_profile_from_counts_accepts_tuples_and_mappings() -> None:
    profile = profile_from_counts(
        [(0, 4.0, 0.5, 2), {"hour_of_week": 1, "mean_events": 1.0, "share_active": 1.0, "weeks_observed": 3}]
    )
    assert profile.hours[0].share_active == 0.5
    assert profile.hours[1].weeks_observed == 3
    assert profile.hours[2].weeks_observed == 0
    assert profile.history_days == pytest.approx(5 / 24)
    assert ActivityProfile.from_dict(profile.to_dict()) == profile


@pytest.mark.parametrize("row", [(168, 1.0, 0.5, 1), (0, 1.0, 1.5, 1), (0, -1.0, 0.5, 1), ("x", 1, 1, 1)])
def test_bad_rows_are_rejected(row: tuple[object, ...]) -> None:
    with pytest.raises(DetectionError):
        profile_from_counts([row])


def test_profile_from_events_leaves_out_away_hours() -> None:
    events = [
        HomeEvent(MONDAY + timedelta(hours=9, minutes=5), "A", "motion", "Kitchen"),
        HomeEvent(MONDAY + timedelta(hours=9, minutes=6), "A", "motion", "Kitchen", state="OFF"),
        HomeEvent(MONDAY + timedelta(days=7, hours=9, minutes=1), "A", "motion", "Kitchen"),
    ]
    profile = profile_from_events(events, until=MONDAY + timedelta(days=14))
    cell = profile.hours[9]
    assert cell.weeks_observed == 2
    assert cell.share_active == 1.0
    assert cell.mean_events == 1.0  # the PIR "off" is not activity
    assert profile.hours[10].share_active == 0.0

    away = [(MONDAY + timedelta(days=1), MONDAY + timedelta(days=6))]
    trimmed = profile_from_events(events, until=MONDAY + timedelta(days=14), away=away)
    assert trimmed.history_days < profile.history_days
    assert trimmed.hours[24 + 9].weeks_observed == 1


def test_online_learner_never_sees_the_future() -> None:
    learner = OnlineProfileLearner()
    learner.add(MONDAY + timedelta(hours=1))
    learner.add(MONDAY + timedelta(hours=30))
    profile = learner.profile(MONDAY + timedelta(hours=24))
    assert profile.hours[1].share_active == 1.0
    assert profile.hours[30].weeks_observed == 0
    assert profile.history_days == pytest.approx(23 / 24)


def test_hourly_activity_cold_start_and_shrinkage() -> None:
    prior = [0.5] * 168
    probs, learned = hourly_activity(None, prior, min_history_days=7, cap=0.95)
    assert not learned and list(probs) == prior

    busy = profile_from_counts([(h, 10.0, 1.0, 1) for h in range(168)])
    probs, learned = hourly_activity(busy, prior, min_history_days=7, cap=0.95)
    assert learned
    assert 0.5 < probs[10] <= 0.95

    short = profile_from_counts([(h, 10.0, 1.0, 1) for h in range(24)])
    assert hourly_activity(short, prior, min_history_days=7, cap=0.95) == (tuple(prior), False)
    with pytest.raises(DetectionError):
        hourly_activity(busy, [0.5], min_history_days=7, cap=0.95)
