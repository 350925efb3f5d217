-- Each ingestion worker's counters, so worker 0's /health and /metrics cover every worker (only it
-- serves HTTP). One row per worker, overwritten every few seconds.
CREATE TABLE worker_stats (
  worker_index int PRIMARY KEY CHECK (worker_index >= 0),
  ready        boolean NOT NULL,
  counters     jsonb NOT NULL,
  gauges       jsonb NOT NULL,
  started_at   timestamptz NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
