-- Console workflow: weekly visit plans and records, and a responder's progress on an alert.

-- One planned visit per resident per ISO week (week_start is that week's Monday).
CREATE TABLE visit_plans (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  resident_id text NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
  week_start  date NOT NULL CHECK (extract(isodow FROM week_start) = 1),
  planned_for date,
  assigned_to bigint REFERENCES users(id),
  note        text NOT NULL DEFAULT '',
  created_by  bigint REFERENCES users(id),
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (resident_id, week_start)
);
CREATE INDEX visit_plans_week_idx ON visit_plans (week_start);

-- A home visit that happened; 'not_home' is recorded but does not count towards the visit rate.
CREATE TABLE visits (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  resident_id text NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
  visitor_id  bigint REFERENCES users(id),
  visited_at  timestamptz NOT NULL,
  outcome     text NOT NULL CHECK (outcome IN ('well', 'concern', 'not_home', 'referred')),
  notes       text NOT NULL DEFAULT '',
  plan_id     bigint REFERENCES visit_plans(id) ON DELETE SET NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX visits_resident_idx ON visits (resident_id, visited_at DESC);

-- The responder who took an escalated alert, and how far they got (each step is also on the timeline).
CREATE TABLE alert_responses (
  alert_id   bigint PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
  user_id    bigint NOT NULL REFERENCES users(id),
  state      text NOT NULL CHECK (state IN ('accepted', 'on_the_way', 'arrived', 'closed')),
  outcome    text,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_responses_user_idx ON alert_responses (user_id, state);

CREATE INDEX audit_log_ts_idx ON audit_log (ts DESC);
CREATE INDEX feed_events_resident_idx ON feed_events (resident_id, id);
