"""WeCom (企业微信) group robot channel: POST .../webhook/send?key=KEY, success only when errcode is 0."""

from __future__ import annotations

import re
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
    action_lines,
    action_markdown,
    check_errcode,
    response_json,
    truncate_utf8,
)
from alerts.channels.webhook import JSON_CONTENT_TYPE, encode_json

KEY = "wecom"
DEFAULT_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
# WeCom limits: markdown content 4096 bytes, text content 2048 bytes (UTF-8).
MARKDOWN_MAX_BYTES = 4096
TEXT_MAX_BYTES = 2048
# -1: system busy; 45009: robot rate limit (20 messages a minute). Others (93000 bad key...) are final.
RETRYABLE_ERRCODES = frozenset({-1, 45009})
SEVERITY_LABELS = {"critical": "紧急", "high": "高", "medium": "中", "low": "低"}
_ROBOT_KEY = re.compile(r"^[A-Za-z0-9-]{8,64}$")


class Config(ChannelConfigBase):
    """Robot key, message type and whether to @ the recipient by mobile number."""

    type: Literal["wecom"] = Field("wecom", title="Channel type", description="Always 'wecom'.")
    base_url: HttpUrlStr = Field(
        DEFAULT_URL, title="Send URL", description="The robot send endpoint without the key query."
    )
    key: SecretStr = Field(title="Robot key", description="The `key` of the group robot's webhook URL.")
    msgtype: Literal["markdown", "text"] = Field(
        "markdown",
        title="Message type",
        description="markdown reads better; only text can @ people by mobile number.",
    )
    mention_recipient: bool = Field(
        True,
        title="Mention recipient",
        description="In text messages, @ the recipient via mentioned_mobile_list when a phone is known.",
    )
    use_recipient_address: bool = Field(
        True,
        title="Per-recipient robot",
        description="Use recipient.address as the robot key when set (one group robot per community).",
    )

    @field_validator("key")
    @classmethod
    def _key_shape(cls, value: SecretStr) -> SecretStr:
        if not _ROBOT_KEY.match(value.get_secret_value()):
            raise ValueError("must be the robot key (letters, digits and '-'), not the whole URL")
        return value


def message_body(config: Config, notification: Notification) -> dict[str, Any]:
    """The robot JSON document for one notification."""
    severity = SEVERITY_LABELS.get(notification.severity, notification.severity)
    footer = f"告警 #{notification.alert_id} · 级别 {severity} · 第 {notification.step} 级通知"
    if config.msgtype == "markdown":
        links = action_markdown(notification)
        tail = f"\n{links}" if links else ""
        head = f'## <font color="warning">{notification.title}</font>\n{notification.text}\n> {footer}'
        # Links last and never cut: the text gives way to them.
        content = truncate_utf8(head, MARKDOWN_MAX_BYTES - len(tail.encode())) + tail
        return {"msgtype": "markdown", "markdown": {"content": content}}
    lines = "\n".join(action_lines(notification))
    tail = f"\n{lines}" if lines else ""
    content = truncate_utf8(f"【{notification.title}】\n{notification.text}\n{footer}",
                            TEXT_MAX_BYTES - len(tail.encode())) + tail
    text: dict[str, Any] = {"content": content}
    if config.mention_recipient and notification.recipient.phone:
        text["mentioned_mobile_list"] = [notification.recipient.phone]
    return {"msgtype": "text", "text": text}


class WeComChannel(HttpChannel[Config]):
    """Posts a markdown or text message to a WeCom group robot."""

    key = KEY

    def _robot_key(self, notification: Notification) -> str:
        address = notification.recipient.address
        if self.config.use_recipient_address and address:
            if not _ROBOT_KEY.match(address):
                raise DeliveryError("bad recipient robot key", retryable=False)
            return address
        return self.config.key.get_secret_value()

    async def _deliver(self, notification: Notification) -> str | None:
        response = await self.request(
            "POST",
            self.config.base_url,
            params={"key": self._robot_key(notification)},
            content=encode_json(message_body(self.config, notification)),
            headers={"Content-Type": JSON_CONTENT_TYPE},
        )
        check_errcode(response_json(response), retryable_codes=RETRYABLE_ERRCODES)
        return None


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> WeComChannel:
    """Create the WeCom robot channel for a validated config."""
    return WeComChannel(config, http_client=http_client, services=services)
