"""Silence alarm and home/away inference, driven by a fake clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from hub.detection.activity_profile import profile_from_counts
from hub.detection.home_events import AlertTrigger, DetectionError, HomeEvent
from hub.detection.home_monitor import HomeMonitor, ResidentConfig

MONDAY = datetime(2024, 3, 4)


def at(hhmm: str, day: int = 0) -> datetime:
    """Monday-based local time."""
    h, m = (int(x) for x in hhmm.split(":"))
    return MONDAY + timedelta(days=day, hours=h, minutes=m)


def motion(ts: datetime, sensor: str = "LivingRoomArea", room: str = "LivingRoom") -> HomeEvent:
    return HomeEvent(ts, sensor, "motion", room, False, "ON")


class FakeClock:
    """Ticks a monitor minute by minute and records what it raised."""

    def __init__(self, monitor: HomeMonitor, start: datetime) -> None:
        self.monitor = monitor
        self.now = start
        self.alerts: list[AlertTrigger] = []

    def feed(self, event: HomeEvent) -> None:
        self.run_until(event.ts)
        self.alerts.extend(self.monitor.observe(event))

    def run_until(self, end: datetime) -> None:
        while self.now + timedelta(minutes=1) <= end:
            self.now += timedelta(minutes=1)
            self.alerts.extend(self.monitor.tick(self.now))

    def of_type(self, kind: str) -> list[AlertTrigger]:
        return [a for a in self.alerts if a.type == kind]


def busy(clock: FakeClock, start: datetime, minutes: int = 30) -> None:
    """Sustained activity across two rooms, one event a minute."""
    for i in range(minutes):
        sensor, room = ("KitchenArea", "Kitchen") if i % 2 else ("LivingRoomArea", "LivingRoom")
        clock.feed(motion(start + timedelta(minutes=i), sensor, room))


def test_daytime_silence_alerts_once_after_default_threshold() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    busy(clock, at("09:00"))
    last = at("09:29")
    clock.run_until(at("16:00"))
    alerts = clock.of_type("inactivity")
    assert len(alerts) == 1
    delay = alerts[0].ts - last
    # Cold start: p(activity)=0.9 per waking hour, alpha 0.01 -> 2 h.
    assert timedelta(minutes=115) <= delay <= timedelta(minutes=125)
    assert alerts[0].severity == "critical"
    assert alerts[0].details["reason"] == "unusual_for_time"
    assert alerts[0].details["last_room"] == "Kitchen"
    assert alerts[0].details["profile"] == "default"


def test_new_activity_starts_a_new_episode() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    busy(clock, at("09:00"), 5)
    clock.run_until(at("12:00"))
    busy(clock, at("12:00"), 5)
    clock.run_until(at("15:00"))
    assert len(clock.of_type("inactivity")) == 2


def test_learned_busy_profile_shortens_threshold_but_not_below_minimum() -> None:
    rows = [(h, 20.0, 1.0, 4) for h in range(168)]  # four weeks: the learned profile has its full say
    clock = FakeClock(HomeMonitor(ResidentConfig(), profile_from_counts(rows)), at("09:00"))
    busy(clock, at("09:00"))
    clock.run_until(at("13:00"))
    (alert,) = clock.of_type("inactivity")
    assert alert.details["profile"] == "learned"
    # Learned probabilities are capped at 0.95 -> about 92 minutes.
    assert timedelta(minutes=85) <= alert.ts - at("09:29") <= timedelta(minutes=95)

    loose = ResidentConfig.model_validate({"inactivity": {"surprise_alpha": 0.9}})
    clock = FakeClock(HomeMonitor(loose, profile_from_counts(rows)), at("09:00"))
    busy(clock, at("09:00"))
    clock.run_until(at("13:00"))
    (alert,) = clock.of_type("inactivity")
    assert alert.ts - at("09:29") == timedelta(minutes=45)


def test_cold_start_ignores_short_history() -> None:
    rows = [(h, 20.0, 1.0, 1) for h in range(24)]  # one day only
    monitor = HomeMonitor(ResidentConfig(), profile_from_counts(rows))
    assert monitor.silence.learned is False


def test_night_silence_uses_sleep_bounds() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    busy(clock, at("21:00"), 40)
    clock.run_until(at("06:30", day=1))
    assert clock.of_type("inactivity") == []
    clock.run_until(at("09:00", day=1))
    (alert,) = clock.of_type("inactivity")
    assert alert.details["reason"] == "max_silence"


def test_up_late_before_using_the_bed_is_judged_like_a_night_without_a_bed_sensor() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    clock.feed(HomeEvent(at("21:00"), "Bed", "bed", "Bedroom", False, "vacant"))  # the mat's heartbeat
    busy(clock, at("21:30"), 60)  # a late evening in the living room, to 22:29
    clock.run_until(at("06:00", day=1))
    assert clock.of_type("inactivity") == []


def test_empty_bed_at_night_is_treated_like_daytime() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("22:30"))
    clock.feed(HomeEvent(at("22:30"), "Bed", "bed", "Bedroom", False, "occupied"))
    clock.feed(HomeEvent(at("23:00"), "Bed", "bed", "Bedroom", False, "vacant"))
    busy(clock, at("23:00"), 4)
    clock.run_until(at("03:30", day=1))
    (alert,) = clock.of_type("inactivity")
    assert alert.ts <= at("02:10", day=1)


def test_entrance_motion_then_silence_means_away_and_strays_do_not_flip() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    busy(clock, at("09:00"), 10)
    clock.feed(HomeEvent(at("09:12"), "MainEntryway", "motion", "Entryway", True, "ON"))
    clock.feed(motion(at("09:25"), "OfficeArea", "Office"))  # stray PIR in an empty home
    clock.run_until(at("13:00"))
    assert not clock.monitor.at_home
    clock.feed(motion(at("13:00"), "KitchenFridge", "Kitchen"))
    clock.feed(motion(at("13:04"), "KitchenFridge", "Kitchen"))
    clock.run_until(at("20:00"))
    assert not clock.monitor.at_home
    assert clock.of_type("inactivity") == []
    busy(clock, at("20:00"), 5)
    assert clock.monitor.at_home


def test_entrance_motion_followed_by_sustained_activity_stays_home() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    clock.feed(HomeEvent(at("09:00"), "MainEntryway", "motion", "Entryway", True, "ON"))
    busy(clock, at("09:02"), 5)
    clock.run_until(at("12:00"))
    assert clock.monitor.at_home
    assert len(clock.of_type("inactivity")) == 1


def test_exit_door_without_motion_inside_means_away() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    busy(clock, at("09:00"), 5)
    clock.feed(HomeEvent(at("09:10"), "FrontDoor", "door", "Hall", True, "OPEN"))
    clock.feed(HomeEvent(at("09:11"), "FrontDoor", "door", "Hall", True, "CLOSE"))
    clock.run_until(at("15:00"))
    assert not clock.monitor.at_home
    assert clock.of_type("inactivity") == []
    clock.feed(HomeEvent(at("15:00"), "FrontDoor", "door", "Hall", True, "OPEN"))
    clock.feed(motion(at("15:02")))
    assert clock.monitor.at_home


def test_door_then_motion_inside_means_still_home() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    clock.feed(HomeEvent(at("09:10"), "FrontDoor", "door", "Hall", True, "OPEN"))
    clock.feed(HomeEvent(at("09:11"), "FrontDoor", "door", "Hall", True, "CLOSE"))
    clock.feed(motion(at("09:13")))
    clock.run_until(at("12:00"))
    assert clock.monitor.at_home
    assert len(clock.of_type("inactivity")) == 1


def test_bed_occupancy_while_away_means_home() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    clock.feed(HomeEvent(at("09:00"), "FrontDoor", "door", "Hall", True, "CLOSE"))
    clock.run_until(at("10:00"))
    assert not clock.monitor.at_home
    clock.feed(HomeEvent(at("10:00"), "Bed", "bed", "Bedroom", False, "ON"))
    assert clock.monitor.at_home


def test_not_home_fires_once_per_absence_at_night() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("17:00"))
    clock.feed(HomeEvent(at("17:00"), "FrontDoor", "door", "Hall", True, "CLOSE"))
    clock.run_until(at("12:00", day=2))
    (alert,) = clock.of_type("not_home")
    assert alert.ts == at("22:00")
    assert alert.severity == "medium"
    assert alert.details["away_min"] == 300


def test_snapshot_round_trip_hands_over_mid_episode() -> None:
    original = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    busy(original, at("09:00"), 10)
    original.run_until(at("10:00"))
    data = json.loads(json.dumps(original.monitor.state_snapshot()))
    twin = FakeClock(HomeMonitor.from_snapshot(data), original.now)
    original.run_until(at("13:00"))
    twin.run_until(at("13:00"))
    assert [a.to_json() for a in twin.alerts] == [a.to_json() for a in original.alerts[-1:]]
    assert len(twin.alerts) == 1


def test_snapshot_with_wrong_version_is_rejected() -> None:
    data = HomeMonitor(ResidentConfig()).state_snapshot()
    data["version"] = 99
    with pytest.raises(DetectionError):
        HomeMonitor.from_snapshot(data)
    data["version"] = 1
    del data["silence"]
    with pytest.raises(DetectionError):
        HomeMonitor.from_snapshot(data)


def test_aware_timestamps_use_resident_time_zone() -> None:
    from zoneinfo import ZoneInfo

    cfg = ResidentConfig(timezone="Asia/Shanghai")
    tz = ZoneInfo("Asia/Shanghai")
    start = datetime(2024, 3, 4, 9, 0, tzinfo=tz).astimezone(ZoneInfo("UTC"))
    clock = FakeClock(HomeMonitor(cfg), start)
    for i in range(10):
        clock.feed(motion(start + timedelta(minutes=i), f"S{i % 2}"))
    clock.run_until(start + timedelta(hours=3))
    (alert,) = clock.of_type("inactivity")
    assert timedelta(minutes=115) <= alert.ts - start - timedelta(minutes=9) <= timedelta(minutes=125)


def first_inactivity_delay(monitor: HomeMonitor, start: datetime, until: datetime) -> timedelta:
    """Delay from the end of a busy half hour at ``start`` to the first inactivity alert."""
    clock = FakeClock(monitor, start)
    busy(clock, start)
    clock.run_until(until)
    (alert,) = clock.of_type("inactivity")
    return alert.ts - (start + timedelta(minutes=29))


@pytest.mark.parametrize("weeks", [1, 2, 3, 4])
def test_baseline_weight_grows_with_weeks_and_a_week_old_one_is_no_more_eager(weeks: int) -> None:
    busy_rows = [(h, 20.0, 1.0, weeks) for h in range(168)]  # a resident active every hour
    default = first_inactivity_delay(HomeMonitor(ResidentConfig()), at("09:00"), at("14:00"))
    learned = first_inactivity_delay(
        HomeMonitor(ResidentConfig(), profile_from_counts(busy_rows)), at("09:00"), at("14:00")
    )
    if weeks <= 2:  # eager only from two weeks on
        assert learned == default
    else:
        assert learned < default
    younger = [(h, 20.0, 1.0, weeks - 1) for h in range(168)]
    if weeks > 1:
        before = first_inactivity_delay(
            HomeMonitor(ResidentConfig(), profile_from_counts(younger)), at("09:00"), at("14:00")
        )
        assert learned <= before


def bedroom_motion(ts: datetime) -> HomeEvent:
    return HomeEvent(ts, "BedroomArea", "motion", "Bedroom", False, "ON")


def test_sleeping_in_the_bedroom_is_judged_by_the_sleep_bound_not_a_restless_past() -> None:
    # Four weeks of a restless sleeper: motion in every night hour.
    restless = [(h, 5.0, 1.0, 4) for h in range(168)]
    monitor = HomeMonitor(ResidentConfig(), profile_from_counts(restless))
    clock = FakeClock(monitor, at("21:00"))
    busy(clock, at("21:00"))
    clock.feed(bedroom_motion(at("23:10")))
    clock.feed(HomeEvent(at("06:55", 1), "KitchenArea", "motion", "Kitchen", False, "ON"))
    assert clock.alerts == []

    # The same quiet night after the last activity in the living room at 23:10 is still no alarm
    # inside the window: night hours are never more eager than the defaults.
    clock = FakeClock(HomeMonitor(ResidentConfig(), profile_from_counts(restless)), at("21:00"))
    busy(clock, at("21:00"))
    clock.feed(motion(at("23:10")))
    clock.run_until(at("06:50", 1))
    assert clock.of_type("inactivity") == []


def test_after_bed_the_sleep_bound_still_catches_a_night_that_never_ends() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    busy(clock, at("21:00"))
    clock.feed(bedroom_motion(at("23:00")))
    clock.run_until(at("12:00", 1))
    (alert,) = clock.of_type("inactivity")
    assert alert.details["reason"] == "max_silence"
    assert timedelta(minutes=599) <= alert.ts - at("23:00") <= timedelta(minutes=602)


def seat(ts: datetime, state: str) -> HomeEvent:
    return HomeEvent(ts, "Seat", "item", "living_room", False, state)


def test_an_occupied_seat_is_presence_and_getting_up_restarts_the_clock() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("13:00"))
    busy(clock, at("13:00"))
    clock.feed(seat(at("13:30"), "ON"))
    clock.feed(seat(at("18:30"), "OFF"))  # five hours of television
    assert clock.of_type("inactivity") == []
    clock.run_until(at("21:30"))
    (alert,) = clock.of_type("inactivity")
    assert alert.ts - at("18:30") <= timedelta(minutes=180)


def test_a_home_of_doors_and_items_gets_the_sparse_bounds() -> None:
    def door(ts: datetime) -> HomeEvent:
        return HomeEvent(ts, "Cupboard", "door", "kitchen", False, "OPEN")

    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    for i in range(6):
        clock.feed(door(at("09:00") + timedelta(minutes=5 * i)))
    clock.run_until(at("15:00"))
    (alert,) = clock.of_type("inactivity")
    sparse_delay = alert.ts - at("09:25")
    dense_delay = first_inactivity_delay(HomeMonitor(ResidentConfig()), at("09:00"), at("15:00"))
    assert sparse_delay > dense_delay
    assert sparse_delay <= timedelta(minutes=ResidentConfig().inactivity.sparse_max_silence_awake_min)


def test_coming_in_and_falling_inside_the_door_is_a_silence_at_home() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    busy(clock, at("09:00"), 5)
    clock.feed(HomeEvent(at("09:10"), "FrontDoor", "door", "entrance", True, "OPEN"))
    clock.feed(HomeEvent(at("09:11"), "FrontDoor", "door", "entrance", True, "CLOSE"))
    clock.run_until(at("11:00"))
    assert not clock.monitor.at_home
    clock.feed(HomeEvent(at("11:00"), "FrontDoor", "door", "entrance", True, "OPEN"))
    clock.feed(HomeEvent(at("11:01"), "FrontDoor", "door", "entrance", True, "CLOSE"))
    clock.run_until(at("15:00"))
    assert clock.monitor.at_home  # the door that let them in is not a new departure
    (alert,) = clock.of_type("inactivity")
    assert alert.details["last_sensor"] == "FrontDoor"
    assert alert.ts - at("11:01") <= timedelta(minutes=180)

    # Back in, moving about, then out again: that later door cycle is a departure.
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("09:00"))
    clock.feed(HomeEvent(at("09:00"), "FrontDoor", "door", "entrance", True, "CLOSE"))
    clock.run_until(at("10:00"))
    clock.feed(HomeEvent(at("10:00"), "FrontDoor", "door", "entrance", True, "OPEN"))
    clock.feed(motion(at("10:02")))
    clock.feed(HomeEvent(at("10:04"), "FrontDoor", "door", "entrance", True, "OPEN"))
    clock.run_until(at("14:00"))
    assert not clock.monitor.at_home
    assert clock.of_type("inactivity") == []
