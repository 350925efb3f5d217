-- Detection state and configuration: safe zones and persisted per-resident detector state.

-- Safe zones for anti-wandering: a circle (center + radius) or a polygon of [lon, lat] points.
CREATE TABLE safe_zones (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  resident_id text NOT NULL REFERENCES residents(id) ON DELETE CASCADE,
  name        text NOT NULL DEFAULT 'home',
  lat         double precision,
  lon         double precision,
  radius_m    double precision CHECK (radius_m IS NULL OR radius_m > 0),
  polygon     jsonb,
  active_from time,
  active_to   time,
  CHECK ((lat IS NOT NULL AND lon IS NOT NULL AND radius_m IS NOT NULL) OR polygon IS NOT NULL)
);
CREATE INDEX safe_zones_resident_idx ON safe_zones (resident_id);

-- Detector state snapshots, so a restart or another worker carries on where the last one stopped.
CREATE TABLE detector_state (
  subject    text NOT NULL,
  detector   text NOT NULL,
  state      jsonb NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (subject, detector)
);

ALTER TABLE residents ADD COLUMN IF NOT EXISTS timezone text NOT NULL DEFAULT 'Asia/Shanghai';

-- When the wristband last changed between worn and not worn, for "off the wrist too long".
ALTER TABLE device_status ADD COLUMN IF NOT EXISTS worn_since timestamptz;
