"""deploy/: the compose file, the broker's deployment conf and the systemd units, checked without Docker.

There is no Docker engine here, so the compose file is read as data; its Mosquitto configuration
(the repository's policy plus deploy/mosquitto/listeners.conf) is run by the real local Mosquitto with
container paths and ports translated to a temp folder, and deploy/init_broker.py writes its accounts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from hub.embedded import free_port
from hub.embedded.process import chown_tree, service_user, spawn, stop, wait_for_port
from hub.settings import Settings, load_settings
from tests.conftest import REPO, open_to_services

DEPLOY = REPO / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DUMMY_ENV = {"DB_PASSWORD": "db-secret", "HUB_MQTT_PASSWORD": "hub-secret", "ELDERCARE_WORKERS": "2"}
_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default} and ${VAR:?error} substitution."""
    def one(m: re.Match[str]) -> str:
        if m.group(1) in env:
            return env[m.group(1)]
        if m.group(0).startswith(f"${{{m.group(1)}:?"):
            raise KeyError(f"{m.group(1)} is required")
        return m.group(2) or ""
    return _VAR.sub(one, value)


def environment(service: str, env: dict[str, str] = DUMMY_ENV) -> dict[str, str]:
    """A service's environment with variables substituted."""
    return {k: substitute(str(v), env) for k, v in (SERVICES[service].get("environment") or {}).items()}


def test_services_and_profiles() -> None:
    assert set(SERVICES) == {"timescaledb", "broker-init", "mosquitto", "hub", "hub-worker"}
    assert SERVICES["hub"]["command"] == ["python", "-m", "hub", "run"]
    assert SERVICES["hub-worker"]["command"] == ["python", "-m", "hub", "worker"]
    assert SERVICES["hub-worker"]["profiles"] == ["workers"]
    assert all("profiles" not in s for name, s in SERVICES.items() if name != "hub-worker")


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned"
    # The Community edition (compression, continuous aggregates, policies), as docs/scaling.md says.
    assert SERVICES["timescaledb"]["image"].startswith("timescale/timescaledb:")
    assert SERVICES["mosquitto"]["image"].startswith("eclipse-mosquitto:2.")


def test_hub_environment_names_real_settings() -> None:
    for name in ("broker-init", "hub", "hub-worker"):
        unknown = [k for k in environment(name) if k.removeprefix("ELDERCARE_").lower() not in Settings.model_fields]
        assert unknown == [], f"{name}: {unknown} are not hub settings"


def test_hub_settings_load_from_the_compose_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("hub", "hub-worker", "broker-init"):
        for key in [k for k in os.environ if k.startswith("ELDERCARE_")]:
            monkeypatch.delenv(key)
        for key, value in environment(name).items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        assert settings.db_url is not None and "@timescaledb:5432/" in settings.db_url
        assert settings.mqtt_url == "mqtt://hub:hub-secret@mosquitto:1883"
        assert not settings.spawn_workers  # compose runs each worker as a service
    # Worker 1 refuses to start when ELDERCARE_WORKERS was left at 1, rather than split residents wrongly.
    for key, value in environment("hub-worker").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ELDERCARE_WORKERS", "1")
    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="worker_index"):
        load_settings()
    assert environment("hub")["ELDERCARE_WORKERS"] == environment("hub-worker")["ELDERCARE_WORKERS"]


def test_secrets_are_required_not_defaulted() -> None:
    with pytest.raises(KeyError, match="DB_PASSWORD"):
        environment("hub", {})
    text = (DEPLOY / "docker-compose.yml").read_text()
    assert "PASSWORD:-" not in text  # no default password anywhere


def test_healthchecks_and_start_order() -> None:
    for name in ("timescaledb", "mosquitto", "hub"):
        check = SERVICES[name]["healthcheck"]
        assert check["test"][0] in {"CMD", "CMD-SHELL"}
        assert {"interval", "timeout", "retries"} <= set(check)
    for name, service in SERVICES.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"
            if cond["condition"] == "service_healthy":
                assert "test" in SERVICES[dep].get("healthcheck", {}), f"{dep} has no healthcheck"
    assert SERVICES["mosquitto"]["depends_on"]["broker-init"]["condition"] == "service_completed_successfully"
    assert SERVICES["hub"]["pid"] == "service:mosquitto"


