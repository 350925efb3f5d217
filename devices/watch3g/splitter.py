"""Cut a TCP byte stream into frames, skipping and reporting what lies between them."""

from __future__ import annotations

from dataclasses import dataclass

from devices.watch3g.errors import FrameTooLarge
from devices.watch3g.wire import CLOSE, HEADER, HEADER_MAX, OPEN, is_escape_pair

DEFAULT_MAX_FRAME = 16 * 1024
_SAMPLE = 64


@dataclass(frozen=True, slots=True)
class Skipped:
    """Bytes that were not part of any frame: the first 64 of them, their count and why."""

    sample: bytes
    size: int
    reason: str


class FrameSplitter:
    """A bounded stream buffer that yields complete frames (as received, escapes intact).

    The end of a frame is found from its length field (so a literal ']' inside a Wi-Fi name is
    no problem). Watches often get the length wrong; then the frame ends at the ']' just before
    the next well-formed header, or at a ']' ending the data when the length is known to be
    wrong, or once the stream has gone quiet (`flush`). At most one partial frame is buffered;
    when it grows past `max_frame` bytes `feed` raises FrameTooLarge: drop the connection.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame waiting for more data."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | Skipped]:
        """Add received bytes; return the frames and skipped runs now complete, in stream order."""
        self._buf += data
        out = self._drain(final=False)
        if len(self._buf) > self.max_frame:
            size = len(self._buf)
            self._buf.clear()
            raise FrameTooLarge("too_long", f"unterminated frame of {size} bytes exceeds {self.max_frame}")
        return out

    def flush(self) -> list[bytes | Skipped]:
        """The stream went quiet: settle the buffered partial frame using the tolerant rules."""
        return self._drain(final=True)

    def _drain(self, final: bool) -> list[bytes | Skipped]:
        out: list[bytes | Skipped] = []
        while self._buf:
            item = self._next(final)
            if item is None:
                break
            out.append(item)
        return out

    def _take(self, end: int) -> bytes:
        piece = bytes(self._buf[:end])
        del self._buf[:end]
        return piece

    def _skip(self, end: int, reason: str) -> Skipped:
        piece = self._take(end)
        return Skipped(piece[:_SAMPLE], len(piece), reason)

    def _next(self, final: bool) -> bytes | Skipped | None:
        buf = self._buf
        start = buf.find(OPEN)
        if start != 0:
            return self._skip(len(buf) if start < 0 else start, "bytes outside any frame")
        header = HEADER.match(buf)
        if header is None:
            return self._bad_header(final)
        body = header.end()
        end = _walk(buf, body, int(header["length"], 16))
        if end is not None and buf[end] == CLOSE:
            return self._take(end + 1)
        return self._by_brackets(body, end, final=final)

    def _by_brackets(self, body: int, declared_end: int | None, *, final: bool) -> bytes | Skipped | None:
        """Settle a frame whose length field does not point at its ']' (or not yet).

        `declared_end` is where the length field says the ']' is, None when the data ends first.
        """
        buf = self._buf
        nxt = _next_frame_start(buf, body)
        if nxt is not None:
            close = _close_nearest(buf, body, nxt, declared_end)  # bytes after it are skipped next round
            return self._take(close + 1) if close >= 0 else self._skip(nxt, "truncated frame")
        # A ']' ending the data settles the frame when the length is known to be wrong, or once
        # the stream has gone quiet; otherwise more of the frame may still be on its way.
        if buf.rfind(CLOSE, body) >= 0 and (final or (declared_end is not None and buf[-1] == CLOSE)):
            return self._take(_close_nearest(buf, body, len(buf), declared_end) + 1)
        if final:
            return self._skip(len(buf), "unterminated frame")
        return None

    def _bad_header(self, final: bool) -> bytes | Skipped | None:
        buf = self._buf
        close = buf.find(CLOSE)
        reopen = buf.find(OPEN, 1)
        if close < 0 and reopen < 0 and len(buf) < HEADER_MAX and not final:
            return None  # the header may still be arriving
        if close >= 0 and (reopen < 0 or close < reopen):
            # Hand it on as a frame: the parser will say precisely what is wrong with it.
            return self._take(close + 1)
        return self._skip(reopen if reopen > 0 else len(buf), "unterminated or broken frame start")


def _walk(buf: bytearray, pos: int, length: int) -> int | None:
    """Index just after `length` unescaped content bytes, or None when the buffer ends first."""
    n = len(buf)
    count = 0
    while count < length and pos < n:
        pos += 2 if is_escape_pair(buf, pos) else 1
        count += 1
    return pos if count == length and pos < n else None


def _close_nearest(buf: bytearray, start: int, stop: int, declared_end: int | None) -> int:
    """The ']' in buf[start:stop] nearest to where the length field put it (-1 if none).

    A wrong length is usually off by a few bytes, while stray bytes between frames (a lone ']'
    among them) follow the real end; so the nearest ']' wins, the earlier one on a tie. With no
    declared position (the data ended first) the last ']' is taken.
    """
    if declared_end is None:
        return buf.rfind(CLOSE, start, stop)
    best = -1
    pos = buf.find(CLOSE, start, stop)
    while pos >= 0:
        if best < 0 or abs(pos - declared_end) < abs(best - declared_end):
            best = pos
        pos = buf.find(CLOSE, pos + 1, stop)
    return best


def _next_frame_start(buf: bytearray, after: int) -> int | None:
    """Position of the next '[' that begins a well-formed header."""
    pos = buf.find(OPEN, after)
    while pos >= 0:
        if HEADER.match(buf, pos):
            return pos
        pos = buf.find(OPEN, pos + 1)
    return None
