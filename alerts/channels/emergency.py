"""Emergency dispatch channel: POSTs a signed 120/110 dispatch record to the telephony gateway."""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from alerts.channels.base import (
    RECIPIENT_KINDS,
    ChannelConfigBase,
    ChannelServices,
    DeliveryError,
    HttpChannel,
    HttpUrlStr,
    Notification,
)
from alerts.channels.webhook import check_extra_headers, encode_json, provider_id_from, signed_headers

KEY = "emergency"
SERVICES = {"emergency_120": "120", "emergency_110": "110"}


class Config(ChannelConfigBase):
    """Gateway URL and the shared secret; signing is mandatory for dispatch."""

    type: Literal["emergency"] = Field("emergency", title="Channel type", description="Always 'emergency'.")
    url: HttpUrlStr = Field(title="Gateway URL", description="The telephony gateway's dispatch endpoint.")
    secret: SecretStr = Field(
        min_length=16,
        title="Signing secret",
        description="Shared secret for the X-Eldercare-Signature HMAC-SHA256 (same scheme as webhook).",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, title="Extra headers", description="Static headers, e.g. a gateway API token."
    )
    accepted_kinds: list[str] = Field(
        default_factory=lambda: ["emergency_120", "emergency_110"],
        min_length=1,
        title="Accepted recipient kinds",
        description="Recipient kinds this gateway may call; others fail without a request.",
    )
    read_out_max_chars: int = Field(
        500, ge=50, le=4000, title="Read-out limit", description="Longest text the gateway reads out."
    )
    provider_id_field: str | None = Field(
        "call_id", title="Provider id field", description="Dotted path of the gateway's call id in its reply."
    )
    max_attempts: int = Field(
        5, ge=1, le=10, title="Maximum attempts", description="Attempts per send, the first one included."
    )
    deadline_s: float = Field(
        60.0, gt=0, le=600, title="Send deadline", description="Total time budget in seconds for one send."
    )

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        return check_extra_headers(value)

    @field_validator("accepted_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - RECIPIENT_KINDS)
        if unknown:
            raise ValueError(f"unknown recipient kinds {unknown}")
        return value


def dispatch_payload(config: Config, notification: Notification) -> dict[str, Any]:
    """The dispatch record document: who to call, what to read out, and the alert's dispatch data."""
    r = notification.recipient
    text = notification.text
    if len(text) > config.read_out_max_chars:
        text = text[: config.read_out_max_chars - 1] + "…"
    return {
        "event": "emergency.dispatch",
        "service": SERVICES.get(r.kind),
        "dial": r.phone or SERVICES.get(r.kind),
        "alert_id": notification.alert_id,
        "alert_type": notification.alert_type,
        "severity": notification.severity,
        "title": notification.title,
        "read_out_text": text,
        "step": notification.step,
        "attempt": notification.attempt,
        "created_at": notification.created_at.isoformat(),
        "recipient": {"kind": r.kind, "id": r.id},
        "dispatch": notification.dispatch,
    }


class EmergencyChannel(HttpChannel[Config]):
    """Hands a dispatch record to the telephony gateway, which places the 120/110 call."""

    key = KEY

    async def _deliver(self, notification: Notification) -> str | None:
        if notification.recipient.kind not in self.config.accepted_kinds:
            raise DeliveryError(f"recipient kind {notification.recipient.kind} not accepted", retryable=False)
        if notification.dispatch is None:
            raise DeliveryError("no dispatch record", retryable=False)
        body = encode_json(dispatch_payload(self.config, notification))
        headers = {**self.config.headers}
        headers.update(signed_headers(self.config.secret, body, self.services.wall_clock(), notification))
        response = await self.request("POST", self.config.url, content=body, headers=headers)
        return provider_id_from(response, self.config.provider_id_field)


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> EmergencyChannel:
    """Create the emergency dispatch channel for a validated config."""
    return EmergencyChannel(config, http_client=http_client, services=services)
