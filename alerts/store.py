"""Where the ingestion writer and older callers find alert storage; the functions live in lifecycle and timeline."""

from __future__ import annotations

from alerts.lifecycle import raise_alert
from alerts.timeline import DUE_CHANNEL, FEED_CHANNEL, add_event, feed

__all__ = ["DUE_CHANNEL", "FEED_CHANNEL", "add_event", "feed", "raise_alert"]
