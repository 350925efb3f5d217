"""Build frames: acknowledgements for the gateway and UD/AL/LK/vitals frames for simulators."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from devices.watch3g.alarms import MAX_STATUS
from devices.watch3g.model import Cell, Frame, Wifi
from devices.watch3g.wire import FIELD_SPECIALS, FRAMING_SPECIALS, escape

_MAKER = re.compile(r"[A-Za-z0-9]{2,4}")
_DEVICE_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_INDEX = re.compile(r"[0-9A-Fa-f]{4}")

# Frame types the watch expects an answer to, and the content of that answer. Without the LK
# answer the watch reboots after five tries; without the AL answer it keeps alarming.
_REPLIES = {
    "LK": "LK",
    "TKQ": "TKQ",
    "TKQ2": "TKQ2",
    "bphrt": "bphrt",
    "btemp2": "btemp2",
    "CONFIG": "CONFIG,1",
}


def encode_frame(maker: str, device_id: str, content: bytes | Sequence[bytes | str], *,
                 index: str | None = None) -> bytes:
    """Wrap content in `[maker*id*len*content]` with escaping and the unescaped length in hex.

    `content` as bytes keeps its ',' and '*' structure; only '[', ']' and 0x7D are escaped.
    `content` as a sequence of fields (type first) escapes every special byte inside each field,
    so a field may hold any bytes (a Wi-Fi name with a comma, binary audio).
    """
    if not _MAKER.fullmatch(maker):
        raise ValueError("maker must be 2-4 letters or digits")
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError("device id must be 1-32 letters or digits")
    if index is not None and not _INDEX.fullmatch(index):
        raise ValueError("index must be 4 hex digits")
    if isinstance(content, bytes | bytearray):
        plain = bytes(content)
        wire = escape(plain, FRAMING_SPECIALS)
    else:
        fields = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in content]
        plain = b",".join(fields)
        wire = b",".join(escape(v, FIELD_SPECIALS) for v in fields)
    if len(plain) > 0xFFFF:
        raise ValueError("content longer than 65535 bytes")
    head = f"[{maker}*{device_id}*" + (f"{index}*" if index else "") + f"{len(plain):04X}*"
    return head.encode("ascii") + wire + b"]"


def reply_for(frame: Frame) -> bytes | None:
    """The acknowledgement the watch expects for this frame, or None when it expects none."""
    content = "AL" if frame.is_alarm_frame else _REPLIES.get(frame.kind)
    if content is None:
        return None
    return encode_frame(frame.maker, frame.device_id, content.encode("ascii"), index=frame.index)


def build_lk(device_id: str, battery: int | None = None, steps: int = 0, tumbles: int = 0,
             *, maker: str = "3G") -> bytes:
    """A link-keep frame: bare `LK` when battery is None, else `LK,steps,tumbles,battery`."""
    if battery is None:
        return encode_frame(maker, device_id, b"LK")
    _check_range("battery", battery, 0, 100)
    return encode_frame(maker, device_id, f"LK,{steps},{tumbles},{battery}".encode("ascii"))


# The positional order (id, ts, lat, lon, valid, battery, status) is the one the simulator uses.
def build_ud(device_id: str, ts: datetime, lat: float, lon: float, valid: bool = True,
             battery: int = 100, status_word: int = 0, *, cells: Sequence[Cell] = (),
             wifis: Sequence[Wifi] = (), kind: str = "UD", maker: str = "3G",
             speed_kmh: float = 0.0, course_deg: float = 0.0, altitude_m: float = 0.0,
             satellites: int = 0, signal: int = 100, steps: int = 0, tumbles: int = 0,
             accuracy_m: float | None = None, index: str | None = None) -> bytes:
    """A position frame (UD, UD2, UD_LTE, UD_WCDMA, AL, AL_LTE...) from values."""
    _check_range("battery", battery, 0, 100)
    _check_range("signal", signal, 0, 100)
    _check_range("status_word", status_word, 0, MAX_STATUS)
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise ValueError("latitude/longitude out of range")
    when = ts.astimezone(UTC) if ts.tzinfo else ts
    core = [
        when.strftime("%d%m%y"), when.strftime("%H%M%S"), "A" if valid else "V",
        f"{abs(lat):.6f}", "S" if lat < 0 else "N", f"{abs(lon):.6f}", "W" if lon < 0 else "E",
        f"{speed_kmh:.2f}", f"{course_deg:.1f}", f"{altitude_m:.1f}", str(satellites), str(signal),
        str(battery), str(steps), str(tumbles), f"{status_word:08X}",
    ]
    tail = _network_fields(cells, wifis)
    if accuracy_m is not None:
        # With no radio data the accuracy still needs the "0 cells, 0 Wi-Fi" prefix.
        tail = [*(tail or ["0", "0"]), f"{accuracy_m:.1f}"]
    return encode_frame(maker, device_id, [kind, *core, *tail], index=index)


def build_al(device_id: str, ts: datetime, lat: float, lon: float, valid: bool = True,
             battery: int = 100, status_word: int = 0, *, kind: str = "AL", **kwargs: Any) -> bytes:
    """An alarm frame: same body as UD; the watch resends it until it gets `[..*AL]`."""
    if not kind.startswith("AL"):
        raise ValueError("alarm frame types start with 'AL'")
    return build_ud(device_id, ts, lat, lon, valid, battery, status_word, kind=kind, **kwargs)


def build_vitals(device_id: str, *, heart_rate: int | None = None, systolic: int | None = None,
                 diastolic: int | None = None, maker: str = "3G") -> bytes:
    """A `bphrt` frame when blood pressure is given, else a `heart` frame (0 = not measured)."""
    if systolic is not None or diastolic is not None:
        content = f"bphrt,{systolic or 0},{diastolic or 0},{heart_rate or 0},,,,"
    else:
        content = f"heart,{heart_rate or 0}"
    return encode_frame(maker, device_id, content.encode("ascii"))


def _network_fields(cells: Sequence[Cell], wifis: Sequence[Wifi]) -> list[str | bytes]:
    if not cells and not wifis:
        return []
    first = cells[0] if cells else None
    out: list[str | bytes] = [
        str(len(cells)), "1",
        "" if first is None or first.mcc is None else str(first.mcc),
        "" if first is None or first.mnc is None else str(first.mnc),
    ]
    for cell in cells:
        out += [str(cell.lac), str(cell.cid), "" if cell.rssi is None else str(cell.rssi)]
    out.append(str(len(wifis)))
    for wifi in wifis:
        out += [wifi.name.encode("utf-8"), wifi.mac, "" if wifi.rssi is None else str(wifi.rssi)]
    return out


def _check_range(name: str, value: int, lo: int, hi: int) -> None:
    if not lo <= value <= hi:
        raise ValueError(f"{name} outside [{lo}, {hi}]")
