"""Private services: a clear message when a port is taken."""

from __future__ import annotations

import socket

import pytest

from hub.embedded import MosquittoInstance, PortInUseError, PostgresInstance


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_postgres_port_in_use_names_the_port_and_setting(tmp_path, busy_port):
    with pytest.raises(PortInUseError, match=rf"port {busy_port} .*ELDERCARE_EMBEDDED_PG_PORT"):
        PostgresInstance(tmp_path / "pg", busy_port).start()


def test_mosquitto_port_in_use_names_the_port_and_setting(tmp_path, busy_port):
    with pytest.raises(PortInUseError, match=rf"port {busy_port} .*ELDERCARE_EMBEDDED_MQTT_PORT"):
        MosquittoInstance(tmp_path / "mq", busy_port).start()
