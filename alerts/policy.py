"""Escalation policies: who is told, on which channels, how long to wait; defaults, files and validation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.channels.base import RECIPIENT_KINDS
from alerts.model import ALERT_TYPES, SEVERITIES
from hub.errors import ConfigError

RISK_FLAGS = ("living_alone", "dementia", "chronic_illness", "wandering")
EMERGENCY_KINDS = ("emergency_120", "emergency_110")
# The two channel instances that always exist unless a channels file redefines the names.
BUILTIN_CHANNELS = ("console", "live")
# Where each recipient kind is reached when neither the step nor the channels file says otherwise:
# people get the console log line (no personal data), staff and dispatch get a console task (live feed).
DEFAULT_ROUTES: dict[str, list[str]] = {
    "family": ["console"],
    "community_worker": ["live", "console"],
    "duty_officer": ["live", "console"],
    "call_centre": ["live", "console"],
    "operator": ["live", "console"],
    "emergency_120": ["live", "console"],
    "emergency_110": ["live", "console"],
}
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


def _check_kinds(kinds: list[str]) -> list[str]:
    unknown = [k for k in kinds if k not in RECIPIENT_KINDS]
    if unknown:
        raise ValueError(f"unknown recipient kind {unknown[0]!r} (known: {', '.join(sorted(RECIPIENT_KINDS))})")
    if len(set(kinds)) != len(kinds):
        raise ValueError("a recipient kind is listed twice")
    return kinds


class Match(BaseModel):
    """Which alerts a policy applies to; an empty list matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    types: list[str] = Field(default_factory=list, title="Alert types", description="Alert types (ALERT_TYPES).")
    severities: list[Literal["critical", "high", "medium", "low"]] = Field(
        default_factory=list, title="Severities", description="Alert severities."
    )
    risk_flags: list[str] = Field(
        default_factory=list,
        title="Risk flags",
        description="Applies only when the resident has at least one of these flags.",
    )

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in ALERT_TYPES]
        if unknown:
            raise ValueError(f"unknown alert type {unknown[0]!r}")
        return value

    @field_validator("risk_flags")
    @classmethod
    def _known_flags(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in RISK_FLAGS]
        if unknown:
            raise ValueError(f"unknown risk flag {unknown[0]!r} (known: {', '.join(RISK_FLAGS)})")
        return value

    def matches(self, alert_type: str, severity: str, risk_flags: Iterable[str]) -> bool:
        """True when the alert and resident fit every non-empty condition."""
        if self.types and alert_type not in self.types:
            return False
        if self.severities and severity not in self.severities:
            return False
        return not self.risk_flags or bool(set(self.risk_flags) & set(risk_flags))


class Step(BaseModel):
    """One rung of the ladder: notify these recipient kinds, then wait `timeout_s` for an acknowledgement."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, title="Step name", description="Shown on the timeline.")
    recipients: list[str] = Field(
        min_length=1, title="Recipient kinds", description="family, community_worker, duty_officer, ..."
    )
    channels: list[str] = Field(
        default_factory=list,
        title="Channels",
        description="Channel instance names tried in order for each recipient; empty: the channels "
        "file's route for the recipient kind.",
    )
    timeout_s: float = Field(
        ge=0, le=7 * 86400, title="Timeout", description="Seconds to wait for an acknowledgement before the next step."
    )

    @field_validator("recipients")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        return _check_kinds(value)

    @property
    def is_dispatch(self) -> bool:
        """True when this step calls 120 or 110."""
        return any(k in EMERGENCY_KINDS for k in self.recipients)


class Reminder(BaseModel):
    """What repeats after the last step until someone acknowledges."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    every_s: float = Field(ge=10, le=7 * 86400, title="Interval", description="Seconds between reminders.")
    recipients: list[str] = Field(min_length=1, title="Recipient kinds", description="Who is reminded.")
    channels: list[str] = Field(
        default_factory=list, title="Channels", description="Channel names in order; empty: the routes."
    )
    max_count: int | None = Field(
        default=None, ge=1, title="Most reminders", description="Stop after this many; unset: until acknowledged."
    )

    @field_validator("recipients")
    @classmethod
    def _kinds(cls, value: list[str]) -> list[str]:
        kinds = _check_kinds(value)
        if any(k in EMERGENCY_KINDS for k in kinds):
            raise ValueError("reminders never call 120/110 again; put dispatch in a step")
        return kinds


