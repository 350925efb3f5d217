-- Retention trims the live feed by age every hour; without an index on ts that is a full scan of a
-- table that grows with every alert and device status change.
CREATE INDEX IF NOT EXISTS feed_events_ts_idx ON feed_events (ts);
