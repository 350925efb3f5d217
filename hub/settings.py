"""The hub's one settings object, read from ELDERCARE_* environment variables at start-up."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigError

Port = Annotated[int, Field(ge=0, le=65535)]


class Settings(BaseSettings):
    """Every tunable of the hub; each field documents itself and is checked at start-up."""

    model_config = SettingsConfigDict(env_prefix="ELDERCARE_", extra="forbid", validate_default=True)

    db_url: str | None = Field(
        None,
        description="PostgreSQL URL (postgresql://user:pass@host:port/db). Unset: start a private "
        "PostgreSQL+TimescaleDB under var/pg.",
    )
    mqtt_url: str | None = Field(
        None,
        description="MQTT broker URL (mqtt://user:pass@host:port). Unset: start a private Mosquitto "
        "with the repository's mosquitto.conf.",
    )
    data_dir: Path = Field(Path("var"), description="Where the private services, credentials and logs live.")
    embedded_pg_port: Port = Field(55432, description="Port of the private PostgreSQL (loopback only).")
    embedded_mqtt_port: Port = Field(
        18830, description="Port of the private Mosquitto (loopback only) for the hub's own services."
    )
    embedded_mqtt_device_port: Port = Field(
        18831,
        description="Port devices connect to on the private Mosquitto (loopback only). There the account name is "
        "the client id, so no device can take over another's session; 0: no such listener.",
    )
    mqtt_tls_port: Port = Field(
        0, description="Port of the private Mosquitto's TLS listener (loopback only); 0: no TLS listener."
    )
    mqtt_tls_dir: Path | None = Field(
        None,
        description="Folder holding ca.crt, server.crt and server.key for the private Mosquitto's TLS listener "
        "(scripts/make-ca.sh makes trial ones). Unset: <data_dir>/tls.",
    )
    api_host: str = Field("127.0.0.1", description="Address the API and dashboard listen on.")
    api_port: Port = Field(8080, description="Port of the API and dashboard.")
    api_https: bool = Field(
        False,
        description="The API is reached over HTTPS (a TLS-terminating proxy in front of it): responses carry "
        "Strict-Transport-Security. Leave off for plain HTTP, or browsers would refuse the console.",
    )
    cors_origins: str = Field(
        "",
        description="Comma-separated origins (https://host[:port]) whose web pages may call the API from the "
        "browser. Empty: no CORS headers, only the hub's own console.",
    )
    api_max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        le=64 << 20,
        description="Largest request body the API accepts, in bytes; larger ones get 413 before they are read "
        "(a declared Content-Length) or as soon as they pass the limit (chunked).",
    )
    api_max_upload_bytes: int = Field(
        200 << 20,
        ge=1024,
        le=2 << 30,
        description="Largest multipart/form-data upload (e.g. a roster file) the API accepts, in bytes; uploads are "
        "spooled to disk as they arrive, other bodies are held in memory and use ELDERCARE_API_MAX_BODY_BYTES.",
    )
    api_trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or networks (10.0.0.5, 10.1.0.0/16) of reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto the API believes. Empty: none, every client is its socket address.",
    )
    mqtt_client_id: str = Field(
        "eldercare-hub", description="Fixed MQTT client id of the ingestion session (persistent session); it must "
        "start with eldercare-, hub- or svc-, names no device may take.",
    )
    mqtt_username: str = Field("hub", description="MQTT account of the hub.")
    mqtt_password: SecretStr | None = Field(
        None, description="Password of the hub's MQTT account. Unset with the private broker: generated."
    )
    mqtt_topic_root: str = Field("eldercare/v1", description="Root of the native device topics.")
    zigbee2mqtt_base_topic: str = Field(
        "zigbee2mqtt", description="Base topic of a zigbee2mqtt bridge to ingest; empty disables the adapter."
    )
    watch_gateway_port: Port = Field(
        7700, description="TCP port of the 3G-watch gateway; 0 disables it."
    )
    watch_gateway_host: str = Field("127.0.0.1", description="Address the 3G-watch gateway listens on.")
    watch_gateway_allowed_networks: str = Field(
        "", description="Comma-separated source networks (CIDR) the 3G-watch gateway accepts, e.g. the carrier's "
        "private APN; empty: any (docs/watch3g.md)."
    )
    watch_gateway_max_connections: int = Field(
        5000, ge=1, description="Open 3G-watch connections in all; beyond it new ones are closed at once."
    )
    watch_gateway_max_per_address: int = Field(
        50, ge=1, description="Open 3G-watch connections from one source address (a carrier NAT may share one)."
    )
    watch_gateway_hello_s: float = Field(
        30.0, gt=0, description="Seconds a 3G-watch connection may stay without a frame from a provisioned watch."
    )
    watch_gateway_idle_s: float = Field(
        900.0, gt=0, description="Seconds an identified 3G watch may stay silent (it sends LK every 5-8 minutes)."
    )
    watch_gateway_mqtt_url: str | None = Field(
        None, description="MQTT URL of the watch gateway's own account; unset with the private broker: generated."
    )
    mqtt_passwd_file: Path | None = Field(
        None,
        description="Mosquitto password file the provisioning writes device credentials to. "
        "Default: <data_dir>/mosquitto/passwd.",
    )
    mqtt_reload_pid_file: Path | None = Field(
        None, description="Mosquitto pid file; provisioning sends it SIGHUP to reload credentials."
    )
    workers: int = Field(
        1, ge=1, le=64, description="Ingestion worker processes sharing the stream (MQTT shared subscription)."
    )
    spawn_workers: bool = Field(
        True,
        description="`python -m hub run` starts workers 1..N-1 itself; false when a service manager (compose, "
        "systemd eldercare-hub-worker@) runs them.",
    )
    worker_index: int = Field(
        0, ge=0, description="This process's worker number (set by the supervisor; 0 also serves the API)."
    )
    db_pool_max: int = Field(8, ge=2, le=100, description="Most database connections the hub opens.")
    ingest_queue_max: int = Field(
        20000, ge=100, description="Bound of the telemetry queue; beyond it telemetry is shed, never critical."
    )
    ingest_batch_max: int = Field(2000, ge=1, description="Most rows written in one COPY batch.")
    device_rate_per_s: float = Field(
        50.0, gt=0, description="Messages per second one device may send, sustained; beyond it (and its burst) "
        "its messages are shed and counted per device (docs/security-devices.md)."
    )
    device_burst: int = Field(500, ge=1, description="Messages one device may send at once before its rate applies.")
    device_alarm_rate_per_s: float = Field(
        1.0, gt=0, description="SOS, fall, alarm or check-in messages per second one device may send per kind; "
        "repeats beyond it (and its burst) collapse into the alert already raised."
    )
    device_alarm_burst: int = Field(
        10, ge=1, description="Alarm messages of one kind one device may send at once before its rate applies."
    )
    ingest_flush_ms: int = Field(100, ge=5, le=10000, description="Longest wait before a partial batch is written.")
    max_payload_bytes: int = Field(
        65536, ge=256, description="Payloads larger than this are dead-lettered without decoding."
    )
    max_clock_skew_s: float = Field(
        300.0, gt=0, description="A device timestamp further than this in the future is rejected."
    )
    token_ttl_minutes: int = Field(480, ge=1, le=10080, description="Lifetime of an API login token.")
    demo: bool = Field(
        False,
        description="Demo mode: seed demo households and the demo accounts demo/demo (operator), worker1/worker1 "
        "and worker2/worker2 (community workers). Outside demo mode those accounts cannot log in.",
    )
    demo_households: int = Field(5, ge=1, le=10000, description="Households in the demo fleet.")
    retention_days_telemetry: int = Field(90, ge=1, description="Days of telemetry and events kept.")
    retention_hours_imu: int = Field(24, ge=1, description="Hours of raw IMU samples kept.")
    retention_days_dead_letters: int = Field(30, ge=1, description="Days of dead-lettered messages kept.")
    retention_days_feed: int = Field(7, ge=1, description="Days of live-feed events kept (the feed's resume window).")
    compress_after_days_telemetry: int = Field(
        2, ge=1, description="Community edition: telemetry and device-event chunks older than this are compressed."
    )
    compress_after_hours_imu: int = Field(
        2, ge=1, description="Community edition: raw IMU chunks older than this are compressed."
    )
    log_level: str = Field("INFO", description="Log level: DEBUG, INFO, WARNING or ERROR.")
    policy_file: Path | None = Field(
        None,
        description="YAML/JSON file of escalation policies tried before the built-in ones (docs/alerts.md). "
        "Unset: the built-in policies only.",
    )
    channels_file: Path | None = Field(
        None,
        description="YAML/JSON file naming notification channel instances and the channels each recipient "
        "kind is reached on (docs/alerts.md). Unset: the console and live-feed channels only.",
    )
    quiet_hours: str | None = Field(
        "22:00-07:00",
        description="Local time window (HH:MM-HH:MM) in which low/medium-severity notices wait; never "
        "critical or high ones. Empty: no quiet hours.",
    )
    local_timezone: str = Field(
        "Asia/Shanghai", description="Time zone for quiet hours and times read out in notifications."
    )
    call_centre_phone: str | None = Field(
        None, description="Phone number of the platform call centre, for voice/SMS channels that reach it."
    )
    escalation_concurrency: int = Field(
        8, ge=1, le=32, description="Escalation steps one hub sends at the same time."
    )
    public_base_url: str | None = Field(
        None,
        description="The hub's address as phones reach it (https://care.example.org), for the signed "
        "Seen / On my way links in notifications. Unset: notifications carry no links.",
    )
    action_link_secret: SecretStr | None = Field(
        None,
        description="Server secret that signs action links (HMAC-SHA256). Unset: generated once under "
        "<data_dir>/secrets/action-link-secret; set it when the API and escalation run on different hosts.",
    )
    action_link_ttl_hours: int = Field(
        24, ge=1, le=168, description="Longest life of an action link; it also ends when its alert closes."
    )
    sms_inbound_secret: SecretStr | None = Field(
        None,
        description="Shared secret the SMS gateway's inbound webhook sends (X-Eldercare-Secret header or "
        "?secret=) with replies ('1' = seen, '2' = on my way). Unset: the inbound endpoint is off.",
    )
    escalation_process: bool = Field(
        True,
        description="`python -m hub run` runs the escalation engine in a process of its own (`python -m hub "
        "escalation`), so a busy ingestion loop never delays a notification. false: inside worker 0.",
    )

    @field_validator("watch_gateway_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        import ipaddress

        for item in value.split(","):
            if item.strip():
                ipaddress.ip_network(item.strip(), strict=False)  # ValueError names the bad one
        return value

    @field_validator("db_url")
    @classmethod
    def _db_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in {"postgresql", "postgres"}:
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"mqtt", "mqtts", "tcp"} or not parts.hostname:
            raise ValueError("must look like mqtt://user:password@host:port")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in filter(None, (o.strip() for o in value.split(","))):
            parts = urlsplit(origin)
            # A wildcard would let any site drive the API with a user's token; list real origins.
            if parts.scheme not in {"http", "https"} or not parts.hostname or parts.path not in {"", "/"}:
                raise ValueError(f"{origin!r} is not an origin like https://console.example.org")
        return value

    @field_validator("api_trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for entry in filter(None, (e.strip() for e in value.split(","))):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                # A host name or `*` would make every client able to claim any address.
                raise ValueError(f"{entry!r} is not an IP address or network like 10.0.0.5 or 10.1.0.0/16") from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must look like https://care.example.org (optionally with a path prefix)")
        return value.rstrip("/")

    @field_validator("mqtt_client_id")
    @classmethod
    def _service_client_id(cls, value: str) -> str:
        from devices.credentials import RESERVED

        if not RESERVED.match(value):
            # A device provisioned under this name would log in with it as its client id and take over the
            # hub's persistent session, losing messages the broker had acknowledged.
            raise ValueError("must start with eldercare-, hub- or svc- (names reserved from devices)")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @model_validator(mode="after")
    def _worker_in_range(self) -> Settings:
        if self.worker_index >= self.workers:
            raise ValueError(f"worker_index {self.worker_index} must be below workers ({self.workers})")
        return self

    @property
    def embedded(self) -> bool:
        """True when the hub runs its own private PostgreSQL and Mosquitto."""
        return self.db_url is None and self.mqtt_url is None

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed browser origins, without trailing slashes."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The proxies whose forwarded headers are believed."""
        return [e.strip() for e in self.api_trusted_proxies.split(",") if e.strip()]

    @property
    def tls_dir(self) -> Path:
        """Where the private broker's TLS certificate and key live."""
        return self.mqtt_tls_dir or self.data_dir / "tls"

    @property
    def passwd_file(self) -> Path:
        """The Mosquitto password file that provisioning maintains."""
        return self.mqtt_passwd_file or self.data_dir / "mosquitto" / "passwd"

    def masked(self) -> dict[str, Any]:
        """The effective settings with passwords in URLs and secrets replaced by ***."""
        out: dict[str, Any] = {}
        for name, value in self.model_dump().items():
            if isinstance(value, SecretStr) or name.endswith(("password", "secret")):
                out[name] = None if value is None else "***"
            elif name.endswith("_url") and value:
                out[name] = mask_url(value)
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out


def mask_url(url: str) -> str:
    """Hide the password part of a URL."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def load_settings(**overrides: Any) -> Settings:
    """Build the settings once; a bad value becomes a ConfigError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            field = ".".join(str(p) for p in e["loc"]) or "?"
            problems.append(f"ELDERCARE_{field.upper()}: {e['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