class Policy(BaseModel):
    """An escalation ladder for the alerts its `match` selects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, title="Policy name", description="Recorded with each alert.")
    description: str = Field(default="", title="Description", description="What the policy is for.")
    match: Match = Field(default_factory=Match, title="Match", description="Which alerts it applies to.")
    steps: list[Step] = Field(min_length=1, title="Steps", description="The ladder, first step first.")
    reminder: Reminder | None = Field(default=None, title="Reminder", description="Repeats after the last step.")
    emergency: Literal["emergency_120", "emergency_110"] | None = Field(
        default=None,
        title="Emergency service",
        description="Who an operator's emergency confirmation calls when no step of the ladder does.",
    )
    cancel_window_s: float = Field(
        default=0,
        ge=0,
        le=300,
        title="Cancel window",
        description="Device- or radar-reported falls wait this long for an \"I'm OK\" check-in first.",
    )
    quiet_hours: bool = Field(
        default=False,
        title="Respect quiet hours",
        description="Low- and medium-severity notices wait for the end of quiet hours; never critical/high.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("two steps share a name")
        if self.quiet_hours and (not self.match.severities or {"critical", "high"} & set(self.match.severities)):
            raise ValueError("quiet_hours may only be set on policies limited to low/medium severities")
        return self

    def dispatch_index(self) -> int | None:
        """Index of the first step that calls 120/110, if any."""
        return next((i for i, s in enumerate(self.steps) if s.is_dispatch), None)

    def offset_s(self, index: int) -> float:
        """Seconds from the ladder's start to step `index` (the sum of the earlier timeouts)."""
        return sum(s.timeout_s for s in self.steps[:index])


class PolicyFile(BaseModel):
    """A policy file: policies tried in order before (or instead of) the defaults."""

    model_config = ConfigDict(extra="forbid")

    policies: list[Policy] = Field(default_factory=list, title="Policies", description="First match wins.")
    replace_defaults: bool = Field(
        default=False,
        title="Replace defaults",
        description="Use only these policies; they must cover every alert type.",
    )


