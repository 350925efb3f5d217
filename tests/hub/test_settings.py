"""Settings: one object, every field described, bad values named at start-up, secrets masked."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hub.errors import ConfigError
from hub.settings import Settings, load_settings


def test_every_setting_has_a_description():
    missing = [name for name, f in Settings.model_fields.items() if not f.description]
    assert missing == []


def test_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("ELDERCARE_API_PORT", "99999")
    with pytest.raises(ConfigError, match="ELDERCARE_API_PORT"):
        load_settings()


def test_unknown_scheme_is_refused():
    with pytest.raises(ConfigError, match=r"ELDERCARE_DB_URL: .*postgresql://"):
        load_settings(db_url="mysql://x@y/z")


def test_config_command_masks_secrets():
    env = {**os.environ, "ELDERCARE_DB_URL": "postgresql://hub:s3cret@db.example:5432/eldercare",
           "ELDERCARE_MQTT_URL": "mqtt://hub:m0squ1tto@127.0.0.1:1883", "ELDERCARE_MQTT_PASSWORD": "pw123"}
    out = subprocess.run([sys.executable, "-m", "hub", "config"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "s3cret" not in out and "m0squ1tto" not in out and "pw123" not in out
    shown = json.loads(out)
    assert shown["db_url"] == "postgresql://hub:***@db.example:5432/eldercare"
    assert shown["mqtt_password"] == "***"


def test_config_command_reports_bad_setting_and_exits_nonzero():
    env = {**os.environ, "ELDERCARE_INGEST_FLUSH_MS": "0"}
    proc = subprocess.run([sys.executable, "-m", "hub", "config"], env=env, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 2
    assert "ELDERCARE_INGEST_FLUSH_MS" in proc.stderr


def test_readme_settings_table_lists_every_setting():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [f"ELDERCARE_{name.upper()}" for name in Settings.model_fields
               if f"`ELDERCARE_{name.upper()}`" not in readme]
    assert missing == []


def test_the_hubs_client_id_must_be_a_name_no_device_may_take():
    """A device provisioned as the hub's client id took over its persistent session (issue 17, a replayed attack)."""
    assert load_settings(mqtt_client_id="eldercare-hub-2").mqtt_client_id == "eldercare-hub-2"
    with pytest.raises(ConfigError, match=r"(?i)mqtt_client_id"):
        load_settings(mqtt_client_id="ingest-1")
