"""Signed action links in notifications ("收到 / Seen", "我去处理 / On my way", the escalation page).

A link is `<public base>/a/<alert id>/<token>`; the token carries the alert id, the recipient id (a family
contact `contact-<resident>-<position>` or a user `user-<id>`), the channel it was sent through and an
expiry, and an HMAC-SHA256 over them with the server's secret. So a link works without a login, for one
alert and one recipient only, and no one can make one up. Each action works once (`action_link_uses`);
a closed alert or a passed expiry refuses it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from alerts.errors import LinkRefused

ACTIONS = ("seen", "coming")
MAC_BYTES = 16  # 128 bits: forging one still takes 2**127 tries; half of SHA-256 keeps SMS links short
SECRET_FILE = "action-link-secret"  # noqa: S105 - the name of the file that holds it
_CHANNEL = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def link_secret(configured: str | None, data_dir: Path) -> bytes:
    """The configured secret, else one generated once under `<data_dir>/secrets/` (mode 600) and kept."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / "secrets" / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when the API and the escalation process start together, exactly one of them writes it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    for _ in range(50):
        text = path.read_text().strip()
        if text:
            return text.encode("utf-8")
        time.sleep(0.01)  # the other process is still writing it
    raise LinkRefused("misconfigured", f"{path} is empty")


@dataclass(frozen=True)
class Claim:
    """What a verified token says."""

    alert_id: int
    recipient_id: str
    channel: str
    expires: int

    @property
    def via(self) -> str:
        """How the timeline names the way this person acted: sms-link, wecom-link, email-link..."""
        return f"{'email' if self.channel == 'smtp' else self.channel}-link"


@dataclass(frozen=True)
class Links:
    """The three URLs one recipient gets with one notification."""

    seen: str
    coming: str
    page: str

    def as_dict(self) -> dict[str, str]:
        """For JSON payloads."""
        return {"seen": self.seen, "coming": self.coming, "page": self.page}


class ActionLinks:
    """Makes and checks action links with one server secret.

    `base_url` is the hub's public address (ELDERCARE_PUBLIC_BASE_URL); without it no links are put in
    notifications (a link to a loopback address would not work on a phone), but links can still be checked.
    `ttl_s` bounds a link's life even while its alert stays open.
    """

    def __init__(self, secret: bytes, base_url: str | None, ttl_s: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/") if base_url else None
        self.ttl_s = ttl_s
        self._clock = clock

    def _mac(self, alert_id: int, recipient_id: str, channel: str, expires: int) -> bytes:
        message = f"v1|{alert_id}|{recipient_id}|{channel}|{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:MAC_BYTES]

    def token(self, alert_id: int, recipient_id: str, channel: str) -> str:
        """A token for one alert, one recipient, sent through one channel."""
        if not set(channel) <= _CHANNEL:
            raise ValueError(f"channel key {channel!r} cannot go in a link")
        expires = int(self._clock()) + self.ttl_s
        mac = self._mac(alert_id, recipient_id, channel, expires)
        return f"{alert_id}.{_b64(recipient_id.encode())}.{channel}.{expires}.{_b64(mac)}"

    def links(self, alert_id: int, recipient_id: str, channel: str) -> Links | None:
        """The URLs for a notification, or None without a public base URL."""
        if self.base_url is None:
            return None
        page = f"{self.base_url}/a/{alert_id}/{self.token(alert_id, recipient_id, channel)}"
        return Links(seen=f"{page}?do=seen", coming=f"{page}?do=coming", page=page)

    def verify(self, alert_id: int, token: str) -> Claim:
        """Check a token against the alert in the URL; LinkRefused(forged | other_alert | expired) otherwise."""
        parts = token.split(".")
        if len(parts) != 5 or not parts[0].isdigit() or not parts[3].isdigit():
            raise LinkRefused("forged", "not an action link")
        try:
            recipient_id = _unb64(parts[1]).decode("utf-8")
            mac = _unb64(parts[4])
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise LinkRefused("forged", "not an action link") from None
        claim = Claim(int(parts[0]), recipient_id, parts[2], int(parts[3]))
        if not hmac.compare_digest(mac, self._mac(claim.alert_id, recipient_id, claim.channel, claim.expires)):
            raise LinkRefused("forged", "the link's signature does not match")
        if claim.alert_id != alert_id:
            raise LinkRefused("other_alert", "this link belongs to another alert")
        if claim.expires < self._clock():
            raise LinkRefused("expired", "this link has expired", claim)
        return claim


async def use_once(conn: AsyncConnection[Any], claim: Claim, action: str) -> bool:
    """Mark an action of a link used; False when it was used before (the caller refuses it)."""
    cur = await conn.execute(
        "INSERT INTO action_link_uses (alert_id, recipient_id, action, channel) VALUES (%s, %s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING 1", (claim.alert_id, claim.recipient_id, action, claim.channel))
    return await cur.fetchone() is not None


async def record_refusal(conn: AsyncConnection[Any], alert_id: int | None, reason: str, action: str | None,
                         claim: Claim | None) -> None:
    """Keep a refused link: in the audit log always, and on the alert's timeline when the link was genuine."""
    details: dict[str, Any] = {"reason": reason, "action": action}
    if claim is not None:
        details.update(recipient_id=claim.recipient_id, channel=claim.channel)
        # Only a genuine link names a real alert; a forged one must not write to the alert it claims.
        await conn.execute(
            "INSERT INTO alert_events (alert_id, kind, actor, details)"
            " SELECT id, 'action_refused', %s, %s FROM alerts WHERE id = %s",
            (claim.recipient_id, Jsonb(details), claim.alert_id))
    await conn.execute("INSERT INTO audit_log (user_id, action, target, details) VALUES (NULL, %s, %s, %s)",
                       ("action_link.refused", f"alert:{alert_id}" if alert_id is not None else "sms-inbound",
                        Jsonb(details)))
