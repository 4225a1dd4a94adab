-- Placement by slot (issue 18): sessions are placed on runners through 4,096 slots, not
-- through at most eight command shards, so any number of runners share the work and a move
-- is ~1/4096 of the sessions (about 24 at 100,000 sessions), not a whole shard.
--
-- slot = the first 8 bytes of sha256(session_id) as a 64-bit integer, low 12 bits: the hash
-- chalicelib/queues.shard_for computes in Python (session ids are ASCII by their CHECK, so
-- convert_to is byte-for-byte; declared IMMUTABLE so a generated column may use it).
CREATE OR REPLACE FUNCTION zemeow_slot_of(session_id text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT (((('x' || substr(encode(sha256(convert_to(session_id, 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint) & 4095))::integer $$;

ALTER TABLE sessions ADD COLUMN IF NOT EXISTS slot integer GENERATED ALWAYS AS (zemeow_slot_of(session_id)) STORED;
CREATE INDEX IF NOT EXISTS idx_sessions_slot ON sessions (slot);

-- One row per slot. runner_id: the runner that holds the slot (it holds it while it is alive:
-- its heartbeat and lifeline are the lease, nothing per slot is renewed). next_runner_id: a
-- runner that asked for the slot; the holder stops the slot's sessions, then hands it over.
-- sessions: how many sessions the slot has (kept by the trigger below): what placement
-- balances.
CREATE TABLE slot_placements (
    slot            integer PRIMARY KEY CHECK (slot >= 0 AND slot < 4096),
    runner_id       text,
    next_runner_id  text,
    sessions        integer NOT NULL DEFAULT 0 CHECK (sessions >= 0),
    generation      bigint NOT NULL DEFAULT 0,
    moved_at        timestamptz
);
INSERT INTO slot_placements (slot) SELECT generate_series(0, 4095);
UPDATE slot_placements p SET sessions = c.n
FROM (SELECT slot, count(*)::integer AS n FROM sessions GROUP BY slot) c WHERE c.slot = p.slot;
CREATE INDEX idx_slot_placements_runner ON slot_placements (runner_id);

CREATE FUNCTION zemeow_slot_sessions() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE slot_placements SET sessions = sessions + 1 WHERE slot = NEW.slot;
    ELSE
        UPDATE slot_placements SET sessions = sessions - 1 WHERE slot = OLD.slot;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER sessions_slot_count AFTER INSERT OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION zemeow_slot_sessions();

-- What placement reads of a runner: its own command queue (routing follows placement), its
-- cap and its memory (reported with each heartbeat).
ALTER TABLE runners ADD COLUMN IF NOT EXISTS queue_url text;
ALTER TABLE runners ADD COLUMN IF NOT EXISTS max_sessions integer;
ALTER TABLE runners ADD COLUMN IF NOT EXISTS rss_mb real;
ALTER TABLE runners ADD COLUMN IF NOT EXISTS queue_deleted_at timestamptz;

-- The command shards' leases are replaced by slot_placements.
DROP TABLE IF EXISTS shard_leases;

-- A runner's queued backlog by slot: the queued commands, oldest first.
CREATE INDEX IF NOT EXISTS idx_commands_queued_slot ON commands (zemeow_slot_of(session_id), created_at)
    WHERE status IN ('queued', 'running');
