"""Routine rules (morning, night door, bathroom, check-in) with a fake clock."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from hub.detection.home_events import AlertTrigger, HomeEvent
from hub.detection.home_monitor import HomeMonitor, ResidentConfig
from hub.detection.routine import learned_wake_time

MONDAY = datetime(2024, 3, 4)


def at(hhmm: str, day: int = 0) -> datetime:
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


def in_bed_night(clock: FakeClock) -> None:
    clock.feed(motion(at("21:30")))
    clock.feed(HomeEvent(at("22:00"), "Bed", "bed", "Bedroom", False, "occupied"))


def test_not_up_in_the_morning() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    clock.feed(motion(at("23:30"), "BedroomArea", "Bedroom"))  # to bed, no bed sensor
    clock.run_until(at("12:00", day=1))
    (alert,) = clock.of_type("no_morning_activity")
    assert alert.ts == at("09:00", day=1)  # default wake 08:00 + 60 min margin
    assert alert.severity == "high"


def test_still_in_bed_is_judged_by_the_sleep_bound_not_the_morning_rule() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    in_bed_night(clock)
    clock.run_until(at("12:00", day=1))
    assert clock.alerts == []  # a late riser on a bed sensor is not "not up"
    clock.run_until(at("18:00", day=1))
    (late,) = clock.of_type("inactivity")
    assert at("17:00", day=1) <= late.ts <= at("17:01", day=1)  # 10 h sleep bound after 07:00


def test_getting_up_cancels_the_morning_alert_and_config_wake_time_is_used() -> None:
    cfg = ResidentConfig.model_validate({"routine": {"wake_time": "06:00", "wake_margin_min": 30}})
    clock = FakeClock(HomeMonitor(cfg), at("21:00"))
    in_bed_night(clock)
    clock.run_until(at("12:00", day=1))
    assert [a.ts for a in clock.of_type("no_morning_activity")] == [at("06:30", day=1)]

    clock = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    in_bed_night(clock)
    clock.feed(HomeEvent(at("07:10", day=1), "Bed", "bed", "Bedroom", False, "vacant"))
    clock.feed(motion(at("07:12", day=1), "KitchenArea", "Kitchen"))
    clock.run_until(at("08:30", day=1))
    assert clock.of_type("no_morning_activity") == []


def test_no_morning_alert_while_away_or_when_not_watching_since_dawn() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("10:00"))
    clock.feed(motion(at("10:00")))
    clock.run_until(at("10:30"))
    assert clock.of_type("no_morning_activity") == []

    clock = FakeClock(HomeMonitor(ResidentConfig()), at("18:00"))
    clock.feed(HomeEvent(at("18:00"), "FrontDoor", "door", "Hall", True, "CLOSE"))
    clock.run_until(at("12:00", day=1))
    assert clock.of_type("no_morning_activity") == []


def test_learned_wake_time() -> None:
    probs = [0.1] * 168
    probs[6] = 0.7  # Monday 06:00-06:59
    assert learned_wake_time(probs, 0) == time(7, 0)
    assert learned_wake_time(probs, 1) is None


def test_night_door_only_for_wandering_risk() -> None:
    door = HomeEvent(at("02:30", day=1), "FrontDoor", "door", "Hall", True, "OPEN")
    plain = FakeClock(HomeMonitor(ResidentConfig()), at("21:00"))
    plain.feed(motion(at("21:00")))
    plain.feed(door)
    assert plain.of_type("night_door") == []

    cfg = ResidentConfig.model_validate({"routine": {"wandering_risk": True}})
    flagged = FakeClock(HomeMonitor(cfg), at("21:00"))
    flagged.feed(motion(at("21:00")))
    flagged.feed(door)
    flagged.feed(HomeEvent(at("02:31", day=1), "FrontDoor", "door", "Hall", True, "CLOSE"))
    flagged.feed(HomeEvent(at("02:35", day=1), "FrontDoor", "door", "Hall", True, "OPEN"))
    flagged.feed(HomeEvent(at("10:00", day=1), "FrontDoor", "door", "Hall", True, "OPEN"))
    (alert,) = flagged.of_type("night_door")
    assert alert.ts == at("02:30", day=1)
    assert alert.details == {"sensor": "FrontDoor", "room": "Hall", "state": "open"}
    flagged.feed(HomeEvent(at("03:00", day=1), "FrontDoor", "door", "Hall", True, "OPEN"))
    assert len(flagged.of_type("night_door")) == 2


def test_long_bathroom_stay() -> None:
    clock = FakeClock(HomeMonitor(ResidentConfig()), at("10:00"))
    clock.feed(motion(at("10:00")))
    clock.feed(motion(at("10:05"), "BathroomSink", "Bathroom"))
    clock.feed(motion(at("10:20"), "BathroomToilet", "Bathroom"))
    clock.run_until(at("12:00"))
    (alert,) = clock.of_type("long_bathroom")
    assert alert.ts == at("11:05")
    assert alert.details == {"room": "Bathroom", "stay_min": 60}


def test_leaving_the_bathroom_ends_the_stay() -> None:
    cfg = ResidentConfig.model_validate({"routine": {"bathroom_rooms": ["WC"], "bathroom_max_min": 30}})
    clock = FakeClock(HomeMonitor(cfg), at("10:00"))
    clock.feed(motion(at("10:00"), "WcArea", "WC"))
    clock.feed(motion(at("10:20"), "KitchenArea", "Kitchen"))
    clock.feed(motion(at("10:25"), "BathroomArea", "Bathroom"))  # not a bathroom for this resident
    clock.run_until(at("11:00"))
    assert clock.of_type("long_bathroom") == []


def test_missed_checkin() -> None:
    cfg = ResidentConfig.model_validate({"routine": {"checkin_deadline": "10:00"}})
    clock = FakeClock(HomeMonitor(cfg), at("23:00", day=-1))
    clock.feed(motion(at("07:00")))
    clock.run_until(at("23:00"))
    (alert,) = clock.of_type("missed_checkin")
    assert alert.ts == at("10:00")
    assert alert.severity == "medium"
    clock.feed(HomeEvent(at("08:00", day=1), "Wristband", "checkin", "", False, "press"))
    clock.run_until(at("23:00", day=1))
    assert len(clock.of_type("missed_checkin")) == 1
