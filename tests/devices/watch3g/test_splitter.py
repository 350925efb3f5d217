"""Tests for devices/watch3g/splitter.py: frames out of a byte stream, garbage skipped, bounded buffer."""

from __future__ import annotations

import pytest

from devices.watch3g import FrameSplitter, FrameTooLarge, Skipped, parse_frame

LK = b"[3G*9705141740*0009*LK,0,0,53]"
UD = (b"[3G*9705141740*005A*UD,190723,190707,A,36.815109,N,10.1792312,E,8.24,127.9,21.0,5,100,53,0,0,"
      b"00000000,0,0,58.0]")
TKQ = b"[3G*9705141740*0003*TKQ]"
WIFI_BRACKETS = (b"[3G*880900242*013D*UD,120623,140020,A,48.949273,N, 4.3783060,E,18.56,43.8,0.0,12,100,76,"
                 b"226120,0,00000000,2,255,204,8,3110,55025,146,3130,49297,124,5,BangingWifi,"
                 b"34:a1:ed:e1:91:4f,-71,BAR WiFi,36:a2:e1:ed:a1:de,-72,NetworkWifi,26:de:a1:ed:e1:a0,-73,"
                 b"Fiber,36:a1:ed:e1:91:4f,-75,[LG_Wall-Mount A/C]e725,66:a1:ed:e1:e7:25,-82,15.0]")


def frames(items: list[bytes | Skipped]) -> list[bytes]:
    return [i for i in items if isinstance(i, bytes)]


def test_several_frames_in_one_read() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(LK + UD + TKQ + LK) == [LK, UD, TKQ, LK]
    assert splitter.pending == 0


def test_frame_split_across_every_possible_boundary() -> None:
    stream = LK + UD + TKQ
    for cut in range(1, len(stream)):
        splitter = FrameSplitter()
        out = splitter.feed(stream[:cut]) + splitter.feed(stream[cut:])
        assert out == [LK, UD, TKQ], cut


def test_byte_by_byte_delivery() -> None:
    splitter = FrameSplitter()
    out: list[bytes | Skipped] = []
    for b in LK + UD:
        out += splitter.feed(bytes([b]))
    assert out == [LK, UD]


def test_literal_brackets_inside_a_wifi_name_with_a_wrong_length() -> None:
    # A real capture: unescaped '[...]' in a Wi-Fi name *and* a length field 9 bytes too long.
    splitter = FrameSplitter()
    assert splitter.feed(WIFI_BRACKETS + LK) == [WIFI_BRACKETS, LK]
    assert splitter.feed(WIFI_BRACKETS) == []  # could still be arriving...
    assert splitter.flush() == [WIFI_BRACKETS]  # ...until the stream goes quiet
    frame = parse_frame(WIFI_BRACKETS)
    assert not frame.length_ok
    assert frame.wifis[4].name == "[LG_Wall-Mount A/C]e725"


def test_literal_brackets_inside_a_wifi_name_with_a_right_length() -> None:
    fixed = WIFI_BRACKETS.replace(b"*013D*", b"*0134*")
    splitter = FrameSplitter()
    assert splitter.feed(fixed[:-30]) == []
    assert splitter.feed(fixed[-30:]) == [fixed]
    assert parse_frame(fixed, strict_length=True).wifis[4].name == "[LG_Wall-Mount A/C]e725"


def test_escaped_frame_is_cut_by_unescaped_length() -> None:
    voice = b"[CS*1234567890*000e*TK,#!AMR}\x01}\x02}\x03}\x04}\x05\xff]"
    splitter = FrameSplitter()
    assert splitter.feed(voice[:30]) == []
    assert splitter.feed(voice[30:] + LK) == [voice, LK]


def test_garbage_between_frames_is_skipped_and_reported() -> None:
    splitter = FrameSplitter()
    out = splitter.feed(b"\r\nGET / HTTP/1.1\r\n" + LK + b"\x00\x01" + TKQ)
    assert frames(out) == [LK, TKQ]
    skipped = [i for i in out if isinstance(i, Skipped)]
    assert [s.size for s in skipped] == [18, 2]
    assert skipped[0].sample.startswith(b"\r\nGET")


def test_overstated_length_is_cut_when_the_next_frame_starts() -> None:
    bad = b"[3G*1*00FF*LK,0,0,50]"
    splitter = FrameSplitter()
    assert splitter.feed(bad + LK) == [bad, LK]


def test_overstated_length_waits_until_the_stream_goes_quiet() -> None:
    bad = b"[3G*1*00FF*LK,0,0,50]"
    splitter = FrameSplitter()
    assert splitter.feed(bad) == []
    assert splitter.flush() == [bad]


def test_understated_length_is_cut_at_the_first_bracket() -> None:
    bad = b"[SG*9081000548*0001*LK,0,100]"
    assert FrameSplitter().feed(bad) == [bad]


def test_broken_header_is_passed_on_for_the_parser_to_explain() -> None:
    splitter = FrameSplitter()
    out = splitter.feed(b"[3G*1*ZZZZ*LK]" + LK)
    assert out == [b"[3G*1*ZZZZ*LK]", LK]


def test_partial_header_waits_for_more() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(b"[3G*97051") == []
    assert splitter.feed(LK[9:]) == [LK]


def test_truncated_frame_followed_by_a_frame_is_skipped() -> None:
    out = FrameSplitter().feed(b"[3G*1*0009*LK,0" + LK)
    assert frames(out) == [LK]
    assert isinstance(out[0], Skipped)
    assert out[0].reason == "truncated frame"


def test_oversized_frame_raises_and_empties_the_buffer() -> None:
    splitter = FrameSplitter(max_frame=100)
    splitter.feed(b"[3G*1*FFFF*TK,")
    with pytest.raises(FrameTooLarge):
        splitter.feed(b"x" * 200)
    assert splitter.pending == 0


def test_buffer_stays_bounded_under_endless_garbage() -> None:
    splitter = FrameSplitter(max_frame=256)
    for _ in range(100):
        splitter.feed(b"no frames here " * 10)
        assert splitter.pending == 0
