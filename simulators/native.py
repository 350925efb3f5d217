"""Builds native protocol messages the way a real device would publish them."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

_seq = itertools.count(1)


def message(kind_fields: dict[str, Any], ts: float | None = None, msg_id: str | None = None) -> bytes:
    """A v1 payload with a unique id and a timestamp."""
    body = {"v": 1, "id": msg_id or f"m{next(_seq)}-{int(time.time() * 1000)}", "ts": ts or time.time()}
    body.update(kind_fields)
    return json.dumps(body, separators=(",", ":")).encode()


def topic(root: str, device_type: str, device_id: str, kind: str) -> str:
    """The topic a device publishes `kind` on."""
    return f"{root.rstrip('/')}/{device_type}/{device_id}/{kind}"
