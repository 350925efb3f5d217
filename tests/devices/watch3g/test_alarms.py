"""Tests for devices/watch3g/alarms.py: every status bit, and combinations that must not mask each other."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.watch3g import ALARM_NAMES, STATUS_BITS, build_al, decode_status, encode_status, parse_frame
from devices.watch3g.alarms import parse_status

SINGLE_BITS = [
    (0, "low_battery_state", None),
    (1, "outside_geofence", None),
    (2, "inside_geofence", None),
    (3, "watch_state", None),
    (4, "stationary", None),
    (14, "power_off", "power_off"),
    (16, "sos", "sos"),
    (17, "low_battery", "low_battery"),
    (18, "geofence_exit", "geofence_exit"),
    (19, "geofence_enter", "geofence_enter"),
    (20, "removed", "removed"),
    (21, "fall", "fall"),
    (22, "heart_rate_abnormal", None),
]


@pytest.mark.parametrize(("bit", "flag", "alarm"), SINGLE_BITS)
def test_each_known_bit_alone(bit: int, flag: str, alarm: str | None) -> None:
    status = decode_status(1 << bit)
    assert status.flags == {flag}
    assert status.alarms == ({alarm} if alarm else set())
    assert status.unknown_bits == ()


def test_table_covers_exactly_the_documented_bits() -> None:
    assert [(b.bit, b.flag, b.alarm) for b in STATUS_BITS] == SINGLE_BITS
    assert {b.alarm for b in STATUS_BITS if b.alarm} == ALARM_NAMES


@pytest.mark.parametrize(
    ("hex_word", "alarms"),
    [
        ("00030000", {"sos", "low_battery"}),  # the combination a first-match decoder gets wrong
        ("00010001", {"sos"}),  # SOS with the low-battery *condition* bit
        ("00300000", {"fall", "removed"}),
        ("00310000", {"sos", "fall", "removed"}),
        ("000C0000", {"geofence_exit", "geofence_enter"}),
        ("00014000", {"sos", "power_off"}),
        ("007F4000", ALARM_NAMES),
        ("00000000", set()),
        ("0000001F", set()),
    ],
)
def test_combinations_report_every_alarm(hex_word: str, alarms: set[str]) -> None:
    assert parse_status(hex_word).alarms == alarms


def test_unknown_bits_are_kept_not_dropped() -> None:
    status = decode_status(0x80010020)
    assert status.alarms == {"sos"}
    assert status.unknown_bits == (5, 31)
    assert status.has_alarm_bits


@given(st.integers(0, 0xFFFFFFFF))
def test_sos_is_never_hidden_by_other_bits(value: int) -> None:
    status = decode_status(value | 1 << 16)
    assert "sos" in status.alarms


@given(st.integers(0, 0xFFFFFFFF))
def test_every_set_bit_is_accounted_for(value: int) -> None:
    status = decode_status(value)
    known = {b.bit for b in STATUS_BITS if b.flag in status.flags}
    assert known | set(status.unknown_bits) == {i for i in range(32) if value >> i & 1}


@given(st.sets(st.sampled_from(sorted(ALARM_NAMES))))
def test_encode_status_round_trips(alarms: set[str]) -> None:
    assert decode_status(encode_status(alarms)).alarms == alarms


def test_fall_and_removed_arrive_together_in_an_al_frame() -> None:
    ts = datetime(2024, 1, 1, tzinfo=UTC)
    raw = build_al("1", ts, 47.08, 15.48, True, 44, encode_status(["fall", "removed"]))
    assert parse_frame(raw).alarms == {"fall", "removed"}


@pytest.mark.parametrize("text", ["", "123456789", "0x10", "zz", " 1"])
def test_parse_status_refuses_bad_text(text: str) -> None:
    with pytest.raises(ValueError):
        parse_status(text)


def test_encode_status_refuses_unknown_names() -> None:
    with pytest.raises(ValueError):
        encode_status(["earthquake"])
    with pytest.raises(ValueError):
        encode_status(flags=["sleepy"])
    with pytest.raises(ValueError):
        decode_status(1 << 32)
