"""A real Mosquitto with the repository's policy and a TLS listener (trial CA from scripts/make-ca.sh)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from devices.credentials import CredentialStore, acl_text
from hub.embedded import MosquittoInstance, free_port
from simulators.native import message
from tests.conftest import REPO, open_to_services

pytestmark = pytest.mark.anyio
ROOT = "tls/v1"
MAKE_CA = REPO / "scripts" / "make-ca.sh"


@dataclass
class TlsBroker:
    """The running broker, its CA and the accounts made for the tests."""

    broker: MosquittoInstance
    ca: Path
    hub_password: str
    device_password: str

    def context(self, cafile: Path | None = None) -> ssl.SSLContext:
        """A client context trusting `cafile` (the broker's CA by default)."""
        return ssl.create_default_context(cafile=str(cafile or self.ca))


def make_ca(out: Path, *names: str) -> None:
    """Run the trial-CA script as an operator would."""
    subprocess.run(["bash", str(MAKE_CA), str(out), *names], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """One broker with a plain and a TLS listener on loopback, for this module."""
    base = open_to_services(tmp_path_factory.mktemp("tls"))
    make_ca(base / "certs")
    broker = MosquittoInstance(base / "mosquitto", free_port(), tls_port=free_port(), tls_dir=base / "certs")
    broker.root.mkdir(parents=True)
    broker.acl_file.write_text(acl_text(ROOT, "hub", {}))
    store = CredentialStore(broker.passwd_file)
    hub_password, device_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    store.set_many({"hub": hub_password, "WB-TLS": device_password})
    broker.start()
    try:
        yield TlsBroker(broker, base / "certs" / "ca.crt", hub_password, device_password)
    finally:
        broker.stop()


def _client(b: TlsBroker, port: int, tls: ssl.SSLContext | None, username: str | None = "WB-TLS",
            password: str | None = None) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username=username, password=password or b.device_password,
                          identifier=f"{username}-{uuid.uuid4().hex[:6]}", tls_context=tls, timeout=5)


async def test_device_connects_over_tls_and_publishes_only_as_itself(tls_broker: TlsBroker) -> None:
    b = tls_broker
    own, other = f"{ROOT}/wristband/WB-TLS/sos", f"{ROOT}/wristband/WB-OTHER/sos"
    async with _client(b, b.broker.tls_port, b.context(), "hub", b.hub_password) as hub, \
            _client(b, b.broker.tls_port, b.context()) as device:
        await hub.subscribe(f"{ROOT}/#", qos=1)
        await device.publish(other, message({}), qos=1)  # the ACL applies on the TLS listener too
        await device.publish(own, message({}), qos=1)
        got: list[str] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                async for msg in hub.messages:
                    got.append(str(msg.topic))
    assert got == [own]


async def test_wrong_password_and_anonymous_are_refused_over_tls(tls_broker: TlsBroker) -> None:
    b = tls_broker
    for username, password in (("WB-TLS", "wrong"), (None, None)):
        client = aiomqtt.Client("127.0.0.1", b.broker.tls_port, username=username, password=password,
                                tls_context=b.context(), timeout=5)
        with pytest.raises(aiomqtt.MqttError):
            async with client:
                pass


async def test_plain_tcp_to_the_tls_port_fails(tls_broker: TlsBroker) -> None:
    b = tls_broker
    with pytest.raises(aiomqtt.MqttError):
        async with _client(b, b.broker.tls_port, None):
            pass


async def test_client_that_does_not_trust_the_ca_fails(tls_broker: TlsBroker, tmp_path: Path) -> None:
    b = tls_broker
    make_ca(tmp_path / "other")  # a CA of its own: the broker's certificate is not signed by it
    for context in (ssl.create_default_context(), b.context(tmp_path / "other" / "ca.crt")):
        with pytest.raises(aiomqtt.MqttError):
            async with _client(b, b.broker.tls_port, context):
                pass


def test_certificate_names_are_checked(tls_broker: TlsBroker) -> None:
    # The trial certificate is valid for loopback only: a client expecting another host refuses it.
    b = tls_broker
    for name, ok in (("127.0.0.1", True), ("localhost", True), ("broker.example.org", False)):
        with socket.create_connection(("127.0.0.1", b.broker.tls_port), timeout=5) as raw:
            if ok:
                with b.context().wrap_socket(raw, server_hostname=name) as tls:
                    assert tls.version() in {"TLSv1.2", "TLSv1.3"}
            else:
                with pytest.raises(ssl.SSLCertVerificationError):
                    b.context().wrap_socket(raw, server_hostname=name)


def test_make_ca_is_idempotent(tmp_path: Path) -> None:
    make_ca(tmp_path, "broker.example.org")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    make_ca(tmp_path, "broker.example.org")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0
    names = subprocess.run(["openssl", "x509", "-in", str(tmp_path / "server.crt"), "-noout", "-ext",
                            "subjectAltName"], check=True, capture_output=True, text=True).stdout
    assert "DNS:broker.example.org" in names
    assert "IP Address:127.0.0.1" in names


def test_runtime_conf_adds_the_tls_listener_after_the_policy(tmp_path: Path) -> None:
    conf = MosquittoInstance(tmp_path, 1883, tls_port=8883, tls_dir=tmp_path).runtime_conf()
    policy, _, added = conf.partition("# --- added by hub/embedded/mosquitto.py")
    assert policy.lstrip().startswith("#") and "per_listener_settings true" in policy
    assert "listener 8883 127.0.0.1" in added
    assert "tls_version tlsv1.2" in added
    assert added.index("listener 8883") < added.index("certfile") < added.index("keyfile")
    assert "listener 8883" not in MosquittoInstance(tmp_path, 1883).runtime_conf()


def test_device_facing_listeners_use_the_account_as_client_id(tmp_path: Path) -> None:
    conf = MosquittoInstance(tmp_path, 1883, tls_port=8883, tls_dir=tmp_path, device_port=1884).runtime_conf()
    added = conf.partition("# --- added by hub/embedded/mosquitto.py")[2]
    services, rest = added.split("listener 1884", 1)
    device, tls = rest.split("listener 8883", 1)
    assert "use_username_as_clientid" not in services  # the hub's workers share one account
    assert "passwd-services" in services  # devices cannot log in on the services listener
    assert "passwd-services" not in device and "passwd-services" not in tls
    assert "use_username_as_clientid true" in device
    assert "use_username_as_clientid true" in tls
