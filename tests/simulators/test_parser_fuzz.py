"""Property tests: CASAS log lines and scenario files fail only with their own errors, whatever the input."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.casas import LogFormatError, RawLine, parse_line, read_events
from simulators.scenario import ScenarioError, parse_scenario, shipped

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOKENS = st.sampled_from(["2010-11-04", "00:03:50.209589", "24:61:00", "0000-00-00", "9999-12-31", "M003", "D001",
                          "ON", "OFF", "OPEN", "CLOSE", "Bedroom", "T102", "21.5", "-3", "1e5", "Sleep_begin",
                          "\t", " ", "\x00", "２０１０"])
LINES = st.lists(TOKENS | st.text(max_size=12), max_size=8).map(" ".join) | st.text(max_size=120)


@FAST
@given(LINES)
def test_casas_line_parses_or_raises_log_format_error(line: str) -> None:
    try:
        parsed = parse_line(line)
    except LogFormatError:
        return
    assert parsed is None or isinstance(parsed, RawLine)


@FAST
@given(st.lists(LINES, max_size=10))
def test_read_events_reports_instead_of_raising(lines: list[str]) -> None:
    errors: list[int] = []
    events = list(read_events(lines, on_error=lambda n, _: errors.append(n)))
    assert len(events) + len(errors) <= len(lines)


SHIPPED = [path.read_text(encoding="utf-8") for path in shipped()]
YAMLISH = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#%@`,? \n\t0123")), max_size=200)


def _mutate(text: str, cut: int, insert: str) -> str:
    cut = cut % (len(text) + 1)
    return text[:cut] + insert + text[cut:]


@FAST
@given(YAMLISH)
def test_random_yaml_raises_only_scenario_error(text: str) -> None:
    try:
        parse_scenario(text)
    except ScenarioError as err:
        assert str(err).startswith("<scenario>")


@FAST
@given(st.sampled_from(SHIPPED), st.integers(min_value=0), YAMLISH)
def test_damaged_shipped_scenarios_raise_only_scenario_error(text: str, cut: int, insert: str) -> None:
    try:
        parse_scenario(_mutate(text, cut, insert))
    except ScenarioError as err:
        assert str(err).startswith("<scenario>")
