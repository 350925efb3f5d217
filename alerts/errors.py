"""Alert-engine errors."""

from hub.errors import EldercareError


class AlertError(EldercareError):
    """An alert operation was refused (unknown alert, wrong state)."""
