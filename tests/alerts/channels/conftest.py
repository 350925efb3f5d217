"""Loopback receivers and helpers shared by the channel tests: a real HTTP server, free ports, fast sleeps."""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.lowlevel
import pytest

from alerts.channels.base import ChannelServices, Notification, Recipient

FIXED_NOW = 1_750_000_000.123  # Unix time the tests' wall clock reports, for exact signatures


@dataclass
class Reply:
    """One scripted HTTP answer: status, JSON (or raw bytes) body and a delay before answering."""

    status: int = 200
    body: Any = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    delay: float = 0.0


@dataclass
class Received:
    """One request as the receiver saw it."""

    method: str
    path: str
    raw_query: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> dict[str, str]:
        """Decoded query parameters (last value wins)."""
        return {k: v[-1] for k, v in parse_qs(self.raw_query, keep_blank_values=True).items()}

    def json(self) -> Any:
        """The body decoded as UTF-8 JSON."""
        return json.loads(self.body.decode("utf-8"))


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._server.server_address[1])

    def url(self, path: str = "/hook") -> str:
        """An absolute URL on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def then(self, status: int = 200, body: Any = None, delay: float = 0.0) -> Receiver:
        """Queue the answer to the next unanswered request; afterwards `always` applies."""
        self.script.append(Reply(status, {"errcode": 0, "errmsg": "ok"} if body is None else body, delay))
        return self

    def always(self, status: int = 200, body: Any = None, delay: float = 0.0) -> None:
        """Answer every request that has no queued answer like this."""
        self.default = Reply(status, {"errcode": 0, "errmsg": "ok"} if body is None else body, delay)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                receiver.requests.append(
                    Received(self.command, split.path, split.query, dict(self.headers.items()), body)
                )
                reply = receiver.script.popleft() if receiver.script else receiver.default
                if reply.delay and receiver._stop.wait(reply.delay):
                    return
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass  # the client gave up (timeout test); nothing to answer

            do_POST = do_PUT = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release slow handlers at once."""
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A started loopback HTTP receiver, closed after the test."""
    server = Receiver()
    server.start()
    yield server
    server.close()


def free_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: connecting is refused."""
    return free_port()


@pytest.fixture
def smtp_port() -> int:
    """A free port for an aiosmtpd Controller."""
    return free_port()


@dataclass
class FastServices:
    """ChannelServices whose sleep records the wait and returns at once, with a fixed wall clock."""

    sleeps: list[float] = field(default_factory=list)

    async def sleep(self, seconds: float) -> None:
        """Record the backoff instead of waiting."""
        self.sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()

    def services(self) -> ChannelServices:
        """The ChannelServices to pass to `build`."""
        return ChannelServices(sleep=self.sleep, wall_clock=lambda: FIXED_NOW, jitter=lambda: 0.5)


@pytest.fixture
def fast() -> FastServices:
    """Fast, deterministic channel services."""
    return FastServices()


@pytest.fixture
def make_notification() -> Callable[..., Notification]:
    """Factory for an SOS notification to 张阿姨's daughter; keyword arguments override fields."""

    def make(recipient: Recipient | None = None, **overrides: Any) -> Notification:
        values: dict[str, Any] = {
            "alert_id": 4711,
            "alert_type": "sos",
            "severity": "critical",
            "title": "紧急求助：张阿姨按下了SOS",
            "text": "张阿姨（幸福里小区3号楼502）于 08:15 按下 SOS 按钮，请立即联系。",
            "recipient": recipient
            or Recipient(
                kind="family", id="fam-17", name="王小红", phone="13800138000", email="daughter@example.org"
            ),
            "step": 1,
            "attempt": 1,
            "created_at": datetime(2025, 6, 15, 8, 15, 0, tzinfo=UTC),
            "dispatch": None,
            "extra": {},
        }
        values.update(overrides)
        return Notification(**values)

    return make


LINKS = {
    "seen": "https://care.example.org/a/4711/4711.Zg.sms.1750086400.abc?do=seen",
    "coming": "https://care.example.org/a/4711/4711.Zg.sms.1750086400.abc?do=coming",
    "page": "https://care.example.org/a/4711/4711.Zg.sms.1750086400.abc",
}
"""Action links as the engine puts them on a notification (alerts/actions.py makes real ones)."""
