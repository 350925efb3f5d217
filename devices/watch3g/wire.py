"""Byte-level pieces of the frame format shared by the parser, the splitter and the encoder."""

from __future__ import annotations

import re

OPEN = 0x5B  # '['
CLOSE = 0x5D  # ']'
ESC = 0x7D  # '}'

# 0x7D n -> byte; the watches escape these five bytes inside binary content (audio, images, names).
_UNESCAPE = {0x01: 0x7D, 0x02: 0x5B, 0x03: 0x5D, 0x04: 0x2C, 0x05: 0x2A}
_ESCAPE = {byte: bytes((ESC, code)) for code, byte in _UNESCAPE.items()}
FIELD_SPECIALS = frozenset(_ESCAPE)  # inside one field every special byte is escaped
FRAMING_SPECIALS = frozenset({ESC, OPEN, CLOSE})  # a whole content keeps its ',' and '*' structure

# `[maker*id*(index*)?len*` — the optional 4-hex index is sent by some makers (e.g. ZJ).
HEADER = re.compile(
    rb"\[(?P<maker>[A-Za-z0-9]{2,4})\*(?P<id>[A-Za-z0-9]{1,32})\*"
    rb"(?:(?P<index>[0-9A-Fa-f]{4})\*)?(?P<length>[0-9A-Fa-f]{4})\*"
)
HEADER_MAX = 1 + 4 + 1 + 32 + 1 + 5 + 5  # the longest header the pattern accepts


def unescape(data: bytes) -> tuple[bytes, int]:
    """Undo the 0x7D escapes; returns the bytes and how many stray 0x7D bytes were kept as-is."""
    if ESC not in data:
        return data, 0
    out = bytearray()
    stray = 0
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b == ESC:
            nxt = data[i + 1] if i + 1 < n else None
            if nxt is not None and nxt in _UNESCAPE:
                out.append(_UNESCAPE[nxt])
                i += 2
                continue
            # Unescaped '}' in Wi-Fi names is seen in the wild; keep it rather than drop the frame.
            stray += 1
        out.append(b)
        i += 1
    return bytes(out), stray


def escape(data: bytes, specials: frozenset[int] = FIELD_SPECIALS) -> bytes:
    """Escape the given special bytes (all five by default) with 0x7D sequences."""
    if not any(b in specials for b in data):
        return data
    out = bytearray()
    for b in data:
        if b in specials:
            out += _ESCAPE[b]
        else:
            out.append(b)
    return bytes(out)


def is_escape_pair(data: bytes | bytearray, i: int) -> bool:
    """True when data[i:i+2] is one valid escape sequence."""
    return data[i] == ESC and i + 1 < len(data) and data[i + 1] in _UNESCAPE
