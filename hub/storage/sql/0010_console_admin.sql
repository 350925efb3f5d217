-- Console administration: community outlines for the overview map, and bulk roster imports with their progress.

-- A community's outline as a polygon of [lon, lat] points (null: drawn without one).
ALTER TABLE regions ADD COLUMN IF NOT EXISTS outline jsonb;

-- One roster import (CSV or XLSX): its progress while it runs and its counts when done.
CREATE TABLE import_jobs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  created_by     bigint REFERENCES users(id),
  filename       text NOT NULL,
  dry_run        boolean NOT NULL,
  state          text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done', 'failed')),
  total_rows     int,
  processed_rows int NOT NULL DEFAULT 0,
  error_count    int NOT NULL DEFAULT 0,
  counts         jsonb NOT NULL DEFAULT '{}',
  failure        text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz
);

-- Every bad row of an import: its row number in the file, the column and the reason (no cell values).
CREATE TABLE import_errors (
  job_id  bigint NOT NULL REFERENCES import_jobs(id) ON DELETE CASCADE,
  row_no  int NOT NULL,
  col     text NOT NULL,
  reason  text NOT NULL
);
CREATE INDEX import_errors_job_idx ON import_errors (job_id, row_no);

-- The alert list searches contacts by phone and the overview counts alerts per day.
CREATE INDEX IF NOT EXISTS contacts_phone_idx ON contacts (phone);
CREATE INDEX IF NOT EXISTS residents_phone_idx ON residents (phone);
