-- A received media message whose file a runner's media worker is still downloading and
-- storing. The worker writes the message's event and deletes this row in one transaction;
-- if the runner dies first, a sweeper writes the event from this row, its `media` saying
-- the file was not stored: the message itself is never lost, and written exactly once.
CREATE TABLE inbound_media_pending (
    session_id  text NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    message_id  text NOT NULL,
    event       text NOT NULL,
    data        jsonb NOT NULL,
    runner_id   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, message_id)
);
CREATE INDEX idx_inbound_media_pending_created_at ON inbound_media_pending (created_at);
