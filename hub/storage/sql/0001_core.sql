-- Core schema: the place tree, people, devices, time series, alerts and users.

-- Turns a table into a hypertable when TimescaleDB is present; otherwise indexes its time column.
CREATE OR REPLACE FUNCTION eldercare_time_table(tbl regclass, time_col text, chunk interval)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
    PERFORM create_hypertable(tbl, time_col, chunk_time_interval => chunk, if_not_exists => true);
  ELSE
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s (%I DESC)', tbl::text || '_time_idx', tbl, time_col);
  END IF;
END $$;

-- city → district → community; the id is the path ("sz/futian/lianhua") so scope is a prefix test.
CREATE TABLE regions (
  path        text PRIMARY KEY CHECK (path ~ '^[a-z0-9_-]+(/[a-z0-9_-]+){0,2}$'),
  level       text NOT NULL CHECK (level IN ('city', 'district', 'community')),
  name        text NOT NULL,
  name_en     text
);

CREATE TABLE households (
  id          text PRIMARY KEY,
  region_path text NOT NULL REFERENCES regions(path),
  address     text NOT NULL DEFAULT '',
  lat         double precision,
  lon         double precision,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX households_region_idx ON households (region_path text_pattern_ops);

CREATE TABLE users (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  username      text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  role          text NOT NULL CHECK (role IN ('admin', 'operator', 'community_worker', 'family')),
  scope_path    text REFERENCES regions(path),
  resident_id   text,
  display_name  text NOT NULL DEFAULT '',
  phone         text,
  email         text,
  disabled      boolean NOT NULL DEFAULT false,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE residents (
  id              text PRIMARY KEY,
  household_id    text NOT NULL REFERENCES households(id),
  name            text NOT NULL,
  birth_year      int,
  gender          text,
  phone           text,
  medical_notes   text NOT NULL DEFAULT '',
  risk_flags      text[] NOT NULL DEFAULT '{}',
  community_worker_id bigint REFERENCES users(id),
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX residents_household_idx ON residents (household_id);
ALTER TABLE users ADD CONSTRAINT users_resident_fk FOREIGN KEY (resident_id) REFERENCES residents(id);

-- Family and other contacts, called in `position` order.
CREATE TABLE contacts (
  resident_id text NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
  position    int NOT NULL,
  name        text NOT NULL,
  relation    text NOT NULL DEFAULT '',
  phone       text,
  email       text,
  webhook_url text,
  PRIMARY KEY (resident_id, position)
);

CREATE TABLE devices (
  id             text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
  type           text NOT NULL,
  resident_id    text REFERENCES residents(id),
  household_id   text REFERENCES households(id),
  room           text,
  status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
  provisioned_at timestamptz NOT NULL DEFAULT now(),
  revoked_at     timestamptz,
  meta           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX devices_resident_idx ON devices (resident_id);
CREATE INDEX devices_household_idx ON devices (household_id);

CREATE TABLE device_status (
  device_id     text PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
  last_seen     timestamptz,
  online        boolean,
  battery       real,
  signal        real,
  worn          boolean,
  tamper        boolean,
  last_location jsonb,
  updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Numeric series: battery, heart rate, signal...
CREATE TABLE readings (
  ts          timestamptz NOT NULL,
  device_id   text NOT NULL,
  resident_id text,
  metric      text NOT NULL,
  value       double precision NOT NULL
);
SELECT eldercare_time_table('readings', 'ts', interval '1 day');
CREATE INDEX readings_resident_metric_idx ON readings (resident_id, metric, ts DESC);

-- Discrete device events: SOS, fall, door, motion, check-in...; (device_id, msg_id, ts) makes
-- redelivered messages idempotent.
CREATE TABLE device_events (
  ts          timestamptz NOT NULL,
  device_id   text NOT NULL,
  resident_id text,
  household_id text,
  kind        text NOT NULL,
  msg_id      text NOT NULL,
  room        text,
  data        jsonb NOT NULL DEFAULT '{}',
  received_at timestamptz NOT NULL DEFAULT now()
);
SELECT eldercare_time_table('device_events', 'ts', interval '1 day');
CREATE UNIQUE INDEX device_events_msg_idx ON device_events (device_id, msg_id, ts);
CREATE INDEX device_events_resident_idx ON device_events (resident_id, ts DESC);

-- Raw wrist accelerometer batches: kept briefly, for review of detected falls.
CREATE TABLE imu_batches (
  ts        timestamptz NOT NULL,
  device_id text NOT NULL,
  rate_hz   real NOT NULL,
  n         int NOT NULL,
  samples   bytea NOT NULL
);
SELECT eldercare_time_table('imu_batches', 'ts', interval '1 hour');
CREATE INDEX imu_batches_device_idx ON imu_batches (device_id, ts DESC);

CREATE TABLE dead_letters (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  received_at timestamptz NOT NULL DEFAULT now(),
  topic       text NOT NULL,
  device_id   text,
  reason      text NOT NULL,
  detail      text NOT NULL DEFAULT '',
  payload     bytea
);
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at DESC);

CREATE TABLE alerts (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  resident_id     text NOT NULL REFERENCES residents(id),
  household_id    text NOT NULL REFERENCES households(id),
  region_path     text NOT NULL,
  type            text NOT NULL,
  severity        text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
  active          boolean NOT NULL DEFAULT true,
  acknowledged_at timestamptz,
  acknowledged_by bigint REFERENCES users(id),
  closed_at       timestamptz,
  resolution      text,
  assigned_to     bigint REFERENCES users(id),
  first_ts        timestamptz NOT NULL,
  last_ts         timestamptz NOT NULL,
  trigger_count   int NOT NULL DEFAULT 1,
  source_device   text,
  location        jsonb,
  details         jsonb NOT NULL DEFAULT '{}',
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now()
);
-- At most one open alert per resident and type: a repeat trigger updates it.
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (resident_id, type) WHERE closed_at IS NULL;
CREATE INDEX alerts_region_idx ON alerts (region_path text_pattern_ops, created_at DESC);
CREATE INDEX alerts_created_idx ON alerts (created_at DESC);

CREATE TABLE alert_events (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  alert_id  bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  ts        timestamptz NOT NULL DEFAULT clock_timestamp(),
  kind      text NOT NULL,
  actor     text NOT NULL DEFAULT 'system',
  details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, id);

CREATE TABLE auth_tokens (
  token_hash bytea PRIMARY KEY,
  user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE TABLE audit_log (
  id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ts       timestamptz NOT NULL DEFAULT now(),
  user_id  bigint REFERENCES users(id),
  action   text NOT NULL,
  target   text NOT NULL,
  details  jsonb NOT NULL DEFAULT '{}'
);

-- Durable escalation timers: one row per open alert whose next step is due at `due_at`.
-- Workers claim due rows with FOR UPDATE SKIP LOCKED, so several run without double-notifying.
CREATE TABLE alert_timers (
  alert_id   bigint PRIMARY KEY REFERENCES alerts(id) ON DELETE CASCADE,
  step       int NOT NULL DEFAULT 0,
  due_at     timestamptz NOT NULL,
  reminders  int NOT NULL DEFAULT 0
);
CREATE INDEX alert_timers_due_idx ON alert_timers (due_at);

-- The live feed: every alert change and device status change, with a cursor for resuming.
CREATE TABLE feed_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ts          timestamptz NOT NULL DEFAULT now(),
  kind        text NOT NULL,
  region_path text NOT NULL,
  resident_id text,
  payload     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX feed_events_region_idx ON feed_events (region_path text_pattern_ops, id);
