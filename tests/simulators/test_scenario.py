"""Scenario files: the shipped library loads, and mistakes are reported with their line and field."""

from __future__ import annotations

import pytest

from simulators.scenario import ScenarioError, load_scenario, parse_scenario, shipped

GOOD = """\
name: t
households:
  - name: wang
timeline:
  - {at: 1, event: sos, household: wang, name: press}
expect:
  - {alert: sos, household: wang, after: press, within: 2}
"""


def test_every_shipped_scenario_loads():
    paths = shipped()
    assert len(paths) >= 10
    names = [load_scenario(p).name for p in paths]
    assert len(set(names)) == len(names)


def test_a_good_scenario_parses():
    s = parse_scenario(GOOD)
    assert s.timeline[0].event == "sos" and s.expect[0].kind == "alert"


@pytest.mark.parametrize(("text", "where"), [
    (GOOD.replace("event: sos", "event: sso"), ("f.yaml:5:", "timeline.0.event")),
    (GOOD.replace("within: 2}", "within: 2, colour: red}"), ("f.yaml:7:", "expect.0.colour")),
    (GOOD.replace("  - name: wang", "  - name: Wang!"), ("f.yaml:3:", "households.0.name")),
    (GOOD.replace("at: 1,", "at: -1,"), ("f.yaml:5:", "timeline.0.at")),
    (GOOD.replace("alert: sos,", "alert: sos, no_alert: fall,"), ("f.yaml:7:", "expect.0")),
    (GOOD.replace("alert: sos", "alert: meteor"), ("f.yaml:7:", "unknown alert type")),
])
def test_mistakes_name_line_and_field(text, where):
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "f.yaml")
    for part in where:
        assert part in str(err.value)


def test_references_and_yaml_syntax_are_checked():
    with pytest.raises(ScenarioError, match="no household named 'li'"):
        parse_scenario(GOOD.replace("household: wang, after", "household: li, after"), "f.yaml")
    with pytest.raises(ScenarioError, match="no timeline event named 'nope'"):
        parse_scenario(GOOD.replace("after: press", "after: nope"), "f.yaml")
    with pytest.raises(ScenarioError, match=r"f.yaml:\d+: not valid YAML"):
        parse_scenario("name: [unclosed\n", "f.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml")
