"""`python -m devices provision|revoke` against a real database and the real broker's password file."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import aiomqtt
import pytest

from devices.credentials import verify_password


def run_cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELDERCARE_DB_URL": settings.db_url,
           "ELDERCARE_MQTT_PASSWD_FILE": str(settings.mqtt_passwd_file),
           "ELDERCARE_MQTT_RELOAD_PID_FILE": str(settings.mqtt_reload_pid_file)}
    return subprocess.run([sys.executable, "-m", "devices", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=60)


@pytest.mark.anyio
async def test_provision_then_revoke(world, settings, services, devices):
    await world.resident("R1")
    done = run_cli(settings, "provision", "CLI1", "wristband", "--resident", "R1")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["mqtt_username"] == "CLI1"
    assert verify_password(out["mqtt_password"], services.store.hashed("CLI1") or "")
    client = await devices.connect("CLI1", out["mqtt_password"])
    await client.__aexit__(None, None, None)

    gone = run_cli(settings, "revoke", "CLI1")
    assert gone.returncode == 0, gone.stderr
    assert services.store.hashed("CLI1") is None
    await asyncio.sleep(0.5)  # the broker reloads its password file on SIGHUP
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", services.broker.device_port, username="CLI1",
                                  password=out["mqtt_password"]):
            pass


def test_bad_input_is_one_clear_line(world, settings):
    done = run_cli(settings, "provision", "CLI2", "toaster", "--resident", "R9")
    assert done.returncode == 2
    assert done.stderr.startswith("error: unknown device type 'toaster'")
    assert "Traceback" not in done.stderr
