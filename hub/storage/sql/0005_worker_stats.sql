-- Each hub process's counters ("worker-1", "escalation", ...), so worker 0's /health and /metrics
-- cover all of them (only worker 0 serves HTTP). One row per process, overwritten every few seconds.
CREATE TABLE worker_stats (
  process    text PRIMARY KEY,
  ready      boolean NOT NULL,
  counters   jsonb NOT NULL,
  gauges     jsonb NOT NULL,
  started_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