def test_volumes_exist_and_only_tls_is_published() -> None:
    named = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = substitute(volume, {}).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists() or source == "./tls", f"{name}: {source} missing"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    assert SERVICES["mosquitto"]["ports"] == ["8883:8883"]
    assert SERVICES["hub"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "ports" not in SERVICES["timescaledb"]


def test_dockerfile_copies_what_exists_and_runs_unprivileged() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert re.search(r"^FROM python:3\.11[\w.-]*$", text, re.M)
    assert "USER 1883:1883" in text
    assert 'CMD ["python", "-m", "hub", "run"]' in text


def _unit(name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out.setdefault(key, []).append(value)
    return out


@pytest.mark.parametrize(("unit", "command"), [("eldercare-hub.service", "run"),
                                               ("eldercare-hub-worker@.service", "worker")])
def test_systemd_units_run_real_commands(unit: str, command: str) -> None:
    fields = _unit(unit)
    exec_start = fields["ExecStart"][0].split()
    assert exec_start[-3:] == ["-m", "hub", command]
    for assignment in fields.get("Environment", []):
        key = assignment.split("=", 1)[0]
        assert key.removeprefix("ELDERCARE_").lower() in Settings.model_fields, key
    assert fields["Restart"] == ["always"]
    # The command exists in this version of the hub.
    help_text = subprocess.run([sys.executable, "-m", "hub", command, "--help"], capture_output=True, text=True,
                               cwd=REPO, check=True).stdout
    assert f"python -m hub {command}" in help_text


@pytest.fixture
def deployed_broker(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """deploy/mosquitto/* with /mosquitto/... moved into a temp folder and ports made free, running."""
    base = open_to_services(tmp_path)
    plain, tls = free_port(), free_port()
    conf_d = base / "config" / "conf.d"
    conf_d.mkdir(parents=True)
    (conf_d / "10-policy.conf").write_text((REPO / "mosquitto.conf").read_text())
    listeners = (DEPLOY / "mosquitto" / "listeners.conf").read_text()
    listeners = listeners.replace("/mosquitto/", f"{base}/")
    listeners = listeners.replace("listener 1883\n", f"listener {plain} 127.0.0.1\n")
    listeners = listeners.replace("listener 8883\n", f"listener {tls} 127.0.0.1\n")
    assert "1883" not in listeners and "8883" not in listeners
    (conf_d / "20-listeners.conf").write_text(listeners)
    main = (DEPLOY / "mosquitto" / "mosquitto.conf").read_text().replace("/mosquitto/", f"{base}/")
    (base / "config" / "mosquitto.conf").write_text(main)
    for folder in ("data", "auth"):
        (base / folder).mkdir()
    subprocess.run(["bash", str(REPO / "scripts" / "make-ca.sh"), str(base / "tls")], check=True,
                   capture_output=True)
    # The one-shot account set-up, with the hub service's environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELDERCARE_")}
    env |= {**environment("broker-init"), "ELDERCARE_MQTT_URL": f"mqtt://hub:hub-secret@127.0.0.1:{plain}",
            "ELDERCARE_MQTT_PASSWD_FILE": str(base / "auth" / "passwd"),
            "ELDERCARE_MQTT_RELOAD_PID_FILE": str(base / "auth" / "mosquitto.pid")}
    subprocess.run([sys.executable, str(DEPLOY / "init_broker.py")], env=env, cwd=REPO, check=True,
                   capture_output=True)
    chown_tree(base, service_user("mosquitto"))
    log = base / "mosquitto.log"
    proc = spawn(["mosquitto", "-c", str(base / "config" / "mosquitto.conf")], log, service_user("mosquitto"))
    try:
        wait_for_port(plain, proc, "deployed Mosquitto", log)
        wait_for_port(tls, proc, "deployed Mosquitto (TLS)", log)
        yield {"plain": plain, "tls": tls, "base": base, "proc": proc}
    finally:
        stop(proc)


@pytest.mark.anyio
async def test_deployment_conf_runs_on_the_real_broker(deployed_broker: dict[str, Any]) -> None:
    import ssl

    b = deployed_broker
    assert (b["base"] / "auth" / "mosquitto.pid").read_text().strip() == str(b["proc"].pid)
    context = ssl.create_default_context(cafile=str(b["base"] / "tls" / "ca.crt"))
    for port, tls in ((b["plain"], None), (b["tls"], context)):
        async with aiomqtt.Client("127.0.0.1", port, username="hub", password="hub-secret",
                                  identifier=f"hub-{uuid.uuid4().hex[:6]}", tls_context=tls):
            pass
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, username="hub", password="wrong", tls_context=tls):
                pass
    # The ACL the init step wrote is the hub's own.
    acl = (b["base"] / "auth" / "acl").read_text()
    assert "pattern write eldercare/v1/+/%u/sos" in acl  # a device writes exactly its declared message topics
    assert "pattern write eldercare/v1/+/%u/#" not in acl


def test_mosquitto_healthcheck_command_works_on_the_real_broker(deployed_broker: dict[str, Any]) -> None:
    command = SERVICES["mosquitto"]["healthcheck"]["test"][1].replace("-p 1883", f"-p {deployed_broker['plain']}")
    assert subprocess.run(["sh", "-c", command], check=False, timeout=10).returncode == 0
    stop(deployed_broker["proc"])
    assert subprocess.run(["sh", "-c", command], check=False, timeout=10).returncode != 0


@pytest.fixture
def anyio_backend() -> str:
    """aiomqtt runs on asyncio."""
    return "asyncio"
