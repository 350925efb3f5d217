"""Safe zones: exits need two clear fixes beyond the accuracy circle; jitter and coarse fixes don't count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alerts.model import Binding
from devices.observation import Location, Observation
from hub.detection.geofence import Geofences, Zone, assess

HOME = Zone("home", 22.5500, 114.0500, 200.0)
BINDING = Binding("WB1", "wristband", "R1", "H1", "sz/futian/lianhua", None)
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def fix(north_m: float, acc: float = 10.0, src: str = "gnss") -> Location:
    return Location(22.5500 + north_m / 111_195, 114.0500, acc, src)


def feed(geo: Geofences, fixes: list[Location]) -> list[str]:
    out = []
    for i, f in enumerate(fixes):
        obs = Observation("WB1", "location", T0 + timedelta(minutes=i), f"m{i}", location=f)
        out += [t.type for t in geo.observe(obs, BINDING)]
    return out


def geo_with_home() -> Geofences:
    geo = Geofences()
    geo.zones = {"R1": [HOME]}
    return geo


def test_assess_is_accuracy_aware():
    assert assess([HOME], fix(0)) == "inside"
    assert assess([HOME], fix(260, acc=10)) == "outside"
    assert assess([HOME], fix(260, acc=500, src="cell")) == "unsure"  # a cell fix cannot prove an exit


def test_two_clear_fixes_outside_raise_one_alert_with_trail():
    geo = geo_with_home()
    obs = [fix(0), fix(300), fix(350), fix(400)]
    assert feed(geo, obs) == ["wandering"]


def test_gps_jitter_at_the_boundary_raises_nothing():
    geo = geo_with_home()
    jitter = [fix(190), fix(215, acc=30), fix(205, acc=25), fix(195), fix(225, acc=40)] * 3
    assert feed(geo, jitter) == []


def test_single_outlier_fix_is_not_an_exit():
    geo = geo_with_home()
    assert feed(geo, [fix(0), fix(800), fix(0), fix(10)]) == []


def test_coming_back_rearms_the_zone():
    geo = geo_with_home()
    assert feed(geo, [fix(400), fix(420), fix(0), fix(410), fix(430)]) == ["wandering", "wandering"]


def test_polygon_zone():
    square = Zone("block", polygon=((22.549, 114.049), (22.549, 114.051), (22.551, 114.051), (22.551, 114.049)))
    assert assess([square], Location(22.5500, 114.0500, 5)) == "inside"
    assert assess([square], Location(22.5530, 114.0500, 5)) == "outside"
    assert square.distance_outside(22.5530, 114.0500) == __import__("pytest").approx(222, abs=3)
