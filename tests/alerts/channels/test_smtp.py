"""E-mail channel against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from alerts.channels import load_channels, parse_channel_config
from alerts.channels.base import Recipient
from alerts.channels.smtp import Config, build
from hub.errors import ConfigError
from tests.alerts.channels.conftest import LINKS


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Inbox:
    """aiosmtpd handler that stores messages and can answer DATA with scripted codes or slowly."""

    def __init__(self) -> None:
        self.envelopes: list[Any] = []
        self.replies: list[str] = []
        self.always: str = "250 OK"
        self.delay = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.envelopes.append(envelope)
        return self.replies.pop(0) if self.replies else self.always

    def message(self, index: int = 0) -> Any:
        return message_from_bytes(self.envelopes[index].content, policy=policy.default)


def start(inbox: Inbox, port: int, **kwargs: Any) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return controller


@pytest.fixture
def inbox(smtp_port: int) -> Iterator[Inbox]:
    box = Inbox()
    controller = start(box, smtp_port)
    yield box
    controller.stop()


def config(port: int, **overrides: object) -> Config:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "alerts@hub.example.org",
        "sender_name": "幸福里社区养老服务中心",
        "backoff_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return Config.model_validate(values)


@pytest.mark.anyio
async def test_chinese_mail_is_received(inbox, smtp_port, fast, make_notification) -> None:
    channel = build(config(smtp_port), services=fast.services())
    result = await channel.send(make_notification())
    await channel.aclose()

    assert result.ok, result
    assert (result.channel, result.attempts) == ("smtp", 1)
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "alerts@hub.example.org"
    assert envelope.rcpt_tos == ["daughter@example.org"]
    raw_headers = envelope.content.split(b"\r\n\r\n", 1)[0]
    raw_headers.decode("ascii")  # encoded words only: no raw UTF-8 in headers
    message = inbox.message()
    assert message["Subject"] == "[颐养告警] 紧急求助：张阿姨按下了SOS"
    assert message["To"].addresses[0].display_name == "王小红"
    assert message["To"].addresses[0].addr_spec == "daughter@example.org"
    assert message["From"].addresses[0].display_name == "幸福里社区养老服务中心"
    assert message["Message-ID"] == result.provider_id
    assert message["X-Eldercare-Alert"] == "4711"
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    body = message.get_content()
    assert body.startswith("张阿姨（幸福里小区3号楼502）于 08:15 按下 SOS 按钮，请立即联系。")
    assert "告警 #4711 · 级别 紧急" in body


@pytest.mark.anyio
async def test_login(smtp_port, fast, make_notification) -> None:
    seen: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"pw-1", handled=False)

    box = Inbox()
    controller = start(box, smtp_port, authenticator=authenticator, auth_require_tls=False)
    try:
        good = build(config(smtp_port, username="hub", password="pw-1"), services=fast.services())
        bad = build(config(smtp_port, username="hub", password="wrong"), services=fast.services())
        ok_result = await good.send(make_notification())
        bad_result = await bad.send(make_notification())
    finally:
        controller.stop()
    assert ok_result.ok
    assert seen[0] == (b"hub", b"pw-1")
    assert (bad_result.ok, bad_result.attempts, bad_result.detail) == (False, 1, "smtp auth failed 535")
    assert len(box.envelopes) == 1


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@pytest.mark.anyio
async def test_starttls(smtp_port, tls_context, fast, make_notification) -> None:
    box = Inbox()
    controller = start(box, smtp_port, tls_context=tls_context, require_starttls=True)
    try:
        unverified = build(config(smtp_port, security="starttls", tls_verify=False), services=fast.services())
        verified = build(config(smtp_port, security="starttls"), services=fast.services())
        plain = build(config(smtp_port, security="none", max_attempts=1), services=fast.services())
        ok_result = await unverified.send(make_notification())
        rejected = await verified.send(make_notification())
        refused_plain = await plain.send(make_notification())
    finally:
        controller.stop()
    assert ok_result.ok, ok_result
    assert (rejected.ok, rejected.attempts, rejected.detail) == (False, 1, "smtp tls certificate rejected")
    assert not refused_plain.ok
    assert len(box.envelopes) == 1


@pytest.mark.anyio
async def test_temporary_failure_is_retried(inbox, smtp_port, fast, make_notification) -> None:
    inbox.replies = ["451 4.3.0 try again later"]
    channel = build(config(smtp_port), services=fast.services())
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts) == (True, 2)
    assert len(inbox.envelopes) == 2


@pytest.mark.anyio
async def test_permanent_failure_is_final(inbox, smtp_port, fast, make_notification) -> None:
    inbox.always = "554 5.7.1 rejected"
    channel = build(config(smtp_port), services=fast.services())
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 1, "smtp 554")


@pytest.mark.anyio
async def test_always_temporary_failure_gives_up(inbox, smtp_port, fast, make_notification) -> None:
    inbox.always = "421 4.3.2 shutting down"
    channel = build(config(smtp_port), services=fast.services())
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 3, "smtp 421")


@pytest.mark.anyio
async def test_connection_refused(closed_port, fast, make_notification) -> None:
    channel = build(config(closed_port, max_attempts=2), services=fast.services())
    started = time.monotonic()
    result = await channel.send(make_notification())
    assert (result.ok, result.attempts, result.detail) == (False, 2, "smtp ConnectionRefusedError")
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_slow_server_times_out(inbox, smtp_port, make_notification) -> None:
    inbox.delay = 3
    channel = build(config(smtp_port, timeout_s=0.3, max_attempts=2))
    started = time.monotonic()
    result = await channel.send(make_notification())
    assert not result.ok
    assert result.detail.startswith("timeout")
    assert result.attempts == 2
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_recipient_without_email(inbox, smtp_port, fast, make_notification) -> None:
    channel = build(config(smtp_port), services=fast.services())
    result = await channel.send(make_notification(recipient=Recipient(kind="family", id="f-2")))
    assert (result.ok, result.attempts, result.detail) == (False, 1, "recipient has no email")
    assert inbox.envelopes == []


@pytest.mark.anyio
async def test_newlines_in_title_cannot_inject_headers(inbox, smtp_port, fast, make_notification) -> None:
    channel = build(config(smtp_port), services=fast.services())
    result = await channel.send(make_notification(title="跌倒\r\nBcc: evil@example.org"))
    assert result.ok
    message = inbox.message()
    assert message["Bcc"] is None
    assert inbox.envelopes[0].rcpt_tos == ["daughter@example.org"]


def test_config_rules() -> None:
    registry = load_channels()
    with pytest.raises(ConfigError, match="username and password must be set together"):
        parse_channel_config({"type": "smtp", "host": "mail", "sender": "a@b.c", "username": "u"}, registry)
    with pytest.raises(ConfigError, match="clear text"):
        parse_channel_config(
            {
                "type": "smtp",
                "host": "mail.example.org",
                "security": "none",
                "sender": "a@b.c",
                "username": "u",
                "password": "p",
            },
            registry,
        )
    with pytest.raises(ConfigError, match=r"field 'sender'"):
        parse_channel_config({"type": "smtp", "host": "mail", "sender": "not an address"}, registry)


@pytest.mark.anyio
async def test_action_links_are_in_the_mail(inbox, smtp_port, fast, make_notification) -> None:
    channel = build(config(smtp_port), services=fast.services())
    assert (await channel.send(make_notification(actions=LINKS))).ok
    await channel.aclose()
    body = inbox.message().get_content()
    assert f"收到 / Seen: {LINKS['seen']}\n我去处理 / On my way: {LINKS['coming']}\n详情 / Details: {LINKS['page']}" \
        in body
