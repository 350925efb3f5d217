"""DingTalk (钉钉) custom robot channel: POST .../robot/send?access_token=..., optionally signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr, field_validator

from alerts.channels.base import (
    ChannelConfigBase,
    ChannelServices,
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

KEY = "dingtalk"
DEFAULT_URL = "https://oapi.dingtalk.com/robot/send"
# Keep messages well under DingTalk's 20000-byte request limit.
CONTENT_MAX_BYTES = 18000
# -1: system busy; 130101: robot rate limit (20 a minute). 310000 (sign, keyword, IP) and 300001 are final.
RETRYABLE_ERRCODES = frozenset({-1, 130101})
SEVERITY_LABELS = {"critical": "紧急", "high": "高", "medium": "中", "low": "低"}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


class Config(ChannelConfigBase):
    """Access token, optional signing secret, message type and @-mentions."""

    type: Literal["dingtalk"] = Field("dingtalk", title="Channel type", description="Always 'dingtalk'.")
    base_url: HttpUrlStr = Field(
        DEFAULT_URL, title="Send URL", description="The robot send endpoint without query parameters."
    )
    access_token: SecretStr = Field(
        title="Access token", description="The `access_token` of the robot's webhook URL."
    )
    secret: SecretStr | None = Field(
        None,
        min_length=1,
        title="Signing secret",
        description="The robot's 加签 secret (starts with SEC); adds timestamp and sign to each request.",
    )
    msgtype: Literal["markdown", "text"] = Field(
        "markdown", title="Message type", description="Robot message type."
    )
    mention_recipient: bool = Field(
        True,
        title="Mention recipient",
        description="@ the recipient via at.atMobiles when a phone is known.",
    )
    keyword: str | None = Field(
        None,
        min_length=1,
        max_length=20,
        title="Security keyword",
        description="For robots secured by 自定义关键词: prepended when the message lacks it.",
    )

    @field_validator("access_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        if not _TOKEN.match(value.get_secret_value()):
            raise ValueError("must be the access_token value, not the whole URL")
        return value


def sign(secret: str, timestamp_ms: str) -> str:
    """DingTalk sign: base64(HMAC-SHA256(key=secret, msg=timestamp + "\\n" + secret)), not yet URL-encoded."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def message_body(config: Config, notification: Notification) -> dict[str, Any]:
    """The robot JSON document for one notification."""
    severity = SEVERITY_LABELS.get(notification.severity, notification.severity)
    footer = f"告警 #{notification.alert_id} · 级别 {severity} · 第 {notification.step} 级通知"
    phone = notification.recipient.phone if config.mention_recipient else None
    # DingTalk only highlights an @ whose "@mobile" also appears in the text.
    mention = f"\n@{phone}" if phone else ""
    title = notification.title
    if config.keyword and config.keyword not in title + notification.text:
        title = f"{config.keyword} {title}"
    body: dict[str, Any]
    if config.msgtype == "markdown":
        links = action_markdown(notification)
        tail = f"\n\n{links}{mention}" if links else mention
        text = f"### {title}\n\n{notification.text}\n\n> {footer}"
        markdown = {"title": title, "text": truncate_utf8(text, CONTENT_MAX_BYTES - len(tail.encode())) + tail}
        body = {"msgtype": "markdown", "markdown": markdown}
    else:
        lines = "\n".join(action_lines(notification))
        tail = (f"\n{lines}" if lines else "") + mention
        text = f"【{title}】\n{notification.text}\n{footer}"
        body = {"msgtype": "text", "text": {"content": truncate_utf8(text, CONTENT_MAX_BYTES - len(tail.encode()))
                                            + tail}}
    body["at"] = {"atMobiles": [phone] if phone else [], "isAtAll": False}
    return body


class DingTalkChannel(HttpChannel[Config]):
    """Posts a markdown or text message to a DingTalk custom robot."""

    key = KEY

    def query(self) -> dict[str, str]:
        """access_token plus, for signed robots, a fresh millisecond timestamp and its sign."""
        params = {"access_token": self.config.access_token.get_secret_value()}
        if self.config.secret is not None:
            timestamp = str(int(self.services.wall_clock() * 1000))
            params["timestamp"] = timestamp
            params["sign"] = sign(self.config.secret.get_secret_value(), timestamp)
        return params

    async def _deliver(self, notification: Notification) -> str | None:
        response = await self.request(
            "POST",
            self.config.base_url,
            params=self.query(),
            content=encode_json(message_body(self.config, notification)),
            headers={"Content-Type": JSON_CONTENT_TYPE},
        )
        check_errcode(response_json(response), retryable_codes=RETRYABLE_ERRCODES)
        return None


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> DingTalkChannel:
    """Create the DingTalk robot channel for a validated config."""
    return DingTalkChannel(config, http_client=http_client, services=services)
