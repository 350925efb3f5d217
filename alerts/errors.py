"""Alert errors: the lifecycle refuses a transition with one of these; the API maps them to 404/403/409/400."""

from hub.errors import EldercareError


class AlertError(EldercareError):
    """An alert operation was refused (unknown alert, wrong state)."""


class AlertNotFound(AlertError):
    """The alert does not exist, or lies outside what the actor may see (the two look the same)."""


class TransitionForbidden(AlertError):
    """This actor's role may not make this transition at all."""


class TransitionConflict(AlertError):
    """The transition is not possible in the alert's present state (closed, accepted by someone else...)."""


class TransitionInvalid(AlertError):
    """The request names something that cannot take part (a user who cannot respond, an unknown dispatch)."""


class LinkRefused(AlertError):
    """An action link was refused; `reason` is one of forged, expired, other_alert, reused, closed."""

    def __init__(self, reason: str, detail: str = "", claim: object = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.claim = claim  # the verified token's claim when the link was genuine (expired), else None
