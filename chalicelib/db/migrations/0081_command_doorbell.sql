-- The command doorbell (issue 16): a NOTIFY per new command, so the runner that owns the
-- session's shard can start it without waiting for the SQS hop. SQS stays the carrier of
-- record (a runner that missed the NOTIFY gets the message); the runner's claim keeps a
-- session's commands in order whichever way each one arrives.
CREATE FUNCTION zemeow_notify_command_new() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('zemeow_command_new',
                      json_build_object('command_id', NEW.id, 'session_id', NEW.session_id, 'type', NEW.type)::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER commands_notify_new AFTER INSERT ON commands
    FOR EACH ROW EXECUTE FUNCTION zemeow_notify_command_new();

-- The claim's order check: is an older command of this session still queued?
CREATE INDEX IF NOT EXISTS idx_commands_session_queued ON commands (session_uid, created_at) WHERE status = 'queued';
