"""SMS channel for any HTTP SMS gateway: URL, method, JSON body template and success rule are config."""

from __future__ import annotations

import re
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from alerts.channels.base import (
    ChannelConfigBase,
    ChannelServices,
    DeliveryError,
    HttpChannel,
    HttpUrlStr,
    Notification,
    action_lines,
    dig,
    response_json,
)
from alerts.channels.webhook import JSON_CONTENT_TYPE, encode_json

KEY = "sms"
PLACEHOLDERS = ("phone", "text", "alert_id", "recipient_id")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _template_strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in _template_strings(key) + _template_strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _template_strings(item)]
    return []


def _render(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        # Plain replacement, not str.format: braces in the message text must not be interpreted.
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), node)
    if isinstance(node, dict):
        return {_render(key, values): _render(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_render(item, values) for item in node]
    return node


class Config(ChannelConfigBase):
    """Gateway endpoint, request templates, auth header and the rule that decides success."""

    type: Literal["sms"] = Field("sms", title="Channel type", description="Always 'sms'.")
    url: HttpUrlStr = Field(title="Gateway URL", description="The SMS gateway's send endpoint.")
    method: Literal["POST", "PUT"] = Field("POST", title="HTTP method", description="Send method.")
    body_template: dict[str, Any] = Field(
        default_factory=lambda: {"phone": "{phone}", "text": "{text}"},
        title="JSON body template",
        description="JSON body; strings may use {phone}, {text}, {alert_id}, {recipient_id}.",
    )
    query_template: dict[str, str] = Field(
        default_factory=dict,
        title="Query template",
        description="Query parameters, with the same placeholders as the body template.",
    )
    auth_header: str = Field(
        "Authorization", min_length=1, title="Auth header name", description="Header carrying the credential."
    )
    auth_value: SecretStr | None = Field(
        None, title="Auth header value", description="e.g. 'Bearer <token>'; no auth header when empty."
    )
    success_statuses: list[int] = Field(
        default_factory=lambda: [200, 201, 202],
        min_length=1,
        title="Success status codes",
        description="HTTP statuses that can mean sent; 5xx, 408 and 429 are retried, others are final.",
    )
    success_field: str | None = Field(
        None,
        title="Success field",
        description="Dotted path in the JSON response that must equal success_value, e.g. 'result.code'.",
    )
    success_value: str | int | bool | None = Field(
        None, title="Success value", description="Value success_field must have (compared exactly)."
    )
    provider_id_field: str | None = Field(
        None, title="Provider id field", description="Dotted path of the gateway's message id in its reply."
    )
    text_prefix: str = Field(
        "", title="Text prefix", description="Put before the text, e.g. a registered signature 【颐养】."
    )
    max_text_chars: int = Field(
        300, ge=10, le=1000, title="Text limit",
        description="Longer texts are cut (long SMS cost more); action links are added after the cut text.",
    )

    @field_validator("success_statuses")
    @classmethod
    def _statuses_are_http(cls, value: list[int]) -> list[int]:
        bad = [code for code in value if not 100 <= code <= 599]
        if bad:
            raise ValueError(f"not HTTP status codes: {bad}")
        return value

    @model_validator(mode="after")
    def _templates_are_complete(self) -> Config:
        used = {
            name
            for text in _template_strings(self.body_template) + _template_strings(self.query_template)
            for name in _PLACEHOLDER.findall(text)
        }
        unknown = sorted(used - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}; known: {list(PLACEHOLDERS)}")
        missing = sorted({"phone", "text"} - used)
        if missing:
            raise ValueError(f"templates never use {missing}")
        if (self.success_field is None) != (self.success_value is None):
            raise ValueError("success_field and success_value must be set together")
        return self


class SmsChannel(HttpChannel[Config]):
    """Renders the templates for one recipient and calls the gateway."""

    key = KEY

    async def _deliver(self, notification: Notification) -> str | None:
        cfg = self.config
        phone = notification.recipient.phone
        if not phone:
            raise DeliveryError("recipient has no phone", retryable=False)
        text = f"{cfg.text_prefix}{notification.text}"
        links = "\n".join(action_lines(notification))
        # The links are never cut (a cut link is a broken one); the message text gives way to them.
        room = max(10, cfg.max_text_chars - len(links) - 1) if links else cfg.max_text_chars
        if len(text) > room:
            text = text[: room - 1] + "…"
        if links:
            text = f"{text}\n{links}"
        values = {
            "phone": phone,
            "text": text,
            "alert_id": str(notification.alert_id),
            "recipient_id": notification.recipient.id,
        }
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        if cfg.auth_value is not None:
            headers[cfg.auth_header] = cfg.auth_value.get_secret_value()
        response = await self.request(
            cfg.method,
            cfg.url,
            content=encode_json(_render(cfg.body_template, values)),
            params=_render(cfg.query_template, values) or None,
            headers=headers,
            ok_statuses=cfg.success_statuses,
        )
        if cfg.success_field is None and cfg.provider_id_field is None:
            return None
        body = response_json(response)
        if cfg.success_field is not None:
            value = dig(body, cfg.success_field)
            if value != cfg.success_value or type(value) is not type(cfg.success_value):
                raise DeliveryError(f"gateway {cfg.success_field}={str(value)[:40]}", retryable=False)
        found = dig(body, cfg.provider_id_field) if cfg.provider_id_field else None
        return None if found is None else str(found)


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> SmsChannel:
    """Create the SMS gateway channel for a validated config."""
    return SmsChannel(config, http_client=http_client, services=services)
