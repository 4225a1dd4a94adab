-- A deleted session keeps its webhook routing for a while, so that `session.deleted` (and
-- any event still in flight or retrying) can still be delivered and signed after the row
-- is gone. Purged after 7 days, longer than the full retry schedule.
CREATE TABLE session_tombstones (
    session_id                      text PRIMARY KEY,
    webhook_url                     text,
    webhook_events                  text[] NOT NULL DEFAULT '{}',
    webhook_secret_enc              bytea,
    webhook_secret_prev_enc         bytea,
    webhook_secret_prev_expires_at  timestamptz,
    deleted_at                      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_session_tombstones_deleted_at ON session_tombstones (deleted_at);
