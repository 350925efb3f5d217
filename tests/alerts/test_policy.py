"""Policies: defaults, selection by type/severity/risk, files, and misconfiguration stopping start-up."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from psycopg_pool import AsyncConnectionPool

from alerts.engine import Engine, build_config
from alerts.model import ALERT_TYPES
from alerts.policy import DEFAULT_POLICIES, QuietHours, check_coverage, load_policies, parse_policies, select_policy
from hub.errors import ConfigError
from hub.health import Health
from tests.alerts.conftest import write_yaml


def _pool() -> AsyncConnectionPool:
    # Never opened: configuration is checked before the engine touches the database.
    return AsyncConnectionPool("postgresql://127.0.0.1:1/none", open=False)


def test_defaults_cover_every_alert_type_and_severity():
    check_coverage(DEFAULT_POLICIES)
    assert load_policies(None) == list(DEFAULT_POLICIES)


@pytest.mark.parametrize(("alert_type", "flags", "policy", "dispatch"), [
    ("sos", [], "medical_emergency", "emergency_120"),
    ("fall", ["living_alone"], "medical_emergency", "emergency_120"),
    ("wandering", ["dementia"], "missing_dementia", "emergency_110"),
    ("not_home", ["dementia", "living_alone"], "missing_dementia", "emergency_110"),
    ("wandering", [], "urgent", None),
    ("inactivity", ["living_alone"], "urgent_living_alone", None),
    ("inactivity", [], "urgent", None),
    ("smoke", [], "critical", None),
    ("device_offline", [], "routine", None),
    ("low_battery", [], "maintenance", None),
])
def test_selection_by_type_severity_and_risk(alert_type, flags, policy, dispatch):
    chosen = select_policy(DEFAULT_POLICIES, alert_type, ALERT_TYPES[alert_type], flags)
    assert chosen.name == policy
    index = chosen.dispatch_index()
    assert (None if index is None else chosen.steps[index].recipients[0]) == dispatch


def test_default_sos_ladder_timing():
    sos = select_policy(DEFAULT_POLICIES, "sos", "critical", [])
    assert [s.recipients for s in sos.steps] == [["family", "community_worker"], ["duty_officer", "call_centre"],
                                                 ["emergency_120"]]
    assert [sos.offset_s(i) for i in range(3)] == [0, 60, 180]
    assert sos.cancel_window_s == 30


def test_a_file_policy_goes_before_the_defaults():
    policies = parse_policies({"policies": [{
        "name": "sos_chronic", "match": {"types": ["sos"], "risk_flags": ["chronic_illness"]},
        "steps": [{"name": "all_at_once", "recipients": ["family", "duty_officer", "emergency_120"],
                   "timeout_s": 60}]}]})
    assert policies[0].name == "sos_chronic"
    assert select_policy(policies, "sos", "critical", ["chronic_illness"]).name == "sos_chronic"
    assert select_policy(policies, "sos", "critical", []).name == "medical_emergency"


@pytest.mark.parametrize(("doc", "message"), [
    ({"policies": [{"name": "p", "steps": [{"name": "s", "recipients": ["nurse"], "timeout_s": 1}]}]},
     r"policy 'p' step 's'\.recipients: unknown recipient kind 'nurse'"),
    ({"policies": [{"name": "p", "steps": [{"name": "s", "recipients": [], "timeout_s": 1}]}]},
     r"policy 'p' step 's'\.recipients: List should have at least 1 item"),
    ({"policies": [{"name": "p", "steps": []}]}, r"policy 'p'\.steps: List should have at least 1 item"),
    ({"policies": [{"name": "p", "match": {"types": ["sos"], "severities": ["critical"]}, "quiet_hours": True,
                    "steps": [{"name": "s", "recipients": ["family"], "timeout_s": 1}]}]},
     r"policy 'p': quiet_hours may only be set on policies limited to low/medium"),
    ({"policies": [{"name": "p", "match": {"types": ["intrusion"]},
                    "steps": [{"name": "s", "recipients": ["family"], "timeout_s": 1}]}]},
     r"policy 'p'\.match\.types: unknown alert type 'intrusion'"),
    ({"policies": [{"name": "p", "retries": 3, "steps": [{"name": "s", "recipients": ["family"],
                                                          "timeout_s": 1}]}]},
     r"policy 'p'\.retries: unknown field"),
    ({"replace_defaults": True, "policies": [{"name": "p", "match": {"types": ["sos"]},
                                               "steps": [{"name": "s", "recipients": ["family"], "timeout_s": 1}]}]},
     r"no policy matches alert type 'fall'"),
])
def test_misconfigured_policies_name_the_problem(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_policies(doc)


def test_a_step_naming_an_unknown_channel_stops_start_up(tmp_path: Path):
    policy = write_yaml(tmp_path / "p.yaml", {"policies": [{
        "name": "sos_sms", "match": {"types": ["sos"]},
        "steps": [{"name": "first", "recipients": ["family"], "channels": ["sms-gateway"], "timeout_s": 60}]}]})
    with pytest.raises(ConfigError, match=r"policy 'sos_sms' step 'first': unknown channel 'sms-gateway' "
                                          r"\(configured: console, live\)"):
        build_config(_pool(), policy_file=policy)


def test_a_route_naming_an_unknown_channel_stops_start_up(tmp_path: Path):
    channels = write_yaml(tmp_path / "c.yaml", {"routes": {"family": ["wechat"]}})
    with pytest.raises(ConfigError, match=r"route for 'family': unknown channel 'wechat'"):
        build_config(_pool(), channels_file=channels)


def test_a_route_for_an_unknown_recipient_kind_stops_start_up(tmp_path: Path):
    channels = write_yaml(tmp_path / "c.yaml", {"routes": {"neighbour": ["console"]}})
    with pytest.raises(ConfigError, match=r"unknown recipient kind 'neighbour'"):
        build_config(_pool(), channels_file=channels)


def test_a_broken_channel_config_stops_start_up(tmp_path: Path):
    channels = write_yaml(tmp_path / "c.yaml", {"channels": [{"type": "webhook", "name": "family-app"}]})
    with pytest.raises(ConfigError, match=r"notification channel 'family-app' config: field 'url'"):
        build_config(_pool(), channels_file=channels)


def test_unreadable_policy_file_stops_start_up(tmp_path: Path):
    bad = tmp_path / "p.yaml"
    bad.write_text("policies: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_policies(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_policies(tmp_path / "missing.yaml")


def test_the_hub_refuses_to_start_with_a_bad_policy_file(settings, tmp_path: Path):
    from hub.service import Hub

    bad = write_yaml(tmp_path / "p.yaml", {"policies": [{"name": "p", "steps": [
        {"name": "s", "recipients": ["family", "butler"], "timeout_s": 1}]}]})
    broken = settings.model_copy(update={"policy_file": bad})
    with pytest.raises(ConfigError, match="unknown recipient kind 'butler'"):
        Hub(broken, broken.db_url, broken.mqtt_url)


def test_default_configuration_is_console_and_live_only():
    config = build_config(_pool())
    assert sorted(config.channels) == ["console", "live"]
    assert config.routes["family"] == ["console"] and config.routes["emergency_120"] == ["live", "console"]
    Engine(_pool(), Health(), config=config)


def test_quiet_hours_wrap_midnight():
    quiet = QuietHours.parse("22:00-07:00", "Asia/Shanghai")
    assert quiet is not None
    assert quiet.until(datetime(2030, 1, 1, 12, 0, tzinfo=UTC)) is None  # 20:00 local
    end = quiet.until(datetime(2030, 1, 1, 20, 0, tzinfo=UTC))  # 04:00 local
    assert end is not None and end.isoformat() == "2030-01-02T07:00:00+08:00"
    assert QuietHours.parse("", "Asia/Shanghai") is None
    with pytest.raises(ConfigError, match="HH:MM-HH:MM"):
        QuietHours.parse("late", "Asia/Shanghai")