class ChannelsFile(BaseModel):
    """A channels file: channel instances and, per recipient kind, the channels tried in order."""

    model_config = ConfigDict(extra="forbid")

    channels: list[dict[str, Any]] = Field(
        default_factory=list, title="Channels", description="Channel configs (docs/channels.md)."
    )
    routes: dict[str, list[str]] = Field(
        default_factory=dict, title="Routes", description="Recipient kind → channel names tried in order."
    )

    @field_validator("routes")
    @classmethod
    def _route_kinds(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_kinds(list(value))
        empty = [k for k, names in value.items() if not names]
        if empty:
            raise ValueError(f"route for {empty[0]!r} names no channel")
        return value


def _step(name: str, recipients: list[str], timeout_s: float) -> Step:
    return Step(name=name, recipients=recipients, timeout_s=timeout_s)


_FIRST = ["family", "community_worker"]
_STATION = ["duty_officer", "call_centre"]

DEFAULT_POLICIES: tuple[Policy, ...] = (
    Policy(
        name="missing_dementia",
        description="A resident with dementia left the safe area or is not home: 110 after 3 minutes.",
        match=Match(types=["wandering", "not_home"], risk_flags=["dementia"]),
        steps=[_step("first_notice", _FIRST, 60), _step("duty_officer", _STATION, 120),
               _step("dispatch_110", ["emergency_110"], 300)],
        reminder=Reminder(every_s=120, recipients=["duty_officer", "call_centre", "family"]),
        emergency="emergency_110",
    ),
    Policy(
        name="medical_emergency",
        description="SOS or fall: family and community worker at once, station at 60 s, 120 at 3 minutes.",
        match=Match(types=["sos", "fall"]),
        steps=[_step("first_notice", _FIRST, 60), _step("duty_officer", _STATION, 120),
               _step("dispatch_120", ["emergency_120"], 300)],
        reminder=Reminder(every_s=120, recipients=["duty_officer", "call_centre", "family"]),
        emergency="emergency_120",
        cancel_window_s=30,
    ),
    Policy(
        name="critical",
        description="Other critical alerts (smoke): station at 60 s; the call centre calls 119 itself.",
        match=Match(severities=["critical"]),
        steps=[_step("first_notice", _FIRST, 60), _step("duty_officer", _STATION, 120)],
        reminder=Reminder(every_s=120, recipients=["duty_officer", "call_centre"]),
        emergency="emergency_120",
    ),
    Policy(
        name="urgent_living_alone",
        description="No sign of life from someone living alone: a shorter ladder; 120 on confirmation.",
        match=Match(types=["inactivity", "no_morning_activity", "long_bathroom", "possible_fall"],
                    risk_flags=["living_alone"]),
        steps=[_step("first_notice", _FIRST, 180), _step("duty_officer", _STATION, 420)],
        reminder=Reminder(every_s=300, recipients=["duty_officer", "call_centre", "community_worker"]),
        emergency="emergency_120",
    ),
    Policy(
        name="urgent",
        description="High severity: family and community worker, the station after 5 minutes.",
        match=Match(severities=["high"]),
        steps=[_step("first_notice", _FIRST, 300), _step("duty_officer", _STATION, 900)],
        reminder=Reminder(every_s=900, recipients=["duty_officer", "community_worker"]),
        emergency="emergency_120",
    ),
    Policy(
        name="routine",
        description="Medium severity (device offline, night door): the community worker; waits out quiet hours.",
        match=Match(severities=["medium"]),
        steps=[_step("community_worker", ["community_worker"], 4 * 3600)],
        reminder=Reminder(every_s=4 * 3600, recipients=["community_worker"], max_count=6),
        quiet_hours=True,
    ),
    Policy(
        name="maintenance",
        description="Low severity (low battery): the community worker, once a day; waits out quiet hours.",
        match=Match(severities=["low"]),
        steps=[_step("community_worker", ["community_worker"], 86400)],
        reminder=Reminder(every_s=86400, recipients=["community_worker"], max_count=3),
        quiet_hours=True,
    ),
)


def select_policy(policies: Sequence[Policy], alert_type: str, severity: str, risk_flags: Iterable[str]) -> Policy:
    """The first policy that matches; `check_coverage` guarantees there is one for known types."""
    flags = list(risk_flags)
    for policy in policies:
        if policy.match.matches(alert_type, severity, flags):
            return policy
    # Unknown alert types (a newer detector) still reach someone: the last policy is the fallback.
    return policies[-1]


def check_coverage(policies: Sequence[Policy]) -> None:
    """Every alert type at every severity, for a resident without risk flags, must find a policy."""
    for alert_type in ALERT_TYPES:
        for severity in SEVERITIES:
            if not any(p.match.matches(alert_type, severity, ()) for p in policies):
                raise ConfigError(f"escalation policies: no policy matches alert type {alert_type!r} "
                                  f"at severity {severity!r}")


def _describe(err: ValidationError, data: object, what: str) -> str:
    problems = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "policies" and isinstance(loc[1], int) and isinstance(data, Mapping):
            raw = data.get("policies")
            name = raw[loc[1]].get("name", "?") if isinstance(raw, list) and isinstance(raw[loc[1]], Mapping) else "?"
            rest = loc[2:]
            if len(rest) >= 2 and rest[0] == "steps" and isinstance(rest[1], int):
                steps = raw[loc[1]].get("steps") if isinstance(raw, list) else None
                step_name = steps[rest[1]].get("name", "?") if isinstance(steps, list) and isinstance(
                    steps[rest[1]], Mapping) else "?"
                where = f"policy {name!r} step {step_name!r}" + "".join(f".{p}" for p in rest[2:])
            else:
                where = f"policy {name!r}" + "".join(f".{p}" for p in rest)
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(f"{where}: {msg}")
    return f"{what}: " + "; ".join(problems)


def read_document(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML or JSON file into a mapping; a missing or malformed file is a ConfigError."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{what} {path}: cannot read ({type(err).__name__})") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path}: not valid YAML/JSON ({err})") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path}: must be a mapping at the top level")
    return data


