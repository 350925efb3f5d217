"""Typed reading of comma-separated frame fields with errors that name the field, not the value."""

from __future__ import annotations

import re

from devices.watch3g.errors import FrameError

_INT = re.compile(r"-?\d{1,12}")
_FLOAT = re.compile(r"-?\d{1,12}(?:\.\d{0,12})?|-?\.\d{1,12}")


class FieldReader:
    """Reads the fields of one frame body; strict reads raise FrameError, soft reads record warnings."""

    def __init__(self, values: list[bytes], device_id: str, kind: str) -> None:
        self.values = values
        self.device_id = device_id
        self.kind = kind
        self.warnings: list[str] = []

    def __len__(self) -> int:
        return len(self.values)

    def error(self, reason: str, detail: str) -> FrameError:
        """A FrameError tagged with this frame's device id and kind."""
        return FrameError(reason, f"{self.kind}: {detail}", device_id=self.device_id, kind=self.kind)

    def warn(self, text: str) -> None:
        """Record a tolerated problem (no values: warnings are logged)."""
        self.warnings.append(text)

    def require(self, count: int) -> None:
        """Raise unless at least `count` fields are present."""
        if len(self.values) < count:
            raise self.error("missing_fields", f"needs at least {count} fields, got {len(self.values)}")

    def text(self, i: int) -> str:
        """Field i as stripped ASCII text ('' when absent or not ASCII)."""
        if i >= len(self.values):
            return ""
        try:
            return self.values[i].decode("ascii").strip()
        except UnicodeDecodeError:
            return "\ufffd"  # never a valid number or flag, so it fails the callers' checks

    def integer(self, i: int, name: str, lo: int, hi: int) -> int | None:
        """A strict integer within [lo, hi]; empty means None."""
        raw = self.text(i)
        if raw == "":
            return None
        if not _INT.fullmatch(raw):
            raise self.error("bad_number", f"{name} is not an integer")
        value = int(raw)
        if not lo <= value <= hi:
            raise self.error("out_of_range", f"{name} outside [{lo}, {hi}]")
        return value

    def decimal(self, i: int, name: str, lo: float, hi: float) -> float | None:
        """A strict decimal within [lo, hi]; empty means None."""
        raw = self.text(i)
        if raw == "":
            return None
        if not _FLOAT.fullmatch(raw):
            raise self.error("bad_number", f"{name} is not a decimal number")
        value = float(raw)
        if not lo <= value <= hi:
            raise self.error("out_of_range", f"{name} outside [{lo}, {hi}]")
        return value

    def soft_int(self, i: int, name: str, lo: int, hi: int) -> int | None:
        """Like integer() but a bad value becomes None with a warning."""
        try:
            return self.integer(i, name, lo, hi)
        except FrameError as err:
            self.warn(f"{name} ignored ({err.reason})")
            return None

    def soft_float(self, i: int, name: str, lo: float, hi: float) -> float | None:
        """Like decimal() but a bad value becomes None with a warning."""
        try:
            return self.decimal(i, name, lo, hi)
        except FrameError as err:
            self.warn(f"{name} ignored ({err.reason})")
            return None
