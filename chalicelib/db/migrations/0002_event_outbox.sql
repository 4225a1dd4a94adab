-- Events are written to an outbox in the same transaction as the change that caused
-- them, then sent to the events queue; a sweeper resends what SQS did not take.
-- Nothing accepted is lost when SQS is down.
ALTER TABLE sessions ADD COLUMN event_seq bigint NOT NULL DEFAULT 0;

CREATE TABLE event_outbox (
    id          uuid PRIMARY KEY,
    session_id  text NOT NULL,
    event       text NOT NULL,
    envelope    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX idx_event_outbox_unsent ON event_outbox (created_at) WHERE sent_at IS NULL;