def parse_policies(data: Mapping[str, Any], what: str = "policy file") -> list[Policy]:
    """Validate a policy document; the result is the file's policies plus (unless replaced) the defaults."""
    try:
        parsed = PolicyFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, data, what)) from err
    names = [p.name for p in parsed.policies]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{what}: two policies are named {dupes[0]!r}")
    if parsed.replace_defaults:
        if not parsed.policies:
            raise ConfigError(f"{what}: replace_defaults is set but no policy is given")
        policies = list(parsed.policies)
    else:
        policies = [*parsed.policies, *(p for p in DEFAULT_POLICIES if p.name not in names)]
    check_coverage(policies)
    return policies


def load_policies(path: Path | None) -> list[Policy]:
    """The policies from a YAML/JSON file, or the defaults when no file is configured."""
    if path is None:
        return list(DEFAULT_POLICIES)
    return parse_policies(read_document(path, "policy file"), f"policy file {path}")


def parse_channels_file(data: Mapping[str, Any], what: str = "channels file") -> ChannelsFile:
    """Validate the shape of a channels document (each channel's own config is checked by the registry)."""
    try:
        return ChannelsFile.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, data, what)) from err


def effective_routes(routes: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The file's routes over the defaults, for every recipient kind."""
    return {kind: list(routes.get(kind, DEFAULT_ROUTES[kind])) for kind in sorted(RECIPIENT_KINDS)}


def check_channels(policies: Sequence[Policy], routes: Mapping[str, list[str]], channel_names: Iterable[str]) -> None:
    """Every channel a route or step names must exist; the error names the policy, step and channel."""
    known = set(channel_names)
    listing = ", ".join(sorted(known))
    for kind, names in routes.items():
        for name in names:
            if name not in known:
                raise ConfigError(f"route for {kind!r}: unknown channel {name!r} (configured: {listing})")
    for policy in policies:
        blocks: list[tuple[str, list[str]]] = [(f"step {s.name!r}", s.channels) for s in policy.steps]
        if policy.reminder is not None:
            blocks.append(("reminder", policy.reminder.channels))
        for label, names in blocks:
            for name in names:
                if name not in known:
                    raise ConfigError(f"policy {policy.name!r} {label}: unknown channel {name!r} "
                                      f"(configured: {listing})")


@dataclass(frozen=True)
class QuietHours:
    """A daily local-time window in which low/medium notices wait; may wrap midnight (22:00-07:00)."""

    start: time
    end: time
    tz: ZoneInfo

    @classmethod
    def parse(cls, spec: str | None, tz_name: str) -> QuietHours | None:
        """Read "HH:MM-HH:MM"; None or "" means no quiet hours."""
        if not spec:
            return None
        try:
            first, second = spec.split("-")
            start, end = time.fromisoformat(first.strip()), time.fromisoformat(second.strip())
            tz = ZoneInfo(tz_name)
        except (ValueError, KeyError) as err:
            raise ConfigError(f"quiet hours {spec!r} in {tz_name!r}: expected HH:MM-HH:MM and a tz name") from err
        if start == end:
            raise ConfigError(f"quiet hours {spec!r}: start and end are equal")
        return cls(start, end, tz)

    def until(self, now: datetime) -> datetime | None:
        """When the current quiet period ends, or None if `now` is outside it."""
        local = now.astimezone(self.tz)
        t = local.time()
        inside = self.start <= t < self.end if self.start < self.end else (t >= self.start or t < self.end)
        if not inside:
            return None
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end
