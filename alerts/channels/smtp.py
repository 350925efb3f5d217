"""E-mail channel: a UTF-8 plain-text message sent with stdlib smtplib in a worker thread."""

from __future__ import annotations

import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import partial
from typing import Literal

import anyio.to_thread
import httpx
from pydantic import Field, SecretStr, model_validator

from alerts.channels.base import (
    ChannelConfigBase,
    ChannelServices,
    DeliveryError,
    Notification,
    RetryingChannel,
    action_lines,
)

KEY = "smtp"
SEVERITY_LABELS = {"critical": "紧急", "high": "高", "medium": "中", "low": "低"}
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_EMAIL = r"^[^@\s<>]+@[^@\s<>]+$"


class Config(ChannelConfigBase):
    """SMTP server, transport security, optional login and the sender address."""

    type: Literal["smtp"] = Field("smtp", title="Channel type", description="Always 'smtp'.")
    host: str = Field(min_length=1, title="SMTP host", description="Host name or IP of the mail server.")
    port: int = Field(587, ge=1, le=65535, title="SMTP port", description="587 for STARTTLS, 465 for SSL.")
    security: Literal["starttls", "ssl", "none"] = Field(
        "starttls",
        title="Transport security",
        description="starttls upgrades a plain connection, ssl connects with TLS, none only on loopback.",
    )
    tls_verify: bool = Field(
        True, title="Verify TLS", description="Check the server certificate and host name."
    )
    username: str | None = Field(None, min_length=1, title="Login user", description="SMTP AUTH user.")
    password: SecretStr | None = Field(None, title="Login password", description="SMTP AUTH password.")
    sender: str = Field(pattern=_EMAIL, title="From address", description="Envelope and header sender.")
    sender_name: str | None = Field(
        None, title="From name", description="Display name of the sender, e.g. 社区养老服务中心."
    )
    subject_prefix: str = Field(
        "[颐养告警] ", title="Subject prefix", description="Put before the notification title."
    )

    @model_validator(mode="after")
    def _login_is_safe(self) -> Config:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password must be set together")
        if self.username and self.security == "none" and self.host not in LOOPBACK_HOSTS:
            raise ValueError("login without starttls or ssl would send the password in clear text")
        return self


def _one_line(text: str) -> str:
    return " ".join(text.split())


def compose(config: Config, notification: Notification) -> EmailMessage:
    """Build the message: encoded-word subject and names, UTF-8 plain-text body."""
    recipient = notification.recipient
    if not recipient.email:
        raise DeliveryError("recipient has no email", retryable=False)
    try:
        to = Address(display_name=_one_line(recipient.name or ""), addr_spec=recipient.email)
    except (ValueError, IndexError) as err:
        raise DeliveryError("bad recipient email", retryable=False) from err
    domain = config.sender.rsplit("@", 1)[1]
    message = EmailMessage()
    message["From"] = Address(display_name=_one_line(config.sender_name or ""), addr_spec=config.sender)
    message["To"] = to
    message["Subject"] = _one_line(f"{config.subject_prefix}{notification.title}")
    message["Date"] = format_datetime(notification.created_at)
    message["Message-ID"] = make_msgid(domain=domain)
    message["X-Eldercare-Alert"] = str(notification.alert_id)
    severity = SEVERITY_LABELS.get(notification.severity, notification.severity)
    links = "\n".join(action_lines(notification))
    body = (
        f"{notification.text}\n\n" + (f"{links}\n\n" if links else "") + "--\n"
        f"告警 #{notification.alert_id} · 级别 {severity} · 第 {notification.step} 级通知\n"
    )
    message.set_content(body, charset="utf-8")
    return message


class SmtpChannel(RetryingChannel[Config]):
    """Sends e-mail; smtplib blocks, so each attempt runs in a thread bounded by the attempt timeout."""

    key = KEY

    def _send_blocking(self, message: EmailMessage) -> None:
        cfg = self.config
        context = ssl.create_default_context()
        if not cfg.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        smtp: smtplib.SMTP
        if cfg.security == "ssl":
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        with smtp:
            if cfg.security == "starttls":
                smtp.starttls(context=context)
            if cfg.username is not None and cfg.password is not None:
                smtp.login(cfg.username, cfg.password.get_secret_value())
            smtp.send_message(message)

    async def _deliver(self, notification: Notification) -> str | None:
        message = compose(self.config, notification)
        try:
            # Abandoning the thread on timeout is safe: smtplib's own socket timeout ends it soon after.
            await anyio.to_thread.run_sync(partial(self._send_blocking, message), abandon_on_cancel=True)
        except smtplib.SMTPRecipientsRefused as err:
            raise DeliveryError("smtp recipient refused", retryable=False) from err
        except smtplib.SMTPAuthenticationError as err:
            raise DeliveryError(f"smtp auth failed {err.smtp_code}", retryable=False) from err
        except smtplib.SMTPResponseException as err:
            code = err.smtp_code
            raise DeliveryError(f"smtp {code}", retryable=not 500 <= code < 600) from err
        except ssl.SSLCertVerificationError as err:
            raise DeliveryError("smtp tls certificate rejected", retryable=False) from err
        except TimeoutError as err:
            raise DeliveryError("timeout smtp", retryable=True) from err
        except (smtplib.SMTPException, OSError) as err:
            raise DeliveryError(f"smtp {type(err).__name__}", retryable=True) from err
        return str(message["Message-ID"])


def build(
    config: Config, *, http_client: httpx.AsyncClient | None = None, services: ChannelServices | None = None
) -> SmtpChannel:
    """Create the e-mail channel; it needs no HTTP client."""
    return SmtpChannel(config, services=services)
