"""Parse one `[maker*id*len*content]` frame into a Frame; a pure function of the bytes."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from devices.watch3g.errors import FrameError
from devices.watch3g.fields import FieldReader
from devices.watch3g.model import Frame
from devices.watch3g.position import parse_position
from devices.watch3g.wire import CLOSE, HEADER, OPEN, unescape

MAX_FRAME_BYTES = 64 * 1024
_KIND = re.compile(r"[A-Za-z0-9_]{1,24}")
_MAKER = re.compile(rb"[A-Za-z0-9]{2,4}")
_DEVICE_ID = re.compile(rb"[A-Za-z0-9]{1,32}")
POSITION_KIND = re.compile(r"(?:UD|AL|WT)[A-Z0-9_]*")


def parse_frame(data: bytes, *, strict_length: bool = False) -> Frame:
    """Decode one complete frame as received; raises FrameError (and nothing else) when malformed.

    The length field must be 4 hex digits. Its value should count the content bytes after
    unescaping; a count of the escaped bytes is accepted too. Any other mismatch raises when
    `strict_length` is set, and otherwise sets `length_ok=False` with a warning: watches get it
    wrong around non-ASCII text, and an SOS must not be dropped over a miscount.
    """
    data = bytes(data)
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError("too_long", f"frame of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    if len(data) < 2 or data[0] != OPEN or data[-1] != CLOSE:
        raise FrameError("not_framed", "a frame must start with '[' and end with ']'")
    header = HEADER.match(data)
    if header is None:
        raise _header_error(data)
    maker = header["maker"].decode("ascii")
    device_id = header["id"].decode("ascii")
    wire_content = data[header.end():-1]
    content, stray = unescape(wire_content)
    warnings: list[str] = []
    if stray:
        warnings.append(f"{stray} unescaped 0x7D byte(s) kept as-is")
    declared = int(header["length"], 16)
    length_ok = declared in (len(content), len(wire_content))
    if not length_ok:
        if strict_length:
            raise FrameError("bad_length", f"length field says {declared}, content has {len(content)} bytes",
                             device_id=device_id)
        warnings.append(f"length field says {declared}, content has {len(content)} bytes")
    elif declared != len(content):
        warnings.append("length field counts escaped bytes")
    # Split on the wire: an escaped ',' (0x7D 0x04) inside a Wi-Fi name must not split a field.
    values = [unescape(v)[0] for v in wire_content.split(b",")]
    kind = _kind(values[0], device_id)
    reader = FieldReader(values[1:], device_id, kind)
    body = _body_parser(kind)(reader)
    index = header["index"]
    return Frame(
        maker=maker,
        device_id=device_id,
        kind=kind,
        raw_content=content,
        wire=data,
        index=index.decode("ascii") if index else None,
        length_ok=length_ok,
        warnings=tuple(warnings + reader.warnings),
        **body,
    )


def _header_error(data: bytes) -> FrameError:
    parts = data[1:-1].split(b"*", 4)
    if len(parts) < 4:
        return FrameError("bad_header", "expected maker*id*length*content")
    if not _MAKER.fullmatch(parts[0]):
        return FrameError("bad_header", "maker must be 2-4 letters or digits")
    if not _DEVICE_ID.fullmatch(parts[1]):
        return FrameError("bad_header", "device id must be 1-32 letters or digits")
    return FrameError("bad_header", "length field must be 4 hex digits",
                      device_id=parts[1].decode("ascii"))


def _kind(raw: bytes, device_id: str) -> str:
    try:
        kind = raw.decode("ascii")
    except UnicodeDecodeError:
        kind = ""
    if not _KIND.fullmatch(kind):
        raise FrameError("bad_kind", "content must start with a frame type of 1-24 letters/digits/_",
                         device_id=device_id)
    return kind


def _body_parser(kind: str) -> Callable[[FieldReader], dict[str, Any]]:
    if POSITION_KIND.fullmatch(kind):
        return parse_position
    return _BODIES.get(kind.lower(), _no_body)


def _no_body(_: FieldReader) -> dict[str, Any]:
    return {}


def _link_keep(r: FieldReader) -> dict[str, Any]:
    # `LK` alone or `LK,steps,tumbles,battery`. Never raise: an LK that is not acknowledged makes
    # the watch reboot after a few tries.
    if len(r) == 0:
        return {}
    if len(r) < 3:
        r.warn("LK with fewer than 3 values not understood")
        return {}
    return {
        "steps": r.soft_int(0, "steps", 0, 10**9),
        "tumbles": r.soft_int(1, "tumbles", 0, 10**9),
        "battery": r.soft_int(2, "battery", 0, 100),
    }


def _zero_is_none(value: int | None) -> int | None:
    # The watches send 0 for "not measured".
    return value or None


def _blood_and_heart(r: FieldReader) -> dict[str, Any]:
    # bphrt,systolic,diastolic,heart rate[,height,gender,age,weight]
    r.require(2)
    return {
        "systolic": _zero_is_none(r.integer(0, "systolic", 0, 300)),
        "diastolic": _zero_is_none(r.integer(1, "diastolic", 0, 300)),
        "heart_rate": _zero_is_none(r.integer(2, "heart rate", 0, 300)) if len(r) > 2 else None,
    }


def _heart(r: FieldReader) -> dict[str, Any]:
    # heart,72 / PULSE,72
    r.require(1)
    return {"heart_rate": _zero_is_none(r.integer(0, "heart rate", 0, 300))}


def _oxygen(r: FieldReader) -> dict[str, Any]:
    # oxygen,type,spo2
    r.require(2)
    return {"spo2": _zero_is_none(r.integer(1, "spo2", 0, 100))}


def _temperature(r: FieldReader) -> dict[str, Any]:
    # btemp2,mode,temperature; 0 and 1 are "measurement failed low/high", not temperatures.
    r.require(2)
    value = r.decimal(1, "temperature", 0, 100)
    if value is not None and value <= 1:
        r.warn("temperature measurement failed on the watch")
        value = None
    return {"body_temp_c": value}


_BODIES: dict[str, Callable[[FieldReader], dict[str, Any]]] = {
    "lk": _link_keep,
    "bphrt": _blood_and_heart,
    "blood": _blood_and_heart,
    "heart": _heart,
    "pulse": _heart,
    "oxygen": _oxygen,
    "btemp2": _temperature,
}
