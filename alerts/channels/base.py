"""The notification channel contract: messages, results, config base and the one shared retry loop."""

from __future__ import annotations

import logging
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import anyio
import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from hub.errors import EldercareError

log = logging.getLogger("alerts.channels")

RECIPIENT_KINDS = frozenset(
    {
        "family",
        "community_worker",
        "duty_officer",
        "call_centre",
        "emergency_120",
        "emergency_110",
        "operator",
    }
)
SEVERITIES = ("critical", "high", "medium", "low")
USER_AGENT = "eldercare-hub/0.1"
DETAIL_MAX = 120
# The action links a notification may carry (alerts/actions.py), in the order they are shown.
ACTION_LABELS = {"seen": ("收到", "Seen"), "coming": ("我去处理", "On my way"), "page": ("详情", "Details")}


@dataclass(frozen=True)
class Recipient:
    """Who a notification is for; `address` overrides the channel's target (webhook URL, robot key)."""

    kind: str
    id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Notification:
    """One rendered message for one recipient at one escalation step and attempt."""

    alert_id: int
    alert_type: str
    severity: str
    title: str
    text: str
    recipient: Recipient
    step: int
    attempt: int
    created_at: datetime
    dispatch: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    actions: Mapping[str, str] | None = None  # signed links for this recipient: seen, coming, page


def action_lines(notification: Notification) -> list[str]:
    """One "收到 / Seen: URL" line per action link; none when the notification carries no links."""
    links = notification.actions or {}
    return [f"{zh} / {en}: {links[key]}" for key, (zh, en) in ACTION_LABELS.items() if key in links]


def action_markdown(notification: Notification) -> str:
    """The action links as one markdown line of links; empty without links."""
    links = notification.actions or {}
    return "  ·  ".join(f"[{zh} / {en}]({links[key]})" for key, (zh, en) in ACTION_LABELS.items() if key in links)


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one `send`; `detail` is short and never holds personal data."""

    ok: bool
    channel: str
    recipient_id: str
    latency_ms: float
    attempts: int
    detail: str
    provider_id: str | None = None


class DeliveryError(EldercareError):
    """One delivery attempt failed; raised inside a channel and turned into a result by the retry loop."""

    def __init__(self, detail: str, *, retryable: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


SleepFn = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ChannelServices:
    """Collaborators every channel may use; tests swap them for fast, exact runs.

    `clock` is monotonic (latency, deadlines); `wall_clock` is Unix time for signatures.

    `resources` carries in-process collaborators for channels that are not network clients
    (the live WebSocket feed channel takes its broadcaster from here).
    """

    sleep: SleepFn = anyio.sleep
    clock: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = random.random
    resources: Mapping[str, object] = field(default_factory=dict)


def check_http_url(value: str) -> str:
    """Return `value` if it is an absolute http(s) URL, else raise ValueError."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as err:
        raise ValueError(f"not a valid URL: {err}") from err
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an absolute http:// or https:// URL")
    return value


HttpUrlStr = Annotated[str, AfterValidator(check_http_url)]


