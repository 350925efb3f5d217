"""Scenario files: households, a timeline of injected events and the results expected from the hub."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from alerts.model import ALERT_TYPES
from hub.errors import EldercareError

EVENTS = (
    "sos", "fall", "radar_fall", "collapse", "wander", "skip_checkin", "battery_drain", "offline", "take_off",
    "reconnect_storm", "smoke", "leak", "tamper", "watch_sos", "watch_fall", "watch_removed", "watch_geofence_exit",
    "watch_low_battery", "watch_power_off", "watch_position", "acknowledge",
)
EventName = Literal[EVENTS]  # type: ignore[valid-type]
EXTRAS = ("radar", "smoke", "leak", "watch3g")
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class ScenarioError(EldercareError):
    """A scenario file is missing, malformed or invalid; the message names the line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HouseholdSpec(_Strict):
    """One household of the scenario, referred to by its name in the timeline and expectations."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,19}$", description="label, e.g. 'wang'")
    extras: list[Literal[EXTRAS]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="devices beyond the default kit: radar, smoke, leak, watch3g")
    routine: bool = Field(True, description="play the daily routine in the background")
    device_geofence: bool = Field(True, description="the wristband raises its own geofence alarm")


class Event(_Strict):
    """One injected event, `at` real seconds after every device is connected."""

    at: float = Field(ge=0, le=600)
    event: EventName
    household: str | None = Field(None, description="household name; not needed for reconnect_storm")
    name: str | None = Field(None, description="label that expectations refer to with `after`")
    gps: bool = Field(True, description="sos/watch events: with a GNSS fix")
    confidence: float = Field(0.92, ge=0, le=1, description="fall: the wristband's own confidence")
    device_alarm: bool = Field(True, description="fall: the wristband reports the fall itself (else IMU only)")
    state: Literal["fall", "maybe_fall"] = Field("fall", description="radar_fall: the radar's state")
    level: float = Field(10, ge=0, le=100, description="battery_drain: battery percent reached")
    seconds: float = Field(30, ge=0, le=600, description="offline: how long the device stays away")
    device: Literal["wristband", "exit", "motion", "bed", "radar", "smoke", "leak"] = Field(
        "wristband", description="offline/tamper: which device")
    alert: str | None = Field(None, description="acknowledge: the alert type to acknowledge")

    @model_validator(mode="after")
    def _needs_household(self) -> Event:
        if self.event != "reconnect_storm" and self.household is None:
            raise ValueError(f"event '{self.event}' needs a household")
        if self.event == "acknowledge" and self.alert not in ALERT_TYPES:
            raise ValueError("acknowledge needs `alert: <alert type>`")
        return self


class TimelineEntrySpec(_Strict):
    """What a timeline entry must contain: its kind (or one of several) and, optionally, details values."""

    kind: str | list[str]
    step: int | None = None
    recipient_kind: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="values the entry's details must have")


class Expectation(_Strict):
    """One expected result; exactly one of `alert`, `no_alert`, `timeline` says which kind."""

    alert: str | None = Field(None, description="an alert of this type is raised")
    no_alert: str | None = Field(None, description="no alert of this type (or 'any') during the run")
    timeline: str | None = Field(None, description="the timeline of this alert type has an entry")
    household: str
    within: float = Field(5.0, gt=0, le=600, description="seconds after the `after` event")
    after: str | None = Field(None, description="event name; default: the household's first event")
    severity: Literal["critical", "high", "medium", "low"] | None = None
    location: bool | None = Field(None, description="the alert has a location (true) or none (false)")
    details: dict[str, Any] = Field(default_factory=dict, description="values the alert details must have")
    count: int | None = Field(None, ge=0, description="exactly this many alerts of the type")
    entry: TimelineEntrySpec | None = None
    absent: TimelineEntrySpec | None = Field(None, description="timeline: no such entry by the end")

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        kinds = [k for k in ("alert", "no_alert", "timeline") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of alert, no_alert, timeline")
        for kind in kinds:
            value = getattr(self, kind)
            if value not in ALERT_TYPES and not (kind == "no_alert" and value == "any"):
                raise ValueError(f"unknown alert type {value!r} (known: {', '.join(ALERT_TYPES)})")
        if self.timeline is not None and self.entry is None and self.absent is None:
            raise ValueError("timeline expectations need `entry` or `absent`")
        return self

    @property
    def kind(self) -> str:
        """alert, no_alert or timeline."""
        return "alert" if self.alert else "no_alert" if self.no_alert else "timeline"

    @property
    def alert_type(self) -> str:
        """The alert type this expectation is about."""
        return str(self.alert or self.no_alert or self.timeline)


class Scenario(_Strict):
    """A whole scenario file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str = ""
    speed: float = Field(60.0, ge=1, le=3600, description="virtual seconds per real second")
    duration: float = Field(8.0, gt=0, le=600, description="real seconds the fleet runs after connecting")
    start_local: str | None = Field(None, description="HH:MM local time the virtual clock shows at the start")
    households: list[HouseholdSpec] = Field(min_length=1)
    timeline: list[Event] = Field(default_factory=list)
    expect: list[Expectation] = Field(min_length=1)
    path: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        names = {h.name for h in self.households}
        if len(names) != len(self.households):
            raise ValueError("household names must be unique")
        if self.start_local is not None and not _LOCAL_TIME.match(self.start_local):
            raise ValueError("start_local must be HH:MM")
        labels = {e.name for e in self.timeline if e.name}
        for e in self.timeline:
            if e.household is not None and e.household not in names:
                raise ValueError(f"timeline event at {e.at}s: no household named {e.household!r}")
        for x in self.expect:
            if x.household not in names:
                raise ValueError(f"expectation: no household named {x.household!r}")
            if x.after is not None and x.after not in labels:
                raise ValueError(f"expectation: no timeline event named {x.after!r}")
        return self

    def household(self, name: str) -> HouseholdSpec:
        """A household spec by name."""
        return next(h for h in self.households if h.name == name)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a validation error's location (closest existing parent)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            nxt = node.value[key]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario YAML; errors say `source:line: field: problem`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ScenarioError(f"{source}{line}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}:1: a scenario must be a mapping with name, households, timeline, expect")
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
            field = ".".join(str(p) for p in loc) or "(scenario)"
            where = _line_of(root, loc)
            problems.append(f"{source}:{where or '?'}: {field}: {e['msg']}")
        raise ScenarioError("\n".join(problems)) from None


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read: {err.strerror}") from None
    return parse_scenario(text, str(path)).model_copy(update={"path": path})


def shipped() -> list[Path]:
    """The scenario library that ships with the simulators."""
    return sorted((Path(__file__).parent / "scenarios").glob("*.yaml"))
