"""Per-resident composition of the home detectors; the live hub and the replay tool both drive this."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub.detection.activity_profile import ActivityProfile, hourly_activity
from hub.detection.home_events import AlertTrigger, DetectionError, HomeEvent, local_clock
from hub.detection.inactivity import (
    InactivityConfig,
    PresenceConfig,
    PresenceTracker,
    SilenceDetector,
    default_prior,
)
from hub.detection.routine import RoutineConfig, RoutineDetector

SNAPSHOT_VERSION = 1


class ResidentConfig(BaseModel):
    """Everything the home detectors need to know about one resident (ids only, no personal data)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resident_id: str = Field(default="resident", title="Resident id", description="Opaque id used in logs.")
    timezone: str | None = Field(
        default=None,
        title="Time zone",
        description="IANA zone for aware timestamps; None treats naive timestamps as local time.",
    )
    sleep_start: time = Field(
        default=time(22, 0), title="Sleep start", description="Start of the sleep window."
    )
    sleep_end: time = Field(default=time(7, 0), title="Sleep end", description="End of the sleep window.")
    inactivity: InactivityConfig = Field(
        default=InactivityConfig(), title="Inactivity", description="Silence alarm settings."
    )
    presence: PresenceConfig = Field(
        default=PresenceConfig(),
        title="Presence",
        description="Home/away inference settings.",
    )
    routine: RoutineConfig = Field(
        default=RoutineConfig(), title="Routine", description="Routine rule settings."
    )


class HomeMonitor:
    """Runs presence, silence and routine rules for one resident on a caller-driven clock.

    ``config`` is the resident's :class:`ResidentConfig`; ``profile`` the hour-of-week baseline
    (None until the hub has one). Feed every event to :meth:`observe` and call :meth:`tick` at
    least once a minute; both return the triggers that became due. Nothing reads the wall clock.
    """

    def __init__(self, config: ResidentConfig, profile: ActivityProfile | None = None) -> None:
        self.config = config
        self.presence = PresenceTracker(config.presence)
        self.silence = SilenceDetector(
            config.inactivity, config.sleep_start, config.sleep_end, config.timezone
        )
        self.routine = RoutineDetector(config.routine, config.sleep_start, config.sleep_end)
        self.profile: ActivityProfile | None = None
        self.update_profile(profile)

    @property
    def at_home(self) -> bool:
        """False once a departure has been confirmed and until the resident is back."""
        return not self.presence.away

    def update_profile(self, profile: ActivityProfile | None) -> None:
        """Swap in a fresh hour-of-week profile (the hub refreshes it from TimescaleDB, replay daily)."""
        self.profile = profile
        cfg = self.config.inactivity
        prior = default_prior(cfg, self.config.sleep_start, self.config.sleep_end, self.silence.sparse)
        probs, learned = hourly_activity(
            profile,
            prior,
            min_history_days=cfg.min_history_days,
            cap=cfg.max_hourly_activity,
            trust_days=cfg.trust_days,
            eager_from_days=cfg.eager_from_days,
        )
        self.silence.set_hourly_activity(probs, learned, prior)
        self.routine.set_hourly_activity(probs, learned)

    def observe(self, event: HomeEvent) -> list[AlertTrigger]:
        """Take one event; returns event-driven triggers (night_door)."""
        local = local_clock(event.ts, self.config.timezone)
        was_sparse = self.silence.sparse
        self.presence.observe(event)
        self.silence.observe(event)
        if was_sparse and not self.silence.sparse:
            self.update_profile(self.profile)  # the first motion sensor: dense-home defaults from now on
        return self.routine.observe(event, local, self.at_home)

    def tick(self, now: datetime) -> list[AlertTrigger]:
        """Advance the clock to ``now``; returns the time-driven triggers that became due."""
        local = local_clock(now, self.config.timezone)
        out = self.presence.tick(now, local, self.config.routine.wandering_risk)
        silence = self.silence.tick(now, self.at_home)
        if silence is not None:
            out.append(silence)
        # In bed after a default or learned wake time is the sleep bound's to judge, not the morning
        # rule's (a late riser is not "not up"); a wake time set by the carers still applies.
        in_bed = self.silence.bed_occupied is True
        quiet = self.silence.fired or (in_bed and self.config.routine.wake_time is None)
        elsewhere = in_bed or self.silence.held_outside(self.routine.is_bathroom)
        out.extend(self.routine.tick(now, local, self.at_home, quiet, elsewhere))
        return out

    def state_snapshot(self) -> dict[str, Any]:
        """JSON-able state, enough for another worker to carry on with :meth:`from_snapshot`."""
        return {
            "version": SNAPSHOT_VERSION,
            "config": self.config.model_dump(mode="json"),
            "profile": None if self.profile is None else self.profile.to_dict(),
            "presence": self.presence.to_dict(),
            "silence": self.silence.to_dict(),
            "routine": self.routine.to_dict(),
        }

    @classmethod
    def from_snapshot(
        cls,
        data: dict[str, Any],
        config: ResidentConfig | None = None,
        profile: ActivityProfile | None = None,
    ) -> HomeMonitor:
        """Rebuild a monitor; ``config``/``profile`` override the ones stored in the snapshot."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise DetectionError(f"unsupported home-monitor snapshot version {data.get('version')!r}")
        try:
            cfg = config or ResidentConfig.model_validate(data["config"])
            if profile is None and data.get("profile") is not None:
                profile = ActivityProfile.from_dict(data["profile"])
            monitor = cls(cfg, profile)
            monitor.presence.load(data["presence"])
            monitor.silence.load(data["silence"])
            monitor.update_profile(monitor.profile)  # the restored home may be sparse or dense
            monitor.routine.load(data["routine"])
        except (KeyError, TypeError, ValueError, ValidationError) as err:
            raise DetectionError("home-monitor snapshot is incomplete or malformed") from err
        return monitor
