"""Device-side errors: a payload or topic that cannot be turned into observations."""

from hub.errors import EldercareError


class DecodeError(EldercareError):
    """A message could not be decoded; `reason` is a short stable code for counting."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
