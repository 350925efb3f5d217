"""Live-feed channel: puts the notification (or a dispatch task) on the console's live feed."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from pydantic import Field

from alerts.channels.base import (
    ChannelConfigBase,
    ChannelServices,
    DeliveryError,
    Notification,
    RetryingChannel,
)

KEY = "live"
RESOURCE = "live_feed"


@runtime_checkable
class LiveFeed(Protocol):
    """Where live notifications go; returns the feed entry's id."""

    async def publish(self, kind: str, notification: Notification) -> str | None:
        """Publish one feed entry for the notification."""
        ...


class Config(ChannelConfigBase):
    """Nothing to configure but the usual limits; the feed comes from `services.resources['live_feed']`."""

    type: Literal["live"] = Field("live", title="Channel type", description="Always 'live'.")
    max_attempts: int = Field(
        default=2, ge=1, le=10, title="Maximum attempts", description="Attempts per send, the first one included."
    )
    deadline_s: float = Field(
        default=10.0, gt=0, le=600, title="Send deadline", description="Total time budget in seconds for one send."
    )


def feed_payload(notification: Notification) -> dict[str, Any]:
    """What the console shows: the message for one recipient, or the dispatch task with its read-out."""
    r = notification.recipient
    payload: dict[str, Any] = {
        "alert_id": notification.alert_id,
        "alert_type": notification.alert_type,
        "severity": notification.severity,
        "title": notification.title,
        "text": notification.text,
        "step": notification.step,
        "recipient": {"kind": r.kind, "id": r.id, "name": r.name},
    }
    if notification.dispatch is not None:
        payload["dispatch"] = notification.dispatch
    return payload


class PoolFeed:
    """A LiveFeed writing `feed_events` rows (scoped by the alert's region); the table's trigger wakes listeners."""

    def __init__(self, pool: AsyncConnectionPool[Any]) -> None:
        self._pool = pool

    async def publish(self, kind: str, notification: Notification) -> str | None:
        """Insert the entry in the alert's region and notify the feed listeners."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO feed_events (kind, region_path, resident_id, payload)"
                " SELECT %s, region_path, resident_id, %s FROM alerts WHERE id = %s RETURNING id",
                (kind, Jsonb(feed_payload(notification)), notification.alert_id),
            )
            row = await cur.fetchone()
            if row is None:
                raise DeliveryError("alert not found", retryable=False)
            return str(row[0])


class LiveChannel(RetryingChannel[Config]):
    """Console delivery: `notification` entries for staff, `dispatch_task` entries for the call centre."""

    key = KEY

    def __init__(self, config: Config, *, services: ChannelServices | None = None) -> None:
        super().__init__(config, services=services)
        feed = self.services.resources.get(RESOURCE)
        if not isinstance(feed, LiveFeed):
            raise TypeError(f"the live channel needs services.resources[{RESOURCE!r}] (a LiveFeed)")
        self._feed = feed

    async def _deliver(self, notification: Notification) -> str | None:
        kind = "dispatch_task" if notification.dispatch is not None else "notification"
        try:
            return await self._feed.publish(kind, notification)
        except (psycopg.Error, PoolTimeout) as err:
            # The feed is our own database: a failure here is most likely an outage, worth a retry.
            raise DeliveryError(f"feed {type(err).__name__}", retryable=True) from err


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> LiveChannel:
    """Create the live-feed channel; it needs `services.resources['live_feed']` and no HTTP client."""
    return LiveChannel(config, services=services)
