-- Alert lifecycle: a pushed live feed, and the uses of signed action links.

-- Every insert into feed_events wakes the API's one feed listener at commit, whoever wrote the row.
-- A statement trigger with a constant payload: PostgreSQL folds identical notifications of one
-- transaction into one, so a batch of feed rows costs one wake-up.
CREATE FUNCTION feed_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('eldercare_feed', '');
  RETURN NULL;
END $$;
CREATE TRIGGER feed_events_notify AFTER INSERT ON feed_events
  FOR EACH STATEMENT EXECUTE FUNCTION feed_events_notify();

-- Each action of a signed link (or SMS reply) works once per alert and recipient: 'seen', 'coming'.
-- recipient_id is contact-<resident>-<position> or user-<id>; channel is the channel key it came through.
CREATE TABLE action_link_uses (
  alert_id     bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
  recipient_id text NOT NULL,
  action       text NOT NULL CHECK (action IN ('seen', 'coming')),
  channel      text NOT NULL,
  used_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (alert_id, recipient_id, action)
);
