"""Generic JSON webhook channel: POSTs the notification as JSON, signed with HMAC-SHA256."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from alerts.channels.base import (
    ChannelConfigBase,
    ChannelServices,
    DeliveryError,
    HttpChannel,
    HttpUrlStr,
    Notification,
    check_http_url,
    dig,
)

KEY = "webhook"
TIMESTAMP_HEADER = "X-Eldercare-Timestamp"
SIGNATURE_HEADER = "X-Eldercare-Signature"
DELIVERY_HEADER = "X-Eldercare-Delivery"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"


class Config(ChannelConfigBase):
    """Where to POST and how to sign; the body format is described in docs/channels.md."""

    type: Literal["webhook"] = Field("webhook", title="Channel type", description="Always 'webhook'.")
    url: HttpUrlStr = Field(title="Endpoint URL", description="The receiver's http(s) URL.")
    secret: SecretStr | None = Field(
        None,
        min_length=16,
        title="Signing secret",
        description="Shared secret for the X-Eldercare-Signature HMAC-SHA256; unsigned when empty.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        title="Extra headers",
        description="Static headers sent with every request, e.g. an API token.",
    )
    use_recipient_address: bool = Field(
        False,
        title="Use recipient address",
        description="POST to recipient.address instead of `url` when the recipient has one.",
    )
    provider_id_field: str | None = Field(
        "id",
        title="Provider id field",
        description="Dotted path in a JSON response holding the receiver's message id.",
    )

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_extra_headers(value)


def check_extra_headers(value: dict[str, str]) -> dict[str, str]:
    """Refuse configured headers that would override the channel's own (signature, content type)."""
    reserved = {h.lower() for h in (TIMESTAMP_HEADER, SIGNATURE_HEADER, DELIVERY_HEADER, "content-type")}
    clash = sorted(h for h in value if h.lower() in reserved)
    if clash:
        raise ValueError(f"headers set by the channel itself cannot be overridden: {', '.join(clash)}")
    return value


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """Signature header value: `sha256=` + hex HMAC-SHA256 over `timestamp + "." + body`."""
    digest = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def delivery_id(notification: Notification) -> str:
    """Stable id of one (alert, step, attempt, recipient) so receivers can drop retried duplicates."""
    who = hashlib.sha256(notification.recipient.id.encode("utf-8")).hexdigest()[:12]
    return f"a{notification.alert_id}-s{notification.step}-n{notification.attempt}-{who}"


def signed_headers(
    secret: SecretStr | None, body: bytes, now: float, notification: Notification
) -> dict[str, str]:
    """Content type, delivery id and, with a secret, the timestamp and signature headers."""
    headers = {"Content-Type": JSON_CONTENT_TYPE, DELIVERY_HEADER: delivery_id(notification)}
    if secret is not None:
        timestamp = str(int(now))
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(secret.get_secret_value().encode("utf-8"), timestamp, body)
    return headers


def encode_json(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON that keeps Chinese readable on the wire."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")


def notification_payload(notification: Notification) -> dict[str, Any]:
    """The JSON document a webhook receiver gets for one notification."""
    r = notification.recipient
    return {
        "event": "alert.notification",
        "alert_id": notification.alert_id,
        "alert_type": notification.alert_type,
        "severity": notification.severity,
        "title": notification.title,
        "text": notification.text,
        "step": notification.step,
        "attempt": notification.attempt,
        "created_at": notification.created_at.isoformat(),
        "recipient": {"kind": r.kind, "id": r.id, "name": r.name, "phone": r.phone, "email": r.email},
        "dispatch": notification.dispatch,
        "extra": notification.extra,
        "actions": dict(notification.actions) if notification.actions else None,
    }


def provider_id_from(response: httpx.Response, field: str | None) -> str | None:
    """Read the receiver's message id from a JSON response, if it sent one."""
    if field is None or "json" not in response.headers.get("content-type", ""):
        return None
    try:
        value = dig(response.json(), field)
    except ValueError:
        return None
    return None if value is None else str(value)


class WebhookChannel(HttpChannel[Config]):
    """POSTs `notification_payload` as signed JSON."""

    key = KEY

    async def _deliver(self, notification: Notification) -> str | None:
        url = self.config.url
        address = notification.recipient.address
        if self.config.use_recipient_address and address:
            try:
                url = check_http_url(address)
            except ValueError as err:
                raise DeliveryError("bad recipient address", retryable=False) from err
        body = encode_json(notification_payload(notification))
        headers = {**self.config.headers}
        headers.update(signed_headers(self.config.secret, body, self.services.wall_clock(), notification))
        response = await self.request("POST", url, content=body, headers=headers)
        return provider_id_from(response, self.config.provider_id_field)


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> WebhookChannel:
    """Create the webhook channel for a validated config."""
    return WebhookChannel(config, http_client=http_client, services=services)
