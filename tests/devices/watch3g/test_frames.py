"""Tests for devices/watch3g/frames.py and encoding.py: real captures, escapes, lengths, replies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devices.watch3g import (
    Cell,
    FrameError,
    Wifi,
    build_al,
    build_lk,
    build_ud,
    build_vitals,
    encode_frame,
    encode_status,
    parse_frame,
    reply_for,
)

CAPTURES = json.loads((Path(__file__).parent / "frames.json").read_text())["frames"]


def _raw(case: dict[str, Any]) -> bytes:
    return case["text"].encode("ascii") if "text" in case else bytes.fromhex(case["hex"])


@pytest.mark.parametrize("case", CAPTURES, ids=[c["name"] for c in CAPTURES])
def test_capture_decodes_as_expected(case: dict[str, Any]) -> None:
    frame = parse_frame(_raw(case))
    for key, want in case["expect"].items():
        if key == "reply":
            reply = reply_for(frame)
            assert (reply.decode() if reply else None) == want
        elif key in ("lat", "lon", "accuracy_m"):
            assert frame.location is not None
            assert getattr(frame.location, key) == pytest.approx(want)
        elif key == "location":
            assert frame.location is None if want is None else frame.location is not None
        elif key in ("cells", "wifis"):
            assert len(getattr(frame, key)) == want
        elif key == "alarms":
            assert frame.alarms == frozenset(want)
        elif key == "flags":
            assert frame.status is not None
            assert frame.status.flags == frozenset(want)
        elif key == "ts":
            assert frame.ts == datetime.fromisoformat(want)
        elif key == "raw_content_hex":
            assert frame.raw_content == bytes.fromhex(want)
        else:
            assert getattr(frame, key) == want, key


def test_every_capture_keeps_its_wire_bytes_and_device_time_is_utc() -> None:
    for case in CAPTURES:
        frame = parse_frame(_raw(case))
        assert frame.wire == _raw(case)
        assert frame.ts is None or frame.ts.tzinfo is UTC


def test_al_without_fix_still_reports_sos() -> None:
    frame = parse_frame(b"[3G*6907919734*003E*AL_LTE,170525,214118,V,0,N,0,E,0,0,0,0,0,22,0,0,"
                        b"00010000,0,0,0]")
    assert frame.alarms == {"sos"}
    assert frame.location is None
    assert frame.fix_valid is False
    assert reply_for(frame) == b"[3G*6907919734*0002*AL]"


def test_escapes_are_undone_in_content() -> None:
    content = b"TK," + bytes([0x7D, 1, 0x7D, 2, 0x7D, 3, 0x7D, 4, 0x7D, 5, 0xFF])
    frame = parse_frame(b"[CS*1234567890*0009*" + content + b"]")
    assert frame.raw_content == b"TK,}[],*\xff"
    assert frame.length_ok


def test_escaped_comma_in_wifi_name_does_not_split_fields() -> None:
    wifis = [Wifi(mac="aa:bb:cc:dd:ee:ff", rssi=-50, name="Home, 2nd [floor]*"),
             Wifi("11:22:33:44:55:66", -70)]
    raw = build_ud("8800000015", datetime(2024, 5, 1, 8, 0, tzinfo=UTC), 22.5, 113.9, cells=[], wifis=wifis)
    frame = parse_frame(raw)
    assert [w.name for w in frame.wifis] == ["Home, 2nd [floor]*", ""]
    assert frame.length_ok


def test_stray_escape_byte_is_kept_with_a_warning() -> None:
    frame = parse_frame(b"[3G*1*0004*X,}a]")
    assert frame.raw_content == b"X,}a"
    assert any("0x7D" in w for w in frame.warnings)


def test_length_counting_escaped_bytes_is_tolerated() -> None:
    frame = parse_frame(b"[3G*1*0005*TK,}\x01]")  # 5 wire bytes, 4 after unescaping
    assert frame.length_ok
    assert "length field counts escaped bytes" in frame.warnings


def test_wrong_length_is_flagged_or_refused_when_strict() -> None:
    raw = b"[3G*8800000015*0009*LK,50,100,100]"
    frame = parse_frame(raw)
    assert not frame.length_ok
    assert frame.battery == 100
    with pytest.raises(FrameError) as err:
        parse_frame(raw, strict_length=True)
    assert err.value.reason == "bad_length"
    assert err.value.device_id == "8800000015"


def test_lowercase_hex_length_is_accepted() -> None:
    assert parse_frame(b"[3G*1*000a*heart,71,,]").length_ok


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "not_framed"),
        (b"3G*1*0002*LK", "not_framed"),
        (b"[3G*1*0002*LK", "not_framed"),
        (b"[3G1*0002*LK]", "bad_header"),
        (b"[3G*12 34*0002*LK]", "bad_header"),
        (b"[3G*1*00Z2*LK]", "bad_header"),
        (b"[3G*1*02*LK]", "bad_header"),
        (b"[&&*1*0002*LK]", "bad_header"),
        (b"[3G*1*0000*]", "bad_kind"),
        (b"[3G*1*0004*L K,]", "bad_kind"),
        (b"[3G*1*0003*UD,]", "missing_fields"),
        (b"[3G*1*0040*UD,321399,101010,A,1,N,1,E,0,0,0,0,100,50,0,0,00000000]", "bad_time"),
        (b"[3G*1*0040*UD,1x0101,101010,A,1,N,1,E,0,0,0,0,100,50,0,0,00000000]", "bad_time"),
        (b"[3G*1*0040*UD,010124,101010,X,1,N,1,E,0,0,0,0,100,50,0,0,00000000]", "bad_validity"),
        (b"[3G*1*0040*AL,010124,101010,A,1,N,1,E,0,0,0,0,100,50,0,0,0001000G]", "bad_status"),
        (b"[3G*1*0040*AL,010124,101010,A,1,N,1,E,0,0,0,0,100,50,0,0,100000000]", "bad_status"),
        (b"[3G*1*0010*bphrt,12x,80,70]", "bad_number"),
        (b"[3G*1*0010*bphrt,520,80,70]", "out_of_range"),
        (b"[3G*1*0010*heart]", "missing_fields"),
        (b"[3G*1*0010*btemp2,1,nan]", "bad_number"),
    ],
)
def test_malformed_frames_raise_frame_error(raw: bytes, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        parse_frame(raw)
    assert err.value.reason == reason


def test_error_message_names_the_problem_not_the_payload() -> None:
    raw = b"[3G*4700222306*0040*AL,010124,101010,A,48.779045,N,9.157473,E,0,0,0,0,100,50,0,0,zz]"
    with pytest.raises(FrameError) as err:
        parse_frame(raw)
    assert err.value.device_id == "4700222306"
    assert err.value.kind == "AL"
    assert "48.77" not in str(err.value)
    assert "status" in str(err.value)


def test_valid_flag_with_unusable_coordinates_keeps_the_alarm() -> None:
    raw = encode_frame("3G", "1", b"AL,010124,101010,A,abc,N,0,E,0,0,0,0,100,50,0,0,00010000")
    frame = parse_frame(raw)
    assert frame.alarms == {"sos"}
    assert frame.location is None
    assert any("treated as no fix" in w for w in frame.warnings)


def test_fix_at_zero_zero_is_not_a_location() -> None:
    raw = encode_frame("3G", "1", b"UD,010124,101010,A,0.0,N,0.0,E,0,0,0,0,100,50,0,0,00000000")
    frame = parse_frame(raw)
    assert frame.location is None


def test_descriptive_numbers_out_of_range_become_none_with_warning() -> None:
    frame = parse_frame(encode_frame("3G", "1", b"UD,010124,101010,V,0,N,0,E,0,0,0,0,100,150,x,0,00000000"))
    assert frame.battery is None
    assert frame.steps is None
    assert any("battery" in w for w in frame.warnings)


def test_unset_device_clock_gives_no_timestamp() -> None:
    frame = parse_frame(encode_frame("3G", "1", b"AL,000000,000000,V,0,N,0,E,0,0,0,0,100,50,0,0,00010000"))
    assert frame.ts is None
    assert frame.alarms == {"sos"}


def test_malformed_network_tail_is_dropped_not_fatal() -> None:
    raw = encode_frame("3G", "1", b"AL,010124,101010,V,0,N,0,E,0,0,0,0,100,50,0,0,00010000,9,1,460")
    frame = parse_frame(raw)
    assert frame.alarms == {"sos"}
    assert frame.cells == ()
    assert any("cell/Wi-Fi" in w for w in frame.warnings)


def test_unknown_kind_is_a_frame_without_data() -> None:
    frame = parse_frame(b"[3G*8308406279*0008*rcapture]")
    assert frame.kind == "rcapture"
    assert frame.status is None
    assert reply_for(frame) is None


def test_short_lk_is_understood_as_nothing_but_still_acknowledged() -> None:
    frame = parse_frame(b"[SG*9081000548*0008*LK,0,100]")
    assert frame.battery is None
    assert reply_for(frame) == b"[SG*9081000548*0002*LK]"


# --- encoders -------------------------------------------------------------------------------


def test_encode_frame_escapes_framing_bytes_and_counts_unescaped_length() -> None:
    raw = encode_frame("CS", "1234567890", b"TK,#!AMR}[]\xff")
    assert raw == b"[CS*1234567890*000C*TK,#!AMR}\x01}\x02}\x03\xff]"
    assert parse_frame(raw, strict_length=True).raw_content == b"TK,#!AMR}[]\xff"


def test_encode_frame_with_fields_escapes_inside_fields_only() -> None:
    raw = encode_frame("3G", "1", ["X", "a,b", b"*"])
    assert raw == b"[3G*1*0007*X,a}\x04b,}\x05]"
    assert parse_frame(raw, strict_length=True).raw_content == b"X,a,b,*"


@pytest.mark.parametrize(
    ("maker", "device_id", "index"),
    [("3", "1", None), ("3G", "", None), ("3G", "a*b", None), ("3G", "1", "12")],
)
def test_encode_frame_refuses_bad_header_parts(maker: str, device_id: str, index: str | None) -> None:
    with pytest.raises(ValueError):
        encode_frame(maker, device_id, b"LK", index=index)


def test_build_lk_round_trips() -> None:
    assert build_lk("8800000015") == b"[3G*8800000015*0002*LK]"
    frame = parse_frame(build_lk("8800000015", battery=42, steps=1200, maker="SG"), strict_length=True)
    assert (frame.maker, frame.battery, frame.steps) == ("SG", 42, 1200)


def test_build_ud_round_trips_every_value() -> None:
    ts = datetime(2024, 2, 29, 23, 59, 58, tzinfo=UTC)
    cells = [Cell(460, 0, 9360, 4082, 131), Cell(460, 0, 9360, 4092, None)]
    wifis = [Wifi("f4:db:e6:d2:a8:00", -53, "eduroam")]
    raw = build_ud("9031853319", ts, -33.480366, -70.763069, True, 64, encode_status(flags=["stationary"]),
                   cells=cells, wifis=wifis, kind="UD_LTE", accuracy_m=12.5, steps=321, signal=80)
    frame = parse_frame(raw, strict_length=True)
    assert frame.kind == "UD_LTE"
    assert frame.ts == ts
    assert frame.location is not None
    location = frame.location
    assert (location.lat, location.lon, location.accuracy_m) == (-33.480366, -70.763069, 12.5)
    assert (frame.battery, frame.steps, frame.signal) == (64, 321, 80)
    assert frame.cells == tuple(cells)
    assert frame.wifis == tuple(wifis)
    assert frame.status is not None
    assert frame.status.flags == {"stationary"}
    assert frame.warnings == ()


def test_build_al_without_fix_round_trips_and_is_acknowledged() -> None:
    ts = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = build_al("8800000015", ts, 0, 0, False, 15, encode_status(["sos", "low_battery"]), kind="AL_LTE")
    frame = parse_frame(raw, strict_length=True)
    assert frame.alarms == {"sos", "low_battery"}
    assert frame.location is None
    assert reply_for(frame) == b"[3G*8800000015*0002*AL]"
    with pytest.raises(ValueError):
        build_al("1", ts, 0, 0, kind="UD")


def test_build_vitals_round_trips() -> None:
    bp = parse_frame(build_vitals("1", heart_rate=70, systolic=125, diastolic=82), strict_length=True)
    assert (bp.kind, bp.systolic, bp.diastolic, bp.heart_rate) == ("bphrt", 125, 82, 70)
    hr = parse_frame(build_vitals("1", heart_rate=58), strict_length=True)
    assert (hr.kind, hr.heart_rate) == ("heart", 58)


def test_builders_refuse_out_of_range_values() -> None:
    ts = datetime(2024, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        build_ud("1", ts, 91.0, 0.0)
    with pytest.raises(ValueError):
        build_ud("1", ts, 0.0, 0.0, battery=101)
    with pytest.raises(ValueError):
        build_lk("1", battery=-1)