class ChannelConfigBase(BaseModel):
    """Settings every channel has: its type key, an optional instance name, time and retry limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(title="Channel type", description="The plug-in key; selects the channel module.")
    name: str | None = Field(
        None,
        title="Instance name",
        description="Recorded with each delivery when several instances share a type; defaults to the type.",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
    )
    timeout_s: float = Field(
        5.0, gt=0, le=60, title="Attempt timeout", description="Upper bound in seconds for one attempt."
    )
    max_attempts: int = Field(
        3, ge=1, le=10, title="Maximum attempts", description="Attempts per send, the first one included."
    )
    backoff_s: float = Field(
        0.5,
        ge=0,
        le=30,
        title="Backoff base",
        description="Wait before the second attempt; doubles per attempt, with jitter, up to the cap.",
    )
    backoff_max_s: float = Field(
        8.0, ge=0, le=300, title="Backoff cap", description="Longest wait in seconds between two attempts."
    )
    deadline_s: float = Field(
        30.0,
        gt=0,
        le=600,
        title="Send deadline",
        description="Total time budget in seconds for one send, all attempts and waits included.",
    )

    @model_validator(mode="after")
    def _limits_are_consistent(self) -> ChannelConfigBase:
        if self.backoff_max_s < self.backoff_s:
            raise ValueError("backoff_max_s must be at least backoff_s")
        if self.deadline_s < self.timeout_s:
            raise ValueError("deadline_s must be at least timeout_s")
        return self


@runtime_checkable
class Channel(Protocol):
    """What the alert engine uses: `send` never raises for delivery failures; `aclose` frees resources."""

    key: str
    name: str

    async def send(self, notification: Notification) -> DeliveryResult:
        """Deliver one notification, retrying within the configured bounds."""
        ...

    async def aclose(self) -> None:
        """Release what the channel opened itself (never a client that was passed in)."""
        ...


C = TypeVar("C", bound=ChannelConfigBase)


class RetryingChannel(ABC, Generic[C]):
    """Base class with the shared retry, timeout, timing and logging loop; subclasses write `_deliver`."""

    key: ClassVar[str]

    def __init__(self, config: C, *, services: ChannelServices | None = None) -> None:
        self.config = config
        self.services = services or ChannelServices()
        self.name = config.name or self.key

    @abstractmethod
    async def _deliver(self, notification: Notification) -> str | None:
        """Make one attempt; return the provider's message id or raise DeliveryError."""

    async def aclose(self) -> None:
        """Nothing to release by default."""

    def backoff_delay(self, attempt: int) -> float:
        """Wait after failed attempt number `attempt`: exponential, capped, with 'equal jitter'."""
        cfg = self.config
        ceiling = min(cfg.backoff_max_s, cfg.backoff_s * 2 ** (attempt - 1))
        # Half fixed, half random: spreads a burst of retries without ever retrying instantly.
        return ceiling / 2 + ceiling / 2 * self.services.jitter()

    async def send(self, notification: Notification) -> DeliveryResult:
        """Deliver with bounded retries; every failure ends as ok=False with a short detail."""
        cfg = self.config
        clock = self.services.clock
        started = clock()
        detail = ""
        attempt = 0
        for attempt in range(1, cfg.max_attempts + 1):
            remaining = cfg.deadline_s - (clock() - started)
            try:
                with anyio.fail_after(min(cfg.timeout_s, remaining)):
                    provider_id = await self._deliver(notification)
            except DeliveryError as err:
                detail, retryable = err.detail, err.retryable
            except TimeoutError:
                detail, retryable = "timeout", True
            except Exception as err:  # noqa: BLE001 - a channel bug must still become a recorded failure
                detail, retryable = f"error {type(err).__name__}", False
                # The class only: exception messages may quote personal data.
                log.error(
                    "channel bug alert_id=%s channel=%s error=%s",
                    notification.alert_id,
                    self.name,
                    type(err).__name__,
                )
            else:
                return self._finish(
                    notification,
                    ok=True,
                    started=started,
                    attempts=attempt,
                    detail="delivered",
                    provider_id=provider_id,
                )
            if not retryable or attempt == cfg.max_attempts:
                break
            delay = self.backoff_delay(attempt)
            if clock() - started + delay >= cfg.deadline_s:
                detail = f"{detail}; deadline reached"
                break
            log.debug(
                "retry alert_id=%s channel=%s recipient_id=%s attempt=%d detail=%s",
                notification.alert_id,
                self.name,
                notification.recipient.id,
                attempt,
                detail,
            )
            await self.services.sleep(delay)
        return self._finish(
            notification, ok=False, started=started, attempts=attempt, detail=detail, provider_id=None
        )

    def _finish(
        self,
        notification: Notification,
        *,
        ok: bool,
        started: float,
        attempts: int,
        detail: str,
        provider_id: str | None,
    ) -> DeliveryResult:
        result = DeliveryResult(
            ok=ok,
            channel=self.name,
            recipient_id=notification.recipient.id,
            latency_ms=round((self.services.clock() - started) * 1000, 3),
            attempts=attempts,
            detail=detail[:DETAIL_MAX],
            provider_id=provider_id,
        )
        log.log(
            logging.INFO if ok else logging.WARNING,
            "delivery alert_id=%s channel=%s recipient_id=%s ok=%s attempts=%d detail=%s",
            notification.alert_id,
            result.channel,
            result.recipient_id,
            ok,
            attempts,
            result.detail,
        )
        return result


HC = TypeVar("HC", bound=ChannelConfigBase)


class HttpChannel(RetryingChannel[HC]):
    """A channel that speaks HTTP through one httpx client, shared when passed in, else its own."""

    def __init__(
        self,
        config: HC,
        *,
        http_client: httpx.AsyncClient | None = None,
        services: ChannelServices | None = None,
    ) -> None:
        super().__init__(config, services=services)
        self._client = http_client
        self._owns_client = http_client is None

    def client(self) -> httpx.AsyncClient:
        """The client to use, created on first use when none was passed in."""
        if self._client is None:
            self._client = httpx.AsyncClient(headers={"User-Agent": USER_AGENT})
        return self._client

    async def aclose(self) -> None:
        """Close the client only if this channel created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        ok_statuses: Collection[int] | None = None,
    ) -> httpx.Response:
        """Send one request; transport errors and unwanted statuses become DeliveryError."""
        try:
            response = await self.client().request(
                method, url, content=content, headers=headers, params=params, timeout=self.config.timeout_s
            )
        except httpx.TimeoutException as err:
            raise DeliveryError(f"timeout {type(err).__name__}", retryable=True) from err
        except httpx.HTTPError as err:
            raise DeliveryError(type(err).__name__, retryable=True) from err
        wanted = response.is_success if ok_statuses is None else response.status_code in ok_statuses
        if not wanted:
            code = response.status_code
            raise DeliveryError(f"http {code}", retryable=code >= 500 or code in (408, 425, 429))
        return response


def response_json(response: httpx.Response) -> Any:
    """Decode a JSON response body; a body that is not JSON is a (retryable) delivery failure."""
    try:
        return response.json()
    except ValueError as err:
        raise DeliveryError(f"http {response.status_code} non-json body", retryable=True) from err


def check_errcode(body: Any, *, retryable_codes: Collection[int]) -> None:
    """Apply the Chinese IM robot convention: `{"errcode": 0}` means sent, anything else failed."""
    if not isinstance(body, dict) or "errcode" not in body:
        raise DeliveryError("response without errcode", retryable=False)
    code = body["errcode"]
    if code != 0:
        raise DeliveryError(f"errcode {code}", retryable=code in retryable_codes)


def truncate_utf8(text: str, max_bytes: int, marker: str = "…") -> str:
    """Cut text to at most `max_bytes` UTF-8 bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    room = max_bytes - len(marker.encode("utf-8"))
    return raw[:room].decode("utf-8", errors="ignore") + marker


def dig(body: Any, path: str) -> Any:
    """Follow a dotted path like `result.code` into nested JSON; None when any step is missing."""
    node = body
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node
