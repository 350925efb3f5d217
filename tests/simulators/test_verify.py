"""`python -m simulators verify`: clear errors, non-zero exits, and failed expectations shown with what was seen."""

from __future__ import annotations

import pytest

from simulators.__main__ import main
from simulators.household import ApiProvisioner
from simulators.hubapi import HubApi
from simulators.scenario import parse_scenario
from simulators.verify import Target, report, run_scenario


def test_unreachable_hub_is_a_clear_message_and_non_zero_exit(capsys, tmp_path):
    code = main(["verify", "--url", "http://127.0.0.1:9"])
    assert code == 2
    assert "no hub answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_malformed_scenario_names_line_and_field(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nhouseholds:\n  - name: a\nexpect:\n  - {alert: sos, household: a, within: soon}\n")
    assert main(["verify", str(bad)]) == 2
    assert f"{bad}:5: expect.0.within" in capsys.readouterr().err


@pytest.mark.anyio
async def test_an_unmet_expectation_fails_with_the_observed_values(running_hub, world, settings, services):
    await world.region_tree()
    await world.user("op", "operator")
    scenario = parse_scenario("""
name: wrong
duration: 2
households: [{name: a}]
timeline: [{at: 0.5, event: sos, household: a, name: press}]
expect:
  - {alert: sos, household: a, after: press, within: 2, severity: low}
  - {alert: smoke, household: a, after: press, within: 1}
  - {no_alert: sos, household: a}
  - {timeline: sos, household: a, after: press, within: 2,
     entry: {kind: [created, retriggered], details: {device_type: wristband, location_known: true}}}
  - {timeline: sos, household: a, after: press, within: 2,
     entry: {kind: [created, retriggered], details: {device_type: radar}}}
""")
    async with HubApi(f"http://127.0.0.1:{settings.api_port}", "op", "op-pw") as api:
        target = Target(api, ApiProvisioner(api), "127.0.0.1", services.broker.device_port, settings.mqtt_topic_root)
        result = await run_scenario(scenario, target)
    text = report(result)
    assert not result.passed
    # The entry matcher: one of several kinds, and details values that must all match.
    assert [o.passed for o in result.outcomes] == [False, False, False, True, False]
    assert "severity critical (severity critical)" in text
    assert "no smoke alert" in text and "alerts: sos" in text
    assert "raised: sos#" in text
    assert "'created' or 'retriggered' details {'device_type': 'radar'}" in text
