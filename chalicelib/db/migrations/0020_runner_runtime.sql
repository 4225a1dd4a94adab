-- The runner's side of a session (issue 4): who holds it, its current QR code, counters.
-- Kept apart from `sessions` so the API's session writes and the runner's frequent
-- runtime writes never contend for the same row; deleted with the session.
CREATE TABLE session_runtime (
    session_id         text PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
    runner_id          text,
    qr_code            text,
    qr_expires_at      timestamptz,
    qr_count           integer NOT NULL DEFAULT 0,
    logged_in          boolean NOT NULL DEFAULT false,
    connected_since    timestamptz,
    messages_sent      bigint NOT NULL DEFAULT 0,
    messages_received  bigint NOT NULL DEFAULT 0,
    reconnects         bigint NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_session_runtime_runner ON session_runtime (runner_id);

-- Which runner is executing a command (a command left `running` by a dead runner is
-- taken over by the next one; one left by a live runner is not run twice).
ALTER TABLE commands ADD COLUMN runner_id text;
CREATE INDEX idx_commands_queued_enqueued ON commands (enqueued_at) WHERE status = 'queued';

-- The API awaits command rows: a NOTIFY when one finishes wakes it without polling.
CREATE FUNCTION zemeow_notify_command_done() RETURNS trigger AS $$
BEGIN
    IF NEW.status IN ('succeeded', 'failed') AND OLD.status IS DISTINCT FROM NEW.status THEN
        PERFORM pg_notify('zemeow_command_done', NEW.id::text);
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER commands_notify_done AFTER UPDATE OF status ON commands
    FOR EACH ROW EXECUTE FUNCTION zemeow_notify_command_done();

-- The emulator driver's device store: a paired emulated phone survives runner restarts
-- and failover exactly as whatsmeow's device rows do for the neonize driver.
CREATE TABLE emulator_devices (
    session_id  text PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
    jid         text NOT NULL,
    push_name   text,
    paired_at   timestamptz NOT NULL DEFAULT now()
);
