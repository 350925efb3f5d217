-- Escalation: ladder state on the durable timers, and emergency dispatch records.

-- origin_at: when the ladder started (the engine's clock); later steps are due at origin + timeouts.
-- phase: 'cancel_window' while a device-reported fall waits for an "I'm OK" check-in.
-- jump: set by an operator's emergency confirmation ('emergency_120' / 'emergency_110'); the row is due at once.
-- reason: why the next step runs (recorded on the timeline when it does).
-- claimed_by / claimed_until: a worker's lease while it sends; a crashed worker's lease simply expires.
ALTER TABLE alert_timers
  ADD COLUMN origin_at     timestamptz,
  ADD COLUMN phase         text NOT NULL DEFAULT 'ladder' CHECK (phase IN ('ladder', 'cancel_window')),
  ADD COLUMN jump          text CHECK (jump IN ('emergency_120', 'emergency_110')),
  ADD COLUMN reason        text,
  ADD COLUMN claimed_by    uuid,
  ADD COLUMN claimed_until timestamptz;

-- One emergency dispatch (120 ambulance / 110 police): the record read out to the dispatcher and its outcome.
CREATE TABLE alert_dispatches (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_id     bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  service      text NOT NULL CHECK (service IN ('120', '110')),
  cause        text NOT NULL CHECK (cause IN ('ladder', 'confirmed')),
  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
  record       jsonb NOT NULL,
  text_zh      text NOT NULL,
  text_en      text NOT NULL,
  delivered    boolean,
  outcome      text,
  outcome_ref  text,
  outcome_note text,
  outcome_by   bigint REFERENCES users(id),
  outcome_at   timestamptz
);
CREATE INDEX alert_dispatches_alert_idx ON alert_dispatches (alert_id, id);

-- SLA figures look up each alert's first delivered notification.
CREATE INDEX alert_events_notification_idx ON alert_events (alert_id, ts) WHERE kind = 'notification';
