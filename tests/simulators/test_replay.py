"""The replay command on small synthetic logs, and on the CASAS CIL recording when it is present."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.detection.home_monitor import ResidentConfig
from simulators.casas import read_log
from simulators.replay import collapse_study, main, pick_cut_points, replay, summarise_delays

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "casas_cil"
ABSENCE_LOG = DATASET / "tm000.multiday_absence.txt"


def run(argv: list[str]) -> tuple[int, list[dict[str, object]], str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, out, err)
    return status, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def morning_lines(start: datetime, minutes: int, tab: bool) -> list[str]:
    lines = []
    for i in range(minutes):
        ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        sensor = "KitchenASink" if i % 2 else "LivingRoomAArea"
        lines.append(f"{ts}\t{sensor}\tON\t" if tab else f"{ts} {sensor} ON")
    return lines


def test_cil_log_silence_after_last_event_raises_inactivity(tmp_path: Path) -> None:
    log = tmp_path / "cil.txt"
    lines = morning_lines(datetime(2016, 7, 12, 9), 30, tab=True)
    lines.insert(5, "2016-07-12 09:04:30\tbroken")
    log.write_text("\n".join(lines) + "\n")
    status, alerts, err = run(["casas", str(log)])
    assert status == 0
    assert "skipped 1 malformed lines" in err
    assert ":6: skipped malformed line" in err
    inactivity = [a for a in alerts if a["type"] == "inactivity"]
    assert len(inactivity) == 1
    alert = inactivity[0]
    assert set(alert) == {"ts", "type", "severity", "details"}
    assert alert["severity"] == "critical"
    fired = datetime.fromisoformat(str(alert["ts"]))
    assert timedelta(minutes=115) <= fired - datetime(2016, 7, 12, 9, 29) <= timedelta(minutes=125)


def test_until_stops_the_replay(tmp_path: Path) -> None:
    log = tmp_path / "cil.txt"
    log.write_text("\n".join(morning_lines(datetime(2016, 7, 12, 9), 30, tab=True)))
    _, alerts, _ = run(["casas", str(log), "--until", "2016-07-12T10:30:00"])
    assert alerts == []


def test_space_format_with_sensor_map_door_exit_means_away(tmp_path: Path) -> None:
    log = tmp_path / "aruba.txt"
    lines = morning_lines(datetime(2010, 11, 4, 9), 20, tab=False)
    lines += [
        "2010-11-04 09:30:00.000001 D001 OPEN",
        "2010-11-04 09:30:40.000001 D001 CLOSE Leave_Home begin",
    ]
    log.write_text("\n".join(lines) + "\n")
    sensors = tmp_path / "map.json"
    sensors.write_text(json.dumps({"D001": {"kind": "door", "room": "Hall", "exit": True}}))
    _, alerts, _ = run(["casas", str(log), "--sensors", str(sensors), "--summary"])
    assert [a["type"] for a in alerts] == ["not_home"]
    assert alerts[0]["ts"] == "2010-11-04T22:00:00"

    # Without the map D001 is a plain door (not an exit), so the silence is alarming.
    _, alerts, _ = run(["casas", str(log)])
    assert "inactivity" in [a["type"] for a in alerts]


def test_resident_config_inline_and_errors(tmp_path: Path) -> None:
    log = tmp_path / "cil.txt"
    log.write_text("\n".join(morning_lines(datetime(2016, 7, 12, 9), 30, tab=True)))
    cfg = '{"inactivity": {"max_silence_awake_min": 60, "min_silence_min": 30}}'
    _, alerts, _ = run(["casas", str(log), "--resident-config", cfg])
    first = datetime.fromisoformat(str(alerts[0]["ts"]))
    assert first - datetime(2016, 7, 12, 9, 29) <= timedelta(minutes=61)

    status, _, err = run(["casas", str(log), "--resident-config", '{"bogus": 1}'])
    assert status == 2 and "bad resident config" in err
    status, _, err = run(["casas", str(tmp_path / "missing.txt")])
    assert status == 2 and "cannot read" in err


def test_collapse_study_helpers_on_synthetic_days(tmp_path: Path) -> None:
    lines: list[str] = []
    for day in range(3):
        lines += morning_lines(datetime(2016, 7, 11 + day, 8), 12 * 60, tab=True)
    log = tmp_path / "days.txt"
    log.write_text("\n".join(lines))
    events = read_log(log)
    cuts = pick_cut_points(events, 10, seed=3)
    assert len(cuts) == 10 and cuts == sorted(cuts)
    assert all(8 <= c.hour < 20 for c in cuts)
    results = collapse_study(events, ResidentConfig(), cuts)
    delays = [r.inactivity_delay_min for r in results]
    assert all(d is not None and d <= 125 for d in delays)
    summary = summarise_delays(delays)
    assert summary["n"] == 10 and summary["missed_24h"] == 0 and summary["share_le_limit"] == 1.0
    out, err = io.StringIO(), io.StringIO()
    assert main(["collapse-study", str(log), "--samples", "5", "--seed", "3"], out, err) == 0
    report = json.loads(out.getvalue())
    assert report["samples"] == 5
    assert report["inactivity_delay_min"]["missed_24h"] == 0


needs_dataset = pytest.mark.skipif(
    not ABSENCE_LOG.exists(), reason=f"CASAS CIL dataset not found at {DATASET} (see ../shared/datasets)"
)


@pytest.mark.dataset
@needs_dataset
def test_no_inactivity_alarm_during_the_multiday_absence() -> None:
    events = read_log(ABSENCE_LOG)
    alerts = replay(events, ResidentConfig(), until=events[-1].ts)
    absence = (datetime(2016, 7, 13, 7), datetime(2016, 7, 16, 19))
    assert [a for a in alerts if a.type == "inactivity"] == []
    not_home = [a for a in alerts if a.type == "not_home"]
    assert [a.ts for a in not_home] == [datetime(2016, 7, 13, 22)]
    assert absence[0] <= not_home[0].ts <= absence[1]


@pytest.mark.dataset
@needs_dataset
def test_log_truncated_at_midday_raises_inactivity_within_three_hours() -> None:
    cut = datetime(2016, 7, 18, 12, 0)
    events = [e for e in read_log(ABSENCE_LOG) if e.ts < cut]
    alerts = replay(events, ResidentConfig(), until=cut + timedelta(hours=6))
    inactivity = [a for a in alerts if a.type == "inactivity"]
    assert len(inactivity) == 1
    assert timedelta(0) < inactivity[0].ts - cut <= timedelta(hours=3)


def write_home_folder(folder: Path, lines: list[str], absences: list[str] | None = None) -> Path:
    """A tiny synthetic homes/ folder: gzip events, rooms.csv and absences.csv."""
    import gzip

    folder.mkdir()
    with gzip.open(folder / "events.txt.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    (folder / "rooms.csv").write_text(
        "sensor,room,kind,note\n"
        "Hall_PIR,living_room,motion,\n"
        "Kitchen_PIR,kitchen,motion,\n"
        "Sofa,living_room,item,pressure\n"
        "Bed,bedroom,item,pressure\n"
        "Maindoor,entrance,door,\n"
    )
    (folder / "absences.csv").write_text("start,end,duration_min,label\n" + "\n".join(absences or []) + "\n")
    return folder


def home_day(day: str) -> list[str]:
    """Up at 08:00, busy until 10:00, on the sofa 10:00-14:00 (no other events), busy, to bed at 22:30."""
    lines = [f"{day} 07:59:00\tBed\tOFF"]
    for i in range(0, 120, 2):
        sensor = "Hall_PIR" if i % 4 else "Kitchen_PIR"
        lines.append(f"{day} {8 + i // 60:02d}:{i % 60:02d}:10\t{sensor}\tON")
    lines += [f"{day} 10:00:00\tSofa\tON", f"{day} 14:00:00\tSofa\tOFF"]
    for i in range(0, 480, 3):
        sensor = "Hall_PIR" if i % 6 else "Kitchen_PIR"
        lines.append(f"{day} {14 + i // 60:02d}:{i % 60:02d}:20\t{sensor}\tON")
    lines.append(f"{day} 22:30:00\tBed\tON")
    return lines


def test_replay_reads_a_homes_folder_with_its_provisioning(tmp_path: Path) -> None:
    lines = home_day("2024-03-04") + home_day("2024-03-05")
    folder = write_home_folder(tmp_path / "home", lines)
    status, alerts, err = run(["casas", str(folder), "--until", "2024-03-05T23:00:00", "--summary"])
    assert status == 0
    assert f"read {len(lines)} events" in err
    # Four hours on the sofa and the nights in bed are presence, not silence: nothing is raised.
    assert alerts == []
    # Provisioning matters: without rooms.csv the sofa would be a plain motion sensor, and the
    # same day raises inactivity while the resident watches television.
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(lines) + "\n")
    _, plain_alerts, _ = run(["casas", str(plain), "--until", "2024-03-05T23:00:00"])
    assert "inactivity" in [a["type"] for a in plain_alerts]


def test_replay_of_a_homes_folder_alerts_when_the_day_stops(tmp_path: Path) -> None:
    lines = home_day("2024-03-04")[:40]  # the morning stops at about 09:17
    folder = write_home_folder(tmp_path / "home", lines)
    _, alerts, _ = run(["casas", str(folder), "--until", "2024-03-04T14:00:00"])
    assert [a["type"] for a in alerts] == ["inactivity"]
    fired = datetime.fromisoformat(str(alerts[0]["ts"]))
    assert fired - datetime.fromisoformat(lines[-1].split("\t")[0]) <= timedelta(hours=3)


def test_replay_of_a_homes_folder_without_rooms_csv_is_a_clear_error(tmp_path: Path) -> None:
    folder = write_home_folder(tmp_path / "home", home_day("2024-03-04"))
    (folder / "rooms.csv").unlink()
    status, _, err = run(["casas", str(folder)])
    assert status == 2
    assert "rooms.csv" in err
