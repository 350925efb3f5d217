"""Console channel: writes one log line with ids only; for development and as a last-resort trace."""

from __future__ import annotations

import logging
from typing import Literal

import httpx
from pydantic import Field

from alerts.channels.base import ChannelConfigBase, ChannelServices, Notification, RetryingChannel

KEY = "console"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

log = logging.getLogger("alerts.channels.console")


class Config(ChannelConfigBase):
    """Only the log level; the line never contains names, phones, addresses or the message text."""

    type: Literal["console"] = Field("console", title="Channel type", description="Always 'console'.")
    level: Literal["debug", "info", "warning", "error"] = Field(
        "warning", title="Log level", description="Level of the notification log line."
    )


class ConsoleChannel(RetryingChannel[Config]):
    """Logs `alert_id`, type, severity, step, attempt and recipient kind/id."""

    key = KEY

    async def _deliver(self, notification: Notification) -> str | None:
        log.log(
            LEVELS[self.config.level],
            "notify alert_id=%s type=%s severity=%s step=%d attempt=%d recipient_kind=%s recipient_id=%s",
            notification.alert_id,
            notification.alert_type,
            notification.severity,
            notification.step,
            notification.attempt,
            notification.recipient.kind,
            notification.recipient.id,
        )
        return None


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> ConsoleChannel:
    """Create the console channel; it needs no HTTP client."""
    return ConsoleChannel(config, services=services)
