"""docs/protocol.md documents every message of every registered device type, and every dead-letter reason."""

from __future__ import annotations

import re
from pathlib import Path

from devices.registry import device_types

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
CODE = "\n".join(p.read_text() for p in (Path(__file__).resolve().parents[2] / "devices").rglob("*.py"))


def test_every_device_type_and_message_is_documented():
    missing = []
    for key, device_type in device_types().items():
        if f"`{key}`" not in DOC:
            missing.append(key)
        for message in device_type.messages:
            if f"`{message}`" not in DOC:
                missing.append(f"{key}/{message}")
    assert missing == []


def test_every_dead_letter_reason_is_documented():
    reasons = set(re.findall(r'DecodeError\(\s*"([a-z_]+)"', CODE))
    assert reasons, "no reasons found: the pattern no longer matches the code"
    assert sorted(r for r in reasons if f"`{r}`" not in DOC) == []
