"""The homes evaluation on small synthetic homes, and on ../shared/datasets when it is there."""

from __future__ import annotations

import gzip
import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.detection.evaluate_homes import (
    DEFAULT_DATA,
    HOMES,
    FlatSilenceRule,
    cut_points,
    main,
    measure,
)
from hub.detection.home_events import HomeEvent
from hub.detection.home_monitor import ResidentConfig
from simulators.casas import HomeLog, SensorSpec


def motion(ts: datetime, sensor: str = "Hall", room: str = "living_room") -> HomeEvent:
    return HomeEvent(ts, sensor, "motion", room, False, "ON")


def busy_day(day: datetime) -> list[HomeEvent]:
    """Motion every 4 minutes from 07:30 to 22:00, then to bed."""
    events = [motion(day + timedelta(hours=7, minutes=30 + 4 * i), "Hall" if i % 2 else "Kitchen")
              for i in range(int(14.5 * 15))]
    events.append(motion(day + timedelta(hours=22, minutes=10), "BedPIR", "bedroom"))
    return events


def test_cuts_are_daytime_at_home_and_just_after_activity() -> None:
    day = datetime(2024, 3, 4)
    events = busy_day(day) + busy_day(day + timedelta(days=1))
    away = [(day + timedelta(hours=12), day + timedelta(hours=15))]
    log = HomeLog("h", events, {}, away)
    cuts = cut_points(log)
    assert cuts
    assert all(8 <= c.hour < 20 for c in cuts)
    assert not any(away[0][0] <= c <= away[0][1] for c in cuts)
    assert all(c.minute in (7, 37) for c in cuts)
    assert len(cuts) == 2 * 24 - 6  # two a daytime hour over two days, less the 3 h away


def test_live_detector_and_flat_rule_on_a_synthetic_home() -> None:
    day = datetime(2024, 3, 4)
    events = [e for d in range(3) for e in busy_day(day + timedelta(days=d))]
    log = HomeLog("h", events, {"Hall": SensorSpec("motion", "living_room", False)}, [])
    live = measure(log, None, ResidentConfig())
    flat = measure(log, FlatSilenceRule, ResidentConfig())
    # The nights in bed raise nothing; the recording's end is not a silence.
    assert live.false_alarms() == 0
    assert flat.false_alarms() == 0
    assert len(live.delays) == len(flat.delays) > 0
    assert live.found_share() == 1.0  # every collapse found within 3 h
    median = live.median_min()
    assert median is not None and median < 180
    assert flat.median_min() == 180.0 or (flat.median_min() or 0) > median


def write_home(folder: Path, days: int, with_motion: bool) -> None:
    folder.mkdir(parents=True)
    lines = []
    start = datetime(2024, 3, 4)
    for d in range(days):
        for i in range(int(14.5 * 6)):
            ts = start + timedelta(days=d, hours=7, minutes=30 + 10 * i)
            sensor = ("Hall" if i % 2 else "Kitchen") if with_motion else ("Cupboard" if i % 2 else "Fridge")
            lines.append(f"{ts:%Y-%m-%d %H:%M:%S}\t{sensor}\t{'ON' if with_motion else 'OPEN'}")
    with gzip.open(folder / "events.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    kinds = "Hall,living_room,motion,\nKitchen,kitchen,motion,\n" if with_motion else (
        "Cupboard,kitchen,door,\nFridge,kitchen,door,\n")
    (folder / "rooms.csv").write_text("sensor,room,kind,note\n" + kinds)
    (folder / "absences.csv").write_text("start,end,duration_min,label\n")


def test_main_prints_a_table_for_every_home(tmp_path: Path) -> None:
    for name, rel in HOMES:
        if rel.endswith(".txt"):
            (tmp_path / rel).parent.mkdir(parents=True)
            lines = [f"{e.ts:%Y-%m-%d %H:%M:%S.%f}\t{e.sensor}\tON" for e in busy_day(datetime(2016, 7, 12))]
            (tmp_path / rel).write_text("\n".join(lines) + "\n")
        else:
            write_home(tmp_path / rel, 1, with_motion=name != "kasteren_a")
    out, err = io.StringIO(), io.StringIO()
    assert main(["--data", str(tmp_path)], out, err) == 0
    text = out.getvalue()
    for name, _ in HOMES:
        assert f"\n{name} " in text
    assert "flat 3 h" in text and "live LOHO" in text and "live shipped" in text
    assert "no motion sensors: reported, no target" in text  # the door/item-only home


def test_missing_datasets_are_a_clear_error(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["--data", str(tmp_path / "nowhere")], out, err) == 2
    assert "not found" in err.getvalue()


@pytest.mark.skipif(not (DEFAULT_DATA / "homes").exists(),
                    reason=f"home datasets not found at {DEFAULT_DATA} (see ../shared/datasets/README.md)")
def test_every_recorded_home_replays_without_inactivity_during_the_casas_absence() -> None:
    from hub.detection.evaluate_homes import load_homes

    logs = {log.name: log for log in load_homes(DEFAULT_DATA)}
    assert set(logs) == {name for name, _ in HOMES}
    casas = logs["casas_cil"]
    fig = measure(casas, None, ResidentConfig())
    assert fig.alerts.get("inactivity", 0) == 0
